"""The headroom gate on real ablation reports (benchmarks/) and on the rule's edges."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcaseg.ablation.headroom import GATE_POINTS, headroom

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def report(full: tuple[float, float | None], labeled: tuple[float, float | None]) -> dict:
    def row(variant: str, mean: float, tail: float | None) -> dict:
        return {"variant": variant, "aggregator": {"mean_dice": [mean, 1.0], "tail": [tail, 1.0], "seeds": 3}}
    return {"rows": [row("vnet-full", *full), row("vnet-labeled", *labeled)]}


def test_the_standard_phantom_fails_the_gate_as_recorded() -> None:
    """nf8 at budget x16: +3.5 mean Dice and a lower tail with every case labeled (RESULTS.md)."""
    gate = headroom(json.loads((BENCHMARKS / "ablation-x16-nf8-full.json").read_text(encoding="utf-8")))
    assert gate is not None and not gate.holds
    assert gate.mean_gain == pytest.approx(3.5, abs=0.05) and gate.tail_gain == pytest.approx(-11.4, abs=0.05)
    assert "does not hold" in gate.describe()


def test_both_gains_must_reach_ten_points() -> None:
    assert headroom(report((60.0, 40.0), (50.0, 30.0))).holds
    assert not headroom(report((60.0, 40.0), (50.0 + 1e-6, 30.0))).holds
    assert not headroom(report((70.0, 35.0), (50.0, 30.0))).holds
    assert not headroom(report((60.0, None), (45.0, None))).holds   # no tail organ scored: no tail gain
    assert headroom(report((60.0, 12.0), (45.0, None))).tail_gain == 12.0
    assert GATE_POINTS == 10.0


def test_no_gate_without_both_vnet_rows() -> None:
    only = report((60.0, 40.0), (50.0, 30.0))
    only["rows"] = only["rows"][:1]
    assert headroom(only) is None
