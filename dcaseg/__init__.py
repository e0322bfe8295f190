"""dcaseg: the DCA segmentation engine (Divide, Conquer, and Aggregate; CVPR 2026)."""
__version__ = "0.1.0"
