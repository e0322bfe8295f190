"""The ablation's variants (paper Tables 3-5, its Table 1's fully supervised V-Net, the mean-teacher
baseline, our fusion rule and λ rows) and the rows of its report.

Every variant is the same base training configuration with a few ``TrainConfig`` fields changed;
``all_labeled`` variants train on the same cases with every label (the others see only the
labeled share).
Rows that name the same effective configuration (full DCA is also the log-gap grouping row and
the asymmetric-architecture row) share one set of runs; ``run_key`` decides what is "the same".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..training.config import TrainConfig, preset
from ..training.losses import UNSUPERVISED_WEIGHT as PAPER_LAMBDA  # λ = 10; every variant but the λ rows
from ..training.mean_teacher import CONSISTENCY_WEIGHT

# Iterations of the default (budget 1.0) run: about an hour for the paper tables' 10 configurations
# x 3 seeds on 2 CPU cores with --jobs 2 (one run per core; benchmarks/RESULTS.md, "Hardware notes").
DEFAULT_ITERATIONS = 250
DEFAULT_N_FILTERS = 8
DEFAULT_PATCH = (32, 32, 32)
# The phantom is written at this spacing so the trainer never resamples it.
GRID_SPACING = (4.0, 4.0, 4.0)
# How labeled patches are drawn (``TrainConfig.foreground_share``, ``rare_class_power``):
# "balanced" is our recipe (9 in 10 patches centred on an organ, every organ equally likely);
# "random" is the plain random crop of the codebases DCA builds on (DHC, GA, GALoss).
SAMPLING = {"balanced": (0.9, 1.0), "random": (0.0, 0.0)}


@dataclass(frozen=True)
class Variant:
    """One ablation setting: a name, what it means, the ``TrainConfig`` fields it sets, and whether
    it trains with the labels of every training case (the fully supervised reference)."""

    name: str
    description: str
    overrides: Mapping[str, Any]
    all_labeled: bool = False


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("vnet-full", "V-Net, every training case labeled (fully supervised: the most unlabeled data could give)",
            {"mode": "vnet", "self_training": False}, all_labeled=True),
    Variant("vnet-labeled", "V-Net, labeled data only (single decoder)",
            {"mode": "vnet", "self_training": False}),
    Variant("vnet-pseudo", "V-Net + plain pseudo-label self-training (single decoder)",
            {"mode": "vnet", "self_training": True}),
    Variant("mean-teacher", "V-Net + mean teacher (EMA 0.99 teacher, softmax MSE on the unlabeled patches, "
            f"weight {CONSISTENCY_WEIGHT:g} ramped, noise on the student's input)",
            {"mode": "vnet", "self_training": False, "mean_teacher": True, "lambda_max": CONSISTENCY_WEIGHT}),
    Variant("experts-nosplit", "three experts, no label-split, plain aggregator",
            {"label_split": False, "dfam": False}),
    Variant("experts-split", "three experts + log-gap label-split, plain aggregator (no DFAM)",
            {"dfam": False}),
    Variant("dca", "full DCA: log-gap label-split + asymmetric experts + DFAM", {}),
    Variant("fusion-mean", "full DCA, the paper's logit concatenation (mean of the experts' backgrounds)",
            {"fusion": "mean"}),
    Variant("lambda-1", "full DCA, unlabeled-loss weight λ = 1 instead of the paper's 10", {"lambda_max": 1.0}),
    Variant("lambda-0", "full DCA network on the labels only (λ = 0; the aggregator learns the labeled patches)",
            {"lambda_max": 0.0}),
    Variant("vnet-pseudo-lambda-1", "V-Net + plain pseudo-labels, λ = 1 instead of the paper's 10",
            {"mode": "vnet", "self_training": True, "lambda_max": 1.0}),
    Variant("group-uniform", "full DCA, uniform thirds of the ranking", {"grouping_rule": "uniform"}),
    Variant("group-threshold", "full DCA, fixed shares (head >= 10 %, tail < 1 %)",
            {"grouping_rule": "threshold"}),
    Variant("arch-symmetric", "full DCA, three stock V-Net expert decoders", {"experts": "symmetric"}),
    Variant("arch-depth-only", "full DCA, asymmetric depths, no dilation", {"experts": "depth-only"}),
    Variant("arch-dilation-only", "full DCA, stock depths, dilated head expert",
            {"experts": "dilation-only"}),
)}

# What a plain ``dcaseg ablate`` runs: the variants of the paper's Tables 3-5 and the fully supervised
# V-Net that opens the benchmark's Table 1 (about an hour on 2 CPU cores at budget 1). The mean-teacher
# baseline, the fusion and the λ variants run when named with --variants.
PAPER_VARIANTS: tuple[str, ...] = ("vnet-full", "vnet-labeled", "vnet-pseudo", "experts-nosplit", "experts-split",
                                   "dca", "group-uniform", "group-threshold", "arch-symmetric", "arch-depth-only",
                                   "arch-dilation-only")

# (section, row label, variant): the report's rows in order, like the paper's Tables 3, 4 and 5.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("upper bound", "V-Net, every training case labeled", "vnet-full"),
    ("components", "V-Net, labeled only", "vnet-labeled"),
    ("components", "V-Net + pseudo-labels", "vnet-pseudo"),
    ("baseline", "V-Net + mean teacher", "mean-teacher"),
    ("components", "+ three experts (no label-split)", "experts-nosplit"),
    ("components", "+ log-gap label-split (no DFAM)", "experts-split"),
    ("components", "+ DFAM = full DCA", "dca"),
    ("fusion", "background mean (paper)", "fusion-mean"),
    ("fusion", "background sum (ours)", "dca"),
    ("unlabeled weight", "DCA, λ = 10 (paper)", "dca"),
    ("unlabeled weight", "DCA, λ = 1", "lambda-1"),
    ("unlabeled weight", "DCA, λ = 0 (labels only)", "lambda-0"),
    ("unlabeled weight", "V-Net + pseudo-labels, λ = 10 (paper)", "vnet-pseudo"),
    ("unlabeled weight", "V-Net + pseudo-labels, λ = 1", "vnet-pseudo-lambda-1"),
    ("grouping", "uniform thirds", "group-uniform"),
    ("grouping", "fixed threshold", "group-threshold"),
    ("grouping", "log-gap (ours)", "dca"),
    ("architecture", "V1 symmetric", "arch-symmetric"),
    ("architecture", "V2 depth only", "arch-depth-only"),
    ("architecture", "V3 dilation only", "arch-dilation-only"),
    ("architecture", "V2+V3 asymmetric (ours)", "dca"),
)


def base_config(budget: float = 1.0, n_filters: int = DEFAULT_N_FILTERS,
                patch_size: Sequence[int] = DEFAULT_PATCH, sampling: str = "balanced") -> TrainConfig:
    """The configuration every variant starts from: the ``cpu-demo`` recipe, smaller, no validation.

    The unlabeled weight is the paper's λ = 10 (``cpu-demo`` uses 1). Like ``cpu-demo``, every
    variant's output decoder also learns the labeled patches' labels, so the rows differ only in
    what each adds to a decoder trained on the labels.
    ``budget`` multiplies the iteration count (``DEFAULT_ITERATIONS``); the final model is scored,
    so no validation cases are held out of the labeled set. ``sampling`` names how labeled patches
    are drawn (``SAMPLING``); unlabeled patches are always random crops.
    """
    if not budget > 0:
        raise InputError(f"--budget must be positive, got {budget}")
    if sampling not in SAMPLING:
        raise InputError(f"--sampling must be one of {list(SAMPLING)}, got {sampling!r}")
    foreground_share, rare_class_power = SAMPLING[sampling]
    iterations = max(1, round(DEFAULT_ITERATIONS * budget))
    # The batch (2 labeled + 2 unlabeled, in every step) and memory layout stay those of the ablation's
    # earlier runs whatever cpu-demo uses: run keys leave them out, so equal keys keep training identical networks.
    return preset("cpu-demo").with_overrides(
        preset="ablation", lambda_max=PAPER_LAMBDA, n_filters=n_filters, patch_size=tuple(patch_size),
        labeled_batch=2, unlabeled_batch=2, unlabeled_from=0.0, channels_last=False,
        iterations=iterations, foreground_share=foreground_share, rare_class_power=rare_class_power,
        target_spacing=GRID_SPACING, validation_cases=0, val_every=iterations, checkpoint_every=iterations,
        log_every=max(1, iterations // 10))


def variant_config(base: TrainConfig, name: str, seed: int) -> TrainConfig:
    """``base`` with variant ``name``'s fields and ``seed``."""
    return base.with_overrides(**VARIANTS[name].overrides, seed=seed)


def run_key(config: TrainConfig, groups: Mapping[str, Mapping[str, Sequence[int]]], all_labeled: bool = False) -> str:
    """A name for what a configuration effectively trains; equal keys train identical networks.

    ``groups`` maps a grouping rule to the groups it gives on the labeled set. Fields that a mode
    ignores are left out: a V-Net has no experts, and without label-split the grouping is unused.
    An unlabeled weight other than the paper's, and training on every case's labels, are named at
    the end, so earlier keys stay valid.
    """
    weight = "" if config.lambda_max == PAPER_LAMBDA else f":lambda{config.lambda_max:g}"
    labels = ":all-labeled" if all_labeled else ""
    if config.mean_teacher:
        return f"vnet-mean-teacher:w{config.lambda_max:g}:ema{config.ema_decay:g}" + labels
    if config.mode == "vnet":
        return ("vnet-pseudo" + weight if config.self_training else "vnet-labeled") + labels
    parts = [config.experts, "dfam" if config.dfam else "plain", config.fusion]
    if config.label_split:
        grouping = groups[config.grouping_rule]
        parts.append("split-" + "|".join(",".join(map(str, grouping[g])) for g in ("head", "medium", "tail")))
    else:
        parts.append("nosplit")
    return "dca:" + ":".join(parts) + weight + labels


def variant_key(base: TrainConfig, name: str, groups: Mapping[str, Mapping[str, Sequence[int]]]) -> str:
    """``run_key`` of variant ``name`` on ``base``."""
    return run_key(variant_config(base, name, 0), groups, VARIANTS[name].all_labeled)


def select_variants(names: Sequence[str] | None) -> list[str]:
    """The variants to run (the paper's tables by default, ``all`` for every one) in ``VARIANTS`` order.

    Unknown names are an InputError.
    """
    if not names:
        return list(PAPER_VARIANTS)
    if "all" in names:
        return list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise InputError(f"unknown ablation variants {unknown}; choose from {list(VARIANTS)}")
    return [n for n in VARIANTS if n in names]
