"""The compute device (one reading of a device name for every command and the trainer), and the number
format and memory layout used for inference on it."""
from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import InputError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The one reading of a device name for every command, the trainer and the Slicer modules.

    ``auto`` (CUDA, then Apple MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. Raises
    ``InputError`` with one line when the name is unknown or the device is not available here.
    """
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise InputError(f"unknown device {str(name)!r}; use {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {text!r} is not available: torch {torch.__version__} sees no CUDA GPU "
                             f"(CUDA build: {torch.version.cuda or 'none'})")
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise InputError(f"device {text!r} is not available: torch sees {count} CUDA GPU(s)")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not mps_available():
            raise InputError(f"device {text!r} is not available: torch {torch.__version__} sees no Apple MPS GPU")
        return torch.device("mps")
    raise InputError(f"unknown device {str(name)!r}; use {DEVICE_CHOICES}")


def mps_available() -> bool:
    """Whether torch can use an Apple GPU (MPS) here."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


PRECISIONS = ("auto", "fp32")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX flags; read on Linux only)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Mixed precision for a device: ``fp32`` → none; ``auto`` → bf16 (or fp16) on CUDA, bf16 on a
    CPU with native bf16, none elsewhere.

    On a CPU that computes bf16 natively it makes small windows several times faster; on one that
    does not it is far slower, so it stays off there (benchmarks/RESULTS.md, "Hardware notes").
    """
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def uses_channels_last(device: torch.device) -> bool:
    """``channels_last_3d`` makes 3-D convolutions faster on CPU (oneDNN) and on CUDA
    (benchmarks/RESULTS.md, "Hardware notes")."""
    return device.type in ("cpu", "cuda")


SMALL_WINDOW_VOXELS = 48**3


def default_windows_per_batch(device: torch.device, window_voxels: int) -> int:
    """Windows per forward pass: 4 on CUDA, and on CPU/MPS for small windows (≤ 48³, where four
    together cost little more than one); 1 for larger windows on CPU/MPS (benchmarks/RESULTS.md,
    "Hardware notes")."""
    return 4 if device.type == "cuda" or window_voxels <= SMALL_WINDOW_VOXELS else 1


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def use_all_cpu_cores() -> int:
    """Let torch use every core this process may run on; return the thread count."""
    cores = usable_cores()
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)
    return cores


@contextmanager
def all_cpu_cores() -> Iterator[int]:
    """Every usable core for torch inside the block (a training process whose peers are waiting);
    the thread count it had before, afterwards."""
    before = torch.get_num_threads()
    try:
        yield use_all_cpu_cores()
    finally:
        torch.set_num_threads(before)


def free_device_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device, None elsewhere (unknown or host memory)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def is_out_of_memory(error: BaseException) -> bool:
    """True for a device or host allocation failure (CUDA, MPS or CPU)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def release_cached_memory(device: torch.device) -> None:
    """Return cached blocks of a GPU allocator after a failed attempt."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
