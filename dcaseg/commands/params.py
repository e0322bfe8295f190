"""``dcaseg params``: parameter counts of a DCA model per component."""
from __future__ import annotations

import argparse
import json

from ..anatomy import BTCV_ORGANS
from ..grouping import GROUP_NAMES
from ..nets import EXPERT_SHAPES, SINGLE_DECODER, ArchitectureConfig, DCANet

HELP = "print the parameter counts of a DCA network per component"
# Default 13-organ grouping used only to size the output heads (counts hardly depend on it).
DEFAULT_GROUPS = {"head": [6], "medium": [1, 2, 3, 4, 7, 8, 9, 10, 11], "tail": [5, 12, 13]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-filters", type=int, default=16, help="base channel count (default 16)")
    parser.add_argument("--classes", type=int, default=len(BTCV_ORGANS),
                        help="foreground classes (default 13, the BTCV organs)")
    parser.add_argument("--experts", default="asymmetric", choices=[*EXPERT_SHAPES, SINGLE_DECODER],
                        help="expert decoder shapes; 'none' is the single-decoder V-Net")
    parser.add_argument("--no-dfam", action="store_true", help="plain aggregation decoder")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    groups = DEFAULT_GROUPS if args.classes == len(BTCV_ORGANS) else _even_groups(args.classes)
    config = ArchitectureConfig(num_classes=args.classes + 1, expert_classes=groups,
                                n_filters=args.n_filters, experts=args.experts, dfam=not args.no_dfam)
    counts = DCANet(config).component_parameters()
    if args.json:
        print(json.dumps(counts))
    else:
        for name, value in counts.items():
            print(f"{name:<11} {value:>12,d}  ({value / 1e6:.3f} M)")
    return 0


def _even_groups(n_classes: int) -> dict[str, list[int]]:
    if n_classes < 3:
        raise SystemExit("dcaseg params: --classes must be at least 3")
    thirds = [list(range(1, n_classes + 1))[i::3] for i in range(3)]
    return dict(zip(GROUP_NAMES, thirds))
