"""Semi-supervised training: losses, configuration, run folder, checkpoints, trainer, distributed."""
