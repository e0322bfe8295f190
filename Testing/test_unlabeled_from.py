"""``unlabeled_from``: the first share of a run trains on the labeled patches alone (the cpu-demo preset's
first 30 %, where λ's ramp keeps the unlabeled loss below 0.09 λ); the ablation keeps them in every step."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn.modules.module import register_module_forward_pre_hook
from training_helpers import read_events, small_phantom

from dcaseg.ablation.variants import base_config
from dcaseg.errors import InputError
from dcaseg.events import Reporter
from dcaseg.nets import DCANet
from dcaseg.training.config import preset
from dcaseg.training.trainer import Trainer, TrainRequest


def test_steps_before_unlabeled_from_see_only_the_labeled_patches(tmp_path: Path) -> None:
    data = small_phantom(tmp_path / "data")
    config = preset("tiny").with_overrides(iterations=4, unlabeled_from=0.5, log_every=1, val_every=100,
                                           checkpoint_every=100, validation_cases=0)
    batch_sizes: list[int] = []

    def count(module: torch.nn.Module, inputs: tuple) -> None:
        if isinstance(module, DCANet) and module.training:
            batch_sizes.append(inputs[0].shape[0])

    hook = register_module_forward_pre_hook(count)
    try:
        Trainer(TrainRequest(run=tmp_path / "run", config=config, data=data, device="cpu"), Reporter()).train()
    finally:
        hook.remove()
    n_labeled, n_unlabeled = config.labeled_batch, config.unlabeled_batch
    # four steps, then the BatchNorm recalibration's passes (one volume each)
    assert batch_sizes[:4] == [n_labeled, n_labeled, n_labeled + n_unlabeled, n_labeled + n_unlabeled]
    metrics = [e for e in read_events(tmp_path / "run") if e["event"] == "metrics"]
    assert [e["loss_unsup"] == 0 for e in metrics] == [True, True, False, False]


def test_cpu_demo_leaves_them_out_early_and_the_ablation_and_the_paper_never() -> None:
    assert preset("cpu-demo").unlabeled_from == 0.3
    assert preset("paper").unlabeled_from == 0.0 and base_config().unlabeled_from == 0.0
    with pytest.raises(InputError, match="unlabeled_from"):
        preset("tiny").with_overrides(unlabeled_from=1.0)
