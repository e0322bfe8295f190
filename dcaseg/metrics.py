"""Per-organ Dice, ASD and HD95 in millimetres.

Surfaces are the border voxels of a mask (the mask minus its 6-connected erosion; voxels on the
volume edge count as border). Distances are Euclidean between voxel centres in millimetres, from
``scipy.ndimage.distance_transform_edt`` with the image spacing. Each organ is cropped to the
bounding box of prediction | reference before any distance transform; no margin is needed: a mask
voxel on a face of that box has its outward neighbour outside both masks, so it is border either
way, and both borders lie inside the box, so the nearest-border distances are unchanged.

* ``asd_mm``: average symmetric surface distance: the distances from every border voxel of the
  prediction to the reference border and from every border voxel of the reference to the
  prediction border, pooled, then averaged (not the mean of the two directed means).
* ``hd95_mm``: the 95th percentile of those pooled distances (linear interpolation).
* An organ empty on one side scores Dice 0 with undefined distances (None); an organ empty on both
  sides has no score at all (Dice None), and ``mean_dice`` skips it by default.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .errors import InputError

OK = "ok"
MISSING_IN_PREDICTION = "missing_in_prediction"
MISSING_IN_REFERENCE = "missing_in_reference"
ABSENT_IN_BOTH = "absent_in_both"

_SPACING_TOLERANCE_MM = 1e-3
_ORIGIN_TOLERANCE_MM = 1e-3
_DIRECTION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class OrganScore:
    """One organ in one case. Distances in mm, volumes in ml; None where undefined."""

    dice: float | None
    asd_mm: float | None
    hd95_mm: float | None
    status: str
    volume_ml_pred: float
    volume_ml_ref: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_pair(pred: sitk.Image, ref: sitk.Image, labels: Mapping[int, str], *,
                  pred_name: str = "prediction", ref_name: str = "reference") -> dict[str, OrganScore]:
    """Score every label value in ``labels`` ({value: organ name}); the result is keyed by name.

    Prediction and reference must share size, spacing, origin and direction; otherwise an
    ``InputError`` names both (``pred_name``, ``ref_name``).
    """
    check_same_geometry(pred, ref, pred_name, ref_name)
    spacing_zyx = tuple(reversed(ref.GetSpacing()))
    return evaluate_arrays(sitk.GetArrayViewFromImage(pred), sitk.GetArrayViewFromImage(ref),
                           spacing_zyx, labels)


def evaluate_arrays(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...],
                    labels: Mapping[int, str]) -> dict[str, OrganScore]:
    """Like ``evaluate_pair`` for label arrays of equal shape; ``spacing`` is in array axis order."""
    if pred.shape != ref.shape:
        raise InputError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if len(spacing) != ref.ndim:
        raise InputError(f"spacing {spacing} does not match a {ref.ndim}-D label array")
    pred_boxes = _label_boxes(pred, "prediction")
    ref_boxes = _label_boxes(ref, "reference")
    scores = {}
    for value, name in labels.items():
        box = _union_box(pred_boxes.get(value), ref_boxes.get(value))
        if box is None:
            scores[name] = OrganScore(None, None, None, ABSENT_IN_BOTH, 0.0, 0.0)
            continue
        scores[name] = score_masks(pred[box] == value, ref[box] == value, spacing)
    return scores


def score_masks(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> OrganScore:
    """Dice, ASD and HD95 (mm) of two boolean masks that share a voxel grid.

    The masks may be a crop of a larger volume that contains every voxel of both masks.
    """
    voxel_ml = float(np.prod(spacing)) / 1000.0
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    volumes = (n_pred * voxel_ml, n_ref * voxel_ml)
    if n_pred == 0 and n_ref == 0:
        return OrganScore(None, None, None, ABSENT_IN_BOTH, *volumes)
    if n_pred == 0:
        return OrganScore(0.0, None, None, MISSING_IN_PREDICTION, *volumes)
    if n_ref == 0:
        return OrganScore(0.0, None, None, MISSING_IN_REFERENCE, *volumes)
    dice = 2.0 * np.count_nonzero(pred & ref) / (n_pred + n_ref)
    distances = _surface_distances(pred, ref, spacing)
    return OrganScore(float(dice), float(distances.mean()), float(np.percentile(distances, 95)),
                      OK, *volumes)


def mean_dice(scores: Mapping[str, OrganScore], absent: str = "skip") -> float | None:
    """Mean Dice over organs. ``absent`` decides organs absent on both sides: ``skip`` leaves
    them out, ``one`` counts them as a perfect 1. None when nothing is left to average."""
    if absent not in ("skip", "one"):
        raise ValueError(f"absent must be 'skip' or 'one', not {absent!r}")
    values = [1.0 if score.status == ABSENT_IN_BOTH else _defined_dice(score) for score in scores.values()
              if score.status != ABSENT_IN_BOTH or absent == "one"]
    return float(np.mean(values)) if values else None


def _defined_dice(score: OrganScore) -> float:
    """The Dice of an organ present on at least one side (always defined there)."""
    if score.dice is None:
        raise ValueError(f"an organ with status {score.status!r} has no Dice")
    return score.dice


def finite_mean(values: list[float | None]) -> float | None:
    """Mean of the defined (non-None, finite) values; None when there are none."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def dice_per_organ(per_case: Mapping[str, list[float]]) -> dict[str, float]:
    """Each organ's Dice averaged over the cases that scored it (4 decimals)."""
    return {organ: round(float(np.mean(values)), 4) for organ, values in per_case.items() if values}


def check_same_geometry(pred: sitk.Image, ref: sitk.Image, pred_name: str, ref_name: str) -> None:
    """Raise ``InputError`` unless both images share size, spacing, origin and direction."""
    problem = None
    if pred.GetSize() != ref.GetSize():
        problem = f"size {pred.GetSize()} vs {ref.GetSize()}"
    elif not np.allclose(pred.GetSpacing(), ref.GetSpacing(), rtol=0, atol=_SPACING_TOLERANCE_MM):
        problem = f"spacing {_fmt(pred.GetSpacing())} vs {_fmt(ref.GetSpacing())}"
    elif not np.allclose(pred.GetOrigin(), ref.GetOrigin(), rtol=0, atol=_ORIGIN_TOLERANCE_MM):
        problem = f"origin {_fmt(pred.GetOrigin())} vs {_fmt(ref.GetOrigin())}"
    elif not np.allclose(pred.GetDirection(), ref.GetDirection(), rtol=0, atol=_DIRECTION_TOLERANCE):
        problem = "direction differs"
    if problem:
        raise InputError(f"prediction {pred_name} and reference {ref_name} do not share a voxel grid: "
                         f"{problem}")


def _surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distances (mm) from each border voxel of either mask to the other mask's border."""
    pred_border, ref_border = _border(pred), _border(ref)
    to_ref = ndimage.distance_transform_edt(~ref_border, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_border, sampling=spacing)
    return np.concatenate([to_ref[pred_border], to_pred[ref_border]])


def _border(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _label_boxes(array: np.ndarray, which: str) -> dict[int, tuple[slice, ...]]:
    """Bounding box of every positive label value present in ``array``."""
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise InputError(f"{which} holds non-integer values; expected a label map")
        array = array.astype(np.int32)
    if array.size and array.min() < 0:
        raise InputError(f"{which} holds negative values; expected a label map")
    boxes = ndimage.find_objects(array)
    return {value: box for value, box in enumerate(boxes, start=1) if box is not None}


def _union_box(a: tuple[slice, ...] | None,
               b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    boxes = [box for box in (a, b) if box is not None]
    if not boxes:
        return None
    return tuple(slice(min(box[axis].start for box in boxes), max(box[axis].stop for box in boxes))
                 for axis in range(len(boxes[0])))


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
