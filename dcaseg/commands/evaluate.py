"""``dcaseg evaluate PRED GT``: per case and per organ Dice, ASD and HD95 in millimetres."""
from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

import numpy as np
import SimpleITK as sitk

from ..atomic import write_text_atomic
from ..data.class_names import read_class_names
from ..data.imageio import case_id_from_file, image_extension, read_image
from ..errors import InputError
from ..events import reporter_for
from ..metrics import ABSENT_IN_BOTH, OK, OrganScore, evaluate_pair, finite_mean

HELP = "score predicted label maps against reference labels: Dice, ASD and HD95 in mm per organ"

CSV_COLUMNS = ("case", "label", "organ", "status", "dice", "asd_mm", "hd95_mm", "volume_ml_pred",
               "volume_ml_ref")


class OrganMeans(TypedDict):
    """One organ's means over the cases that have it, and how many cases went into them."""

    dice: float | None
    asd_mm: float | None
    hd95_mm: float | None
    cases: int
    cases_with_distances: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", type=Path, metavar="PRED", help="predicted label map, or a folder of them")
    parser.add_argument("gt", type=Path, metavar="GT", help="reference label map, or a folder of them")
    parser.add_argument("--names", type=Path, metavar="JSON",
                        help="labels.json ({\"1\": \"spleen\", ...}) or an nnU-Net / MSD dataset.json; only "
                             "these labels are scored (default: every label present, named label_<v>)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write one row per (case, organ)")
    parser.add_argument("--progress", choices=("bar", "none"), default="bar",
                        help="progress bar on stderr (default) or nothing")


def run(args: argparse.Namespace) -> int:
    names = read_class_names(args.names) if args.names else None
    pairs, missing, unmatched = match_cases(args.pred, args.gt)
    reporter = reporter_for(args.progress)
    cases: dict[str, dict[str, tuple[int, OrganScore]]] = {}
    for done, (case_id, (pred_path, ref_path)) in enumerate(pairs.items(), start=1):
        cases[case_id] = evaluate_files(pred_path, ref_path, names)
        reporter.progress("evaluating", done, len(pairs))
    summary = summarize(cases)
    if args.csv:
        write_csv_atomic(args.csv, cases)
    if args.json:
        print(json.dumps(to_json(cases, summary, missing, unmatched), indent=1))
    else:
        print(format_tables(cases, summary, missing, unmatched), end="")
    return 0


def match_cases(pred: Path, gt: Path) -> tuple[dict[str, tuple[Path, Path]], list[str], list[str]]:
    """(case id -> (prediction, reference), reference cases without prediction, predictions
    without reference). Two files are paired directly; folders are matched by case id."""
    if pred.is_file() and gt.is_file():
        return {case_id_from_file(gt): (pred, gt)}, [], []
    preds, refs = _case_files(pred, "prediction"), _case_files(gt, "reference")
    pairs = {case: (preds[case], refs[case]) for case in sorted(refs) if case in preds}
    if not pairs:
        raise InputError(f"no case of {pred} matches a case of {gt} (case id = file name without "
                         "extension and _0000)")
    return pairs, sorted(set(refs) - set(preds)), sorted(set(preds) - set(refs))


def evaluate_files(pred_path: Path, ref_path: Path,
                   names: Mapping[int, str] | None) -> dict[str, tuple[int, OrganScore]]:
    """organ name -> (label value, score) for one case."""
    pred, ref = read_image(pred_path), read_image(ref_path)
    labels = dict(names) if names else {v: f"label_{v}" for v in _present_values(pred, ref)}
    scores = evaluate_pair(pred, ref, labels, pred_name=str(pred_path), ref_name=str(ref_path))
    return {name: (value, scores[name]) for value, name in labels.items()}


def summarize(cases: Mapping[str, Mapping[str, tuple[int, OrganScore]]]) -> dict:
    """Per-organ means over cases (organs absent on both sides of a case are left out) and the
    overall means over organs, as the benchmark papers aggregate."""
    per_organ: dict[str, list[OrganScore]] = {}
    for case_scores in cases.values():
        for name, (_, score) in case_scores.items():
            if score.status != ABSENT_IN_BOTH:
                per_organ.setdefault(name, []).append(score)
    organs = {name: OrganMeans(dice=finite_mean([s.dice for s in scores]),
                               asd_mm=finite_mean([s.asd_mm for s in scores]),
                               hd95_mm=finite_mean([s.hd95_mm for s in scores]),
                               cases=len(scores),
                               cases_with_distances=sum(s.status == OK for s in scores))
              for name, scores in per_organ.items()}
    return {"organs": organs,
            "mean_dice": finite_mean([o["dice"] for o in organs.values()]),
            "mean_asd_mm": finite_mean([o["asd_mm"] for o in organs.values()]),
            "mean_hd95_mm": finite_mean([o["hd95_mm"] for o in organs.values()])}


def to_json(cases: Mapping, summary: Mapping, missing: list[str], unmatched: list[str]) -> dict:
    return {"cases": {case: {name: {"label": value, **score.to_dict()}
                             for name, (value, score) in organs.items()}
                      for case, organs in cases.items()},
            **summary,
            "missing_predictions": missing,
            "unmatched_predictions": unmatched}


def format_tables(cases: Mapping, summary: Mapping, missing: list[str], unmatched: list[str]) -> str:
    out = io.StringIO()
    header = f"  {'organ':<30} {'Dice':>7} {'ASD mm':>8} {'HD95 mm':>8}"
    for case, organs in cases.items():
        out.write(f"case {case}\n{header}  status\n")
        for name, (_, score) in organs.items():
            status = "" if score.status == OK else score.status.replace("_", " ")
            out.write(f"  {name:<30} {_num(score.dice)} {_num(score.asd_mm, 8)} "
                      f"{_num(score.hd95_mm, 8)}  {status}\n")
    out.write(f"mean over {len(cases)} case(s)\n{header}  cases\n")
    for name, organ in summary["organs"].items():
        out.write(f"  {name:<30} {_num(organ['dice'])} {_num(organ['asd_mm'], 8)} "
                  f"{_num(organ['hd95_mm'], 8)}  {organ['cases']}\n")
    out.write(f"  {'mean':<30} {_num(summary['mean_dice'])} {_num(summary['mean_asd_mm'], 8)} "
              f"{_num(summary['mean_hd95_mm'], 8)}\n")
    if missing:
        out.write(f"reference cases without a prediction ({len(missing)}, not in the means): "
                  f"{', '.join(missing)}\n")
    if unmatched:
        out.write(f"predictions without a reference ({len(unmatched)}, ignored): {', '.join(unmatched)}\n")
    return out.getvalue()


def write_csv_atomic(path: Path, cases: Mapping) -> None:
    """One row per (case, organ); written to a temporary file in the same folder, then renamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for case, organs in cases.items():
        for name, (value, score) in organs.items():
            row = score.to_dict()
            writer.writerow([case, value, name] + ["" if row[k] is None else row[k] for k in CSV_COLUMNS[3:]])
    write_text_atomic(path, buffer.getvalue())


def _case_files(path: Path, role: str) -> dict[str, Path]:
    if path.is_file():
        return {case_id_from_file(path): path}
    if not path.is_dir():
        raise InputError(f"{role} {path}: no such file or folder")
    files: dict[str, Path] = {}
    for file in sorted(path.iterdir()):
        if file.name.startswith(".") or image_extension(file) is None or not file.is_file():
            continue
        case = case_id_from_file(file)
        if case in files:
            raise InputError(f"{role} folder {path}: two files for case {case} "
                             f"({files[case].name}, {file.name})")
        files[case] = file
    if not files:
        raise InputError(f"{role} folder {path}: no image files")
    return files


def _present_values(*images: sitk.Image) -> list[int]:
    values: set[int] = set()
    for image in images:
        array = sitk.GetArrayViewFromImage(image)
        if np.issubdtype(array.dtype, np.integer) and (array.size == 0 or array.min() >= 0):
            values |= set(np.flatnonzero(np.bincount(array.ravel())).tolist())
        else:
            values |= {int(v) for v in np.unique(array) if float(v).is_integer()}
    values.discard(0)
    return sorted(values)


def _num(value: float | None, width: int = 7) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{4 if width == 7 else 2}f}"
