"""Divide: log-gap analysis of labelled voxel counts into head / medium / tail groups.

Shares P_k = V_k / V_fg are sorted decreasingly and the log-gaps G_j = log P_(j) − log P_(j+1)
mark natural boundaries. Rule ``top2`` (default) cuts at the two largest gaps (the upper one
separates head from medium, the lower one medium from tail). Rule ``sequential`` is the paper's
formula k_HM = argmax G, k_MT = argmax_{j>k_HM} G; it can degenerate: when the largest gap lies
low in the ranking, medium and tail are left with one organ each (seen on a real abdominal MR
label map), and when the largest gap is the last one it cannot place a second cut (then ``top2``
is used and a warning is given). Two baselines for ablations ignore the gaps: ``uniform``
(thirds of the ranking) and ``threshold`` (fixed shares: head ≥ 10 %, tail < 1 %).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

GROUP_NAMES = ("head", "medium", "tail")
# One colour per group in every picture (report, groups --plot, ablation chart, Slicer's grouping
# chart); each is dominated by the channel its expert takes in the attention RGB blend.
GROUP_COLORS = {"head": (214, 39, 40), "medium": (44, 160, 44), "tail": (31, 119, 180)}


def group_color_hex(group: str) -> str:
    """``#rrggbb`` of a group's colour, for matplotlib."""
    return "#{:02x}{:02x}{:02x}".format(*GROUP_COLORS[group])
RULES = ("top2", "sequential", "uniform", "threshold")
# The fixed-threshold baseline of the ablation: head ≥ 10 % of the foreground, tail < 1 %.
HEAD_SHARE, TAIL_SHARE = 0.10, 0.01


@dataclass
class Grouping:
    """The three groups (label values) and the analysis behind them."""

    head: list[int]
    medium: list[int]
    tail: list[int]
    shares: dict[int, float]
    order: list[int]
    gaps: list[float]
    cuts: tuple[int, int]
    rule: str
    absent: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[int]]:
        return {"head": self.head, "medium": self.medium, "tail": self.tail}

    def warnings(self, name: Callable[[int], str] = lambda v: f"class {v}") -> list[str]:
        """Human-readable warnings: absent classes put in tail, rule fallbacks."""
        return [f"{name(v)} (label {v}) has no labeled voxels; it is put in tail" for v in self.absent] + self.notes

    def group_of(self, value: int) -> str:
        return next(g for g in GROUP_NAMES if value in self.as_dict()[g])


def count_voxels(label_files: Iterable[str | Path]) -> dict[int, int]:
    """Voxels per label value over label files, read one at a time (never all in memory)."""
    # imported when called: the Slicer modules import this module as they load, when only the packages
    # Slicer bundles may be used (see docs/architecture.md)
    from .data.imageio import read_image

    totals: dict[int, int] = {}
    for path in label_files:
        array = sitk.GetArrayFromImage(read_image(path))
        if not np.issubdtype(array.dtype, np.integer):
            array = np.rint(array).astype(np.int64)
        if array.min() < 0:
            raise InputError(f"{path}: label values must not be negative")
        for value, count in enumerate(np.bincount(array.ravel())):
            if count:
                totals[value] = totals.get(value, 0) + int(count)
    return totals


def log_gap_grouping(counts: Mapping[int, int], classes: Sequence[int], rule: str = "top2") -> Grouping:
    """Group foreground ``classes`` by log-gap analysis of their voxel ``counts``.

    Classes with no voxels go to tail with a warning; fewer than three present classes is an error.
    Ties (equal shares or equal gaps) break deterministically: by label value, then by rank.
    """
    if rule not in RULES:
        raise InputError(f"unknown grouping rule {rule!r}; use one of {list(RULES)}")
    present = [c for c in classes if counts.get(c, 0) > 0]
    absent = sorted(c for c in classes if counts.get(c, 0) <= 0)
    if len(present) < 3:
        raise InputError(f"log-gap grouping needs at least three classes present in the labeled set, "
                         f"found {len(present)} ({present})")
    foreground = sum(counts[c] for c in present)
    shares = {c: counts[c] / foreground for c in present}
    order = sorted(present, key=lambda c: (-shares[c], c))
    gaps = [math.log(shares[order[j]]) - math.log(shares[order[j + 1]]) for j in range(len(order) - 1)]
    notes = []
    k_hm, k_mt = _top2_cuts(gaps)
    if rule == "uniform":
        n = len(order)
        k_hm, k_mt = max(0, round(n / 3) - 1), max(1, round(2 * n / 3) - 1)
    elif rule == "threshold":
        k_hm = max(0, sum(shares[c] >= HEAD_SHARE for c in order) - 1)
        k_mt = max(k_hm + 1, min(len(order) - 2, sum(shares[c] >= TAIL_SHARE for c in order) - 1))
    elif rule == "sequential":
        first = max(range(len(gaps)), key=lambda j: (gaps[j], -j))
        later = range(first + 1, len(gaps))
        if later:
            k_hm, k_mt = first, max(later, key=lambda j: (gaps[j], -j))
        else:
            notes.append("sequential rule: the largest gap is the last one, so no second cut "
                            "exists below it; using the two largest gaps instead")
    head, medium, tail = order[:k_hm + 1], order[k_hm + 1:k_mt + 1], order[k_mt + 1:] + absent
    return Grouping(head, medium, tail, shares, order, gaps, (k_hm, k_mt), rule, absent, notes)


def _top2_cuts(gaps: Sequence[float]) -> tuple[int, int]:
    ranked = sorted(range(len(gaps)), key=lambda j: (-gaps[j], j))
    first, second = sorted(ranked[:2])
    return first, second


def group_label_files(label_files: Iterable[str | Path], classes: Sequence[int] | None = None,
                      rule: str = "top2") -> Grouping:
    """Count voxels over label files and group ``classes`` (default: every value found but 0)."""
    counts = count_voxels(label_files)
    if classes is None:
        classes = sorted(v for v in counts if v != 0)
    return log_gap_grouping(counts, classes, rule)
