"""The cpu-demo preset on a CPU: channels_last_3d training in two DDP processes, and an ablation it leaves alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from training_helpers import read_events, small_phantom

from dcaseg.ablation.variants import base_config
from dcaseg.training.checkpoint import load_checkpoint
from dcaseg.training.config import preset


def test_cpu_demo_trains_in_channels_last_in_two_processes_without_a_warning(tmp_path: Path) -> None:
    data = small_phantom(tmp_path / "data", cases=4, labeled=3)
    run = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "dcaseg", "train", str(data), "--run", str(run), "--preset", "cpu-demo",
         "--iterations", "2", "--validation-cases", "1", "--val-every", "2", "--checkpoint-every", "2",
         "--gpus", "2", "--device", "cpu", "--progress", "none"],
        capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Warning" not in completed.stderr, completed.stderr[-2000:]  # DDP's gradient-stride warning is silenced
    done = [e for e in read_events(run) if e["event"] == "done"]
    checksums = done[0]["rank_weight_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]  # both ranks stepped in lockstep
    weights = load_checkpoint(run / "checkpoints" / "last.pt")["network"]
    conv = weights["encoder.stages.1.0.weight"]  # 16 → 16 channels (nf8)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()


def test_the_ablation_keeps_its_batch_and_layout_whatever_cpu_demo_uses() -> None:
    demo, base = preset("cpu-demo"), base_config()
    assert (demo.unlabeled_batch, demo.channels_last) == (1, True)
    assert (base.labeled_batch, base.unlabeled_batch, base.channels_last) == (2, 2, False)
