"""Distributed training: `dcaseg train --gpus 2 --device cpu` runs two Gloo processes under torchrun."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from training_helpers import read_events, small_phantom

from dcaseg.nets import ArchitectureConfig, DCANet
from dcaseg.training.checkpoint import load_checkpoint


def test_two_cpu_processes_step_in_lockstep_and_only_rank0_writes(tmp_path: Path) -> None:
    data = small_phantom(tmp_path / "data", cases=4, labeled=2)
    run = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "dcaseg", "train", str(data), "--run", str(run), "--preset", "tiny",
         "--iterations", "3", "--validation-cases", "0", "--checkpoint-every", "3", "--val-every", "3",
         "--gpus", "2", "--device", "cpu", "--progress", "jsonl", "--fusion", "mean",
         "--unlabeled-weight", "2.5"],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    events = read_events(run)
    assert [e["iteration"] for e in events if e["event"] == "metrics"] == [1, 2, 3]  # one writer, no duplicates
    done = [e for e in events if e["event"] == "done"]
    assert len(done) == 1
    checksums = done[0]["rank_weight_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]  # both ranks hold the same weights
    stdout_done = [json.loads(line) for line in completed.stdout.splitlines() if '"event": "done"' in line]
    assert len(stdout_done) == 1  # rank 1 reported nothing
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["world_size"] == 2 and config["train"]["fusion"] == "mean"  # the workers got every option
    assert config["train"]["lambda_max"] == 2.5
    assert sorted(p.name for p in run.iterdir()) == ["cache", "checkpoints", "config.json", "events.jsonl",
                                                      "grouping.json", "model", "run.lock", "split.json"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["iteration"] == 3
    torch.manual_seed(0)
    initial = DCANet(ArchitectureConfig.from_dict(
        json.loads((run / "model" / "model.json").read_text(encoding="utf-8"))["architecture"])).state_dict()
    changed = [k for k, v in state["network"].items() if v.is_floating_point() and not torch.equal(v, initial[k])]
    assert changed  # the ranks stepped
