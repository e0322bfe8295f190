"""``dcaseg prepare synapse|amos RAW_DIR OUT``: an official benchmark download as a dataset folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..events import reporter_for
from ..prepare import prepare_amos, prepare_synapse
from ..prepare.splits import SYNAPSE_20P, SYNAPSE_DEFAULT_TEST_SET

HELP = "convert the Synapse (BTCV) or AMOS22 download into a dataset folder with the published split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    benchmarks = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    synapse = benchmarks.add_parser(
        "synapse", help="BTCV RawData (img0001.nii.gz, label0001.nii.gz) -> Synapse 20 %% split",
        description="BTCV RawData (img0001.nii.gz, label0001.nii.gz) -> Synapse 20 % split "
                    "(4 labeled / 16 unlabeled / 4 validation / 6 test)")
    synapse.add_argument("--test-set", choices=sorted(SYNAPSE_20P), default=SYNAPSE_DEFAULT_TEST_SET,
                         help="which published split: dhc = DHC's original split (test 0004 0007 0010 "
                              "0033 0035 0036), ga = GA's split (test 0008 0027 0029 0033 0037 0039); "
                              f"default {SYNAPSE_DEFAULT_TEST_SET}")
    amos = benchmarks.add_parser(
        "amos", help="AMOS22 (imagesTr, labelsTr, imagesVa, labelsVa) -> AMOS 5 %% split",
        description="AMOS22 (imagesTr, labelsTr, imagesVa, labelsVa) -> AMOS 5 % split "
                    "(10 labeled / 24 validation / other training cases unlabeled / imagesVa as test)")
    for sub in (synapse, amos):
        sub.add_argument("raw_dir", type=Path, metavar="RAW_DIR", help="the unpacked official download")
        sub.add_argument("out", type=Path, metavar="OUT", help="dataset folder to create")
        sub.add_argument("--overwrite", action="store_true",
                         help="replace a non-empty OUT (the old one is kept as OUT.previous-<time>)")
        sub.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                         help="progress display (default: bar on stderr)")


def run(args: argparse.Namespace) -> int:
    reporter = reporter_for(args.progress)
    if args.benchmark == "synapse":
        split = prepare_synapse(args.raw_dir, args.out, args.test_set, overwrite=args.overwrite,
                                reporter=reporter)
    else:
        split = prepare_amos(args.raw_dir, args.out, overwrite=args.overwrite, reporter=reporter)
    counts = ", ".join(f"{len(split[key])} {key}" for key in ("labeled", "unlabeled", "validation", "test"))
    reporter.emit("done", outputs={"dataset": str(args.out), "split": str(args.out / "split.json")})
    if args.progress != "jsonl":
        print(f"wrote {args.out}: {counts} cases (split {split['source']})")
    return 0
