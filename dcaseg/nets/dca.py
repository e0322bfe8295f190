"""DCANet: shared V-Net encoder, head/medium/tail expert decoders, aggregation decoder with DFAM."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from torch import Tensor, nn

from ..labelsplit import FUSION_RULES, fuse_expert_logits
from ..grouping import GROUP_NAMES
from .blocks import NORMS, count_parameters
from .dfam import DFAM
from .vnet import DEPTH, STOCK_DECODER_STAGES, Decoder, Encoder, check_input_size

# Expert decoder shapes: (stage convolutions deep → shallow, dilation) per group.
EXPERT_SHAPES: dict[str, dict[str, tuple[tuple[int, ...], int]]] = {
    "asymmetric": {"head": ((2, 2, 1, 1), 2), "medium": (STOCK_DECODER_STAGES, 1), "tail": ((4, 4, 3, 2), 1)},
    "symmetric": {g: (STOCK_DECODER_STAGES, 1) for g in GROUP_NAMES},
    "depth-only": {"head": ((2, 2, 1, 1), 1), "medium": (STOCK_DECODER_STAGES, 1), "tail": ((4, 4, 3, 2), 1)},
    "dilation-only": {"head": (STOCK_DECODER_STAGES, 2), "medium": (STOCK_DECODER_STAGES, 1),
                      "tail": (STOCK_DECODER_STAGES, 1)},
}
SINGLE_DECODER = "none"


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
        normalised = {g: tuple(int(c) for c in v) for g, v in dict(self.expert_classes).items()}
        object.__setattr__(self, "expert_classes", normalised)
        if self.num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be at least 2, got {self.num_classes}")
        if self.n_filters < 1 or self.in_channels < 1:
            raise ValueError("n_filters and in_channels must be positive")
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


@dataclass
class DCAOutput:
    """What a forward pass returns.

    ``logits``: aggregator (or single decoder) logits over all classes. ``expert_logits``: each
    expert's logits over background + its own classes. ``fused``: logit concatenation of the
    experts. ``attention``: DFAM maps (N, 3, ...) of every up-sampling stage, deep → shallow, so
    ``attention[-1]`` is the finest stage.
    """

    logits: Tensor
    expert_logits: dict[str, Tensor] = field(default_factory=dict)
    fused: Tensor | None = None
    attention: list[Tensor] = field(default_factory=list)


class DCANet(nn.Module):
    """The DCA network and its ablations (see ``ArchitectureConfig``)."""

    def __init__(self, config: ArchitectureConfig) -> None:
        super().__init__()
        self.config = config
        nf = config.n_filters
        self.encoder = Encoder(config.in_channels, nf, config.norm)
        self.experts = nn.ModuleDict()
        if config.experts != SINGLE_DECODER:
            for group in GROUP_NAMES:
                stages, dilation = EXPERT_SHAPES[config.experts][group]
                n_out = 1 + len(config.expert_classes[group])
                self.experts[group] = Decoder(n_out, nf, stages, dilation, config.norm)
        self.aggregator = Decoder(config.num_classes, nf, norm=config.norm)
        self.dfams = nn.ModuleList()
        if config.dfam and config.experts != SINGLE_DECODER:
            self.dfams.extend(DFAM(c) for c in self.aggregator.stage_channels)

    def forward(self, x: Tensor, with_fused: bool = True) -> DCAOutput:
        check_input_size(x)
        features = self.encoder(x)
        expert_logits: dict[str, Tensor] = {}
        expert_stage_features: dict[str, list[Tensor]] = {}
        for group, expert in self.experts.items():
            expert_logits[group], expert_stage_features[group] = expert.forward_with_features(features)
        if not self.dfams:
            logits, attention = self.aggregator(features), []
        else:
            logits, attention = self._aggregate(features, expert_stage_features)
        fused = None
        if with_fused and expert_logits:
            fused = fuse_expert_logits(expert_logits, self.config.expert_classes, self.config.num_classes,
                                       self.config.fusion)
        return DCAOutput(logits, expert_logits, fused, attention)

    def _aggregate(self, features: list[Tensor],
                   expert_stage_features: dict[str, list[Tensor]]) -> tuple[Tensor, list[Tensor]]:
        """Aggregation decoder with a DFAM at each up-sampling stage; expert features are detached."""
        agg = self.aggregator
        x = features[-1]
        attention = []
        for level in range(DEPTH):
            f_up = agg.up_step(level, x, features[DEPTH - 1 - level])
            experts = [expert_stage_features[g][level].detach() for g in GROUP_NAMES]
            f_dfam, a = self.dfams[level](f_up, experts)
            attention.append(a)
            x = agg.convs[level](f_dfam)
        return agg.out_conv(x), attention

    def component_parameters(self) -> dict[str, int]:
        """Parameter counts per component; DFAM counts in the aggregator."""
        counts = {"encoder": count_parameters(self.encoder)}
        for group, expert in self.experts.items():
            counts[group] = count_parameters(expert)
        counts["aggregator"] = count_parameters(self.aggregator) + count_parameters(self.dfams)
        counts["total"] = count_parameters(self)
        return counts
