"""The demo pipeline in miniature: phantom → train (tiny) → segment → evaluate → report folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcaseg.cli import main
from dcaseg.package import load_package

ARGS = ["--cases", "4", "--labeled", "3", "--test-cases", "1", "--preset", "tiny", "--iterations", "2",
        "--progress", "none", "--processes", "1"]


def test_demo_writes_report_metrics_pictures_and_model(tmp_path: Path) -> None:
    out = tmp_path / "demo_out"
    assert main(["demo", "--out", str(out), *ARGS, "--processes", "2"]) == 0  # training through torchrun
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["group_dice"]) == {"head", "medium", "tail"}
    assert 0.0 <= metrics["mean_dice"] <= 1.0
    assert "liver" in metrics["dice"] and all(0.0 <= v <= 1.0 for v in metrics["dice"].values())
    fused = metrics["experts_fused"]
    assert set(fused["group_dice"]) == {"head", "medium", "tail"} and set(fused["dice"]) == set(metrics["dice"])
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| organ | group | aggregator | experts fused |" in report
    assert f"The model's output (what `dcaseg segment` writes) is **{metrics['output'].replace('_', ' ')}**" in report
    assert "| liver | head |" in report and "**tail group**" in report
    for picture in ("grouping.png", "training.png", "overlays/phantom_000.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = load_package(out / "model").meta
    assert meta.training["preset"] == "tiny" and meta.training["world_size"] == 2
    assert (out / "segmentations" / "phantom_000.nii.gz").is_file()
    assert main(["demo", "--out", str(out), *ARGS]) == 0  # a rerun replaces its own earlier output


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["demo", "--out", str(out), *ARGS]) == 2
    assert "not an earlier demo folder" in capsys.readouterr().err
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"
