"""The predictor: load a model once, then segment many volumes in their own exact geometry.

Steps per volume: read → reorient to LPS axes → crop to the body (CT) → resample to the model's
spacing and normalise →
sliding windows with Gaussian weights, leaving out windows that hold no body voxel (CT; labels,
attention, fused logits blended on the device) →
argmax on the device, background outside the patient (CT) → back onto the input grid (exact
size, spacing, origin, direction).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from torch import Tensor

from ..data.imageio import read_image
from ..errors import InputError
from ..events import Reporter, python_warnings_sink
from ..grouping import GROUP_NAMES
from ..nets import DCANet, fold_batch_norms
from ..package import ModelMeta, ModelPackage, load_package
from .devices import (
    autocast_dtype,
    default_windows_per_batch,
    free_device_memory,
    resolve_device,
    uses_channels_last,
)
from .fallback import ExecutionPlan, run_with_fallback
from .model_grid import ModelGridVolume, restore, to_model_grid
from .options import PredictorOptions
from .sliding_window import gaussian_weights, plan_windows, stitch_windows, windows_holding

DEVICE_MEMORY_SHARE = 0.5  # accumulate on the GPU only if the buffers take at most this share of free memory


@dataclass
class Prediction:
    """Results in the input's exact geometry.

    ``labels``: label values of the model (uint8, or uint16 above 255), from the head its package
    names as ``output`` (the aggregation decoder unless the experts' fused prediction validated
    better). ``attention``: float32 maps
    "head", "medium", "tail" of the finest DFAM stage (they sum to 1 wherever a window ran, which
    includes every body voxel; 0 outside the body crop and in air that no window covered).
    ``probabilities``: float32 vector image, one component per channel (background first, then the
    model's classes in order). ``fused_labels``: argmax of the experts' logit concatenation, as label
    values.
    """

    labels: sitk.Image
    attention: dict[str, sitk.Image] | None = None
    probabilities: sitk.Image | None = None
    fused_labels: sitk.Image | None = None


class Predictor:
    """Segments volumes with one model, run as ``options`` say (``PredictorOptions``); see ``predict``."""

    def __init__(self, model: str | Path | ModelPackage, options: PredictorOptions | None = None,
                 reporter: Reporter | None = None) -> None:
        options = options or PredictorOptions()
        package = model if isinstance(model, ModelPackage) else load_package(model)
        target = resolve_device(options.device)
        self._setup(inference_network(package.build_network(target), target), package.meta, target, options,
                    reporter, folded=True)

    @classmethod
    def from_network(cls, network: DCANet, meta: ModelMeta, options: PredictorOptions | None = None,
                     reporter: Reporter | None = None) -> Predictor:
        """A predictor around a network in memory (e.g. the trainer's, for validation).

        The network is used as it is (its device and memory layout are kept; a device other than
        ``auto`` must name its device) and its train/eval mode is restored after each prediction.
        """
        options = options or PredictorOptions()
        own = next(network.parameters()).device
        target = own if options.device == "auto" else resolve_device(options.device)
        if target != own:
            raise InputError(f"the network is on {own}, not on the requested device {target}")
        predictor = cls.__new__(cls)
        predictor._setup(network, meta, target, options, reporter, folded=False)
        return predictor

    def _setup(self, network: DCANet, meta: ModelMeta, device: torch.device, options: PredictorOptions,
               reporter: Reporter | None, folded: bool) -> None:
        self.network = network
        self._folded = folded
        self.meta = meta
        self.device = device
        self.overlap = options.overlap
        self.windows_per_batch = options.windows_per_batch or default_windows_per_batch(
            device, int(np.prod(meta.preprocessing.patch_size)))
        self.precision = options.precision
        self.reporter = reporter or Reporter(python_warnings_sink)  # warnings are never dropped
        ct_body = meta.preprocessing.body_crop and meta.preprocessing.intensity.get("mode") == "ct-window"
        self.body_crop = ct_body if options.body_crop is None else options.body_crop
        # No organ outside the patient: a model trained on few cases can call the air beside the body
        # an organ (seen on the real CT fixture with the phantom-trained demo model).
        self.mask_to_body = ct_body if options.mask_to_body is None else options.mask_to_body
        self.skip_outside_body = self.body_crop if options.skip_outside_body is None else options.skip_outside_body
        self._values = torch.tensor(meta.label_values)
        self._label_type = np.uint8 if max(meta.label_values) <= 255 else np.uint16
        self._weights: dict[torch.device, Tensor] = {}

    # ------------------------------------------------------------------------------ public

    def predict(self, image: sitk.Image | str | Path, attention: bool = False, probabilities: bool = False,
                fused: bool = False) -> Prediction:
        """Segment one volume (an image in memory, or a path to a file or DICOM folder)."""
        reporter = self.reporter
        if not isinstance(image, sitk.Image):
            reporter.stage("reading")
            image = read_image(image)
        _check_volume(image)
        attention = attention and self._has_attention("attention maps")
        fused = fused and self._has_attention("a fused expert prediction", experts_only=True)
        reporter.stage("preprocessing")
        grid, warnings = to_model_grid(image, self.meta.preprocessing, self.body_crop, self.overlap,
                                       find_body=self.mask_to_body or self.skip_outside_body)
        for warning in warnings:
            reporter.warning(warning)
        maps = self._predict_on_grid(grid, attention, probabilities, fused)
        reporter.stage("restoring")
        return self._restore(grid, maps, image)

    # ------------------------------------------------------------------------------ windows

    def _has_attention(self, what: str, experts_only: bool = False) -> bool:
        config = self.meta.architecture
        has = config.experts != "none" and (experts_only or config.dfam)
        if not has:
            self.reporter.warning(f"this model has no {'experts' if experts_only else 'DFAM'}, so it gives no {what}")
        return has

    def _channels(self, attention: bool, fused: bool) -> dict[str, int]:
        """The maps to blend: the package's output head (the aggregator's logits unless it names the
        fused prediction), the attention and the fused logits where asked for; nothing unread."""
        classes = self.meta.architecture.num_classes
        channels = {} if self.meta.output == "experts_fused" else {"logits": classes}
        if attention:
            channels["attention"] = len(GROUP_NAMES)
        if fused:
            channels["fused"] = classes
        return channels

    def _predict_on_grid(self, grid: ModelGridVolume, attention: bool, probabilities: bool,
                         fused: bool) -> dict[str, np.ndarray]:
        patch = tuple(reversed(self.meta.preprocessing.patch_size))  # (x, y, z) → array order (z, y, x)
        windows = plan_windows(grid.array.shape, patch, self.overlap)
        planned = len(windows)
        if self.skip_outside_body and grid.body is not None:
            windows = windows_holding(windows, grid.body)
        body = grid.body if self.mask_to_body else None
        channels = self._channels(attention, fused or self.meta.output == "experts_fused")
        volume = torch.from_numpy(grid.array)

        def attempt(plan: ExecutionPlan) -> dict[str, np.ndarray]:
            self.reporter.emit("stage", stage="windows", windows=len(windows), skipped=planned - len(windows),
                               device=str(plan.device))
            with self._network_on(plan.device, tuple(channels)) as run:
                stitched = stitch_windows(volume, windows, run, channels, self._weights_on(plan.device, patch),
                                          plan.device, plan.accumulate_device, plan.windows_per_batch,
                                          lambda done, total: self.reporter.progress("windows", done, total))
                return self._finish(stitched, probabilities, fused, body)

        buffer_bytes = 4 * (sum(channels.values()) + 2) * int(np.prod(windows.padded_shape))
        return run_with_fallback(attempt, self._first_plan(buffer_bytes), self.reporter)

    def _first_plan(self, buffer_bytes: int) -> ExecutionPlan:
        free = free_device_memory(self.device)
        on_device = free is None or buffer_bytes <= DEVICE_MEMORY_SHARE * free
        if not on_device:
            self.reporter.warning(f"the volume's buffers ({buffer_bytes / 2**30:.1f} GiB) would not fit well in "
                                  f"{self.device} memory; accumulating in host memory")
        return ExecutionPlan(self.device, self.windows_per_batch, on_device)

    def _weights_on(self, device: torch.device, patch: tuple[int, ...]) -> Tensor:
        if device not in self._weights:
            self._weights[device] = gaussian_weights(patch, device)
        return self._weights[device]

    @contextlib.contextmanager
    def _network_on(self, device: torch.device, maps: tuple[str, ...]) -> Iterator:
        """A runner of windows → ``maps`` on ``device``: eval mode, inference mode, mixed precision on GPUs.

        Windows take the network's memory layout (``channels_last_3d`` where its weights have it).
        """
        network = self.network if device == self.device else self._network_copy(device)
        was_training = network.training
        network.eval()
        channels_last = _is_channels_last(network)
        dtype = autocast_dtype(device, self.precision)

        def run(batch: Tensor) -> dict[str, Tensor]:
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last_3d)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                return network.inference_maps(batch, maps)

        try:
            with torch.inference_mode():
                yield run
        finally:
            network.train(was_training)

    def _network_copy(self, device: torch.device) -> DCANet:
        """A copy of the network on another device (the CPU fallback), in the best layout there."""
        copy = DCANet(self.meta.architecture).eval()
        if self._folded:
            fold_batch_norms(copy)  # the same modules as the folded original, so its state dict loads
        copy.load_state_dict({k: v.detach().to("cpu") for k, v in self.network.state_dict().items()})
        return _in_best_layout(copy.to(device), device)

    def _finish(self, stitched: dict[str, Tensor], probabilities: bool, fused: bool,
                body: np.ndarray | None) -> dict[str, np.ndarray]:
        """Argmax (as label values) and soft maps on the accumulation device, then to host arrays.

        The label map and probabilities come from the package's ``output`` head; outside ``body``
        (when given) every voxel is background, with probability 1.
        """
        output = stitched["fused"] if self.meta.output == "experts_fused" else stitched["logits"]
        values = self._values.to(output.device)
        outside = torch.from_numpy(~body).to(output.device) if body is not None else None

        def label_map(logits: Tensor) -> np.ndarray:
            index = logits.argmax(0)
            if outside is not None:
                index[outside] = 0
            return values[index].cpu().numpy().astype(self._label_type)

        maps = {"labels": label_map(output)}
        if probabilities:
            soft = torch.softmax(output, dim=0)
            if outside is not None:
                soft[:, outside] = 0.0
                soft[0, outside] = 1.0
            maps["probabilities"] = soft.cpu().numpy()
        if "attention" in stitched:
            maps["attention"] = stitched["attention"].cpu().numpy()
        if fused:
            maps["fused_labels"] = label_map(stitched["fused"])
        return maps

    # ------------------------------------------------------------------------------ restore

    def _restore(self, grid: ModelGridVolume, maps: dict[str, np.ndarray], reference: sitk.Image) -> Prediction:
        prediction = Prediction(labels=restore(grid, maps["labels"], reference, is_label=True))
        if "attention" in maps:
            prediction.attention = {group: restore(grid, maps["attention"][i], reference, is_label=False)
                                    for i, group in enumerate(GROUP_NAMES)}
        if "probabilities" in maps:
            channels = [restore(grid, channel, reference, is_label=False, outside=1.0 if i == 0 else 0.0)
                        for i, channel in enumerate(maps["probabilities"])]
            prediction.probabilities = sitk.Compose(channels)
        if "fused_labels" in maps:
            prediction.fused_labels = restore(grid, maps["fused_labels"], reference, is_label=True)
        return prediction


def inference_network(network: DCANet, device: torch.device) -> DCANet:
    """``network`` (already on ``device``) prepared, in place, for inference only: eval mode, BatchNorm
    folded into the convolutions, and the memory layout its convolutions run fastest in there."""
    fold_batch_norms(network.eval())
    return _in_best_layout(network, device)


def _in_best_layout(network: DCANet, device: torch.device) -> DCANet:
    """``network`` in the memory layout its convolutions run fastest in on ``device``."""
    if not uses_channels_last(device):
        return network
    # torch's stubs omit Module.to's memory_format
    return network.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]


def _is_channels_last(network: DCANet) -> bool:
    """Whether the network's convolution weights are in ``channels_last_3d`` layout."""
    weight = next(p for p in network.parameters() if p.dim() == 5 and p.shape[1] > 1)
    return weight.is_contiguous(memory_format=torch.channels_last_3d) and not weight.is_contiguous()


def _check_volume(image: sitk.Image) -> None:
    if image.GetDimension() != 3:
        raise InputError(f"expected a 3-D image, got a {image.GetDimension()}-D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"expected a single-component image, got {image.GetNumberOfComponentsPerPixel()} "
                         "components per voxel")
