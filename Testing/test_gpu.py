"""GPU paths: mixed-precision prediction, a real out-of-memory fallback, mixed-precision training.

Skipped where torch sees no CUDA GPU (CI); run on a GPU machine with
``python -m pytest Testing/test_gpu.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from support import REALCT_IMAGE
from training_helpers import small_phantom

from dcaseg.data.imageio import read_image
from dcaseg.events import Reporter
from dcaseg.inference import Predictor, PredictorOptions
from dcaseg.package import load_package
from dcaseg.training.config import preset
from dcaseg.training.trainer import Trainer, TrainRequest

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_the_gpu_agrees_with_the_cpu_and_its_attention_sums_to_one(tiny_model):
    image = read_image(REALCT_IMAGE)
    exact_cpu = Predictor(tiny_model, PredictorOptions(device="cpu", precision="fp32"))
    reference = sitk.GetArrayFromImage(exact_cpu.predict(image).labels)
    exact = Predictor(tiny_model, PredictorOptions(device="cuda", precision="fp32")).predict(image).labels
    mixed = Predictor(tiny_model, PredictorOptions(device="cuda")).predict(image, attention=True)
    assert (sitk.GetArrayFromImage(exact) == reference).mean() > 0.99  # TF32 convolutions round a little
    assert (sitk.GetArrayFromImage(mixed.labels) == reference).mean() > 0.95  # random weights: many near-ties
    body = sitk.GetArrayFromImage(image) > -500
    attention_sum = sum(sitk.GetArrayFromImage(mixed.attention[g]) for g in ("head", "medium", "tail"))
    assert np.allclose(attention_sum[body], 1.0, atol=1e-5)


def test_a_real_out_of_memory_error_falls_back_to_host_accumulation(tiny_model):
    """Cap this process's GPU memory below the accumulation buffers: the predictor must carry on."""
    image = sitk.Image([400, 400, 200], sitk.sitkInt16)  # 3 mm model grid: ~27 M voxels of buffers
    image.SetSpacing((1.5, 1.5, 2.0))
    array = sitk.GetArrayFromImage(read_image(REALCT_IMAGE))
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(300 * 2**20 / total)  # 300 MiB
    try:
        events = []
        tiled = np.tile(array, (8, 4, 4))[:200, :400, :400]
        big = sitk.GetImageFromArray(tiled)
        big.CopyInformation(image)
        predictor = Predictor(tiny_model, PredictorOptions(device="cuda", overlap=0.25, body_crop=False),
                              Reporter(events.append))
        prediction = predictor.predict(big, probabilities=True)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("host memory" in w for w in warnings), warnings
    assert prediction.labels.GetSize() == big.GetSize()


def test_training_on_the_gpu_with_mixed_precision_writes_a_loadable_model(tmp_path: Path):
    data = small_phantom(tmp_path / "data")
    config = preset("tiny").with_overrides(iterations=6, validation_cases=1, val_every=6, checkpoint_every=6,
                                           amp=True, channels_last=True)  # the paper preset's GPU settings
    result = Trainer(TrainRequest(run=tmp_path / "run", config=config, data=data, device="cuda")).train()
    assert result.model is not None and result.iteration == 6
    package = load_package(result.model)
    assert all(torch.isfinite(v).all() for v in package.state_dict.values() if v.is_floating_point())
