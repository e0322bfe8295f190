"""The one reader of class names: ``labels.json`` and nnU-Net / Medical Segmentation Decathlon ``dataset.json``.

Three spellings are read, each mapping label values to names (0, the background, is dropped):

- ``labels.json`` (plain dataset folders): ``{"1": "spleen", "2": "kidney_right"}``;
- MSD / nnU-Net v1 ``dataset.json``: ``{"labels": {"0": "background", "1": "spleen"}}``;
- nnU-Net v2 ``dataset.json``: ``{"labels": {"background": 0, "spleen": 1}}``. Region-based
  labels (a class made of several values, ``"kidneys": [2, 3]``) are refused.

Every failure is one ``InputError`` line that starts with the file's path; every command that
reads class names (``dataset``, ``train``, ``evaluate``, ``groups --names``) gives the same one.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError

MAX_LABEL_VALUE = 65535   # what a model package holds
EXAMPLES = ('{"1": "spleen"}, {"labels": {"0": "background", "1": "spleen"}} '
            'or {"labels": {"background": 0, "spleen": 1}}')


class _RepeatedKey(ValueError):
    """A JSON object names one key twice (``json`` would silently keep the last)."""


def load_json(path: str | Path) -> Any:
    """A JSON file's content; ``InputError`` with one line when it cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror or error})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _RepeatedKey as error:
        raise InputError(f"{path}: key {error} appears twice") from None
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None


def read_class_names(path: str | Path, allow_duplicate_names: bool = False) -> dict[int, str]:
    """Foreground label value -> class name from ``path``, sorted by value.

    Two classes with one name are refused unless ``allow_duplicate_names`` (the dataset scan
    reports them as a problem of the folder instead; see ``duplicate_names``).
    """
    names = parse_class_names(load_json(path), path)
    if not allow_duplicate_names:
        duplicate = duplicate_names(names)
        if duplicate:
            raise InputError(f"{path}: {duplicate}")
    return names


def parse_class_names(data: Any, where: str | Path) -> dict[int, str]:
    """Class names from parsed JSON (see the module docstring); ``where`` starts every error line."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object of class names, like {EXAMPLES}")
    mapping = data.get("labels", data)
    if not isinstance(mapping, dict):
        raise InputError(f'{where}: "labels" must be an object of class names, like {EXAMPLES}')
    if "regions_class_order" in data:
        raise InputError(f"{where}: region-based labels are not supported (regions_class_order is set); "
                         "give each class one label value")
    pairs = [_entry(key, value, where) for key, value in mapping.items()]
    styles = {style for style, _, _ in pairs}
    if len(styles) > 1:
        raise InputError(f'{where}: mixes "value": "name" entries with "name": value entries; use one kind')
    names: dict[int, str] = {}
    for _, value, name in pairs:
        if value in names:
            raise InputError(f"{where}: label value {value} is given to both {names[value]!r} and {name!r}")
        names[value] = name
    names.pop(0, None)
    if not names:
        raise InputError(f"{where}: names no foreground class (only background)")
    return dict(sorted(names.items()))


def duplicate_names(names: Mapping[int, str]) -> str | None:
    """Why ``names`` cannot name a model's classes (one name for two values), or None."""
    first: dict[str, int] = {}
    for value, name in sorted(names.items()):
        if name in first:
            return f"class name {name!r} is used for labels {first[name]} and {value}; give each class its own name"
        first[name] = value
    return None


def _entry(key: str, value: Any, where: str | Path) -> tuple[str, int, str]:
    """(spelling, label value, name) of one entry: ``"1": "spleen"`` (by value) or ``"spleen": 1`` (by name)."""
    if isinstance(value, str):
        if not (key.isascii() and key.strip().isdigit()):
            raise InputError(f'{where}: entry {key!r}: {value!r} needs an integer label value as its key, '
                             f'like "1": "spleen"')
        number, name, style = int(key), value, "by value"
    elif isinstance(value, list) and len(value) > 1:
        raise InputError(f"{where}: region-based labels are not supported ({key!r}: {value}); "
                         "give each class one label value")
    else:
        number = value[0] if isinstance(value, list) and len(value) == 1 else value
        if isinstance(number, bool) or not isinstance(number, int):
            raise InputError(f'{where}: entry {key!r}: {value!r} is neither "value": "name" nor "name": value')
        name, style = key, "by name"
    if number < 0 or number > MAX_LABEL_VALUE:
        raise InputError(f"{where}: label value {number} of {name!r} is outside 0..{MAX_LABEL_VALUE}")
    if number > 0 and not name.strip():
        raise InputError(f"{where}: label value {number} has an empty name")
    return style, number, name


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _RepeatedKey(repr(key))
        seen[key] = value
    return seen
