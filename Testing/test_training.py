"""Training end to end on a small synthetic abdomen: run folder, events, model provenance, split reuse."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import SimpleITK as sitk
from training_helpers import SMALL_SIZE, SMALL_SPACING, folder_digest, read_events, small_phantom

from dcaseg.cli import main
from dcaseg.data.imageio import write_image_atomic
from dcaseg.data.phantom import phantom_case
from dcaseg.errors import InputError
from dcaseg.package import load_package
from dcaseg.training.config import PRESETS, TrainConfig, preset
from dcaseg.training.trainer import Trainer, TrainRequest


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(dataset, run folder, dataset digest before training) after one `dcaseg train --preset tiny`."""
    root = tmp_path_factory.mktemp("training")
    data = small_phantom(root / "data")
    before = folder_digest(data)
    code = main(["train", str(data), "--run", str(root / "run"), "--preset", "tiny", "--iterations", "4",
                 "--val-every", "2", "--progress", "none"])
    assert code == 0
    return data, root / "run", before


def test_run_folder_holds_config_split_events_checkpoint_and_model(trained: tuple[Path, Path, str]) -> None:
    data, run, _ = trained
    split = json.loads((run / "split.json").read_text(encoding="utf-8"))
    assert len(split["validation"]) == 1 and len(split["labeled"]) == 2 and len(split["unlabeled"]) == 2
    assert not set(split["validation"]) & set(split["labeled"])
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["train"]["preset"] == "tiny" and config["train"]["iterations"] == 4
    assert (run / "checkpoints" / "last.pt").is_file()
    assert not list((run / "checkpoints").glob("*.tmp"))
    events = read_events(run)
    metrics = [e for e in events if e["event"] == "metrics"]
    assert [e["iteration"] for e in metrics] == [1, 2, 3, 4]
    for event in metrics:
        assert {"loss", "loss_sup", "loss_unsup", "lr", "lambda"} <= set(event)
    assert metrics[0]["lr"] == pytest.approx(0.01) and metrics[-1]["lr"] < metrics[0]["lr"]
    assert metrics[-1]["lambda"] > metrics[0]["lambda"] > 0
    validations = [e for e in events if e["event"] == "validation"]
    assert [e["iteration"] for e in validations] == [2, 4]
    assert set(validations[0]["dice"]) <= set(json.loads((data / "labels.json").read_text(encoding="utf-8")).values())
    assert 0.0 <= validations[0]["mean_dice"] <= 1.0
    for event in validations:  # the better of the two heads is the one reported and exported
        heads = {"aggregator": event["aggregator_mean_dice"], "experts_fused": event["experts_fused_mean_dice"]}
        assert event["mean_dice"] == max(heads.values()) and heads[event["output"]] == event["mean_dice"]
    done = events[-1]
    assert done["event"] == "done" and done["outputs"]["model"] == str(run / "model")


def test_model_records_provenance_and_the_runs_grouping(trained: tuple[Path, Path, str]) -> None:
    data, run, _ = trained
    meta = load_package(run / "model").meta
    assert meta.name == f"DCA {data.name} ({run.name})"  # retrains on one dataset get told apart
    training = meta.training
    assert training["preset"] == "tiny" and training["iterations"] in (2, 4)
    assert len(training["data_fingerprint"]) == 16 and training["engine_version"] and training["date"]
    assert training["validation"]["mean_dice"] == max(
        e["mean_dice"] for e in read_events(run) if e["event"] == "validation")
    assert meta.output == training["validation"]["output"]
    assert set(training["validation"]["dice"]) <= set(meta.class_names.values())
    grouping = json.loads((run / "grouping.json").read_text(encoding="utf-8"))["groups"]
    assert meta.groups == grouping
    assert meta.preprocessing.patch_size == (32, 32, 32)
    assert {c.name for c in meta.classes} >= {"liver", "adrenal_gland_left"}
    liver = next(c for c in meta.classes if c.name == "liver")
    assert liver.snomed and liver.snomed["type"]["code"] == "10200004"


def test_training_never_modifies_the_dataset_folder(trained: tuple[Path, Path, str]) -> None:
    data, _, before = trained
    assert folder_digest(data) == before


def test_retrain_reuses_split_and_a_newly_labeled_case_joins_training(trained: tuple[Path, Path, str],
                                                                      tmp_path: Path) -> None:
    data_src, run_src, _ = trained
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(data_src, data)
    shutil.copytree(run_src, run)
    first = json.loads((run / "split.json").read_text(encoding="utf-8"))
    newcomer = first["unlabeled"][0]
    _, label = phantom_case(3, int(newcomer.rsplit("_", 1)[1]), SMALL_SIZE, SMALL_SPACING)
    write_image_atomic(label, data / "labels" / f"{newcomer}.nii.gz")
    code = main(["train", str(data), "--run", str(run), "--preset", "tiny", "--iterations", "1",
                 "--validation-cases", "3", "--progress", "none"])
    assert code == 0
    second = json.loads((run / "split.json").read_text(encoding="utf-8"))
    assert second["validation"] == first["validation"]
    assert newcomer in second["labeled"] and newcomer not in second["unlabeled"]
    assert any("newly labeled" in e.get("message", "") for e in read_events(run) if e["event"] == "warning")


def _write(image: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _bad_folder(kind: str, root: Path) -> tuple[Path, str]:
    """A broken dataset folder and the file name its error must mention."""
    data = root / kind
    if kind == "empty":
        data.mkdir()
        return data, str(data)
    small_phantom(data, cases=3, labeled=2 if kind != "only-unlabeled" else 0)
    first = data / "labels" / "phantom_000.nii.gz"
    if kind == "only-unlabeled":
        return data, str(data)
    if kind == "geometry":
        label = sitk.ReadImage(str(first))
        label.SetSpacing((5.0, 5.0, 5.0))
        _write(label, first)
    elif kind == "unknown-label":
        label = sitk.ReadImage(str(first))
        label[5, 5, 5] = 77
        _write(label, first)
    elif kind == "unreadable":
        first = data / "images" / "phantom_001.nii.gz"
        first.write_bytes(b"not an image at all")
    return data, first.name


@pytest.mark.parametrize("kind", ["empty", "only-unlabeled", "geometry", "unknown-label", "unreadable"])
def test_bad_dataset_folders_give_one_line_naming_the_file(kind: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    data, name = _bad_folder(kind, tmp_path)
    before = folder_digest(data)
    code = main(["train", str(data), "--run", str(tmp_path / "run"), "--preset", "tiny", "--progress", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("dcaseg train: error:")
    assert name in err
    assert folder_digest(data) == before


def test_run_folder_inside_the_dataset_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = small_phantom(tmp_path / "data", cases=2, labeled=1)
    assert main(["train", str(data), "--run", str(data / "run"), "--preset", "tiny", "--progress", "none"]) == 2
    assert "inside the dataset folder" in capsys.readouterr().err
    assert not (data / "run").exists()


def test_presets_match_the_paper_and_round_trip() -> None:
    paper = preset("paper")
    assert (paper.n_filters, paper.patch_size, paper.labeled_batch, paper.unlabeled_batch) == (16, (96, 96, 96), 2, 2)
    assert (paper.iterations, paper.base_lr, paper.poly_power, paper.momentum) == (17000, 0.01, 0.9, 0.9)
    assert paper.nesterov and paper.weight_decay == 3e-5 and paper.lambda_max == 10.0 and paper.amp
    assert paper.lr_at(0) == 0.01 and paper.lr_at(17000) == 0.0
    for config in PRESETS.values():
        assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
        assert config.fusion == "sum"
    before_fusion = {k: v for k, v in paper.to_dict().items() if k != "fusion"}
    assert TrainConfig.from_dict(before_fusion).fusion == "mean"  # run folders written before it existed
    with pytest.raises(InputError, match="fusion"):
        paper.with_overrides(fusion="max")


@pytest.mark.parametrize("variant", [
    {"mode": "vnet"}, {"mode": "vnet", "self_training": True}, {"label_split": False},
    {"experts": "symmetric", "dfam": False, "fusion": "mean"}])
def test_ablation_variants_train_through_the_same_trainer(variant: dict, trained: tuple[Path, Path, str],
                                                          tmp_path: Path) -> None:
    data, _, _ = trained
    config = preset("tiny").with_overrides(iterations=1, validation_cases=0, **variant)
    result = Trainer(TrainRequest(run=tmp_path / "run", config=config, data=data, device="cpu")).train()
    meta = load_package(result.model).meta
    assert result.iteration == 1
    if variant.get("mode") == "vnet":
        assert meta.architecture.experts == "none"
        unsup = [e["loss_unsup"] for e in read_events(tmp_path / "run") if e["event"] == "metrics"]
        assert (unsup[0] > 0) == bool(variant.get("self_training"))
    elif not variant.get("label_split", True):
        classes = list(range(1, meta.architecture.num_classes))
        assert all(sorted(v) == classes for v in meta.architecture.expert_classes.values())
    else:
        assert meta.architecture.experts == "symmetric" and not meta.architecture.dfam
        assert meta.architecture.fusion == "mean"


def test_init_from_a_model_keeps_its_classes_groups_and_starts_from_its_weights(
        trained: tuple[Path, Path, str], tmp_path: Path) -> None:
    data, run, _ = trained
    source = load_package(run / "model")
    code = main(["train", str(data), "--run", str(tmp_path / "run"), "--init-from", str(run / "model"),
                 "--preset", "tiny", "--iterations", "1", "--validation-cases", "0", "--progress", "none",
                 "--fusion", "mean", "--unlabeled-weight", "0"])
    assert code == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["train"]["lambda_max"] == 0.0
    tuned = load_package(tmp_path / "run" / "model")
    assert source.meta.architecture.fusion == "sum" and tuned.meta.architecture.fusion == "mean"
    assert tuned.meta.groups == source.meta.groups and tuned.meta.classes == source.meta.classes
    assert tuned.meta.training["initialised_from"] == str(run / "model")
    assert tuned.meta.preprocessing.target_spacing == source.meta.preprocessing.target_spacing
    key = next(k for k in source.state_dict if k.startswith("encoder") and k.endswith("weight"))
    drift = (tuned.state_dict[key] - source.state_dict[key]).abs().max().item()
    assert 0 < drift < 0.1  # one small step away from the source weights, not a fresh start
