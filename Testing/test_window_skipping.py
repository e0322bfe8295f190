"""Windows that hold no body voxel are not run; the labels inside the body stay those of every window."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from padded_ct import pad_body_centred
from support import REALCT_IMAGE

from dcaseg.data.imageio import read_image
from dcaseg.events import Reporter
from dcaseg.inference import Predictor, PredictorOptions
from dcaseg.inference.sliding_window import plan_windows, stitch_windows, windows_holding


def segment(model, image: sitk.Image, skip: bool, attention: bool = False):
    """The prediction and the "windows" stage event, at the defaults but for ``skip`` (float32 for exact
    labels; overlap 0.25 for fewer windows)."""
    events = []
    options = PredictorOptions(device="cpu", overlap=0.25, precision="fp32", skip_outside_body=skip)
    predictor = Predictor(model, options, Reporter(events.append))
    prediction = predictor.predict(image, attention=attention)
    stage = next(e for e in events if e["event"] == "stage" and e["stage"] == "windows")
    return prediction, stage


def test_a_padded_ct_runs_fewer_windows_with_the_same_labels_inside_the_body(tiny_model):
    image = pad_body_centred(read_image(REALCT_IMAGE), 512)
    assert image.GetSize()[:2] == (512, 512)
    body = sitk.GetArrayViewFromImage(image) > -500
    every, every_stage = segment(tiny_model, image, skip=False)
    skipped, skipped_stage = segment(tiny_model, image, skip=True, attention=True)
    assert every_stage["skipped"] == 0
    assert skipped_stage["skipped"] > 0
    assert skipped_stage["windows"] + skipped_stage["skipped"] == every_stage["windows"]
    every_labels = sitk.GetArrayFromImage(every.labels)
    skipped_labels = sitk.GetArrayFromImage(skipped.labels)
    assert len(np.unique(every_labels[body])) > 2
    assert int((every_labels[body] != skipped_labels[body]).sum()) == 0
    assert np.array_equal(every_labels, skipped_labels)  # outside the patient both are background
    attention = sum(sitk.GetArrayFromImage(skipped.attention[group]) for group in ("head", "medium", "tail"))
    assert np.all(np.isfinite(attention))
    assert np.allclose(attention[body], 1.0, atol=1e-4)


def test_the_padding_keeps_every_voxel_in_its_place():
    image = read_image(REALCT_IMAGE)
    padded = pad_body_centred(image, 512)
    for index in [(0, 0, 0), (121, 100, 29), (60, 50, 15)]:
        point = image.TransformIndexToPhysicalPoint(index)
        moved = padded.TransformPhysicalPointToIndex(point)
        assert padded[moved] == image[index]
    air = sitk.GetArrayViewFromImage(padded) <= -1000
    assert air[:, :, :100].all() and air[:, :, -100:].all()


def test_windows_holding_keeps_exactly_the_windows_over_the_mask():
    grid = plan_windows((40, 70, 70), (32, 32, 32), 0.5)
    mask = np.zeros(grid.shape, dtype=bool)
    assert len(windows_holding(grid, mask)) == 0
    mask[20, 35, 5] = True
    padded_index = (20 + grid.padding[0][0], 35, 5)
    kept = windows_holding(grid, mask).starts
    covering = [s for s in grid.starts if all(a <= i < a + p for a, i, p in zip(s, padded_index, grid.patch))]
    assert list(kept) == covering and 0 < len(kept) < len(grid)


def test_voxels_that_no_window_covers_are_zero_not_nan():
    grid = plan_windows((32, 64, 64), (32, 32, 32), 0.0)
    mask = np.zeros(grid.shape, dtype=bool)
    mask[:, :32, :32] = True
    weights = torch.ones(grid.patch)
    maps = stitch_windows(torch.zeros(grid.shape), windows_holding(grid, mask),
                          lambda batch: {"ones": torch.ones((len(batch), 2, *grid.patch))}, {"ones": 2}, weights,
                          torch.device("cpu"), torch.device("cpu"))["ones"]
    assert torch.equal(maps[:, mask], torch.ones(2, int(mask.sum())))
    assert torch.equal(maps[:, ~mask], torch.zeros(2, int((~mask).sum())))
