"""Log-gap grouping preview: sorted class shares of the labeled voxels as a bar chart on a log axis.

Bars are coloured by the group the engine's log-gap analysis puts each class in (head, medium,
tail); one series per group so the legend names the groups.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import slicer

from dcaseg.errors import InputError
from dcaseg.grouping import GROUP_COLORS, GROUP_NAMES, Grouping, group_label_files

from .plot_nodes import fill_table, new_chart, new_series, new_table


@dataclass
class GroupingPreview:
    """The grouping and the chart that shows it."""

    grouping: Grouping
    chart: object
    tables: dict[str, object]


def grouping_of_labels(label_files: Sequence[str | Path], classes: Mapping[int, str], rule: str = "top2") -> Grouping:
    """Log-gap grouping of ``classes`` over the voxels of ``label_files`` (the labeled cases)."""
    if not label_files:
        raise InputError("no labeled cases: the grouping needs at least one label file")
    return group_label_files(label_files, sorted(classes), rule)


def show_grouping(scene, grouping: Grouping, classes: Mapping[int, str], name: str = "DCA grouping") -> GroupingPreview:
    """Tables and a chart of the class shares, sorted, on a log axis, one coloured series per group."""
    rank = {value: position + 1 for position, value in enumerate(grouping.order)}
    tables, series_nodes = {}, []
    for group in GROUP_NAMES:
        values = [v for v in grouping.order if v in getattr(grouping, group)]
        table = new_table(scene, f"{name} {group}")
        fill_table(table, {"rank": [rank[v] for v in values],
                           "share": [grouping.shares[v] for v in values],
                           "organ": [classes.get(v, str(v)) for v in values]})
        tables[group] = table
        series_nodes.append(new_series(scene, f"{name} {group} ({len(values)})", table, "rank", "share",
                                       tuple(c / 255.0 for c in GROUP_COLORS[group]),
                                       slicer.vtkMRMLPlotSeriesNode.PlotTypeScatterBar, label_column="organ"))
    chart = new_chart(scene, name, "Class shares of labeled foreground (log-gap groups)",
                      "class rank", "share of foreground voxels", series_nodes, log_y=True)
    return GroupingPreview(grouping, chart, tables)
