"""Model packages: a folder or ``.zip`` with ``model.json`` + ``weights.safetensors``.

Loading never unpickles anything: weights are safetensors, metadata is JSON, and every field is
validated with a human-readable reason. Writing is atomic (temp folder/file, then rename).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from . import __version__
from .atomic import atomic_write
from .errors import PackageError
from .grouping import GROUP_NAMES
from .nets import ArchitectureConfig, DCANet

FORMAT_VERSION = 1
# Which head gives a package's label map: the aggregation decoder (the paper's), or the experts'
# fused prediction where it validated better (short runs; see Trainer._validate).
OUTPUTS = ("aggregator", "experts_fused")
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"
MAX_JSON_BYTES = 4 * 1024 * 1024
INTENSITY_MODES = ("ct-window", "zscore")


@dataclass
class ClassInfo:
    """One foreground class: label value in label maps, name, RGB colour, optional codes."""

    value: int
    name: str
    color: tuple[int, int, int]
    snomed: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"value": self.value, "name": self.name, "color": list(self.color)}
        if self.snomed:
            data["snomed"] = self.snomed
        return data


@dataclass
class Preprocessing:
    """How images are prepared: spacing (x, y, z mm), intensity, patch size (x, y, z voxels)."""

    target_spacing: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    modality: str = "CT"
    intensity: dict[str, Any] = field(default_factory=lambda: {"mode": "ct-window", "window": [-75.0, 275.0]})
    body_crop: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "target_spacing": list(self.target_spacing),
                "patch_size": list(self.patch_size), "intensity": self.intensity,
                "body_crop": self.body_crop}


@dataclass
class ModelMeta:
    """The validated content of ``model.json``."""

    name: str
    architecture: ArchitectureConfig
    classes: list[ClassInfo]
    groups: dict[str, list[int]]
    preprocessing: Preprocessing
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    engine_version: str = __version__
    format_version: int = FORMAT_VERSION
    output: str = "aggregator"

    @property
    def label_values(self) -> list[int]:
        """Label value of each output channel; channel 0 is background (0)."""
        return [0, *(c.value for c in self.classes)]

    @property
    def class_names(self) -> dict[int, str]:
        return {c.value: c.name for c in self.classes}

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": self.format_version, "name": self.name,
                "description": self.description, "architecture": self.architecture.to_dict(),
                "classes": [c.to_dict() for c in self.classes], "groups": self.groups,
                "preprocessing": self.preprocessing.to_dict(), "training": self.training,
                "output": self.output, "engine_version": self.engine_version}


def expert_classes_from_groups(groups: Mapping[str, list[int]], classes: list[ClassInfo]) -> dict[str, list[int]]:
    """Convert groups of label values into groups of channel indices (channel i+1 = classes[i])."""
    channel = {c.value: i + 1 for i, c in enumerate(classes)}
    return {g: [channel[v] for v in groups[g]] for g in GROUP_NAMES}


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


# ----------------------------------------------------------------------------- validation

def _require(data: Mapping, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise PackageError(f"{where}: missing field '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise PackageError(f"{where}: field '{key}' must be {names}, got {type(value).__name__}")
    return value


def _parse_classes(raw: list, where: str) -> list[ClassInfo]:
    classes = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise PackageError(f"{where}: classes[{i}] must be an object")
        value = _require(item, "value", int, f"{where}: classes[{i}]")
        name = _require(item, "name", str, f"{where}: classes[{i}]")
        color = _require(item, "color", list, f"{where}: classes[{i}]")
        if value < 1 or value > 65535:
            raise PackageError(f"{where}: class '{name}' has label value {value}; use 1..65535 (0 is background)")
        if len(color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in color):
            raise PackageError(f"{where}: class '{name}' colour must be three integers 0..255")
        snomed = item.get("snomed")
        classes.append(ClassInfo(value, name, (color[0], color[1], color[2]), snomed if isinstance(snomed, dict) else None))
    values = [c.value for c in classes]
    names = [c.name for c in classes]
    if len(set(values)) != len(values) or len(set(names)) != len(names):
        raise PackageError(f"{where}: class label values and names must be unique")
    if not classes:
        raise PackageError(f"{where}: the class list is empty")
    return classes


def _parse_preprocessing(raw: dict, where: str) -> Preprocessing:
    where = f"{where}: preprocessing"
    spacing = _require(raw, "target_spacing", list, where)
    patch = _require(raw, "patch_size", list, where)
    if len(spacing) != 3 or not all(isinstance(s, (int, float)) and s > 0 for s in spacing):
        raise PackageError(f"{where}: target_spacing must be three positive numbers (x, y, z mm)")
    if len(patch) != 3 or not all(isinstance(p, int) and p > 0 and p % 16 == 0 for p in patch):
        raise PackageError(f"{where}: patch_size must be three positive multiples of 16")
    intensity = raw.get("intensity", {"mode": "ct-window", "window": [-75.0, 275.0]})
    if not isinstance(intensity, dict) or intensity.get("mode") not in INTENSITY_MODES:
        raise PackageError(f"{where}: intensity.mode must be one of {list(INTENSITY_MODES)}")
    if intensity["mode"] == "ct-window":
        window = intensity.get("window")
        if not (isinstance(window, list) and len(window) == 2 and window[0] < window[1]):
            raise PackageError(f"{where}: intensity.window must be [low, high] with low < high")
    return Preprocessing(tuple(float(s) for s in spacing), tuple(int(p) for p in patch),
                         str(raw.get("modality", "CT")), intensity, bool(raw.get("body_crop", True)))


def parse_meta(data: Any, where: str = MODEL_JSON) -> ModelMeta:
    """Validate a decoded ``model.json``; raise PackageError with the first reason it is invalid."""
    if not isinstance(data, dict):
        raise PackageError(f"{where}: must hold a JSON object")
    version = _require(data, "format_version", int, where)
    if version > FORMAT_VERSION:
        raise PackageError(f"{where}: format version {version} is newer than this engine reads "
                           f"({FORMAT_VERSION}); update dcaseg")
    name = _require(data, "name", str, where)
    classes = _parse_classes(_require(data, "classes", list, where), where)
    arch_raw = _require(data, "architecture", dict, where)
    try:
        architecture = ArchitectureConfig.from_dict(arch_raw)
    except (TypeError, ValueError) as error:
        raise PackageError(f"{where}: architecture: {error}") from None
    if architecture.num_classes != len(classes) + 1:
        raise PackageError(f"{where}: architecture has {architecture.num_classes - 1} foreground classes "
                           f"but the class list names {len(classes)}")
    groups_raw = _require(data, "groups", dict, where)
    values = {c.value for c in classes}
    groups: dict[str, list[int]] = {}
    for group in GROUP_NAMES:
        members = _require(groups_raw, group, list, f"{where}: groups")
        unknown = [v for v in members if v not in values]
        if unknown:
            raise PackageError(f"{where}: group '{group}' names label values {unknown} that are not classes")
        groups[group] = [int(v) for v in members]
    grouped = [v for g in GROUP_NAMES for v in groups[g]]
    if sorted(grouped) != sorted(values):
        raise PackageError(f"{where}: every class must belong to exactly one of head/medium/tail")
    if architecture.experts != "none" and architecture.expert_classes:
        expected = expert_classes_from_groups(groups, classes)
        actual = {g: list(architecture.expert_classes[g]) for g in GROUP_NAMES}
        split = all(sorted(expected[g]) == sorted(actual[g]) for g in GROUP_NAMES)
        everyone = all(sorted(actual[g]) == list(range(1, len(classes) + 1)) for g in GROUP_NAMES)
        if not (split or everyone):
            raise PackageError(f"{where}: architecture.expert_classes do not match the groups")
    preprocessing = _parse_preprocessing(_require(data, "preprocessing", dict, where), where)
    training = data.get("training", {})
    output = data.get("output", "aggregator")
    if output not in OUTPUTS:
        raise PackageError(f"{where}: output must be one of {list(OUTPUTS)}, got {output!r}")
    if output == "experts_fused" and architecture.experts == "none":
        raise PackageError(f"{where}: output 'experts_fused' needs expert decoders, and this network has none")
    return ModelMeta(name=name, architecture=architecture, classes=classes, groups=groups,
                     preprocessing=preprocessing, description=str(data.get("description", "")),
                     training=training if isinstance(training, dict) else {},
                     engine_version=str(data.get("engine_version", "")), format_version=version, output=output)


def check_weights(meta: ModelMeta, state_dict: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise PackageError unless ``state_dict`` fits the architecture exactly (names and shapes)."""
    expected = DCANet(meta.architecture).state_dict()
    missing = [k for k in expected if k not in state_dict]
    extra = [k for k in state_dict if k not in expected]
    if missing or extra:
        detail = f"missing {missing[:2]}" if missing else f"unexpected {extra[:2]}"
        raise PackageError(f"{where}: weights do not fit the architecture ({len(missing)} missing, "
                           f"{len(extra)} unexpected tensors, e.g. {detail})")
    for key, tensor in expected.items():
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise PackageError(f"{where}: weights do not fit the architecture: '{key}' has shape "
                               f"{tuple(state_dict[key].shape)}, expected {tuple(tensor.shape)}")


# ----------------------------------------------------------------------------- reading

def _read_members(path: Path) -> tuple[bytes, bytes]:
    """Return the raw bytes of model.json and weights.safetensors from a folder or a zip."""
    if not path.exists():
        raise PackageError(f"{path}: no such model package")
    if path.is_dir():
        for member in (MODEL_JSON, WEIGHTS):
            if not (path / member).is_file():
                raise PackageError(f"{path}: not a model package (no {member})")
        if (path / MODEL_JSON).stat().st_size > MAX_JSON_BYTES:
            raise PackageError(f"{path / MODEL_JSON}: too large to be a model description")
        return (path / MODEL_JSON).read_bytes(), (path / WEIGHTS).read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            members = {Path(n).name: n for n in archive.namelist() if not n.endswith("/")}
            for member in (MODEL_JSON, WEIGHTS):
                if member not in members:
                    raise PackageError(f"{path}: not a model package (the zip has no {member})")
            if archive.getinfo(members[MODEL_JSON]).file_size > MAX_JSON_BYTES:
                raise PackageError(f"{path}: model.json is too large to be a model description")
            return archive.read(members[MODEL_JSON]), archive.read(members[WEIGHTS])
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise PackageError(f"{path}: not a readable model package ({error.__class__.__name__}: {error})") from None


def read_meta(path: str | Path) -> ModelMeta:
    """Read and validate only the metadata of a package (fast; for listings)."""
    path = Path(path)
    raw_json, _ = _read_members(path)
    return _decode_meta(raw_json, path)


def _decode_meta(raw_json: bytes, path: Path) -> ModelMeta:
    try:
        data = json.loads(raw_json.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PackageError(f"{path}: model.json is not valid JSON ({error})") from None
    return parse_meta(data, f"{path}: model.json")


def load_package(path: str | Path) -> ModelPackage:
    """Read, validate and return a model package; never executes code from the file."""
    path = Path(path)
    raw_json, raw_weights = _read_members(path)
    meta = _decode_meta(raw_json, path)
    try:
        state_dict = load_safetensors_bytes(raw_weights)
    except (SafetensorError, ValueError, RuntimeError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        raise PackageError(f"{path}: {WEIGHTS} is not a valid safetensors file ({reason}); "
                           "pickled or truncated weights are refused") from None
    check_weights(meta, state_dict, f"{path}: {WEIGHTS}")
    return ModelPackage(meta, state_dict, path)


# ----------------------------------------------------------------------------- writing

def save_package(path: str | Path, network: DCANet, meta: ModelMeta, half: bool = False) -> Path:
    """Write a package atomically: a folder, or a zip when ``path`` ends in ``.zip``.

    An existing package at ``path`` is replaced only once the new one is complete. ``half`` stores
    the floating-point weights as float16 (half the size, for bundled models); loading turns them
    back into the network's float32.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (staging / MODEL_JSON).write_bytes(meta_json)
        (staging / WEIGHTS).write_bytes(weights)
        _replace_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _replace_folder(staging: Path, target: Path) -> None:
    """Swap ``staging`` into ``target``; an old package is removed only after the swap."""
    if not target.exists():
        os.replace(staging, target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)

