"""``dcaseg rank -m MODEL DATA``: which unlabeled case to annotate next (most uncertain first)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..active_learning import SCORES, CaseScore, rank, score_volumes
from ..atomic import write_json_atomic
from ..data.dataset import detect_layout, scan_dataset
from ..data.imageio import image_extension, strip_image_extension
from ..errors import InputError
from ..events import Reporter, reporter_for
from ..inference import DEFAULT_OVERLAP, Predictor, PredictorOptions
from ..inference.devices import DEVICE_CHOICES

HELP = "rank unlabeled cases by the model's uncertainty (experts vs aggregator disagreement, or entropy)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", type=Path, nargs="+", metavar="DATA",
                        help="a dataset folder (its unlabeled cases are ranked), a folder of images, or image files")
    parser.add_argument("-m", "--model", type=Path, required=True, help="model package (folder or .zip)")
    parser.add_argument("--score", choices=SCORES, default="disagreement",
                        help="rank by experts-vs-aggregator disagreement (default) or aggregator entropy")
    parser.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default auto: CUDA, then MPS, then CPU)")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP, help="sliding-window overlap")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the ranking as JSON to FILE")
    parser.add_argument("--json", action="store_true", help="print the ranking as JSON instead of a table")
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="progress display (jsonl: events for programs, ending with a done event)")


def run(args: argparse.Namespace) -> int:
    reporter = reporter_for(args.progress)
    volumes = collect_volumes(args.inputs)
    if not volumes:
        raise InputError("nothing to rank: no unlabeled cases or images in " + ", ".join(map(str, args.inputs)))
    predictor = Predictor(args.model, PredictorOptions(device=args.device, overlap=args.overlap), Reporter())
    ranking = rank(score_volumes(predictor, volumes, reporter), args.score)
    document = {"score": args.score, "model": str(args.model), "cases": [s.to_dict() for s in ranking]}
    if args.out:
        write_json_atomic(args.out, document, indent=1)
    if args.json:
        print(json.dumps(document, indent=1))
    elif args.progress != "jsonl":
        print(format_table(ranking, args.score), end="")
    reporter.emit("done", outputs={"ranking": str(args.out)} if args.out else {})
    return 0


def collect_volumes(inputs: list[Path]) -> list[tuple[str, Path]]:
    """``(case id, image)`` pairs: unlabeled usable cases of dataset folders, images of plain folders, files."""
    volumes: list[tuple[str, Path]] = []
    for path in inputs:
        if path.is_dir() and _is_dataset(path):
            volumes += [(case.case_id, case.image) for case in scan_dataset(path, inspect=True).unlabeled_cases]
        elif path.is_dir():
            volumes += [(strip_image_extension(p), p) for p in sorted(path.iterdir())
                        if p.is_file() and image_extension(p) and not p.name.startswith(".")]
        elif path.is_file():
            volumes.append((strip_image_extension(path), path))
        else:
            raise InputError(f"{path}: no such file or folder")
    ids = [case_id for case_id, _ in volumes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"two inputs share the case id {duplicates[0]!r}; rank them separately")
    return volumes


def _is_dataset(folder: Path) -> bool:
    try:
        detect_layout(folder)
    except InputError:
        return False
    return True


def format_table(ranking: list[CaseScore], by: str) -> str:
    """A plain-text table, most uncertain first."""
    width = max([4, *(len(s.case_id) for s in ranking)])
    lines = [f"{'rank':>4}  {'case':<{width}}  {'disagreement':>12}  {'entropy':>8}   (ranked by {by})"]
    lines += [f"{i:>4}  {s.case_id:<{width}}  {s.disagreement:>12.4f}  {s.entropy:>8.4f}"
              for i, s in enumerate(ranking, start=1)]
    return "\n".join(lines) + "\n"
