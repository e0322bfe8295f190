"""The network as inference runs it: only the maps asked for, BatchNorm folded into the convolutions."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dcaseg.inference import Predictor, PredictorOptions
from dcaseg.nets import ArchitectureConfig, DCANet, fold_batch_norms
from dcaseg.package import load_package

GROUPS_5 = {"head": [1], "medium": [2, 3], "tail": [4]}
CPU = torch.device("cpu")


def network_with_statistics(norm: str = "batch") -> DCANet:
    """A small DCA network whose BatchNorms hold non-trivial running statistics and affine parameters."""
    torch.manual_seed(0)
    network = DCANet(ArchitectureConfig(num_classes=5, expert_classes=GROUPS_5, n_filters=4, norm=norm))
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (nn.BatchNorm3d, nn.InstanceNorm3d)):
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.5, 0.5)
        network.train()
        for _ in range(3):
            network(3.0 * torch.randn(2, 1, 32, 32, 32) + 1.0)
    return network.eval()


def count(network: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in network.modules())


def test_the_fused_map_alone_skips_the_aggregator_and_equals_the_full_pass():
    network = network_with_statistics()
    calls = []
    network.aggregator.out_conv.register_forward_hook(lambda *_: calls.append("aggregator"))
    for dfam in network.dfams:
        dfam.register_forward_hook(lambda *_: calls.append("dfam"))
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.inference_mode():
        full = network(x)
        calls.clear()
        fused = network.inference_maps(x, ("fused",))
        assert calls == [] and set(fused) == {"fused"}
        assert torch.equal(fused["fused"], full.fused)
        both = network.inference_maps(x, ("logits", "attention"))
    assert calls.count("aggregator") == 1 and calls.count("dfam") == len(network.dfams)
    assert torch.equal(both["logits"], full.logits) and torch.equal(both["attention"], full.attention[-1])
    with pytest.raises(ValueError, match="unknown inference maps"):
        network.inference_maps(x, ("probabilities",))


def test_folding_removes_every_batch_norm_and_keeps_the_function():
    network = network_with_statistics()
    folded = network_with_statistics()
    batch_norms = count(network, nn.BatchNorm3d)
    assert batch_norms > 0
    assert fold_batch_norms(folded) == batch_norms
    assert count(folded, nn.BatchNorm3d) == 0
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.inference_mode():
        before = network.inference_maps(x, ("logits", "fused", "attention"))
        after = folded.inference_maps(x, ("logits", "fused", "attention"))
    for name in before:
        assert torch.allclose(before[name], after[name], rtol=1e-4, atol=1e-4), name


def test_only_an_eval_network_is_folded_and_instance_norm_is_left_alone():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(network_with_statistics().train())
    instance = network_with_statistics(norm="instance")
    assert fold_batch_norms(instance) == 0 and count(instance, nn.InstanceNorm3d) > 0


def test_the_predictor_folds_its_own_copy_and_its_device_copy_loads_the_folded_weights(tiny_model):
    package = load_package(tiny_model)
    predictor = Predictor(package, PredictorOptions(device="cpu"))
    assert count(predictor.network, nn.BatchNorm3d) == 0
    copy = predictor._network_copy(CPU)  # the CPU fallback's copy of a network on a GPU
    assert count(copy, nn.BatchNorm3d) == 0
    assert all(torch.equal(a, b) for a, b in zip(copy.state_dict().values(), predictor.network.state_dict().values()))
    trainer_network = package.build_network()
    assert count(Predictor.from_network(trainer_network, package.meta).network, nn.BatchNorm3d) > 0
