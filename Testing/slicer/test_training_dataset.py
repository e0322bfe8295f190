"""DCATraining dataset view: the case table and the log-gap grouping chart, from real folders."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from training_fixtures import mixed_dataset, real_class_names

from dcaseg.grouping import group_label_files

slicer = pytest.importorskip("slicer")


def organs_in(label_file) -> list[str]:
    names = real_class_names()
    return [names[int(v)] for v in np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(label_file)))) if v > 0]


def test_table_lists_cases_label_status_organs_and_a_broken_case(mrml, tmp_path):
    from DCATrainingLib.dataset_table import case_rows, folder_problems, scan_folder, show_dataset, summary
    from DCATrainingLib.plot_nodes import column_values

    root = mixed_dataset(tmp_path / "data")
    (root / "images" / "broken.nii.gz").write_bytes(b"this is not a NIfTI file" * 10)
    (root / "images" / "notes.txt").write_text("a stray file")

    scan = scan_folder(root)
    table = show_dataset(mrml.scene, scan)
    rows = {row.case: row for row in case_rows(scan)}

    assert sorted(rows) == ["broken", "phantom_000", "phantom_001", "phantom_002", "tsA", "tsB"]
    assert column_values(table, "case") == sorted(rows)
    assert {case: row.labeled for case, row in rows.items()} == {
        "broken": "no", "phantom_000": "yes", "phantom_001": "yes", "phantom_002": "no", "tsA": "yes", "tsB": "no"}
    assert rows["tsA"].organs.split(", ") == organs_in(root / "labels" / "tsA.nii.gz")
    assert "esophagus" not in rows["tsA"].organs  # absent from the real fixture
    assert rows["phantom_001"].organs.split(", ") == organs_in(root / "labels" / "phantom_001.nii.gz")
    assert rows["tsA"].size == "122×101×30" and rows["tsA"].spacing == "3×3×3"
    assert rows["tsB"].size == "122×101×112" and rows["tsB"].organs == ""
    assert rows["broken"].problems.startswith("broken.nii.gz: ") and rows["broken"].size == ""
    assert all(rows[case].problems == "" for case in rows if case != "broken")
    assert column_values(table, "problems")[0] == rows["broken"].problems
    assert any("notes.txt" in problem for problem in folder_problems(scan))
    assert summary(scan).startswith("6 cases: 3 labeled, 2 unlabeled, 1 with problems")
    assert "ERROR" not in mrml.vtk_log.GetOutput()


def test_grouping_chart_shows_sorted_shares_on_a_log_axis_coloured_by_group(mrml, tmp_path):
    from dcaseg.grouping import GROUP_COLORS
    from DCATrainingLib.dataset_table import scan_folder
    from DCATrainingLib.grouping_chart import grouping_of_labels, show_grouping
    from DCATrainingLib.plot_nodes import column_values, series_of

    root = mixed_dataset(tmp_path / "data")
    scan = scan_folder(root)
    label_files = [case.label for case in scan.labeled_cases]
    grouping = grouping_of_labels(label_files, scan.classes)
    assert grouping.as_dict() == group_label_files(label_files, sorted(scan.classes)).as_dict()

    preview = show_grouping(mrml.scene, grouping, scan.classes)
    chart = preview.chart
    assert chart.GetYAxisLogScale()
    series = series_of(chart)
    assert [s.GetPlotType() for s in series] == [slicer.vtkMRMLPlotSeriesNode.PlotTypeScatterBar] * 3
    ranks, shares, organs = [], [], []
    for group, node in zip(("head", "medium", "tail"), series):
        assert node.GetColor() == pytest.approx([c / 255 for c in GROUP_COLORS[group]])
        table = node.GetTableNode()
        values = [int(v) for v in column_values(table, "rank")]
        assert [scan.classes[grouping.order[r - 1]] for r in values] == column_values(table, "organ")
        assert {grouping.order[r - 1] for r in values} == set(getattr(grouping, group)) - set(grouping.absent)
        ranks += values
        shares += column_values(table, "share")
        organs += column_values(table, "organ")
    assert ranks == list(range(1, len(grouping.order) + 1))
    assert shares == sorted(shares, reverse=True) and shares == pytest.approx(
        [grouping.shares[v] for v in grouping.order])
    assert organs[0] == "liver"
    assert "ERROR" not in mrml.vtk_log.GetOutput()


def test_each_groups_colour_leads_in_its_channel_of_the_attention_blend():
    from dcaseg.grouping import GROUP_COLORS, group_color_hex
    from DCASegmentationLib.attention import BLEND_CHANNEL

    for group, rgb in GROUP_COLORS.items():
        assert max(range(3), key=lambda channel: rgb[channel]) == BLEND_CHANNEL[group]
        assert group_color_hex(group) == "#" + "".join(f"{c:02x}" for c in rgb)
