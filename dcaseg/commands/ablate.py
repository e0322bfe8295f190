"""``dcaseg ablate OUT``: the paper's ablations (Tables 3-5) on the synthetic abdomen, in one command."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from ..ablation.headroom import headroom
from ..ablation.runner import AblationSettings, run_ablation
from ..ablation.variants import (
    DEFAULT_ITERATIONS,
    DEFAULT_N_FILTERS,
    DEFAULT_PATCH,
    PAPER_VARIANTS,
    SAMPLING,
    VARIANTS,
    select_variants,
)
from ..data.phantom import FAMILIES
from ..errors import InputError
from ..inference.devices import DEVICE_CHOICES, resolve_device, usable_cores

HELP = "train and score the DCA ablation variants on a synthetic abdomen (table + figure)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, metavar="OUT",
                        help="new folder for data, runs and the report (rerun the same command to continue it)")
    parser.add_argument("--budget", type=float, default=1.0,
                        help=f"iteration multiplier: each run trains budget x {DEFAULT_ITERATIONS} iterations "
                             "(default 1.0: the paper's variants x 3 seeds take about an hour on 2 CPU cores)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    extras = [name for name in VARIANTS if name not in PAPER_VARIANTS]
    parser.add_argument("--variants", nargs="+", metavar="NAME", choices=[*VARIANTS, "all"],
                        help=f"run these variants (default: the paper's tables and the fully supervised V-Net, "
                             f"{' '.join(PAPER_VARIANTS)}; "
                             f"also {' '.join(extras)}; 'all' for every one)")
    parser.add_argument("--labeled", type=int, default=4, help="labeled training cases (default 4)")
    parser.add_argument("--unlabeled", type=int, default=12, help="unlabeled training cases (default 12)")
    parser.add_argument("--test", type=int, default=4, help="held-out test cases (default 4)")
    parser.add_argument("--data-seed", type=int, default=0, help="phantom seed (default 0)")
    parser.add_argument("--n-filters", type=int, default=DEFAULT_N_FILTERS,
                        help=f"network width (default {DEFAULT_N_FILTERS}; 16 is the paper's)")
    parser.add_argument("--patch-size", type=int, nargs=3, metavar=("X", "Y", "Z"), default=list(DEFAULT_PATCH),
                        help=f"training patch (default {' '.join(map(str, DEFAULT_PATCH))}; multiples of 16)")
    parser.add_argument("--sampling", choices=list(SAMPLING), default="balanced",
                        help="labeled patches: balanced (default; 9 in 10 centred on an organ, every organ "
                             "equally likely) or random (plain random crops, like the DHC/GA/GALoss code)")
    parser.add_argument("--family", choices=FAMILIES, default="standard",
                        help="phantom family: standard (default) or varied (patients that differ like a real "
                             "cohort; docs/phantom.md)")
    parser.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default auto: CUDA, then MPS, then CPU)")
    parser.add_argument("--jobs", type=int,
                        help="runs trained side by side, each pinned to its share of the CPU cores; on a "
                             "GPU they share it (default: one per core on the CPU, since small networks get "
                             "no faster with more threads; 1 on a GPU)")


def run(args: argparse.Namespace) -> int:
    settings = AblationSettings(budget=args.budget, seeds=args.seeds, variants=tuple(select_variants(args.variants)),
                                labeled=args.labeled, unlabeled=args.unlabeled, test=args.test,
                                data_seed=args.data_seed, n_filters=args.n_filters,
                                patch_size=tuple(args.patch_size), sampling=args.sampling,
                                family=args.family)
    start = time.perf_counter()
    command = shlex.join(["dcaseg", *sys.argv[1:]]) if sys.argv[1:2] == ["ablate"] else "dcaseg ablate ..."
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    on_gpu = resolve_device(args.device).type != "cpu"
    workers = args.jobs or (1 if on_gpu else usable_cores())
    result = run_ablation(args.out, settings, command, args.device, log=lambda line: print(line, flush=True),
                          workers=workers)
    print(f"ablation: {result['finished_runs']} runs in {(time.perf_counter() - start) / 60:.1f} min; "
          f"report in {args.out / 'ablation.md'}, figure {args.out / 'ablation.png'}")
    gate = headroom(result)
    if gate is not None:
        print(gate.describe())
    return 0
