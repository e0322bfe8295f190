"""Training settings (``TrainConfig``) and the named presets ``paper``, ``cpu-demo`` and ``tiny``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..data.augment_config import AugmentConfig
from ..errors import InputError
from ..labelsplit import FUSION_RULES

MODES = ("dca", "vnet")
OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored as the run's ``config.json``.

    Sizes are (x, y, z) like ``Preprocessing``. ``target_spacing`` None means the median spacing
    of the labeled cases; ``min_spacing`` coarsens it (a CPU demo trains at a coarse grid).
    ``ramp_fraction`` is the share of the run over which λ ramps up to ``lambda_max``.
    ``unlabeled_from`` is the share of the run whose steps leave the unlabeled patches out (0, the
    paper's: every step has them).
    ``mode`` ``vnet`` trains a single decoder (``self_training`` adds plain pseudo-labels).
    ``label_split`` False gives every expert all classes (the ablation without Divide).
    ``aggregator_on_labels`` also trains the aggregation decoder on the labeled patches' true
    labels (the paper trains it on pseudo-labels only; a short run needs the extra signal).
    ``fusion`` is how the experts' logits are concatenated into pseudo-labels (``sum``, or the
    paper's ``mean``; see ``labelsplit.fuse_expert_logits``); run folders written before it existed
    used ``mean``.
    ``mean_teacher`` (``vnet`` mode only) adds the mean-teacher baseline: an EMA copy of the network
    (decay ``ema_decay``) whose softmax on the unlabeled patches the network must match, weight
    ``lambda_max`` ramped like λ (see ``mean_teacher``).
    ``optimizer`` ``sgd`` is the paper's (momentum, Nesterov); ``adamw`` (betas 0.9/0.999, same
    weight decay and poly decay) converges in the few hundred steps a CPU demo can afford.
    """

    preset: str = "paper"
    mode: str = "dca"
    experts: str = "asymmetric"
    dfam: bool = True
    norm: str = "batch"
    label_split: bool = True
    self_training: bool = False
    mean_teacher: bool = False
    ema_decay: float = 0.99
    fusion: str = "sum"
    n_filters: int = 16
    patch_size: tuple[int, int, int] = (96, 96, 96)
    labeled_batch: int = 2
    unlabeled_batch: int = 2
    iterations: int = 17000
    optimizer: str = "sgd"
    base_lr: float = 0.01
    poly_power: float = 0.9
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 3e-5
    lambda_max: float = 10.0
    ramp_fraction: float = 1.0
    unlabeled_from: float = 0.0
    pseudo_on_labeled: bool = False
    aggregator_on_labels: bool = False
    foreground_share: float = 0.5
    rare_class_power: float = 0.5
    target_spacing: tuple[float, float, float] | None = None
    min_spacing: tuple[float, float, float] | None = None
    modality: str = "CT"
    body_crop: bool = True
    amp: bool = True
    channels_last: bool = True
    validation_cases: int | None = None
    val_every: int = 500
    checkpoint_every: int = 250
    log_every: int = 20
    val_overlap: float = 0.25
    seed: int = 0
    grouping_rule: str = "top2"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"training mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.fusion not in FUSION_RULES:
            raise InputError(f"fusion must be one of {list(FUSION_RULES)}, got {self.fusion!r}")
        if any(p <= 0 or p % 16 for p in self.patch_size):
            raise InputError(f"patch size must be positive multiples of 16, got {list(self.patch_size)}")
        if self.iterations < 1 or self.labeled_batch < 1 or self.unlabeled_batch < 0:
            raise InputError("iterations and labeled batch must be at least 1, unlabeled batch at least 0")
        if self.mean_teacher and (self.mode != "vnet" or self.self_training or self.unlabeled_batch < 1):
            raise InputError("the mean teacher needs mode vnet without self-training and an unlabeled batch")
        if not 0.0 <= self.unlabeled_from < 1.0:
            raise InputError(f"unlabeled_from must be in [0, 1), got {self.unlabeled_from}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    @property
    def ramp_iterations(self) -> float:
        return self.ramp_fraction * self.iterations

    def lr_at(self, iteration: int) -> float:
        """Poly decay per iteration: base_lr · (1 − t/T)^power."""
        return self.base_lr * (1.0 - min(iteration, self.iterations) / self.iterations) ** self.poly_power

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from ``config.json``; lists become tuples, unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"config.json: unknown training settings {unknown}")
        values = {"fusion": "mean", **data}
        augment: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                   for k, v in dict(values.get("augment", {})).items()}
        values["augment"] = AugmentConfig(**augment)
        for key in ("patch_size", "target_spacing", "min_spacing"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the non-None ``overrides`` applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


PRESETS: dict[str, TrainConfig] = {
    # The paper's setting (GPU): nf16, 96³, 2 labeled + 2 unlabeled, 17,000 iterations.
    "paper": TrainConfig(),
    # Under ten minutes on a 2-core AVX2 CPU in two processes (see benchmarks/RESULTS.md, "Training"):
    # nf8 (nf4 has 4 output features for 10 classes and learned only the liver), 32³ patches on a
    # coarse 4 mm grid, AdamW (SGD at lr 0.1 learned about half as much in 400 steps), labeled
    # patches nearly always centred on an organ, every organ equally likely (favouring the small
    # ones more, power 1.5, lowered the mean Dice and still left the aggregator's tail at 0), and
    # the aggregation decoder also taught by the labeled patches' labels (on pseudo-labels alone
    # it lagged the experts by hundreds of steps). λ ramps over the whole run like the paper's.
    # channels_last_3d (oneDNN's backward is several times faster in it at 8 channels) and one
    # unlabeled patch per step instead of two pay for 600 steps instead of 500 in less time; one
    # validation, at the end (in every run measured the end's model scored higher than the mid-run one).
    # No unlabeled patch in the first 30 % of the run, where λ's ramp keeps their loss below 0.09 λ:
    # those steps cost two thirds, and the model scored higher on the validation and tuning cases.
    # With that, 540 steps kept the quality of 600 on those cases (500 did not) in 10 % less time.
    "cpu-demo": TrainConfig(
        preset="cpu-demo", n_filters=8, patch_size=(32, 32, 32), unlabeled_batch=1, iterations=540,
        optimizer="adamw", base_lr=0.003, min_spacing=(4.0, 4.0, 4.0), ramp_fraction=1.0, lambda_max=1.0,
        aggregator_on_labels=True, unlabeled_from=0.3, foreground_share=0.9, rare_class_power=1.0, amp=False,
        channels_last=True, val_every=540, checkpoint_every=100, log_every=10, val_overlap=0.25,
        augment=AugmentConfig(rotate_probability=0.0, intensity_probability=0.2)),
    # Tests: the smallest network at 32³ for a handful of iterations.
    "tiny": TrainConfig(
        preset="tiny", n_filters=4, patch_size=(32, 32, 32), iterations=6, labeled_batch=1,
        unlabeled_batch=1, min_spacing=(4.0, 4.0, 4.0), amp=False, channels_last=False,
        val_every=3, checkpoint_every=2, log_every=1, val_overlap=0.0, validation_cases=1),
}


def preset(name: str) -> TrainConfig:
    """The named preset; an unknown name is an InputError listing the choices."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]


def preset_for_device(device_type: str) -> str:
    """The preset a run gets when none is named: ``paper`` on a CUDA GPU, ``cpu-demo`` elsewhere."""
    return "paper" if device_type == "cuda" else "cpu-demo"
