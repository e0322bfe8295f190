"""Converters from official benchmark downloads (Synapse/BTCV, AMOS22) to the plain dataset layout
with the published semi-supervised split in ``split.json``."""
from .amos import prepare_amos
from .synapse import prepare_synapse

__all__ = ["prepare_amos", "prepare_synapse"]
