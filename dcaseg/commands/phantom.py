"""``dcaseg phantom OUT``: write a synthetic abdominal CT dataset (13 organs) for demos and tests
(``--family varied``: patients that differ like a real cohort, docs/phantom.md)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..data.phantom import DEFAULT_SIZE, DEFAULT_SPACING, FAMILIES, make_phantom

HELP = "write synthetic abdominal CT cases with 13 organ labels (plain dataset layout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, metavar="OUT", help="new (or empty) output folder")
    parser.add_argument("--cases", type=int, default=12, help="number of cases (default 12)")
    parser.add_argument("--labeled", type=int, default=4,
                        help="how many of the first cases get label files (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    parser.add_argument("--size", type=int, nargs=3, metavar=("X", "Y", "Z"), default=list(DEFAULT_SIZE),
                        help=f"voxels per axis (default {' '.join(map(str, DEFAULT_SIZE))})")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"),
                        default=list(DEFAULT_SPACING),
                        help=f"voxel spacing in mm (default {' '.join(map(str, DEFAULT_SPACING))})")
    parser.add_argument("--family", choices=FAMILIES, default="standard",
                        help="standard (default: one reference anatomy with small changes) or varied (patients "
                             "that differ in body, organ size, shape and position, contrast phase, noise, slice "
                             "thickness, field of view and pathology; docs/phantom.md)")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    ids = make_phantom(args.out, args.cases, args.labeled, args.seed, tuple(args.size), tuple(args.spacing),
                       args.family)
    print(f"wrote {len(ids)} cases ({args.labeled} labeled) to {args.out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
