"""``dcaseg groups``: log-gap grouping of the classes in label files into head / medium / tail."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..data.class_names import read_class_names
from ..errors import InputError
from ..grouping import GROUP_NAMES, RULES, Grouping, group_color_hex, group_label_files

HELP = "group the classes of label files into head / medium / tail by log-gap analysis"
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
LABEL_FOLDERS = ("labels", "labelsTr")  # a dataset folder: use its label folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labels", nargs="+", type=Path, help="label files or folders of label files")
    parser.add_argument("--names", type=Path, help="labels.json (value -> name) or nnU-Net / MSD dataset.json")
    parser.add_argument("--rule", choices=RULES, default="top2",
                        help="top2: cut at the two largest gaps (default); sequential: the paper's formula")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--plot", type=Path, help="write a PNG of the sorted shares with the cuts")


def label_files(paths: list[Path]) -> list[Path]:
    """Expand folders (or a dataset folder's labels/ or labelsTr/) into label files; files pass through."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            path = next((path / sub for sub in LABEL_FOLDERS if (path / sub).is_dir()), path)
            files += sorted(p for p in path.iterdir() if p.name.endswith(LABEL_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    if not files:
        raise InputError(f"no label files found in {', '.join(map(str, paths))}")
    return files


def run(args: argparse.Namespace) -> int:
    names = read_class_names(args.names) if args.names else {}
    grouping = group_label_files(label_files(args.labels), sorted(names) or None, args.rule)
    name = lambda v: names.get(v, f"label_{v}")  # noqa: E731
    for message in grouping.warnings(name):
        print(f"warning: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({**{g: [name(v) for v in grouping.as_dict()[g]] for g in GROUP_NAMES},
                          "shares": {name(v): grouping.shares[v] for v in grouping.order},
                          "gaps": grouping.gaps, "rule": grouping.rule}))
    else:
        print(f"{'class':<32} {'share %':>9} {'gap':>6}  group")
        for j, value in enumerate(grouping.order):
            gap = f"{grouping.gaps[j]:.2f}" if j < len(grouping.gaps) else ""
            print(f"{name(value):<32} {100 * grouping.shares[value]:>9.3f} {gap:>6}  {grouping.group_of(value)}")
        for value in grouping.absent:
            print(f"{name(value):<32} {'absent':>9} {'':>6}  tail")
    if args.plot:
        plot_grouping(grouping, name, args.plot)
    return 0


def plot_grouping(grouping: Grouping, name, path: Path) -> None:
    """Bar chart of the sorted shares on a log axis, coloured by group, with the two cuts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    values = grouping.order
    ax.bar(range(len(values)), [100 * grouping.shares[v] for v in values],
           color=[group_color_hex(grouping.group_of(v)) for v in values])
    for cut in grouping.cuts:
        ax.axvline(cut + 0.5, color="black", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_ylabel("share of foreground voxels (%)")
    ax.set_xticks(range(len(values)), [name(v) for v in values], rotation=60, ha="right", fontsize=8)
    ax.set_title("log-gap grouping: head (red) / medium (blue) / tail (green)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
