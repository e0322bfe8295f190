"""One device resolver: every command and the trainer read ``--device`` the same way."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import REALCT_IMAGE
from training_helpers import small_phantom

from dcaseg.errors import InputError
from dcaseg.inference.devices import mps_available, resolve_device
from dcaseg.training.config import preset
from dcaseg.training.trainer import Trainer, TrainRequest

REPO = Path(__file__).resolve().parents[1]
ABSENT = [name for name, present in (("mps", mps_available()), ("cuda", torch.cuda.is_available())) if not present]


def dcaseg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcaseg", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def error_of(result: subprocess.CompletedProcess, command: str) -> str:
    """The message of a one-line CLI error (what follows ``dcaseg COMMAND: error:``)."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dcaseg {command}: error: "), result.stderr
    return lines[0].removeprefix(f"dcaseg {command}: error: ")


def test_vocabulary() -> None:
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == resolve_device(" CPU ") == resolve_device(cpu) == cpu
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    assert resolve_device("auto").type == resolve_device().type == expected
    for name in ("tpu", "cuda:x", "meta", ""):
        with pytest.raises(InputError, match=rf"^unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps$"):
            resolve_device(name)


@pytest.mark.parametrize("device", ABSENT)
def test_an_absent_device_is_refused_with_one_message_by_train_segment_rank_and_the_trainer(
        device: str, tmp_path: Path, tiny_model: Path) -> None:
    data = small_phantom(tmp_path / "data", cases=3, labeled=2)
    with pytest.raises(InputError) as raised:
        resolve_device(device)
    message = str(raised.value)
    assert f"device '{device}' is not available" in message and "\n" not in message

    train = dcaseg("train", str(data), "--run", str(tmp_path / "run"), "--preset", "tiny", "--device", device)
    segment = dcaseg("segment", "-m", str(tiny_model), "-i", str(REALCT_IMAGE), "-o", str(tmp_path / "out.nii.gz"),
                     "--device", device)
    rank = dcaseg("rank", "-m", str(tiny_model), str(REALCT_IMAGE), "--device", device)
    assert error_of(train, "train") == error_of(segment, "segment") == error_of(rank, "rank") == message
    assert not (tmp_path / "run").exists() and not (tmp_path / "out.nii.gz").exists()

    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        Trainer(TrainRequest(run=tmp_path / "run", config=preset("tiny"), data=data, device=device))


def test_without_a_preset_train_takes_the_devices_and_says_which(tmp_path) -> None:
    from dcaseg.training.config import preset_for_device

    assert preset_for_device("cuda") == "paper"
    assert preset_for_device("cpu") == preset_for_device("mps") == "cpu-demo"
    data = small_phantom(tmp_path / "data")
    done = dcaseg("train", str(data), "--run", str(tmp_path / "run"), "--device", "cpu", "--iterations", "1",
                  "--val-every", "1")
    assert done.returncode == 0, done.stderr
    assert "preset cpu-demo (chosen for cpu; --preset picks another)" in done.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert config["train"]["preset"] == "cpu-demo"
