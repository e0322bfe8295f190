"""The run's persistent ``split.json``: which cases train as labeled, unlabeled and validation.

The trainer reads it when it plans a run (``plan.py``); the Slicer module's Save correction moves
a case from ``unlabeled`` to ``labeled``; ``validation`` changes only when the user asks for it,
so retraining never reshuffles the held-out cases.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_json_atomic
from ..errors import InputError
from .run_folder import SPLIT_KEYS as ROLES
from .run_folder import RunFolder


def read_split(run_dir: str | Path) -> dict[str, list[str]]:
    """The split of a run folder as ``{role: [case ids]}``; a clear error when missing or malformed."""
    return read_split_file(RunFolder(Path(run_dir)).split)


def read_split_file(path: Path) -> dict[str, list[str]]:
    """A ``split.json`` as ``{role: [case ids], other keys as they are}``; one-line errors."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (is {path.parent} a training run folder?)") from None
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read split ({error})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(role, []), list) for role in ROLES):
        raise InputError(f"{path}: expected an object with the lists {', '.join(ROLES)}")
    return {**{role: [str(case) for case in data.get(role, [])] for role in ROLES},
            **{key: value for key, value in data.items() if key not in ROLES}}


def write_split(run_dir: str | Path, split: dict) -> Path:
    """Write ``split`` to ``run_dir/split.json`` atomically (temporary file, then rename)."""
    return write_json_atomic(RunFolder(Path(run_dir)).split, split)


def mark_case_labeled(run_dir: str | Path, case_id: str, role: str = "labeled") -> str:
    """Record that ``case_id`` now has a label; returns the role it holds afterwards.

    The default puts it in ``labeled`` (leaving ``unlabeled``). A validation case stays in
    validation; ``role="validation"`` moves a case there only because the user asked for it.
    """
    if role not in ("labeled", "validation"):
        raise InputError(f"a corrected case can join 'labeled' or 'validation', not {role!r}")
    split = read_split(run_dir)
    if role == "labeled" and case_id in split["validation"]:
        return "validation"
    for other in ROLES:
        if other != role and case_id in split[other]:
            split[other].remove(case_id)
    if case_id not in split[role]:
        split[role].append(case_id)
    write_split(run_dir, split)
    return role
