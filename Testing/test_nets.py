"""The DCA network: parameter counts, shapes, DFAM maps, stop-gradient, input-size checks."""
from __future__ import annotations

import pytest
import torch

from dcaseg.nets import ArchitectureConfig, DCANet
from dcaseg.training.losses import supervised_loss, unsupervised_loss

GROUPS_13 = {"head": [6], "medium": [1, 2, 3, 4, 7, 8, 9, 10, 11], "tail": [5, 12, 13]}
GROUPS_5 = {"head": [1], "medium": [2, 3], "tail": [4]}


def tiny(**kwargs) -> DCANet:
    torch.manual_seed(0)
    return DCANet(ArchitectureConfig(num_classes=5, expert_classes=GROUPS_5, n_filters=4, **kwargs))


def test_parameter_counts_match_the_lineage_within_one_percent():
    counts = DCANet(ArchitectureConfig(14, GROUPS_13, n_filters=16)).component_parameters()
    expected = {"encoder": 7.377e6, "head": 1.491e6, "medium": 2.072e6, "tail": 2.660e6}
    for name, value in expected.items():
        assert abs(counts[name] - value) / value < 0.01, (name, counts[name])
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_forward_returns_every_output_with_the_right_shapes():
    out = tiny()(torch.randn(2, 1, 32, 48, 32))
    assert out.logits.shape == (2, 5, 32, 48, 32)
    assert out.fused.shape == (2, 5, 32, 48, 32)
    assert {g: t.shape[1] for g, t in out.expert_logits.items()} == {"head": 2, "medium": 3, "tail": 2}
    assert [a.shape[2:] for a in out.attention] == [(4, 6, 4), (8, 12, 8), (16, 24, 16), (32, 48, 32)]


def test_dfam_maps_sum_to_one_per_voxel_at_every_stage():
    for attention in tiny()(torch.randn(1, 1, 32, 32, 32)).attention:
        assert attention.shape[1] == 3
        assert torch.allclose(attention.sum(dim=1), torch.ones_like(attention[:, 0]), atol=1e-5)
        assert attention.min() >= 0


def test_aggregator_loss_leaves_experts_without_gradient_but_reaches_the_encoder():
    net = tiny()
    unsupervised_loss(net(torch.randn(2, 1, 32, 32, 32))).backward()
    for name, parameter in net.experts.named_parameters():
        assert parameter.grad is None or not parameter.grad.any(), name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.dfams.parameters())


def test_supervised_loss_trains_experts_and_not_the_aggregator():
    net = tiny()
    target = torch.randint(0, 5, (2, 32, 32, 32))
    loss, parts = supervised_loss(net(torch.randn(2, 1, 32, 32, 32)), target, GROUPS_5, 5)
    loss.backward()
    assert set(parts) == {"head", "medium", "tail"}
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.experts["tail"].parameters()
               if p.dim() > 1)
    assert all(p.grad is None for p in net.aggregator.parameters())


@pytest.mark.parametrize("shape", [(1, 1, 30, 32, 32), (1, 1, 32, 32, 8), (1, 32, 32, 32)])
def test_sizes_that_are_not_multiples_of_16_are_refused_clearly(shape):
    with pytest.raises(ValueError, match="multiple of 16|5-D"):
        tiny()(torch.randn(*shape))


def test_ablation_switches_build_the_intended_networks():
    vnet = tiny(experts="none").eval()
    out = vnet(torch.randn(1, 1, 16, 16, 16))
    assert not out.expert_logits and out.fused is None and not out.attention and len(vnet.experts) == 0
    plain = tiny(dfam=False).eval()
    assert len(plain.dfams) == 0 and not plain(torch.randn(1, 1, 16, 16, 16)).attention
    symmetric = tiny(experts="symmetric")
    stacks = {g: sum(p.numel() for p in symmetric.experts[g].convs.parameters()) for g in GROUPS_5}
    assert stacks["head"] == stacks["medium"] == stacks["tail"]
    head_conv = tiny().experts["head"].convs[0][0]
    assert head_conv.dilation == (2, 2, 2)
    assert tiny(experts="symmetric").experts["head"].convs[0][0].dilation == (1, 1, 1)
    depth = tiny(experts="depth-only")
    assert depth.experts["head"].convs[0][0].dilation == (1, 1, 1)
    assert len(depth.experts["tail"].convs[0]) == 4 * 3


def test_config_rejects_classes_owned_by_no_expert():
    with pytest.raises(ValueError, match="owned by no expert"):
        ArchitectureConfig(6, GROUPS_5, n_filters=4)
    with pytest.raises(ValueError, match="unknown expert shapes"):
        ArchitectureConfig(5, GROUPS_5, experts="wide")
    assert ArchitectureConfig.from_dict(ArchitectureConfig(5, GROUPS_5).to_dict()) == ArchitectureConfig(5, GROUPS_5)


def test_fusion_rule_is_stored_and_packages_from_before_it_keep_the_mean_rule():
    config = ArchitectureConfig(5, GROUPS_5, n_filters=4)
    assert config.fusion == "sum" and ArchitectureConfig.from_dict(config.to_dict()).fusion == "sum"
    written_before = {k: v for k, v in config.to_dict().items() if k != "fusion"}
    assert ArchitectureConfig.from_dict(written_before).fusion == "mean"
    with pytest.raises(ValueError, match="unknown fusion rule"):
        ArchitectureConfig(5, GROUPS_5, fusion="max")
    torch.manual_seed(0)
    x = torch.randn(1, 1, 16, 16, 16)
    sum_net = DCANet(config).eval()
    mean_net = DCANet(ArchitectureConfig.from_dict(written_before)).eval()
    mean_net.load_state_dict(sum_net.state_dict())
    with torch.no_grad():
        a, b = sum_net(x), mean_net(x)
    assert torch.equal(a.logits, b.logits) and not torch.allclose(a.fused[:, 0], b.fused[:, 0])


def test_instance_norm_option_keeps_the_parameter_count_and_has_no_running_statistics():
    batch = DCANet(ArchitectureConfig(5, GROUPS_5, n_filters=4))
    instance = DCANet(ArchitectureConfig(5, GROUPS_5, n_filters=4, norm="instance"))
    assert batch.component_parameters() == instance.component_parameters()
    assert not any("running_mean" in k for k in instance.state_dict())
    with pytest.raises(ValueError, match="unknown normalisation"):
        ArchitectureConfig(5, GROUPS_5, norm="group")


def test_untrained_outputs_start_at_the_background_prior():
    network = tiny()
    network.eval()
    with torch.no_grad():
        out = network(torch.randn(1, 1, 32, 32, 32))
    for logits in [out.logits, *out.expert_logits.values()]:
        background = torch.softmax(logits, dim=1)[:, 0].mean()
        assert 0.8 < float(background) < 0.97, float(background)
    biases = [m.out_conv.bias.detach() for m in [network.aggregator, *network.experts.values()]]
    assert all(float(b[0]) > 0 and torch.all(b[1:] == 0) for b in biases)
