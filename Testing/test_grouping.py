"""Log-gap grouping on hand-made counts and on the real CT fixture (also through the CLI)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dcaseg.errors import InputError
from dcaseg.grouping import log_gap_grouping

REALCT = Path(__file__).parent / "Data" / "realct"
LABEL_A = REALCT / "tsA_ct_sm_noncontrast_label.nii.gz"
NAMES = REALCT / "labelmap_abd14.json"


def test_top2_cuts_at_the_two_largest_gaps():
    counts = {1: 10000, 2: 1000, 3: 900, 4: 800, 5: 20, 6: 18}
    g = log_gap_grouping(counts, [1, 2, 3, 4, 5, 6])
    assert (g.head, g.medium, g.tail) == ([1], [2, 3, 4], [5, 6])
    assert g.order == [1, 2, 3, 4, 5, 6] and len(g.gaps) == 5


def test_sequential_rule_can_degenerate_where_top2_does_not():
    # largest gap low in the ranking: sequential leaves one class each in medium and tail
    counts = {1: 1000, 2: 500, 3: 250, 4: 125, 5: 1, 6: 0.5}
    top2 = log_gap_grouping(counts, [1, 2, 3, 4, 5, 6], "top2")
    sequential = log_gap_grouping(counts, [1, 2, 3, 4, 5, 6], "sequential")
    assert (top2.head, top2.medium, top2.tail) == ([1], [2, 3, 4], [5, 6]) or top2.tail == [5, 6]
    assert sequential.head == [1, 2, 3, 4] and sequential.medium == [5] and sequential.tail == [6]


def test_absent_classes_go_to_tail_with_a_warning_and_ties_are_deterministic():
    counts = {1: 100, 2: 100, 3: 10, 4: 1}
    first = log_gap_grouping(counts, [4, 3, 2, 1, 9])
    second = log_gap_grouping(dict(reversed(list(counts.items()))), [1, 2, 3, 4, 9])
    assert (first.head, first.medium, first.tail) == (second.head, second.medium, second.tail)
    assert first.order == [1, 2, 3, 4] and 9 in first.tail and first.absent == [9]
    assert any("label 9" in w for w in first.warnings())


def test_fewer_than_three_present_classes_is_a_clear_error():
    with pytest.raises(InputError, match="at least three classes"):
        log_gap_grouping({1: 10, 2: 5}, [1, 2, 3])


def test_real_ct_liver_alone_in_head_and_both_adrenals_in_tail():
    result = subprocess.run([sys.executable, "-m", "dcaseg", "groups", str(LABEL_A), "--names", str(NAMES),
                             "--json"], capture_output=True, text=True, check=True)
    groups = json.loads(result.stdout)
    assert groups["head"] == ["liver"]
    assert {"adrenal_gland_right", "adrenal_gland_left"} <= set(groups["tail"])
    assert "esophagus" in groups["tail"] and "esophagus" in result.stderr  # absent from this patient
    assert groups["shares"]["liver"] == pytest.approx(0.576, abs=0.01)
    assert len(groups["gaps"]) == len(groups["shares"]) - 1


def test_groups_plot_is_written(tmp_path):
    plot = tmp_path / "groups.png"
    labels = tmp_path / "labels"
    labels.mkdir()
    for path in REALCT.glob("*_label.nii.gz"):
        (labels / path.name).write_bytes(path.read_bytes())
    subprocess.run([sys.executable, "-m", "dcaseg", "groups", str(tmp_path), "--names", str(NAMES),
                    "--plot", str(plot)], capture_output=True, check=True)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_baseline_rules_ignore_the_gaps():
    counts = {1: 5000, 2: 2000, 3: 700, 4: 500, 5: 80, 6: 40}
    uniform = log_gap_grouping(counts, list(counts), "uniform")
    assert (uniform.head, uniform.medium, uniform.tail) == ([1, 2], [3, 4], [5, 6])
    threshold = log_gap_grouping(counts, list(counts), "threshold")
    assert (threshold.head, threshold.medium, threshold.tail) == ([1, 2], [3, 4], [5, 6])
    shares = threshold.shares
    assert all(shares[c] >= 0.10 for c in threshold.head) and all(shares[c] < 0.01 for c in threshold.tail)
