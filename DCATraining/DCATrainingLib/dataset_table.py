"""Dataset view: the engine's scan of a folder as a table of cases (one row each) in MRML.

Columns: case, labeled, size, spacing, organs present, problems. A broken case keeps its row
with its problem; problems that belong to no case (a stray file) are listed separately.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcaseg.data.dataset import DatasetScan, scan_dataset

from .plot_nodes import fill_table, new_table

COLUMNS = ("case", "labeled", "size", "spacing", "organs", "problems")


@dataclass
class CaseRow:
    """One case as the table shows it."""

    case: str
    labeled: str
    size: str
    spacing: str
    organs: str
    problems: str


def scan_folder(root: str | Path) -> DatasetScan:
    """Scan and inspect every case of a dataset folder (one volume in memory at a time)."""
    return scan_dataset(root, inspect=True)


def case_rows(scan: DatasetScan) -> list[CaseRow]:
    """A row per case: label status, grid, organ names present and its problems."""
    rows = []
    for case in scan.cases:
        info = scan.infos.get(case.case_id)
        problems = "; ".join(f"{p.path.name}: {p.message}" for p in scan.problems if p.case_id == case.case_id)
        organs = ", ".join(scan.classes.get(v, str(v)) for v in (info.organs or [])) if info else ""
        rows.append(CaseRow(
            case=case.case_id,
            labeled="yes" if case.labeled else "no",
            size="×".join(str(n) for n in info.size) if info else "",
            spacing="×".join(f"{s:.3g}" for s in info.spacing) if info else "",
            organs=organs,
            problems=problems))
    return rows


def folder_problems(scan: DatasetScan) -> list[str]:
    """Problems that belong to no case (files the scan could not attach to one)."""
    return [str(problem) for problem in scan.problems if problem.case_id is None]


def summary(scan: DatasetScan) -> str:
    """One line: how many cases, labeled, unlabeled, with problems."""
    broken = {p.case_id for p in scan.problems if p.case_id}
    return (f"{len(scan.cases)} cases: {len(scan.labeled_cases)} labeled, {len(scan.unlabeled_cases)} unlabeled, "
            f"{len(broken)} with problems; {len(scan.classes)} classes")


def show_dataset(scene, scan: DatasetScan, table_node=None):
    """Fill ``table_node`` (a new one by default) with the scan's rows; returns the table node."""
    table_node = table_node or new_table(scene, f"DCA dataset {scan.root.name}")
    rows = case_rows(scan)
    fill_table(table_node, {column: [str(getattr(row, column)) for row in rows] for column in COLUMNS})
    return table_node
