"""``dcaseg demo --out demo_out``: synthetic abdomen → train → segment → evaluate → report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..demo import DemoSettings, run_demo
from ..events import reporter_for
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
    parser.add_argument("--device", default=defaults.device, help="cpu (default), cuda or auto")
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="progress display (default: bar on stderr)")


def run(args: argparse.Namespace) -> int:
    settings = DemoSettings(args.out, args.cases, args.labeled, args.test_cases, args.seed, args.preset,
                            args.iterations, args.device)
    metrics = run_demo(settings, reporter_for(args.progress))
    if args.progress != "jsonl":
        groups = ", ".join(f"{g} {_fmt(v)}" for g, v in metrics["group_dice"].items())
        print(f"mean Dice {_fmt(metrics['mean_dice'])} ({groups}) on {len(metrics['test_cases'])} held-out "
              f"cases in {metrics['seconds']['total']} s; report: {args.out / 'report.md'}", file=sys.stderr)
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
