"""What a network is made of, in plain data (no torch): a model package's ``architecture``.

``dcaseg.nets`` builds networks from an ``ArchitectureConfig``; the package reader validates one
without building anything, so listing or checking a model costs no memory.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from numbers import Integral
from typing import Any

from .grouping import GROUP_NAMES

NORMS = ("batch", "instance")
FUSION_RULES = ("sum", "mean")  # how logit concatenation combines the experts' backgrounds
STOCK_DECODER_STAGES = (3, 3, 2, 1)
# Expert decoder shapes: (stage convolutions deep → shallow, dilation) per group.
EXPERT_SHAPES: dict[str, dict[str, tuple[tuple[int, ...], int]]] = {
    "asymmetric": {"head": ((2, 2, 1, 1), 2), "medium": (STOCK_DECODER_STAGES, 1), "tail": ((4, 4, 3, 2), 1)},
    "symmetric": {g: (STOCK_DECODER_STAGES, 1) for g in GROUP_NAMES},
    "depth-only": {"head": ((2, 2, 1, 1), 1), "medium": (STOCK_DECODER_STAGES, 1), "tail": ((4, 4, 3, 2), 1)},
    "dilation-only": {"head": (STOCK_DECODER_STAGES, 2), "medium": (STOCK_DECODER_STAGES, 1),
                      "tail": (STOCK_DECODER_STAGES, 1)},
}
SINGLE_DECODER = "none"
# Bounds that keep a hostile description from costing memory: 64 base filters are ~16x the
# parameters of the default 16; no CT model needs more input channels or classes than these.
MAX_N_FILTERS = 64
MAX_IN_CHANNELS = 8
MAX_CLASSES = 256


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_types(config: ArchitectureConfig) -> None:
    """Raise ValueError unless every field has its type and lies within its bounds."""
    for name, low, high in (("num_classes", 2, MAX_CLASSES), ("n_filters", 1, MAX_N_FILTERS),
                            ("in_channels", 1, MAX_IN_CHANNELS)):
        value = getattr(config, name)
        if not _is_int(value) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer {low}..{high}, got {value!r}")
    for name in ("experts", "norm", "fusion"):
        if not isinstance(getattr(config, name), str):
            raise ValueError(f"{name} must be a string, got {getattr(config, name)!r}")
    if not isinstance(config.dfam, bool):
        raise ValueError(f"dfam must be true or false, got {config.dfam!r}")
    if not isinstance(config.expert_classes, Mapping):
        raise ValueError("expert_classes must map each group to a list of class indices")
    for group, owned in config.expert_classes.items():
        if not isinstance(owned, Sequence) or isinstance(owned, str) or not all(_is_int(c) for c in owned):
            raise ValueError(f"expert_classes[{group!r}] must be a list of integers")


@dataclass(frozen=True)
class ArchitectureConfig:
    """Everything needed to rebuild a network; stored in a model package's ``model.json``.

    ``num_classes`` counts the background. ``expert_classes`` lists the class indices (1..K) each
    expert owns. ``experts`` picks the expert shapes of ``EXPERT_SHAPES`` or ``"none"`` for the
    single-decoder V-Net baseline; ``dfam=False`` makes the aggregator a plain decoder. ``norm``
    is ``batch`` (the lineage) or ``instance`` (same parameter count; no train/eval statistics gap,
    which matters for the tiny patches of a CPU demo). ``fusion`` is the logit-concatenation rule
    (``labelsplit.fuse_expert_logits``); packages written before it was stored used ``mean``.
    """

    num_classes: int
    expert_classes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    n_filters: int = 16
    in_channels: int = 1
    experts: str = "asymmetric"
    dfam: bool = True
    norm: str = "batch"
    fusion: str = "sum"

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("num_classes", "n_filters", "in_channels"):
            object.__setattr__(self, name, int(getattr(self, name)))
        normalised = {str(g): tuple(int(c) for c in v) for g, v in dict(self.expert_classes).items()}
        object.__setattr__(self, "expert_classes", normalised)
        if self.norm not in NORMS:
            raise ValueError(f"unknown normalisation {self.norm!r}; use one of {list(NORMS)}")
        if self.fusion not in FUSION_RULES:
            raise ValueError(f"unknown fusion rule {self.fusion!r}; use one of {list(FUSION_RULES)}")
        if self.experts == SINGLE_DECODER:
            return
        if self.experts not in EXPERT_SHAPES:
            raise ValueError(f"unknown expert shapes {self.experts!r}; choose from "
                             f"{sorted([*EXPERT_SHAPES, SINGLE_DECODER])}")
        if sorted(self.expert_classes) != sorted(GROUP_NAMES):
            raise ValueError(f"expert_classes needs exactly the groups {list(GROUP_NAMES)}, "
                             f"got {sorted(self.expert_classes)}")
        owned = [c for group in GROUP_NAMES for c in self.expert_classes[group]]
        if any(not 1 <= c < self.num_classes for c in owned):
            raise ValueError(f"expert classes must lie in 1..{self.num_classes - 1}, got {sorted(owned)}")
        if set(owned) != set(range(1, self.num_classes)):
            missing = sorted(set(range(1, self.num_classes)) - set(owned))
            raise ValueError(f"classes {missing} are owned by no expert")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["expert_classes"] = {g: list(v) for g, v in self.expert_classes.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> ArchitectureConfig:
        known = {k: data[k] for k in ("num_classes", "expert_classes", "n_filters", "in_channels",
                                       "experts", "dfam", "norm", "fusion") if k in data}
        return cls(**{"fusion": "mean", **known})
