"""Atomic writes: the old file survives a failed write, and no temporary file is left behind."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dcaseg import atomic
from dcaseg.atomic import atomic_write, write_json_atomic, write_text_atomic
from dcaseg.errors import InputError


def test_a_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path):
    target = tmp_path / "sub" / "settings.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["settings.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path):
    target = write_text_atomic(tmp_path / "labels.json", "old\n")
    with pytest.raises(TypeError):
        write_json_atomic(target, {"not serialisable": object()})
    with pytest.raises(RuntimeError), atomic_write(target, binary=True) as stream:
        stream.write(b"half a file")
        raise RuntimeError("killed mid-write")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.json"]


def test_a_new_file_gets_the_usual_permissions_and_a_replaced_one_keeps_its_own(tmp_path: Path):
    fresh = write_text_atomic(tmp_path / "new.txt", "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~atomic._UMASK  # not mkstemp's 0600
    os.chmod(fresh, 0o640)
    write_text_atomic(fresh, "y")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640


def test_a_write_the_system_refuses_is_a_one_line_error_naming_the_file(tmp_path: Path):
    blocker = write_text_atomic(tmp_path / "not-a-folder", "x")  # a file where a folder should be
    with pytest.raises(InputError, match=r"^cannot write .*not-a-folder/run\.json: "):
        write_json_atomic(blocker / "run.json", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["not-a-folder"]
