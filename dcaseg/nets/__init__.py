"""Networks: V-Net blocks, expert decoders, DFAM and the DCA network."""
from .dca import EXPERT_SHAPES, SINGLE_DECODER, ArchitectureConfig, DCANet, DCAOutput
from .folding import fold_batch_norms
from .vnet import SIZE_MULTIPLE, Decoder, Encoder

__all__ = ["EXPERT_SHAPES", "SINGLE_DECODER", "SIZE_MULTIPLE", "ArchitectureConfig", "DCANet",
           "DCAOutput", "Decoder", "Encoder", "fold_batch_norms"]
