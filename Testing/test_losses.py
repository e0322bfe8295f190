"""Label-split, logit concatenation, the loss on perfect predictions and the λ ramp-up."""
from __future__ import annotations

import math

import pytest
import torch

from dcaseg.labelsplit import fuse_expert_logits, label_split
from dcaseg.nets import DCAOutput
from dcaseg.training.losses import dice_ce_loss, pseudo_labels, ramp_weight, soft_dice_loss

GROUPS = {"head": [2], "medium": [1, 4], "tail": [3]}


def test_label_split_keeps_own_classes_compactly_and_zeroes_the_rest():
    target = torch.tensor([[0, 1, 2, 3, 4, 4, 1]])
    split = label_split(target, GROUPS, 5)
    assert split["head"].tolist() == [[0, 0, 1, 0, 0, 0, 0]]
    assert split["medium"].tolist() == [[0, 1, 0, 0, 2, 2, 1]]
    assert split["tail"].tolist() == [[0, 0, 0, 1, 0, 0, 0]]


def _expert_logits() -> dict[str, torch.Tensor]:
    """Logits shaped (batch 1, channels, 1 voxel): background first, then the expert's classes."""
    return {"head": torch.tensor([[[3.0], [10.0]]]),             # bg, class 2
            "medium": torch.tensor([[[6.0], [11.0], [14.0]]]),   # bg, class 1, class 4
            "tail": torch.tensor([[[9.0], [13.0]]])}             # bg, class 3


def test_logit_concatenation_takes_each_class_from_its_owner_and_adds_the_backgrounds():
    logits = _expert_logits()
    h, m, t = (torch.log_softmax(x, dim=1)[0, :, 0] for x in logits.values())
    expected = torch.stack([h[0] + m[0] + t[0], m[1], h[1], t[1], m[2]])
    assert torch.allclose(fuse_expert_logits(logits, GROUPS, 5)[0, :, 0], expected)


def test_the_papers_mean_rule_averages_the_backgrounds():
    logits = _expert_logits()
    h, m, t = (torch.log_softmax(x, dim=1)[0, :, 0] for x in logits.values())
    expected = torch.stack([(h[0] + m[0] + t[0]) / 3, m[1], h[1], t[1], m[2]])
    assert torch.allclose(fuse_expert_logits(logits, GROUPS, 5, "mean")[0, :, 0], expected)
    with pytest.raises(ValueError, match="fusion rule"):
        fuse_expert_logits(logits, GROUPS, 5, "max")


def test_an_owner_sure_enough_of_its_class_keeps_the_voxel_only_with_the_sum_rule():
    # the head expert gives its class 2 probability 0.6; the others are 99.9 % sure the voxel is not theirs
    sure_not_mine = 6.9  # log(0.999 / 0.001)
    logits = {"head": torch.tensor([[[0.0], [math.log(0.6 / 0.4)]]]),
              "medium": torch.tensor([[[sure_not_mine], [0.0], [0.0]]]),
              "tail": torch.tensor([[[sure_not_mine], [0.0]]])}
    assert fuse_expert_logits(logits, GROUPS, 5, "sum").argmax(dim=1).item() == 2
    assert fuse_expert_logits(logits, GROUPS, 5, "mean").argmax(dim=1).item() == 0  # 0.6³ < 0.4


def test_fusion_ignores_a_constant_added_to_one_experts_logits():
    torch.manual_seed(0)
    logits = {"head": torch.randn(1, 2, 6), "medium": torch.randn(1, 3, 6), "tail": torch.randn(1, 2, 6)}
    shifted = dict(logits, medium=logits["medium"] + 25.0)
    assert torch.allclose(fuse_expert_logits(logits, GROUPS, 5), fuse_expert_logits(shifted, GROUPS, 5), atol=1e-5)


def test_fusion_without_label_split_gives_the_same_labels_by_either_rule():
    torch.manual_seed(0)
    everyone = {g: [1, 2] for g in ("head", "medium", "tail")}
    logits = {g: torch.randn(2, 3, 50) for g in everyone}
    expected = torch.stack([torch.log_softmax(x, dim=1) for x in logits.values()]).mean(0)
    mean = fuse_expert_logits(logits, everyone, 3, "mean")
    assert torch.allclose(mean, expected, atol=1e-6)
    assert torch.equal(fuse_expert_logits(logits, everyone, 3, "sum").argmax(dim=1), mean.argmax(dim=1))


def test_loss_on_a_perfect_prediction_is_near_its_minimum():
    target = torch.randint(0, 4, (2, 8, 8, 8))
    perfect = 50.0 * torch.nn.functional.one_hot(target, 4).movedim(-1, 1).float()
    wrong = 50.0 * torch.nn.functional.one_hot((target + 1) % 4, 4).movedim(-1, 1).float()
    assert dice_ce_loss(perfect, target).item() < 1e-3
    assert soft_dice_loss(perfect, target).item() < 1e-3
    assert dice_ce_loss(wrong, target).item() > 1.0


def test_dice_excludes_background_and_is_batch_wide():
    target = torch.zeros(2, 4, 4, 4, dtype=torch.long)
    target[0, :2] = 1  # class 1 only in the first sample
    logits = 50.0 * torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float()
    assert soft_dice_loss(logits, target).item() < 1e-3


def test_pseudo_labels_come_from_the_fused_logits_without_gradient():
    fused = torch.tensor([[[0.0, 5.0], [1.0, 0.0]]], requires_grad=True)
    out = DCAOutput(logits=torch.zeros(1, 2, 2), fused=fused)
    labels = pseudo_labels(out)
    assert labels.tolist() == [[1, 0]] and not labels.requires_grad


def test_ramp_up_endpoints_and_shape():
    assert ramp_weight(0, 100) == pytest.approx(10 * math.exp(-5))
    assert ramp_weight(100, 100) == pytest.approx(10.0)
    assert ramp_weight(250, 100) == pytest.approx(10.0)
    assert ramp_weight(50, 100) == pytest.approx(10 * math.exp(-1.25))
    assert ramp_weight(10, 100) < ramp_weight(20, 100)
