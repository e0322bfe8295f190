"""Fault tests, run folders: one training per run folder (a lock that dies with its process) and a
broken ``config.json`` on ``--resume`` as one line naming the key.

Before: two trainings on one run folder mixed silently (config.json of one, last.pt and model/
of the other), and a config.json missing a key ended ``--resume`` in a KeyError traceback.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from training_helpers import read_events, small_phantom

from dcaseg import __version__
from dcaseg.cli import main
from dcaseg.training.checkpoint import load_checkpoint
from dcaseg.training.config import preset
from dcaseg.training.run_config import read_run_config
from dcaseg.training.run_lock import HELD_ENV, RunBusyError, run_lock

COMMON = ["--preset", "tiny", "--validation-cases", "0", "--val-every", "100", "--device", "cpu"]
HOLD = "import sys, time; from pathlib import Path; from dcaseg.training.run_lock import run_lock\n" \
       "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n"
TAKE = "import sys; from pathlib import Path; from dcaseg.training.run_lock import run_lock\n" \
       "with run_lock(Path(sys.argv[1])):\n    print('taken')\n"


def train(*args: str) -> list[str]:
    return [sys.executable, "-m", "dcaseg", "train", *args]


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="pauses the first training with SIGSTOP")
def test_a_second_training_on_a_live_run_is_refused_and_the_first_finishes_alone(tmp_path: Path) -> None:
    data = small_phantom(tmp_path / "data", cases=3, labeled=2)
    run = tmp_path / "run"
    first = subprocess.Popen(train(str(data), "--run", str(run), *COMMON, "--iterations", "4", "--seed", "1",
                                   "--progress", "jsonl"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert first.stdout is not None
    assert json.loads(first.stdout.readline())["event"] == "stage"  # it holds the run now
    first.send_signal(signal.SIGSTOP)  # paused, it keeps the lock however long the others take to start
    try:
        again = subprocess.run(train(str(data), "--run", str(run), *COMMON, "--iterations", "2", "--seed", "7",
                                     "--progress", "none"), capture_output=True, text=True)
        resume = subprocess.run(train("--resume", str(run), "--progress", "none"), capture_output=True, text=True)
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_err = first.communicate(timeout=600)
    for refused in (again, resume):
        assert refused.returncode == 2
        lines = refused.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("dcaseg train: error: ")
        assert "another training is running in this run folder" in lines[0]
        assert f"pid {first.pid} on {socket.gethostname()}" in lines[0]
    assert first.returncode == 0, first_err[-2000:]
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (config["train"]["seed"], config["train"]["iterations"], state["iteration"]) == (1, 4, 4)
    model = json.loads((run / "model" / "model.json").read_text(encoding="utf-8"))
    assert model["training"]["seed"] == 1
    events = read_events(run)
    assert [e["iteration"] for e in events if e["event"] == "metrics"] == [1, 2, 3, 4]  # one writer
    assert [e["event"] for e in events].count("done") == 1


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusyError, match=f"pid {holder.pid} on "):
            with run_lock(run):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    with run_lock(run, create=False):  # a killed run can be resumed at once
        assert json.loads((run / "run.lock").read_text(encoding="utf-8"))["pid"] == os.getpid()


def test_processes_started_under_the_lock_do_not_wait_for_it_and_others_are_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with run_lock(run):
        worker = subprocess.run([sys.executable, "-c", TAKE, str(run)], capture_output=True, text=True)
        stranger = subprocess.run([sys.executable, "-c", TAKE, str(run)], capture_output=True, text=True,
                                  env={k: v for k, v in os.environ.items() if k != HELD_ENV})
    assert worker.returncode == 0 and worker.stdout.strip() == "taken"  # a torchrun worker of this process
    assert stranger.returncode != 0 and "RunBusyError" in stranger.stderr
    assert HELD_ENV not in os.environ


def test_resuming_a_missing_run_folder_is_one_line_and_creates_nothing(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume", str(tmp_path / "nowhere"), "--progress", "none"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"dcaseg train: error: {tmp_path / 'nowhere'}: no such run folder"]
    assert not (tmp_path / "nowhere").exists()


def stored_config(tmp_path: Path) -> dict:
    """What the trainer writes as config.json (same keys, JSON types)."""
    return {"data": str(tmp_path / "data"), "train": json.loads(json.dumps(preset("tiny").to_dict())),
            "world_size": 1, "init_from": None, "target_spacing": [4.0, 4.0, 4.0], "engine_version": __version__}


def _drop(path: str):
    def change(config: dict) -> None:
        *parents, key = path.split(".")
        for parent in parents:
            config = config[parent]
        del config[key]
    return change


def _set(path: str, value):
    def change(config: dict) -> None:
        *parents, key = path.split(".")
        for parent in parents:
            config = config[parent]
        config[key] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_drop("train"), "'train' is missing"),
    (_drop("data"), "'data' is missing"),
    (_drop("target_spacing"), "'target_spacing' is missing"),
    (_drop("train.n_filters"), "'train.n_filters' is missing"),
    (_drop("train.augment.gamma"), "'train.augment.gamma' is missing"),
    (_set("train.iterations", "500"), "'train.iterations' must be an integer, got \"500\""),
    (_set("train.n_filters", 8.0), "'train.n_filters' must be an integer, got 8.0"),
    (_set("train.amp", "yes"), "'train.amp' must be true or false, got \"yes\""),
    (_set("train.patch_size", [32, 32]), "'train.patch_size' must be a list of 3 integers, got [32, 32]"),
    (_set("train.augment", [1, 2]), "'train.augment' must be an object, got [1, 2]"),
    (_set("train.base_lr", None), "'train.base_lr' must be a finite number, got null"),
    (_set("target_spacing", [4, "4", 4]), "'target_spacing' must be a list of 3 finite numbers"),
    (_set("target_spacing", [4, 0, 4]), "'target_spacing' must be positive"),
    (_set("init_from", 3), "'init_from' must be a string, got 3"),
    (_set("train", "tiny"), "'train' must be an object, got \"tiny\""),
])
def test_resume_with_a_broken_config_is_one_line_naming_the_key(change, message: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    config = stored_config(tmp_path)
    change(config)
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert main(["train", "--resume", str(run), "--progress", "none"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dcaseg train: error: {run / 'config.json'}: ")
    assert message in lines[0]


def test_a_config_json_from_before_the_fusion_setting_still_resumes_with_the_mean(tmp_path: Path) -> None:
    config = stored_config(tmp_path)
    del config["train"]["fusion"], config["train"]["aggregator_on_labels"]
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    stored = read_run_config(tmp_path / "config.json")
    assert stored.train.fusion == "mean" and not stored.train.aggregator_on_labels
    assert stored.train.n_filters == preset("tiny").n_filters and stored.target_spacing == (4.0, 4.0, 4.0)
