"""Training checkpoints: written atomically (temp file, fsync, rename), read without unpickling code.

A checkpoint holds the network weights, optimizer and gradient-scaler states, the random states
of Python, NumPy and torch (CPU and CUDA), and the iteration to continue from.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import InputError

CHECKPOINT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """The random states of Python, NumPy's legacy generator and torch, in weights-only-loadable form."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state()
    if not isinstance(numpy_state, tuple):  # a dict when the legacy generator is not MT19937
        raise TypeError("NumPy's global random generator is not MT19937; its state cannot be saved")
    kind, keys, pos, has_gauss, cached = numpy_state
    state: dict[str, Any] = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, *, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler | None, iteration: int, extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically: a reader sees the old file or the complete new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"version": CHECKPOINT_VERSION, "iteration": int(iteration),
             "network": {k: v.detach().cpu() for k, v in network.state_dict().items()},
             "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else {},
             "rng": rng_state(), "extra": extra or {}}
    with atomic_write(path, binary=True) as handle:
        torch.save(state, handle)
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; an unreadable file is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many kinds for corrupt or foreign files
        raise InputError(f"{path}: not a readable training checkpoint ({error.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"{path}: not a dcaseg training checkpoint (version {CHECKPOINT_VERSION})")
    return state
