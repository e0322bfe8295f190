"""A model package's description (``model.json``): its dataclasses, validation and ``read_meta``.

Needs neither torch nor safetensors, so a model list (also inside 3D Slicer's own process) reads
only this. Every field is checked for type and range before anything else is done with it, and
each problem is a one-line ``PackageError`` naming the field.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .architecture import MAX_CLASSES, ArchitectureConfig
from .errors import PackageError
from .grouping import GROUP_NAMES
from .package_members import MODEL_JSON, read_member

FORMAT_VERSION = 1
# Which head gives a package's label map: the aggregation decoder (the paper's), or the experts'
# fused prediction where it validated better (short runs; see Trainer._validate).
OUTPUTS = ("aggregator", "experts_fused")
INTENSITY_MODES = ("ct-window", "zscore")
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_JSON_VALUES = 200_000
MAX_NAME = 256  # characters of a model or class name
SPACING_MM = (0.1, 100.0)
MAX_PATCH = 512


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


# ----------------------------------------------------------------------------- field checks

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(data: Mapping, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise PackageError(f"{where}: missing field '{key}'")
    return _typed(data[key], key, kind, where)


def _typed(value: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise PackageError(f"{where}: field '{key}' must be {names}, got {type(value).__name__}")
    return value


def _text(data: Mapping, key: str, where: str, default: str | None = None, limit: int = MAX_NAME) -> str:
    value = _require(data, key, str, where) if default is None else _typed(data.get(key, default), key, str, where)
    if len(value) > limit:
        raise PackageError(f"{where}: field '{key}' is longer than {limit} characters")
    return value


def _numbers(value: Any, count: int) -> bool:
    return isinstance(value, list) and len(value) == count and all(_is_number(v) for v in value)


def _snomed(value: Any, where: str) -> dict[str, Any] | None:
    """Terminology codes: an object of code objects whose fields are strings (``scheme``, ``code``...)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(code, dict) and all(isinstance(v, str) for v in code.values()) for code in value.values()):
        raise PackageError(f"{where}: snomed must be an object of code objects whose fields are strings")
    return value


def _parse_classes(raw: list, where: str) -> list[ClassInfo]:
    if not raw:
        raise PackageError(f"{where}: the class list is empty")
    if len(raw) >= MAX_CLASSES:
        raise PackageError(f"{where}: {len(raw)} classes; at most {MAX_CLASSES - 1} are supported")
    classes = []
    for i, item in enumerate(raw):
        at = f"{where}: classes[{i}]"
        if not isinstance(item, dict):
            raise PackageError(f"{at} must be an object")
        value = _require(item, "value", int, at)
        name = _text(item, "name", at)
        color = _require(item, "color", list, at)
        if not name.strip():
            raise PackageError(f"{at}: the class name is empty")
        if value < 1 or value > 65535:
            raise PackageError(f"{where}: class '{name}' has label value {value}; use 1..65535 (0 is background)")
        if len(color) != 3 or not all(_is_int(c) and 0 <= c <= 255 for c in color):
            raise PackageError(f"{where}: class '{name}' colour must be three integers 0..255")
        classes.append(ClassInfo(value, name, (color[0], color[1], color[2]), _snomed(item.get("snomed"), at)))
    columns: dict[str, list[int | str]] = {"label value": [c.value for c in classes],
                                           "name": [c.name for c in classes]}
    for kind, seen in columns.items():
        twice = sorted({v for v in seen if seen.count(v) > 1}, key=str)
        if twice:
            raise PackageError(f"{where}: class {kind}s must be unique; {twice[0]!r} is used more than once")
    return classes


def _parse_intensity(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("mode") not in INTENSITY_MODES:
        raise PackageError(f"{where}: intensity.mode must be one of {list(INTENSITY_MODES)}")
    if raw["mode"] == "ct-window":
        window: Any = raw.get("window")
        if not (_numbers(window, 2) and window[0] < window[1]):
            raise PackageError(f"{where}: intensity.window must be two finite numbers [low, high] with low < high")
        return {"mode": "ct-window", "window": [float(v) for v in window]}
    if "percentiles" not in raw:
        return {"mode": "zscore"}
    percentiles = raw["percentiles"]
    if not (_numbers(percentiles, 2) and 0 <= percentiles[0] < percentiles[1] <= 100):
        raise PackageError(f"{where}: intensity.percentiles must be two numbers [low, high] "
                           "with 0 <= low < high <= 100")
    return {"mode": "zscore", "percentiles": [float(v) for v in percentiles]}


def _parse_preprocessing(raw: dict, where: str) -> Preprocessing:
    where = f"{where}: preprocessing"
    spacing = _require(raw, "target_spacing", list, where)
    patch = _require(raw, "patch_size", list, where)
    low, high = SPACING_MM
    if not (_numbers(spacing, 3) and all(low <= s <= high for s in spacing)):
        raise PackageError(f"{where}: target_spacing must be three finite numbers {low}..{high} (x, y, z mm)")
    if len(patch) != 3 or not all(_is_int(p) and 0 < p <= MAX_PATCH and p % 16 == 0 for p in patch):
        raise PackageError(f"{where}: patch_size must be three positive multiples of 16 up to {MAX_PATCH}")
    intensity = _parse_intensity(raw.get("intensity", {"mode": "ct-window", "window": [-75.0, 275.0]}), where)
    body_crop = _typed(raw.get("body_crop", True), "body_crop", bool, where)
    return Preprocessing((float(spacing[0]), float(spacing[1]), float(spacing[2])), (patch[0], patch[1], patch[2]),
                         _text(raw, "modality", where, "CT"), intensity, body_crop)


def _parse_groups(raw: dict, classes: list[ClassInfo], where: str) -> dict[str, list[int]]:
    values = {c.value for c in classes}
    groups: dict[str, list[int]] = {}
    for group in GROUP_NAMES:
        members = _require(raw, group, list, f"{where}: groups")
        if not all(_is_int(v) for v in members):
            raise PackageError(f"{where}: group '{group}' must list label values (integers)")
        unknown = [v for v in members if v not in values]
        if unknown:
            raise PackageError(f"{where}: group '{group}' names label values {unknown} that are not classes")
        groups[group] = list(members)
    grouped = [v for g in GROUP_NAMES for v in groups[g]]
    if sorted(grouped) != sorted(values):
        raise PackageError(f"{where}: every class must belong to exactly one of head/medium/tail")
    return groups


def _parse_architecture(raw: dict, classes: list[ClassInfo], where: str) -> ArchitectureConfig:
    try:
        architecture = ArchitectureConfig.from_dict(raw)
    except (TypeError, ValueError) as error:
        raise PackageError(f"{where}: architecture: {error}") from None
    if architecture.num_classes != len(classes) + 1:
        raise PackageError(f"{where}: architecture has {architecture.num_classes - 1} foreground classes "
                           f"but the class list names {len(classes)}")
    return architecture


def _check_experts(architecture: ArchitectureConfig, classes: list[ClassInfo], groups: dict[str, list[int]],
                   where: str) -> None:
    """Expert decoders own either their group's classes or every class."""
    if architecture.experts != "none" and architecture.expert_classes:
        expected = expert_classes_from_groups(groups, classes)
        actual = {g: list(architecture.expert_classes[g]) for g in GROUP_NAMES}
        split = all(sorted(expected[g]) == sorted(actual[g]) for g in GROUP_NAMES)
        everyone = all(sorted(actual[g]) == list(range(1, len(classes) + 1)) for g in GROUP_NAMES)
        if not (split or everyone):
            raise PackageError(f"{where}: architecture.expert_classes do not match the groups")


def parse_meta(data: Any, where: str = MODEL_JSON) -> ModelMeta:
    """Validate a decoded ``model.json``; raise PackageError with the first reason it is invalid."""
    if not isinstance(data, dict):
        raise PackageError(f"{where}: must hold a JSON object")
    _check_shape(data, where)
    version = _require(data, "format_version", int, where)
    if version > FORMAT_VERSION:
        raise PackageError(f"{where}: format version {version} is newer than this engine reads "
                           f"({FORMAT_VERSION}); update dcaseg")
    if version < 1:
        raise PackageError(f"{where}: format version {version} is unknown")
    name = _text(data, "name", where)
    classes = _parse_classes(_require(data, "classes", list, where), where)
    architecture = _parse_architecture(_require(data, "architecture", dict, where), classes, where)
    groups = _parse_groups(_require(data, "groups", dict, where), classes, where)
    _check_experts(architecture, classes, groups, where)
    preprocessing = _parse_preprocessing(_require(data, "preprocessing", dict, where), where)
    training = _typed(data.get("training", {}), "training", dict, where)
    output = _text(data, "output", where, "aggregator")
    if output not in OUTPUTS:
        raise PackageError(f"{where}: output must be one of {list(OUTPUTS)}, got {output!r}")
    if output == "experts_fused" and architecture.experts == "none":
        raise PackageError(f"{where}: output 'experts_fused' needs expert decoders, and this network has none")
    return ModelMeta(name=name, architecture=architecture, classes=classes, groups=groups,
                     preprocessing=preprocessing, description=_text(data, "description", where, "", 10_000),
                     training=training, engine_version=_text(data, "engine_version", where, ""),
                     format_version=version, output=output)


# ----------------------------------------------------------------------------- decoding

def _check_shape(data: Any, where: str) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or holding more than MAX_JSON_VALUES values."""
    pending, count = [(data, 1)], 0
    while pending:
        value, depth = pending.pop()
        count += 1
        if depth > MAX_JSON_DEPTH or count > MAX_JSON_VALUES:
            limit = f"nested deeper than {MAX_JSON_DEPTH} levels" if depth > MAX_JSON_DEPTH \
                else f"more than {MAX_JSON_VALUES:,} values"
            raise PackageError(f"{where}: {limit}; not a model description")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        pending.extend((child, depth + 1) for child in children)


def _refuse_constant(name: str) -> Any:
    raise PackageError(f"holds {name}, which is not a finite number")


def decode_meta(raw_json: bytes, path: Path) -> ModelMeta:
    """Decode and validate the bytes of a ``model.json`` read from package ``path``."""
    where = f"{path}: {MODEL_JSON}"
    try:
        data = json.loads(raw_json.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PackageError(f"{where} is not valid JSON ({error})") from None
    except RecursionError:
        raise PackageError(f"{where}: nested too deeply; not a model description") from None
    except PackageError as error:
        raise PackageError(f"{where}: {error}") from None
    return parse_meta(data, where)


def read_meta(path: str | Path) -> ModelMeta:
    """Read and validate only the description of a package (never its weights; for listings)."""
    path = Path(path)
    raw_json = read_member(path, MODEL_JSON, MAX_JSON_BYTES, "a model description may be")
    return decode_meta(raw_json, path)

