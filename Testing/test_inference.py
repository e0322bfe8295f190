"""The predictor: window grid and blending (against MONAI), exact geometry, attention, OOM fallback."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.data.utils import compute_importance_map, dense_patch_slices
from monai.inferers import sliding_window_inference
from scipy import ndimage
from support import REALCT_IMAGE, rotation, tiny_model_meta

from dcaseg.data.imageio import read_image
from dcaseg.data.preprocess import body_mask
from dcaseg.errors import DcaError, InputError
from dcaseg.events import Reporter
from dcaseg.inference import Predictor, PredictorOptions
from dcaseg.inference.fallback import ExecutionPlan, next_plan, run_with_fallback
from dcaseg.inference.model_grid import covering_size
from dcaseg.inference.sliding_window import gaussian_weights, plan_windows, stitch_windows
from dcaseg.nets import DCANet
from dcaseg.package import ModelPackage, Preprocessing, load_package

CPU = torch.device("cpu")
BRIGHT_HU, TISSUE_HU, AIR_HU = 200.0, 0.0, -1000.0
ORGAN_VALUE = 6


def geometry(image: sitk.Image) -> tuple:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def phantom(size, spacing, direction, origin, centre, radius=14.0) -> sitk.Image:
    """Air, a body block of soft tissue, and a bright sphere of ``radius`` mm at physical ``centre``."""
    image = sitk.Image([int(s) for s in size], sitk.sitkInt16)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    z, y, x = np.meshgrid(*(np.arange(n) for n in reversed(size)), indexing="ij")
    index = np.stack([x, y, z], -1).reshape(-1, 3).astype(float)
    matrix = np.array(direction).reshape(3, 3) @ np.diag(spacing)
    points = index @ matrix.T + np.array(origin)
    array = np.full(len(points), AIR_HU)
    inner = np.all((index >= 4) & (index <= np.array(size) - 5), axis=1)
    array[inner] = TISSUE_HU
    array[np.linalg.norm(points - np.array(centre), axis=1) < radius] = BRIGHT_HU
    result = sitk.GetImageFromArray(array.reshape(tuple(reversed(size))).astype(np.int16))
    result.CopyInformation(image)
    return result


def threshold_network(meta, threshold: float = 0.5) -> DCANet:
    """A real DCANet whose weights make it label ``ORGAN_VALUE`` where the normalised intensity > threshold + 0.05.

    Only the finest encoder stage (x - threshold, ReLU), the aggregator's last stage (identity) and
    its output convolution carry weights; every other path is zero, so DFAM adds nothing.
    """
    network = DCANet(meta.architecture).eval()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
                module.weight.zero_()
                module.bias.zero_()
            elif isinstance(module, torch.nn.BatchNorm3d):
                module.reset_parameters()
                module.running_var.fill_(1.0 - module.eps)
        first = network.encoder.stages[0][0]
        first.weight[0, 0, 1, 1, 1] = 1.0
        first.bias[0] = -threshold
        network.aggregator.convs[-1][0].weight[0, 0, 1, 1, 1] = 1.0
        out = network.aggregator.out_conv
        channel = meta.label_values.index(ORGAN_VALUE)
        out.bias.fill_(-10.0)
        out.bias[0] = 0.5
        out.bias[channel] = 0.0
        out.weight[channel, 0] = 10.0
    return network


# ----------------------------------------------------------------------------- windows


@pytest.mark.parametrize("shape", [(40, 50, 37), (20, 32, 100), (32, 32, 32), (10, 9, 70)])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.7])
def test_window_grid_matches_monai(shape, overlap):
    patch = (32, 32, 32)
    grid = plan_windows(shape, patch, overlap)
    padded = tuple(max(n, p) for n, p in zip(shape, patch))
    assert grid.padded_shape == padded
    intervals = [p if p == n else max(1, int(p * (1 - overlap))) for n, p in zip(padded, patch)]
    expected = [tuple(s.start for s in box) for box in dense_patch_slices(padded, patch, intervals)]
    assert list(grid.starts) == expected
    assert all(a == (p - min(n, p)) // 2 for (a, _), n, p in zip(grid.padding, shape, patch))


def test_gaussian_weights_match_monai():
    ours = gaussian_weights((32, 24, 40))
    theirs = compute_importance_map((32, 24, 40), mode="gaussian", sigma_scale=0.125)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    assert float(ours.min()) == pytest.approx(1e-3) and float(ours.max()) > 0.97


@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_stitching_a_window_copy_gives_back_the_volume(overlap):
    volume = torch.rand(23, 45, 70)
    grid = plan_windows(volume.shape, (16, 32, 32), overlap)
    out = stitch_windows(volume, grid, lambda batch: {"copy": batch}, {"copy": 1},
                         gaussian_weights((16, 32, 32)), CPU, CPU, windows_per_batch=3)
    assert out["copy"].shape == (1, 23, 45, 70)
    assert torch.allclose(out["copy"][0], volume, atol=1e-6)


def test_blended_distributions_still_sum_to_one():
    volume = torch.rand(40, 40, 40)
    grid = plan_windows(volume.shape, (32, 32, 32), 0.5)
    weights = torch.rand(32, 32, 32) + 0.01  # any positive weights keep a convex combination

    def softmax_of_window(batch):
        logits = torch.cat([batch * 5, batch.flip(-1) * 3, torch.randn_like(batch)], dim=1)
        return {"attention": torch.softmax(logits, dim=1)}

    out = stitch_windows(volume, grid, softmax_of_window, {"attention": 3}, weights, CPU, CPU)
    assert torch.allclose(out["attention"].sum(0), torch.ones(40, 40, 40), atol=1e-5)


def test_same_windows_as_monai_give_the_same_logits_and_labels(tiny_model):
    network = load_package(tiny_model).build_network()
    volume = torch.rand(40, 50, 37)
    patch = (32, 32, 32)

    def logits(batch):
        return {"logits": network(batch, with_fused=False).logits}

    with torch.inference_mode():
        ours = stitch_windows(volume, plan_windows(volume.shape, patch, 0.5), logits, {"logits": 15},
                              gaussian_weights(patch), CPU, CPU)["logits"]
        theirs = sliding_window_inference(volume[None, None], patch, 1, lambda x: logits(x)["logits"],
                                          overlap=0.5, mode="gaussian")[0]
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.equal(ours.argmax(0), theirs.argmax(0))


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("direction", [
    rotation((0, 0, 0), flip=(-1, -1, 1)),       # LPS → RAS-like flips
    rotation((0.3, -0.2, 0.5)),                  # oblique
    rotation((0.1, 0.4, -0.7), flip=(1, -1, 1)),  # oblique and left-handed
], ids=["flipped", "oblique", "oblique-flipped"])
def test_an_organ_at_a_known_physical_point_is_found_there(direction):
    meta = dataclasses.replace(tiny_model_meta(), preprocessing=Preprocessing((2.0, 2.0, 2.0), (32, 32, 32)))
    package = ModelPackage(meta, threshold_network(meta).state_dict(), source=None)
    size, spacing, origin = (70, 64, 26), (0.8, 0.9, 2.5), (-12.0, 40.0, 300.0)
    centre = sitk.Image(list(size), sitk.sitkUInt8)
    centre.SetSpacing(spacing)
    centre.SetOrigin(origin)
    centre.SetDirection(direction)
    point = centre.TransformContinuousIndexToPhysicalPoint((38.0, 30.0, 13.5))
    image = phantom(size, spacing, direction, origin, point)
    prediction = Predictor(package, PredictorOptions(device="cpu", overlap=0.25)).predict(image, attention=True)
    labels = prediction.labels
    assert geometry(labels) == geometry(image)
    assert all(geometry(m) == geometry(image) for m in prediction.attention.values())
    assert labels[labels.TransformPhysicalPointToIndex(point)] == ORGAN_VALUE
    found = sitk.GetArrayFromImage(labels) == ORGAN_VALUE
    truth = sitk.GetArrayFromImage(image) == BRIGHT_HU
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) > 0.9
    z, y, x = np.nonzero(found)
    centroid = np.mean([labels.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))
                        for i, j, k in zip(x, y, z)], axis=0)
    assert np.linalg.norm(centroid - np.array(point)) < 1.0
    assert set(np.unique(sitk.GetArrayFromImage(labels))) == {0, ORGAN_VALUE}


def test_the_body_mask_is_the_patient_with_its_gas_and_without_air_or_table():
    hu = np.full((6, 30, 30), AIR_HU)
    hu[:, 5:20, 5:25] = TISSUE_HU          # the patient
    hu[:, 10:14, 10:14] = AIR_HU           # gas inside (bowel, lung)
    hu[:, 25:28, 2:28] = 300.0             # the table, not touching the patient
    hu[:, 2, 2] = TISSUE_HU                # a loose bright speck in the air
    body = body_mask(hu)
    patient = np.zeros_like(body)
    patient[:, 5:20, 5:25] = True
    assert np.array_equal(body, patient)
    assert body_mask(np.full((4, 8, 8), AIR_HU)) is None
    coarse = body_mask(hu, step=(1, 2, 2))  # every 2nd voxel in-plane: the same patient up to its skin
    assert coarse.shape == hu.shape
    skin = ndimage.binary_dilation(patient) & ~ndimage.binary_erosion(patient)
    assert not ((coarse ^ patient) & ~skin).any()
    assert not coarse[:, 25:28].any() and coarse[:, 10:14, 10:14].all()


def test_no_organ_is_labeled_outside_the_patient():
    """A network that calls everything the organ, on a body with gas inside it and a table beside it."""
    meta = dataclasses.replace(tiny_model_meta(), preprocessing=Preprocessing((2.0, 2.0, 2.0), (32, 32, 32)))
    package = ModelPackage(meta, threshold_network(meta, threshold=-1.0).state_dict(), source=None)
    image = phantom((60, 56, 20), (2.0, 2.0, 2.0), rotation((0, 0, 0)), (0.0, 0.0, 0.0), (60.0, 56.0, 20.0), 8.0)
    hu = sitk.GetArrayFromImage(image)
    hu[:, 10:16, 40:46] = AIR_HU     # gas inside the body block (rows/columns 4 .. n-5)
    hu[:, :, 0:2] = 300              # a table along the edge of the field of view, apart from the body
    masked = sitk.GetImageFromArray(hu)
    masked.CopyInformation(image)
    prediction = Predictor(package, PredictorOptions(device="cpu", overlap=0.0)).predict(masked, probabilities=True)
    labels = sitk.GetArrayFromImage(prediction.labels)
    inside = np.zeros_like(labels, dtype=bool)
    inside[4:-4, 4:-4, 4:-4] = True   # the phantom's body block
    assert (labels[inside] == ORGAN_VALUE).all()
    assert (labels[~inside] == 0).all()
    probabilities = sitk.GetArrayFromImage(prediction.probabilities)
    assert np.allclose(probabilities[~inside][:, 0], 1.0)
    unmasked = Predictor(package, PredictorOptions(device="cpu", overlap=0.0, mask_to_body=False)).predict(masked)
    unmasked = unmasked.labels
    assert (sitk.GetArrayFromImage(unmasked)[~inside] == ORGAN_VALUE).any()


def test_real_ct_gives_labels_and_attention_in_its_exact_geometry(tiny_model):
    image = read_image(REALCT_IMAGE)
    events = []
    predictor = Predictor(tiny_model, PredictorOptions(device="cpu", overlap=0.25), reporter=Reporter(events.append))
    prediction = predictor.predict(image, attention=True, probabilities=True, fused=True)
    outputs = [prediction.labels, prediction.fused_labels, prediction.probabilities, *prediction.attention.values()]
    assert all(geometry(o) == geometry(image) for o in outputs)
    assert prediction.labels.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(prediction.labels))) <= set(range(15))
    assert prediction.probabilities.GetNumberOfComponentsPerPixel() == 15
    body = sitk.GetArrayFromImage(image) > -500
    attention_sum = sum(sitk.GetArrayFromImage(prediction.attention[g]) for g in ("head", "medium", "tail"))
    assert np.allclose(attention_sum[body], 1.0, atol=1e-5)
    probabilities = sitk.GetArrayFromImage(prediction.probabilities)
    assert np.allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"]  # one event per batch of windows
    assert len(progress) == math.ceil(progress[-1]["total"] / predictor.windows_per_batch)
    assert [e["stage"] for e in events if e["event"] == "stage"] == ["preprocessing", "windows", "restoring"]


def test_dicom_series_output_has_the_series_geometry(tiny_model, tmp_path):
    direction = rotation((0.2, 0.0, 0.3))
    volume = phantom((48, 40, 12), (0.9, 0.9, 3.0), direction, (10.0, -20.0, 5.0), (0.0, 0.0, 0.0))
    write_dicom_series(volume, tmp_path / "series")
    read = read_image(tmp_path / "series")
    assert np.allclose(read.GetDirection(), direction, atol=1e-5)
    predictor = Predictor(tiny_model, PredictorOptions(device="cpu", overlap=0.0))
    prediction = predictor.predict(tmp_path / "series", attention=True)
    assert geometry(prediction.labels) == geometry(read)
    assert all(geometry(m) == geometry(read) for m in prediction.attention.values())


def write_dicom_series(image: sitk.Image, folder) -> None:
    """One CT slice per file with the tags a DICOM reader needs to rebuild the geometry."""
    folder.mkdir()
    d = image.GetDirection()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.42"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        tags = {"0008|0060": "CT", "0008|0008": "DERIVED\\SECONDARY", "0020|000d": series_uid + ".0",
                "0020|000e": series_uid, "0020|0013": str(k + 1), "0008|0018": f"{series_uid}.{k + 1}",
                "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
                "0020|0032": "\\".join(f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
                "0018|0050": str(image.GetSpacing()[2]), "0028|1052": "0", "0028|1053": "1"}
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(plane)


def test_model_grid_covers_every_input_voxel_centre():
    image = sitk.Image([512, 512, 97], sitk.sitkInt16)
    image.SetSpacing((0.78, 0.78, 2.5))
    size = covering_size(image.GetSize(), image.GetSpacing(), (1.5, 1.5, 3.0))
    for n, s, t, m in zip(image.GetSize(), image.GetSpacing(), (1.5, 1.5, 3.0), size):
        assert (m - 1) * t >= (n - 1) * s - 1e-6 > (m - 2) * t


def test_body_crop_skips_the_air(tiny_model):
    image = phantom((100, 100, 40), (3.0, 3.0, 3.0), rotation((0, 0, 0)), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    array = sitk.GetArrayFromImage(image)
    array[:, :, 40:] = AIR_HU  # the body fills only part of the field of view
    array[:, 40:, :] = AIR_HU
    cropped_image = sitk.GetImageFromArray(array)
    cropped_image.CopyInformation(image)
    totals = {}
    for crop in (True, False):
        events = []
        options = PredictorOptions(device="cpu", overlap=0.0, body_crop=crop)
        predictor = Predictor(tiny_model, options, Reporter(events.append))
        prediction = predictor.predict(cropped_image)
        totals[crop] = [e["total"] for e in events if e["event"] == "progress"][-1]
        assert geometry(prediction.labels) == geometry(image)
    assert totals[True] < totals[False]


@pytest.mark.parametrize("direction", [rotation((0, 0, 0)), rotation((0.3, -0.2, 0.5), flip=(1, -1, 1))])
def test_body_crop_gives_the_whole_volumes_labels_inside_the_body(tiny_model, direction):
    ct = sitk.GetArrayFromImage(read_image(REALCT_IMAGE))
    padded = np.pad(ct, ((3, 0), (0, 70), (60, 5)), constant_values=-1024)  # air beside the body
    image = sitk.GetImageFromArray(padded)
    image.SetSpacing((2.1, 1.7, 2.6))
    image.SetOrigin((-40.0, 12.5, 300.0))
    image.SetDirection(direction)
    labels, windows = {}, {}
    for crop in (True, False):
        events = []
        options = PredictorOptions(device="cpu", overlap=0.5, body_crop=crop, precision="fp32")
        predictor = Predictor(tiny_model, options, Reporter(events.append))
        prediction = predictor.predict(image, attention=True)
        assert all(geometry(o) == geometry(image) for o in (prediction.labels, *prediction.attention.values()))
        labels[crop] = sitk.GetArrayFromImage(prediction.labels)
        windows[crop] = [e["total"] for e in events if e["event"] == "progress"][-1]
    body = padded > -500
    assert windows[True] < windows[False]
    assert len(np.unique(labels[False][body])) > 2
    assert np.array_equal(labels[True][body], labels[False][body])


def test_a_mirrored_copy_of_a_scan_gets_the_same_organs_at_the_same_places(tiny_model):
    """The real CT is stored RAS; its LPS twin holds the same voxels mirrored. Same patient, same labels."""
    image = read_image(REALCT_IMAGE)
    twin = sitk.DICOMOrient(image, "LPS")
    assert twin.GetDirection() != image.GetDirection()
    predictor = Predictor(tiny_model, PredictorOptions(device="cpu", overlap=0.5, precision="fp32"))
    labels = sitk.GetArrayFromImage(predictor.predict(image).labels)
    twin_labels = predictor.predict(twin).labels
    assert geometry(twin_labels) == geometry(twin)
    back = sitk.GetArrayFromImage(sitk.DICOMOrient(twin_labels, "RAS"))
    assert len(np.unique(labels)) > 2
    assert np.array_equal(back, labels)


def test_an_image_without_body_is_segmented_whole_with_a_warning(tiny_model):
    image = sitk.Image([40, 40, 20], sitk.sitkInt16) - 1000
    events = []
    predictor = Predictor(tiny_model, PredictorOptions(device="cpu", overlap=0.0), Reporter(events.append))
    prediction = predictor.predict(image)
    assert any(e["event"] == "warning" and "no body" in e["message"] for e in events)
    assert geometry(prediction.labels) == geometry(image)


def test_two_dimensional_and_vector_images_are_refused(tiny_model):
    predictor = Predictor(tiny_model, PredictorOptions(device="cpu"))
    with pytest.raises(InputError, match="3-D"):
        predictor.predict(sitk.Image([40, 40], sitk.sitkInt16))
    with pytest.raises(InputError, match="single-component"):
        predictor.predict(sitk.Image([40, 40, 4], sitk.sitkVectorFloat32, 2))


def test_from_network_keeps_the_trainers_network_as_it_was(tiny_model):
    package = load_package(tiny_model)
    network = DCANet(package.meta.architecture)
    network.load_state_dict(package.state_dict)
    network.train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    image = read_image(REALCT_IMAGE)
    from_memory = Predictor.from_network(network, package.meta, PredictorOptions(overlap=0.0)).predict(image)
    assert network.training
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    from_package = Predictor(package, PredictorOptions(device="cpu", overlap=0.0)).predict(image)
    agreement = (sitk.GetArrayFromImage(from_memory.labels) == sitk.GetArrayFromImage(from_package.labels)).mean()
    assert agreement > 0.999  # channels_last_3d vs default layout: same maths, rounding may differ


# ----------------------------------------------------------------------------- out of memory


def test_fallback_plans_go_fewer_windows_then_host_memory_then_cpu():
    plan = ExecutionPlan(torch.device("cuda", 0), 4, True)
    steps = []
    while (step := next_plan(plan)) is not None:
        plan = step[0]
        steps.append((plan.device.type, plan.windows_per_batch, plan.accumulate_device.type))
    assert steps == [("cuda", 2, "cuda"), ("cuda", 1, "cuda"), ("cuda", 1, "cpu"), ("cpu", 1, "cpu")]


def test_out_of_memory_on_the_gpu_falls_back_to_the_cpu_with_events():
    volume = torch.rand(40, 40, 40)
    grid = plan_windows(volume.shape, (32, 32, 32), 0.5)
    events, attempts = [], []

    def attempt(plan: ExecutionPlan):
        attempts.append(plan)
        if plan.device.type != "cpu":  # what a GPU without enough memory raises
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return stitch_windows(volume, grid, lambda b: {"copy": b}, {"copy": 1}, gaussian_weights((32, 32, 32)),
                              plan.device, plan.accumulate_device, plan.windows_per_batch)

    result = run_with_fallback(attempt, ExecutionPlan(torch.device("cuda", 0), 4, True), Reporter(events.append))
    assert torch.allclose(result["copy"][0], volume, atol=1e-6)
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert len(warnings) == 4 and len(attempts) == 5
    assert "2 window(s) per pass" in warnings[0] and "host memory" in warnings[2] and "CPU" in warnings[3]


def test_out_of_memory_on_the_cpu_is_a_one_line_error_and_other_errors_pass_through():
    def no_memory(plan):
        raise MemoryError()

    with pytest.raises(DcaError, match="out of memory on cpu"):
        run_with_fallback(no_memory, ExecutionPlan(CPU, 1), Reporter())

    def broken(plan):
        raise ValueError("a bug, not a memory problem")

    with pytest.raises(ValueError):
        run_with_fallback(broken, ExecutionPlan(CPU, 1), Reporter())


def test_a_package_whose_output_is_the_experts_gives_their_fused_labels(tiny_model):
    package = load_package(tiny_model)
    image = read_image(REALCT_IMAGE)
    predictor = Predictor(package, PredictorOptions(device="cpu", overlap=0.0))
    both = predictor.predict(image, fused=True, probabilities=True)
    package.meta.output = "experts_fused"
    experts = Predictor(package, PredictorOptions(device="cpu", overlap=0.0)).predict(image, probabilities=True)
    assert experts.fused_labels is None
    assert np.array_equal(sitk.GetArrayFromImage(experts.labels), sitk.GetArrayFromImage(both.fused_labels))
    assert not np.array_equal(sitk.GetArrayFromImage(both.labels), sitk.GetArrayFromImage(both.fused_labels))
    winner = sitk.GetArrayFromImage(experts.probabilities).argmax(-1)
    values = np.array(package.meta.label_values)
    assert np.array_equal(values[winner], sitk.GetArrayFromImage(experts.labels))


def test_cpu_precision_follows_the_hardware_and_fp32_turns_it_off(tiny_model):
    from dcaseg.inference.devices import autocast_dtype, cpu_has_native_bf16, default_windows_per_batch

    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu) == (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert default_windows_per_batch(cpu, 32**3) == 4 and default_windows_per_batch(cpu, 96**3) == 1
    with pytest.raises(InputError, match="precision must be one of"):
        Predictor(tiny_model, PredictorOptions(device="cpu", precision="fp8"))
    image = read_image(REALCT_IMAGE)
    exact = Predictor(tiny_model, PredictorOptions(device="cpu", precision="fp32")).predict(image).labels
    fast = Predictor(tiny_model, PredictorOptions(device="cpu")).predict(image).labels
    agreement = (sitk.GetArrayFromImage(exact) == sitk.GetArrayFromImage(fast)).mean()
    assert agreement > 0.95  # bf16 moves only near-tied voxels (random weights make many ties)
