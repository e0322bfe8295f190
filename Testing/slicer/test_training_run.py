"""A real ``dcaseg train`` subprocess driven by DCATraining: start, Stop, Resume, live plots,
"Use this model", and Retrain into a new run with the same validation cases."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import SimpleITK as sitk

from dcaseg.data.phantom import make_phantom, phantom_case

slicer = pytest.importorskip("slicer")

RUN_LIMIT_S = 900  # a hang guard, not a speed check
PHANTOM_SEED, PHANTOM_SIZE = 1, (48, 48, 32)
UNLABELED_WEIGHT = 2.5  # not the tiny preset's 10, so the run shows whether the choice arrived


def logged(run: Path, kind: str) -> list[dict]:
    lines = (run / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def last_per_iteration(events: list[dict]) -> dict[int, dict]:
    return {e["iteration"]: e for e in events}  # a resumed run may repeat iterations; the last counts


@pytest.fixture(scope="module")
def stopped_then_resumed(tmp_path_factory):
    """Start a tiny run, Stop it after its first checkpoint, then Resume it to the end."""
    from DCATrainingLib.training_process import TrainingProcess, TrainingRequest

    root = tmp_path_factory.mktemp("training")
    make_phantom(root / "data", cases=4, labeled=2, seed=PHANTOM_SEED, size=PHANTOM_SIZE)
    scene = slicer.vtkMRMLScene()
    request = TrainingRequest(data=root / "data", run=root / "run", preset="tiny", device="cpu",
                              unlabeled_weight=UNLABELED_WEIGHT)
    first = TrainingProcess(scene, request)
    first.start()
    while first.poll():
        if first.monitor.last_checkpoint is not None:
            first.stop()
        time.sleep(0.05)
    stopped_at = first.monitor.last_checkpoint
    second = TrainingProcess(scene, request, resume=True)
    second.start()
    assert second.wait(timeout=RUN_LIMIT_S) is not None
    return scene, request, first, second, stopped_at


def test_stop_leaves_a_run_that_resume_completes(stopped_then_resumed):
    _, request, first, second, stopped_at = stopped_then_resumed
    total = json.loads((request.run / "config.json").read_text(encoding="utf-8"))["train"]["iterations"]
    assert first.state == "stopped", first.result
    assert first.result.returncode == 0                       # a requested stop is a clean ending
    assert (request.run / "checkpoints" / "last.pt").is_file()
    assert not (request.run / "stop-requested").exists()       # the trainer removed its stop file
    assert logged(request.run, "stopped")[0]["iteration"] == stopped_at
    assert 2 <= stopped_at < total
    assert second.state == "done", second.error
    assert second.monitor.resumed_at == stopped_at
    assert logged(request.run, "done")[-1]["iteration"] == total
    assert first.monitor.progress < 1.0 and second.monitor.progress == 1.0


def test_the_chosen_unlabeled_weight_reaches_the_run_and_survives_resume(stopped_then_resumed):
    _, request, _, _, _ = stopped_then_resumed
    assert json.loads((request.run / "config.json").read_text(encoding="utf-8"))["train"]["lambda_max"] \
        == UNLABELED_WEIGHT
    ramp = [e["lambda"] for e in logged(request.run, "metrics")]
    assert 0 < max(ramp) <= UNLABELED_WEIGHT


def test_monitor_plots_hold_every_logged_point(stopped_then_resumed):
    from DCATrainingLib.plot_nodes import column_values, series_of

    _, request, _, second, _ = stopped_then_resumed
    monitor = second.monitor
    metrics = last_per_iteration(logged(request.run, "metrics"))
    assert column_values(monitor.metrics_table, "iteration") == sorted(metrics)
    loss_series = series_of(monitor.loss_chart)
    assert [s.GetYColumnName() for s in loss_series] == ["loss_sup", "loss_unsup", "lambda"]
    for series in loss_series:
        assert series.GetTableNode() is monitor.metrics_table and series.GetXColumnName() == "iteration"
        assert column_values(monitor.metrics_table, series.GetYColumnName()) == pytest.approx(
            [metrics[i][series.GetYColumnName()] for i in sorted(metrics)])

    validations = last_per_iteration(logged(request.run, "validation"))
    assert len(validations) >= 2
    assert column_values(monitor.dice_table, "iteration") == sorted(validations)
    assert column_values(monitor.dice_table, "mean") == pytest.approx(
        [validations[i]["mean_dice"] for i in sorted(validations)])
    organs = list(next(iter(validations.values()))["dice"])
    assert len(organs) == 13
    dice_series = series_of(monitor.dice_chart)
    assert [s.GetYColumnName() for s in dice_series] == ["mean", *organs]
    for organ in organs:
        assert column_values(monitor.dice_table, organ) == pytest.approx(
            [validations[i]["dice"][organ] for i in sorted(validations)])
    assert monitor.finished and monitor.progress == 1.0 and monitor.error is None


def test_use_this_model_registers_it_with_dcasegmentation(stopped_then_resumed, tmp_path):
    from DCASegmentationLib.model_registry import ModelRegistry
    from DCATrainingLib.model_handoff import use_model

    _, request, _, second, _ = stopped_then_resumed
    assert second.model_path == request.run / "model"
    registry = ModelRegistry(tmp_path / "models")
    entry = use_model(registry, second.model_path)
    assert entry.problem == "" and entry.meta is not None
    assert [e.key for e in registry.list_models()] == [entry.key]
    assert [c.name for c in entry.meta.classes][:2] == ["spleen", "kidney_right"]
    assert entry.meta.training["iterations"] in {v["iteration"] for v in logged(request.run, "validation")}


def test_retrain_fine_tunes_into_a_new_run_with_the_same_validation(stopped_then_resumed, mrml, tmp_path):
    from dcaseg.training.split_file import mark_case_labeled, read_split
    from DCATrainingLib.training_process import TrainingProcess, prepare_retrain

    _, request, _, second, _ = stopped_then_resumed
    data = tmp_path / "data"
    shutil.copytree(request.data, data)
    before = read_split(request.run)
    newly = before["unlabeled"][0]
    _, labels = phantom_case(PHANTOM_SEED, int(newly.split("_")[1]), PHANTOM_SIZE)  # the "corrected" label
    sitk.WriteImage(labels, str(data / "labels" / f"{newly}.nii.gz"))
    mark_case_labeled(request.run, newly)  # what Save correction does
    old_model = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (request.run / "model").iterdir()}

    retrain = prepare_retrain(replace(request, data=data, iterations=2), second.model_path)
    assert retrain.run == request.run.parent / "run-retrain-1" and retrain.init_from == second.model_path
    process = TrainingProcess(mrml.scene, retrain)
    process.start()
    assert process.wait(timeout=RUN_LIMIT_S) is not None
    assert process.state == "done", process.error

    after = read_split(retrain.run)
    assert after["validation"] == before["validation"]
    assert newly in after["labeled"] and newly not in after["unlabeled"]
    meta = json.loads((retrain.run / "model" / "model.json").read_text(encoding="utf-8"))
    assert json.loads((retrain.run / "config.json").read_text(encoding="utf-8"))["train"]["lambda_max"] \
        == UNLABELED_WEIGHT
    assert meta["training"]["initialised_from"] == str(second.model_path)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (request.run / "model").iterdir()} == old_model
    assert process.monitor.finished and process.model_path == retrain.run / "model"
