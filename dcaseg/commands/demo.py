"""``dcaseg demo --out demo_out``: synthetic abdomen → train → segment → evaluate → report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..demo import DemoSettings, run_demo
from ..errors import InputError
from ..events import reporter_for
from ..inference.devices import DEVICE_CHOICES
from ..training.config import PRESETS

HELP = "run the whole method on a synthetic abdomen and write a report (Dice table, grouping, overlays)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoSettings(Path("demo_out"))
    parser.add_argument("--out", type=Path, default=defaults.out, help="report folder (default demo_out)")
    parser.add_argument("--cases", type=int, default=defaults.cases, help="synthetic training cases")
    parser.add_argument("--labeled", type=int, default=defaults.labeled, help="how many of them are annotated")
    parser.add_argument("--test-cases", type=int, default=defaults.test_cases, help="held-out test cases")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (phantom and training)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=defaults.preset, help="training preset")
    parser.add_argument("--iterations", type=int, help="training iterations (default: the preset's)")
    parser.add_argument("--device", default=defaults.device, help=f"{DEVICE_CHOICES} (default cpu)")
    parser.add_argument("--processes", type=int,
                        help="training processes (default: 2 on a CPU with at least 2 cores, else 1)")
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="progress display (default: bar on stderr)")


def run(args: argparse.Namespace) -> int:
    if args.processes is not None and args.processes < 1:
        raise InputError(f"--processes must be at least 1, got {args.processes}")
    settings = DemoSettings(args.out, args.cases, args.labeled, args.test_cases, args.seed, args.preset,
                            args.iterations, args.device, processes=args.processes)
    metrics = run_demo(settings, reporter_for(args.progress))
    if args.progress != "jsonl":
        groups = ", ".join(f"{g} {_fmt(v)}" for g, v in metrics["group_dice"].items())
        fused = metrics["experts_fused"]
        print(f"mean Dice {_fmt(metrics['mean_dice'])} ({groups}) on {len(metrics['test_cases'])} held-out "
              f"cases in {metrics['seconds']['total']} s (experts fused: mean {_fmt(fused['mean_dice'])}, "
              f"tail {_fmt(fused['group_dice']['tail'])}); report: {args.out / 'report.md'}", file=sys.stderr)
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
