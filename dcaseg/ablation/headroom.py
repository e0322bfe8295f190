"""The headroom gate: may a phantom family be used to compare semi-supervised methods? (docs/phantom.md)

A method can only gain from unlabeled cases what their labels would give. The gate compares the
V-Net trained with every training case labeled (``vnet-full``) against the V-Net trained on the
labeled share (``vnet-labeled``), same budget and seeds: the family is usable at that budget only
when the first beats the second by ``GATE_POINTS`` or more in mean Dice and in tail-group Dice
(means over seeds of the aggregator's Dice, %, on the test cases).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GATE_POINTS = 10.0


@dataclass(frozen=True)
class Headroom:
    """All-labeled minus labeled-only V-Net: mean and tail Dice gains (points) over ``seeds`` seeds each."""

    mean_gain: float
    tail_gain: float
    seeds: tuple[int, int]

    @property
    def holds(self) -> bool:
        return self.mean_gain >= GATE_POINTS and self.tail_gain >= GATE_POINTS

    def describe(self) -> str:
        verdict = "holds" if self.holds else "does not hold"
        return (f"headroom (all labeled minus labeled only, {self.seeds[0]} and {self.seeds[1]} seeds): "
                f"mean Dice {self.mean_gain:+.1f}, tail {self.tail_gain:+.1f} points; "
                f"the gate (both >= {GATE_POINTS:g}) {verdict}")


def headroom(report: Mapping[str, Any]) -> Headroom | None:
    """The gate's numbers from an ablation report; None unless both V-Net rows are in it.

    A tail with no score (no tail organ in any test case) counts as 0.
    """
    rows = {row["variant"]: row["aggregator"] for row in report["rows"] if "aggregator" in row}
    if "vnet-full" not in rows or "vnet-labeled" not in rows:
        return None
    full, labeled = rows["vnet-full"], rows["vnet-labeled"]

    def value(summary: Mapping[str, Any], key: str) -> float:
        return float(summary[key][0] or 0.0)

    return Headroom(value(full, "mean_dice") - value(labeled, "mean_dice"),
                    value(full, "tail") - value(labeled, "tail"), (full["seeds"], labeled["seeds"]))
