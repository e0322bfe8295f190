"""Model packages: a folder or ``.zip`` with ``model.json`` + ``weights.safetensors``.

Loading never unpickles anything: weights are safetensors, metadata is JSON, and every field is
validated with a human-readable reason (``package_meta``, which needs no torch). The weights are
checked against the architecture before they are read: their size may not exceed what the
architecture's tensors can take, and their names, shapes, dtypes and values must fit it; the
network is never built for the comparison (its shapes come from the meta device). Writing is
atomic (temp folder/file, then rename).
"""
from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from . import __version__
from .atomic import atomic_folder, atomic_write, write_bytes_synced
from .errors import PackageError
from .nets import ArchitectureConfig, DCANet
from .package_members import MODEL_JSON, WEIGHTS, read_member
from .package_meta import ClassInfo, ModelMeta, Preprocessing, expert_classes_from_groups, parse_meta, read_meta

__all__ = ["ClassInfo", "ModelMeta", "ModelPackage", "Preprocessing", "check_weights",
           "expert_classes_from_groups", "load_package", "parse_meta", "read_meta", "save_package"]

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# safetensors' JSON header: 8 bytes of length, then per tensor its name, dtype, shape and offsets.
HEADER_BYTES = 64 * 1024
HEADER_BYTES_PER_TENSOR = 512


@dataclass
class ModelPackage:
    """A loaded package: validated metadata and a state dict (not yet in a network)."""

    meta: ModelMeta
    state_dict: dict[str, torch.Tensor]
    source: Path

    def build_network(self, device: str | torch.device = "cpu") -> DCANet:
        """A network in eval mode holding the package's weights."""
        net = DCANet(self.meta.architecture)
        net.load_state_dict(self.state_dict)
        return net.to(device).eval()


# ----------------------------------------------------------------------------- weights

def expected_tensors(architecture: ArchitectureConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name → (shape, dtype) of every tensor of the network, without allocating it (meta device)."""
    with torch.device("meta"):
        network = DCANet(architecture)
    return {k: (tuple(v.shape), v.dtype) for k, v in network.state_dict().items()}


def weights_size_limit(expected: Mapping[str, tuple[tuple[int, ...], torch.dtype]]) -> int:
    """The most bytes a safetensors file of these tensors takes (floating point stored as float32)."""
    data = 0
    for shape, dtype in expected.values():
        itemsize = 4 if dtype.is_floating_point else torch.tensor([], dtype=dtype).element_size()
        data += itemsize * int(torch.Size(shape).numel())
    return data + HEADER_BYTES + HEADER_BYTES_PER_TENSOR * len(expected)


def check_weights(expected: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
                  state_dict: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise PackageError unless ``state_dict`` has the ``expected`` tensors: names, shapes, dtypes, finite values."""
    missing = [k for k in expected if k not in state_dict]
    extra = [k for k in state_dict if k not in expected]
    if missing or extra:
        detail = f"missing {missing[:2]}" if missing else f"unexpected {extra[:2]}"
        raise PackageError(f"{where}: weights do not fit the architecture ({len(missing)} missing, "
                           f"{len(extra)} unexpected tensors, e.g. {detail})")
    for key, (shape, dtype) in expected.items():
        tensor = state_dict[key]
        if tuple(tensor.shape) != shape:
            raise PackageError(f"{where}: weights do not fit the architecture: '{key}' has shape "
                               f"{tuple(tensor.shape)}, expected {shape}")
        allowed = FLOAT_DTYPES if dtype.is_floating_point else (dtype,)
        if tensor.dtype not in allowed:
            names = "/".join(str(d).replace("torch.", "") for d in allowed)
            raise PackageError(f"{where}: '{key}' is stored as {str(tensor.dtype).replace('torch.', '')}; "
                               f"it must be {names}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise PackageError(f"{where}: '{key}' holds NaN or infinite values; the weights are broken")


# ----------------------------------------------------------------------------- reading

def load_package(path: str | Path) -> ModelPackage:
    """Read, validate and return a model package; never executes code from the file."""
    path = Path(path)
    meta = read_meta(path)
    expected = expected_tensors(meta.architecture)
    raw_weights = read_member(path, WEIGHTS, weights_size_limit(expected), "this architecture's weights can take")
    try:
        state_dict = load_safetensors_bytes(raw_weights)
    except (SafetensorError, ValueError, RuntimeError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        raise PackageError(f"{path}: {WEIGHTS} is not a valid safetensors file ({reason}); "
                           "pickled or truncated weights are refused") from None
    check_weights(expected, state_dict, f"{path}: {WEIGHTS}")
    return ModelPackage(meta, state_dict, path)


# ----------------------------------------------------------------------------- writing

def save_package(path: str | Path, network: DCANet, meta: ModelMeta, half: bool = False) -> Path:
    """Write a package atomically: a folder, or a zip when ``path`` ends in ``.zip``.

    An existing package at ``path`` is replaced only once the new one is complete. ``half`` stores
    the floating-point weights as float16 (half the size, for bundled models); loading turns them
    back into the network's float32.
    """
    path = Path(path)
    meta_json = json.dumps(meta.to_dict(), indent=2).encode("utf-8")
    parse_meta(json.loads(meta_json), MODEL_JSON)
    state = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    weights = save_safetensors_bytes(state, metadata={"format": "pt", "engine": f"dcaseg {__version__}"})
    if path.suffix == ".zip":
        with atomic_write(path, binary=True) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MODEL_JSON, meta_json)
            archive.writestr(WEIGHTS, weights)
        return path
    with atomic_folder(path) as staging:
        write_bytes_synced(staging / MODEL_JSON, meta_json)
        write_bytes_synced(staging / WEIGHTS, weights)
    return path

