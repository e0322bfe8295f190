"""The mean-teacher baseline: EMA teacher, noisy student input, softmax consistency, resume, and a
smoke run of the new ablation variant on the varied phantom family."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from training_helpers import read_events, small_phantom

from dcaseg.ablation.variants import VARIANTS, base_config, variant_config, variant_key
from dcaseg.cli import main
from dcaseg.data.phantom_varied import varied_case
from dcaseg.errors import InputError
from dcaseg.events import Reporter
from dcaseg.training.checkpoint import load_checkpoint
from dcaseg.training.config import preset
from dcaseg.training.mean_teacher import INPUT_NOISE_CLIP, MeanTeacher, consistency_loss
from dcaseg.training.stop_request import request_stop
from dcaseg.training.trainer import Trainer, TrainRequest


def test_the_teacher_is_an_exponential_moving_average_of_the_student() -> None:
    student = torch.nn.Conv3d(1, 2, 3)
    teacher = MeanTeacher(student, decay=0.99)
    assert not any(p.requires_grad for p in teacher.teacher.parameters())
    before = [p.detach().clone() for p in teacher.teacher.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    teacher.update(student, step=1000)
    for old, new, live in zip(before, teacher.teacher.parameters(), student.parameters()):
        assert torch.allclose(new, 0.99 * old + 0.01 * live)
    teacher.update(student, step=1)   # warm-up: decay min(1 - 1/2, 0.99) = 0.5
    weight = next(student.parameters())
    assert torch.allclose(next(teacher.teacher.parameters()), 0.5 * (0.99 * before[0] + 0.01 * weight) + 0.5 * weight)


def test_noise_goes_on_the_student_input_only_and_repeats_with_the_generator() -> None:
    patches = torch.rand(2, 1, 8, 8, 8)
    first = MeanTeacher.student_input(patches, torch.Generator().manual_seed(3))
    again = MeanTeacher.student_input(patches, torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and not torch.equal(first, patches)
    assert (first - patches).abs().max() <= INPUT_NOISE_CLIP + 1e-6
    assert 0.05 < float((first - patches).std()) < 0.12


def test_consistency_is_the_squared_softmax_difference() -> None:
    logits = torch.randn(2, 3, 4, 4, 4)
    assert float(consistency_loss(logits, torch.softmax(logits, dim=1))) == pytest.approx(0.0, abs=1e-7)
    uniform = torch.full_like(logits, 1.0 / 3.0)
    expected = torch.mean((torch.softmax(logits, dim=1) - uniform) ** 2)
    assert float(consistency_loss(logits, uniform)) == pytest.approx(float(expected))


def test_the_mean_teacher_is_a_vnet_option_with_its_own_runs() -> None:
    with pytest.raises(InputError, match="mean teacher"):
        preset("tiny").with_overrides(mean_teacher=True)
    with pytest.raises(InputError, match="ema_decay"):
        preset("tiny").with_overrides(mode="vnet", mean_teacher=True, ema_decay=1.0)
    config = variant_config(base_config(), "mean-teacher", 1)
    assert config.mean_teacher and config.mode == "vnet" and config.ema_decay == 0.99 and config.lambda_max == 0.1
    groups = {rule: {"head": [6], "medium": [1], "tail": [5]} for rule in ("top2", "uniform", "threshold")}
    keys = {name: variant_key(base_config(), name, groups) for name in VARIANTS}
    assert keys["mean-teacher"] == "vnet-mean-teacher:w0.1:ema0.99"
    assert list(keys.values()).count(keys["mean-teacher"]) == 1


def test_a_stopped_mean_teacher_run_resumes_with_its_teacher(tmp_path: Path) -> None:
    data = small_phantom(tmp_path / "data")
    config = preset("tiny").with_overrides(mode="vnet", mean_teacher=True, lambda_max=0.1, iterations=4,
                                           checkpoint_every=1, validation_cases=0, val_every=100)
    Trainer(TrainRequest(run=tmp_path / "reference", config=config, data=data, device="cpu")).train()

    def stop_after_two(event: dict) -> None:
        if event["event"] == "progress" and event.get("stage") == "train" and event["done"] == 2:
            request_stop(tmp_path / "run")

    result = Trainer(TrainRequest(run=tmp_path / "run", config=config, data=data, device="cpu"),
                     Reporter(stop_after_two)).train()
    assert result.stopped and result.iteration == 2
    assert set(load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["extra"]["teacher"])
    Trainer(TrainRequest(run=tmp_path / "run", resume=True, device="cpu")).train()
    reference = {e["iteration"]: e for e in read_events(tmp_path / "reference") if e["event"] == "metrics"}
    resumed = [e for e in read_events(tmp_path / "run") if e["event"] == "metrics" and e["iteration"] > 2]
    assert [e["iteration"] for e in resumed] == [3, 4]
    for event in resumed:
        twin = reference[event["iteration"]]
        assert event["loss_unsup"] > 0 and event["lambda"] == twin["lambda"]
        assert event["loss"] == pytest.approx(twin["loss"], rel=1e-4)
        assert event["loss_unsup"] == pytest.approx(twin["loss_unsup"], rel=1e-4)


def test_ablate_runs_the_mean_teacher_on_the_varied_family(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CI smoke test: the new variant and family through the command line, a few iterations."""
    out = tmp_path / "ablation"
    argv = ["ablate", str(out), "--family", "varied", "--budget", "0.015", "--seeds", "1",
            "--variants", "vnet-labeled", "mean-teacher", "--labeled", "2", "--unlabeled", "1", "--test", "1",
            "--device", "cpu", "--jobs", "1", "--n-filters", "4"]
    assert main(argv) == 0
    assert "2 runs" in capsys.readouterr().out
    report = json.loads((out / "ablation.json").read_text(encoding="utf-8"))
    assert report["settings"]["family"] == "varied"
    assert [(r["section"], r["variant"]) for r in report["rows"]] == [("components", "vnet-labeled"),
                                                                      ("baseline", "mean-teacher")]
    table = (out / "ablation.md").read_text(encoding="utf-8")
    assert "| baseline | V-Net + mean teacher |" in table and "phantom family varied" in table
    image, _ = varied_case(0, 2, (72, 72, 50), (4.0, 4.0, 4.0))   # the unlabeled case is the varied family's
    written = sitk.ReadImage(str(out / "data" / "images" / "phantom_002.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(image))
    unsup = {name: [e["loss_unsup"] for e in read_events(out / "runs" / name / "seed0") if e["event"] == "metrics"]
             for name in ("vnet-labeled", "mean-teacher")}
    assert all(v == 0 for v in unsup["vnet-labeled"]) and all(v > 0 for v in unsup["mean-teacher"])
    standard = argv[:2] + argv[4:]   # the same folder without --family varied
    assert main(standard) == 2
    assert "other settings (family)" in capsys.readouterr().err
