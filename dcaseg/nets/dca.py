"""DCANet: shared V-Net encoder, head/medium/tail expert decoders, aggregation decoder with DFAM."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from torch import Tensor, nn

from ..architecture import EXPERT_SHAPES, SINGLE_DECODER, ArchitectureConfig
from ..grouping import GROUP_NAMES
from ..labelsplit import fuse_expert_logits
from .blocks import count_parameters
from .dfam import DFAM
from .vnet import DEPTH, Decoder, Encoder, check_input_size

INFERENCE_MAPS = ("logits", "fused", "attention")


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
        features, expert_logits, expert_stage_features = self._experts(x)
        logits, attention = self._aggregator_output(features, expert_stage_features)
        fused = self._fuse(expert_logits) if with_fused and expert_logits else None
        return DCAOutput(logits, expert_logits, fused, attention)

    def inference_maps(self, x: Tensor, maps: Collection[str]) -> dict[str, Tensor]:
        """Only the maps inference reads: ``logits`` (the aggregator's), ``fused`` (the experts'
        logit concatenation) and ``attention`` (the finest DFAM stage).

        The aggregation decoder runs only for ``logits`` or ``attention``: a package whose output
        is the fused prediction skips it (its DFAMs and decoder are about a third of a pass).
        """
        unknown = set(maps) - set(INFERENCE_MAPS)
        if unknown:
            raise ValueError(f"unknown inference maps {sorted(unknown)}; use some of {list(INFERENCE_MAPS)}")
        features, expert_logits, expert_stage_features = self._experts(x)
        out: dict[str, Tensor] = {}
        if "fused" in maps:
            if not expert_logits:
                raise ValueError("a network without experts has no fused prediction")
            out["fused"] = self._fuse(expert_logits)
        if "logits" in maps or "attention" in maps:
            logits, attention = self._aggregator_output(features, expert_stage_features)
            if "logits" in maps:
                out["logits"] = logits
            if "attention" in maps:
                if not attention:
                    raise ValueError("a network without DFAMs has no attention maps")
                out["attention"] = attention[-1]
        return out

    def _experts(self, x: Tensor) -> tuple[list[Tensor], dict[str, Tensor], dict[str, list[Tensor]]]:
        """The encoder's features, each expert's logits and each expert's stage features."""
        check_input_size(x)
        features = self.encoder(x)
        expert_logits: dict[str, Tensor] = {}
        expert_stage_features: dict[str, list[Tensor]] = {}
        for group, expert in self.experts.items():
            if not isinstance(expert, Decoder):
                raise TypeError(f"expert '{group}' is a {type(expert).__name__}, not a Decoder")
            expert_logits[group], expert_stage_features[group] = expert.forward_with_features(features)
        return features, expert_logits, expert_stage_features

    def _aggregator_output(self, features: list[Tensor],
                           expert_stage_features: dict[str, list[Tensor]]) -> tuple[Tensor, list[Tensor]]:
        if not self.dfams:
            return self.aggregator(features), []
        return self._aggregate(features, expert_stage_features)

    def _fuse(self, expert_logits: dict[str, Tensor]) -> Tensor:
        return fuse_expert_logits(expert_logits, self.config.expert_classes, self.config.num_classes,
                                  self.config.fusion)

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
