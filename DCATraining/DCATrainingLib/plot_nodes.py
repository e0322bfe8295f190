"""Small helpers that create Slicer Plots MRML nodes: table -> series -> chart."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import slicer
import vtk


def new_table(scene, name: str):
    """A new ``vtkMRMLTableNode`` named ``name``."""
    return scene.AddNewNodeByClass("vtkMRMLTableNode", name)


def fill_table(table_node, columns: Mapping[str, Sequence]) -> None:
    """Replace the table's columns with ``{name: values}``: numbers become doubles, anything else text."""
    with slicer.util.NodeModify(table_node):
        table_node.RemoveAllColumns()
        table = table_node.GetTable()
        for name, values in columns.items():
            values = list(values)
            numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values)
            array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
            array.SetName(name)
            array.SetNumberOfValues(len(values))
            for index, value in enumerate(values):
                array.SetValue(index, float(value) if numeric else str(value))
            table.AddColumn(array)
        table.Modified()


def column_values(table_node, name: str) -> list:
    """The values of column ``name`` (numbers or strings), e.g. to check what a chart shows."""
    column = table_node.GetTable().GetColumnByName(name)
    if column is None:
        raise KeyError(f"table {table_node.GetName()!r} has no column {name!r}")
    return [column.GetValue(i) for i in range(column.GetNumberOfValues())]


def new_series(scene, name: str, table_node, x_column: str, y_column: str, color: Sequence[float],
               plot_type: int | None = None, label_column: str | None = None):
    """A plot series of ``y_column`` over ``x_column`` of ``table_node`` (default: line with markers)."""
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
    series.SetAndObserveTableNodeID(table_node.GetID())
    series.SetXColumnName(x_column)
    series.SetYColumnName(y_column)
    if label_column:
        series.SetLabelColumnName(label_column)
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter if plot_type is None else plot_type)
    series.SetColor(*color[:3])
    return series


def new_chart(scene, name: str, title: str, x_title: str, y_title: str, series_nodes=(), log_y: bool = False):
    """A chart showing ``series_nodes`` with titled axes."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(title)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    chart.SetYAxisLogScale(log_y)
    for series in series_nodes:
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart


def series_of(chart_node) -> list:
    """The plot series nodes a chart shows, in order."""
    return [chart_node.GetNthPlotSeriesNode(i) for i in range(chart_node.GetNumberOfPlotSeriesNodes())]
