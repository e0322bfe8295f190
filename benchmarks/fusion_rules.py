"""Score trained models' fused expert output under both logit-concatenation rules, same weights.

Usage: python benchmarks/fusion_rules.py CASES MODEL [MODEL ...]
CASES is a folder with images/ and labels/ (e.g. a phantom written by ``dcaseg phantom`` with
every case labeled). Only the fusion rule differs between the two scores of a model, so this
isolates what the rule does to the experts' combined prediction. Prints one JSON line per model:
mean Dice (%) over all organs, over the tail group (the model's own) and per organ, per rule.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dcaseg.ablation.runner import score_cases
from dcaseg.labelsplit import FUSION_RULES
from dcaseg.package import ModelPackage, load_package


def with_fusion(package: ModelPackage, rule: str) -> ModelPackage:
    """The same package and weights with logit-concatenation rule ``rule``."""
    architecture = replace(package.meta.architecture, fusion=rule)
    return ModelPackage(replace(package.meta, architecture=architecture), package.state_dict, package.source)


def fused_dice(package: ModelPackage, cases: Path) -> dict[str, float]:
    """Per-organ Dice (%) of the fused expert output, averaged over the labeled cases."""
    scores = score_cases(package, cases, torch.device("cpu"))["experts_fused"]
    per_organ: dict[str, list[float]] = {}
    for organs in scores.values():
        for organ, result in organs.items():
            if result["dice"] is not None:
                per_organ.setdefault(organ, []).append(100.0 * result["dice"])
    return {organ: float(np.mean(values)) for organ, values in per_organ.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", type=Path)
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args()
    for model in args.models:
        package = load_package(model)
        tail = [c.name for c in package.meta.classes if c.value in package.meta.groups["tail"]]
        row: dict[str, object] = {"model": str(model), "trained_with": package.meta.architecture.fusion}
        for rule in FUSION_RULES:
            organs = fused_dice(with_fusion(package, rule), args.cases)
            row[rule] = {"mean_dice": round(float(np.mean(list(organs.values()))), 1),
                         "tail": round(float(np.mean([organs[t] for t in tail])), 1),
                         "organs": {k: round(v, 1) for k, v in organs.items()}}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
