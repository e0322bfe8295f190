"""CPU threads: a training process's share of the cores, and all of them while its peers wait."""
from __future__ import annotations

import pytest
import torch

from dcaseg.inference.devices import all_cpu_cores, usable_cores
from dcaseg.training.trainer import cpu_threads


def test_training_processes_share_the_cores_and_each_keeps_one_at_least() -> None:
    cores = usable_cores()
    assert cpu_threads(1) == cores
    assert cpu_threads(cores) == 1
    assert cpu_threads(cores + 1) == 1


@pytest.mark.skipif(usable_cores() < 2, reason="needs two usable cores")
def test_all_cpu_cores_inside_the_block_and_the_process_share_after_it_even_on_error() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with all_cpu_cores() as threads:
            assert threads == usable_cores() == torch.get_num_threads()
        assert torch.get_num_threads() == 1
        with pytest.raises(RuntimeError), all_cpu_cores():
            raise RuntimeError("validation failed")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
