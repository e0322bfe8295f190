"""Resume: a real `dcaseg train` process killed with SIGKILL after a checkpoint continues exactly.

The resumed run must repeat what an uninterrupted run does at the same iterations: the same
iteration numbers, learning rate, λ and (with seeded per-iteration sampling) the same losses.
"""
from __future__ import annotations

import json
import pickle
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import read_events, small_phantom

from dcaseg.cli import main
from dcaseg.training.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from dcaseg.training.trainer import Trainer, TrainRequest

ITERATIONS = 6
COMMON = ["--preset", "tiny", "--iterations", str(ITERATIONS), "--checkpoint-every", "2",
          "--validation-cases", "0", "--val-every", "100"]


def _metrics(run: Path) -> dict[int, dict]:
    return {e["iteration"]: e for e in read_events(run) if e["event"] == "metrics"}


def _start(data: Path, run: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dcaseg", "train", str(data), "--run", str(run), *COMMON,
                             "--progress", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _wait_for(process: subprocess.Popen, event: str, minimum: int) -> dict:
    assert process.stdout is not None
    for line in process.stdout:
        record = json.loads(line)
        if record["event"] == event and record["iteration"] >= minimum:
            return record
    raise AssertionError(f"the training process ended before a {event} event at iteration {minimum}")


@pytest.fixture(scope="module")
def data_and_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    data = small_phantom(root / "data")
    assert main(["train", str(data), "--run", str(root / "reference"), *COMMON, "--progress", "none"]) == 0
    return data, root / "reference"


def test_sigkill_after_a_checkpoint_then_resume_continues_iteration_lr_lambda_and_losses(
        data_and_reference: tuple[Path, Path], tmp_path: Path) -> None:
    data, reference = data_and_reference
    run = tmp_path / "run"
    process = _start(data, run)
    _wait_for(process, "checkpoint", 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    state = load_checkpoint(run / "checkpoints" / "last.pt")  # complete, never half-written
    saved = state["iteration"]
    assert 2 <= saved < ITERATIONS
    assert main(["train", "--resume", str(run), "--progress", "none"]) == 0
    events = read_events(run)
    resumed = next(e for e in events if e["event"] == "resumed")
    assert resumed["iteration"] == saved
    after = [e for e in events[events.index(resumed):] if e["event"] == "metrics"]
    assert [e["iteration"] for e in after] == list(range(saved + 1, ITERATIONS + 1))
    expected = _metrics(reference)
    for event in after:
        twin = expected[event["iteration"]]
        assert event["lr"] == twin["lr"] and event["lambda"] == twin["lambda"]
        assert event["loss"] == pytest.approx(twin["loss"], rel=1e-4)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] == ITERATIONS


def test_sigterm_writes_a_checkpoint_and_stops(data_and_reference: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = data_and_reference
    run = tmp_path / "run"
    process = _start(data, run)
    _wait_for(process, "metrics", 1)
    process.send_signal(signal.SIGTERM)
    stopped = _wait_for(process, "stopped", 1)
    process.wait(timeout=60)
    assert process.returncode == 130
    assert load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] == stopped["iteration"] < ITERATIONS


def test_resuming_takes_the_stored_run_without_changing_the_callers_request(
        data_and_reference: tuple[Path, Path]) -> None:
    data, reference = data_and_reference
    request = TrainRequest(run=reference, resume=True)
    trainer = Trainer(request)
    assert trainer.data == data.resolve() and trainer.init_from is None
    assert trainer.config.iterations == ITERATIONS and trainer.target_spacing is not None
    assert request == TrainRequest(run=reference, resume=True)


def test_a_failed_checkpoint_write_keeps_the_previous_file_whole(tmp_path: Path) -> None:
    network = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    path = tmp_path / "last.pt"
    save_checkpoint(path, network=network, optimizer=optimizer, scaler=None, iteration=3)
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a lambda cannot be pickled
        save_checkpoint(path, network=network, optimizer=optimizer, scaler=None, iteration=4,
                        extra={"cannot be pickled": lambda: None})
    assert load_checkpoint(path)["iteration"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_checkpoints_restore_random_states(tmp_path: Path) -> None:
    network = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "c.pt", network=network, optimizer=optimizer, scaler=None, iteration=0)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
