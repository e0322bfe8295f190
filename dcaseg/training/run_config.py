"""A run folder's ``config.json``, read for ``--resume``: every key present and of the right type, or one clear error.

The training settings are checked against ``TrainConfig``'s own fields and annotations, so a new
setting is checked without a change here. Settings added after the first run folders were
written (``LEGACY_DEFAULTS``) may be missing: those runs used their defaults.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..data.augment_config import AugmentConfig
from ..errors import InputError
from .config import TrainConfig
from .run_folder import read_json

LEGACY_DEFAULTS = ("fusion", "aggregator_on_labels")
_NESTED = {"AugmentConfig": AugmentConfig}
_SCALARS = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a string"}
_PLURALS = {"int": "integers", "float": "finite numbers"}


@dataclass(frozen=True)
class StoredRun:
    """What ``config.json`` says about a run: its dataset, settings, model spacing and start model."""

    data: Path
    train: TrainConfig
    target_spacing: tuple[float, float, float]
    init_from: Path | None


def read_run_config(path: Path) -> StoredRun:
    """Read and check ``config.json`` at ``path``; an ``InputError`` names the first missing or mistyped key."""
    stored = read_json(path)
    if not isinstance(stored, dict):
        raise InputError(f"{path}: not a run configuration (expected a JSON object)")
    for key, annotation in (("data", "str"), ("train", "dict"), ("target_spacing", "tuple[float, float, float]")):
        if key not in stored:
            raise InputError(f"{path}: '{key}' is missing, so the run cannot be resumed from it")
        _check(path, key, stored[key], annotation)
    _check(path, "init_from", stored.get("init_from"), "str | None")
    train = stored["train"]
    _check_fields(path, "train", train, TrainConfig)
    if any(s <= 0 for s in stored["target_spacing"]):
        raise InputError(f"{path}: 'target_spacing' must be positive, got {stored['target_spacing']}")
    init_from = stored.get("init_from")
    x, y, z = (float(s) for s in stored["target_spacing"])
    return StoredRun(Path(stored["data"]), TrainConfig.from_dict(train), (x, y, z),
                     Path(init_from) if init_from else None)


def _check_fields(path: Path, where: str, values: dict, kind: type) -> None:
    for item in fields(kind):
        key = f"{where}.{item.name}"
        if item.name not in values:
            if kind is TrainConfig and item.name in LEGACY_DEFAULTS:
                continue
            raise InputError(f"{path}: '{key}' is missing, so the run cannot be resumed from it")
        _check(path, key, values[item.name], str(item.type))


def _check(path: Path, key: str, value: Any, annotation: str) -> None:
    """Raise an ``InputError`` unless ``value`` (from JSON) fits ``annotation`` (a field's annotation text)."""
    optional = annotation.endswith(" | None")
    base = annotation[: -len(" | None")] if optional else annotation
    if value is None and optional:
        return
    if base in _NESTED:
        _expect(path, key, value, isinstance(value, dict), "an object")
        _check_fields(path, key, value, _NESTED[base])
    elif base == "dict":
        _expect(path, key, value, isinstance(value, dict), "an object")
    elif base.startswith("tuple[") and base.endswith("]"):
        items = [item.strip() for item in base[len("tuple["):-1].split(",")]
        scalar = items[0]
        count = None if items[-1] == "..." else len(items)
        what = f"a list of {count or 'any number of'} {_PLURALS[scalar]}"
        fits = (isinstance(value, list) and (count is None or len(value) == count)
                and all(_is_scalar(v, scalar) for v in value))
        _expect(path, key, value, fits, what)
    elif base in _SCALARS:
        _expect(path, key, value, _is_scalar(value, base), _SCALARS[base])
    else:
        raise TypeError(f"no check for the annotation {annotation!r} of {key}")


def _is_scalar(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) if kind == "int" else math.isfinite(value)


def _expect(path: Path, key: str, value: Any, fits: bool, what: str) -> None:
    if not fits:
        shown = json.dumps(value)
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        raise InputError(f"{path}: '{key}' must be {what}, got {shown}")
