"""The command line as a user runs it: every command has --help; params prints the counts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dcaseg.cli import COMMANDS


def dcaseg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcaseg", *args], capture_output=True, text=True, encoding="utf-8")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = dcaseg(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"dcaseg {command}" in result.stdout


def test_params_json_gives_the_default_model_components():
    counts = json.loads(dcaseg("params", "--n-filters", "16", "--json").stdout)
    assert list(counts) == ["encoder", "head", "medium", "tail", "aggregator", "total"]
    assert counts["total"] == 17_501_642
    assert round(counts["aggregator"] / 1e6, 2) == 3.90


def test_a_closed_output_pipe_ends_quietly(tiny_model) -> None:
    """`dcaseg info PKG | head -1`: the reader is gone before dcaseg writes; no traceback, exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "dcaseg", "info", str(tiny_model)], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, encoding="utf-8")
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert done.stderr == ""


def test_a_negative_unlabeled_weight_is_one_line_and_writes_nothing(tmp_path) -> None:
    result = dcaseg("train", str(tmp_path / "data"), "--run", str(tmp_path / "run"), "--unlabeled-weight", "-1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["dcaseg train: error: --unlabeled-weight must be 0 or more, got -1.0"]
    assert not (tmp_path / "run").exists()
