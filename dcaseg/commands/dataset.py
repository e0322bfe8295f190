"""``dcaseg dataset FOLDER``: list a dataset folder's cases and report every problem found."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.dataset import CaseInfo, DatasetScan, scan_dataset

HELP = "check a dataset folder (nnU-Net v2 raw or images/ + labels/): cases, organs present, problems"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="FOLDER", help="dataset folder")
    parser.add_argument("--json", action="store_true", help="print the scan as one JSON object")


def run(args: argparse.Namespace) -> int:
    scan = scan_dataset(args.folder)
    if args.json:
        print(json.dumps(scan.to_json(), indent=1))
    else:
        print_scan(scan)
    return 1 if scan.problems else 0


def print_scan(scan: DatasetScan) -> None:
    """Summary line, one row per case, then one line per problem."""
    print(f"{scan.root} ({scan.layout} layout): {len(scan.cases)} cases, {len(scan.labeled_cases)} labeled "
          f"and {len(scan.unlabeled_cases)} unlabeled usable, {len(scan.problems)} problems")
    rows = [("case", "labeled", "size", "spacing (mm)", "organs")]
    for case in scan.cases:
        info = scan.infos.get(case.case_id)
        rows.append((case.case_id, "yes" if case.labeled else "no",
                     "x".join(map(str, info.size)) if info else "?",
                     "x".join(f"{s:.3g}" for s in info.spacing) if info else "?",
                     _organs(info, scan.classes)))
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    for problem in scan.problems:
        print(f"problem: {problem}")


def _organs(info: CaseInfo | None, classes: dict[int, str]) -> str:
    if info is None:
        return "(see problems)"
    if info.organs is None:
        return "-"
    if classes and set(info.organs) >= set(classes):
        return f"all {len(classes)}"
    return ", ".join(classes.get(v, f"class_{v}") for v in info.organs) or "(none)"
