"""Preprocessing cache: each case resampled, normalised and stored once as memory-mappable ``.npy``.

Arrays live under ``<cache root>/<settings fingerprint>/<case>/`` (the run folder or a cache dir,
never the dataset folder): ``image.npy`` (float32, z-y-x), ``label.npy`` (uint8 channel indices,
z-y-x; only for labeled cases) and ``source.json`` (the source files' sizes and modification times,
written last so a half-written entry is never trusted). Changed source files are redone.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..atomic import atomic_write, write_text_atomic
from ..errors import InputError
from .imageio import read_header, read_image
from .orientation import STANDARD_ORIENTATION, standard_spacing, to_standard_orientation
from .preprocess import body_bounding_box, normalise_intensity, resample

SOURCE_JSON = "source.json"


@dataclass(frozen=True)
class PreprocessSettings:
    """What the cached arrays depend on. ``label_values[i]`` is the label value of channel i (0 first)."""

    target_spacing: tuple[float, float, float]
    intensity: Mapping[str, Any]
    label_values: tuple[int, ...]
    body_crop: bool = True
    modality: str = "CT"
    orientation: str = STANDARD_ORIENTATION  # arrays are stored in these axes, whatever the file's

    def fingerprint(self) -> str:
        """Short hash of the settings and the engine version: the cache folder's name."""
        data = {**asdict(self), "intensity": dict(self.intensity), "engine": __version__}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class CachedCase:
    """One preprocessed case: memory-mapped arrays in array order (z, y, x)."""

    case_id: str
    image: np.ndarray
    label: np.ndarray | None


def median_spacing(image_paths: Iterable[Path],
                   min_spacing: Sequence[float] | None = None) -> tuple[float, float, float]:
    """Median (x, y, z) spacing of the images in LPS axis order (headers only), each axis at least
    ``min_spacing``."""
    headers = [read_header(p) for p in image_paths]
    spacings = np.array([standard_spacing(h.spacing, h.direction) for h in headers], dtype=float)
    if spacings.size == 0:
        raise InputError("no images to take a median spacing from")
    median = np.median(spacings, axis=0)
    if min_spacing is not None:
        median = np.maximum(median, np.asarray(min_spacing, dtype=float))
    return tuple(round(float(s), 4) for s in median)  # type: ignore[return-value]


def file_stamp(path: Path) -> dict[str, Any]:
    """Name, size and modification time of a file: what tells a cache entry is still valid."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def dataset_fingerprint(paths: Iterable[Path]) -> str:
    """Hash of names, sizes and modification times of the files a run trained on."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class PreprocessCache:
    """Prepares cases once per settings fingerprint and hands back memory-mapped arrays."""

    def __init__(self, root: str | Path, settings: PreprocessSettings) -> None:
        self.settings = settings
        self.folder = Path(root) / settings.fingerprint()
        self._lookup = _value_lookup(settings.label_values)

    def entry(self, case_id: str) -> Path:
        return self.folder / case_id

    def is_current(self, case_id: str, image: Path, label: Path | None) -> bool:
        source = self.entry(case_id) / SOURCE_JSON
        if not source.is_file():
            return False
        try:
            stored = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        return stored == _sources(image, label)

    def prepare(self, case_id: str, image: Path, label: Path | None) -> None:
        """Preprocess one case into the cache unless an up-to-date entry exists."""
        if self.is_current(case_id, image, label):
            return
        image_array, label_array = self._preprocess(Path(image), Path(label) if label else None)
        folder = self.entry(case_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SOURCE_JSON).unlink(missing_ok=True)
        _save_npy_atomic(folder / "image.npy", image_array)
        if label_array is not None:
            _save_npy_atomic(folder / "label.npy", label_array)
        write_text_atomic(folder / SOURCE_JSON, json.dumps(_sources(image, label)))

    def load(self, case_id: str, labeled: bool) -> CachedCase:
        """Memory-map a prepared case (``prepare`` it first)."""
        folder = self.entry(case_id)
        image = np.load(folder / "image.npy", mmap_mode="r")
        label = np.load(folder / "label.npy", mmap_mode="r") if labeled else None
        return CachedCase(case_id, image, label)

    def _preprocess(self, image_path: Path, label_path: Path | None) -> tuple[np.ndarray, np.ndarray | None]:
        settings = self.settings
        original = read_image(image_path)
        image = to_standard_orientation(original)
        resampled = resample(image, settings.target_spacing)
        raw = sitk.GetArrayFromImage(resampled).astype(np.float32, copy=False)
        label_array = None
        if label_path is not None:
            label = read_image(label_path)
            if label.GetSize() != original.GetSize():
                raise InputError(f"{label_path}: label size {label.GetSize()} differs from its image "
                                 f"{original.GetSize()} ({image_path.name})")
            if not _close_geometry(label, original):
                raise InputError(f"{label_path}: label geometry (spacing, origin or direction) differs "
                                 f"from its image {image_path.name}")
            label.CopyInformation(original)
            label = to_standard_orientation(label)
            label_array = sitk.GetArrayFromImage(resample(label, settings.target_spacing, is_label=True,
                                                          size=resampled.GetSize()))
            label_array = self._to_channels(label_array, label_path)
        box = body_bounding_box(raw) if settings.body_crop and settings.modality.upper() == "CT" else None
        if box is not None:
            raw = raw[box]
            label_array = label_array[box] if label_array is not None else None
        return normalise_intensity(raw, settings.intensity), label_array

    def _to_channels(self, values: np.ndarray, path: Path) -> np.ndarray:
        values = np.rint(values).astype(np.int64) if not np.issubdtype(values.dtype, np.integer) else values
        found = np.unique(values)
        unknown = [int(v) for v in found if v < 0 or v >= len(self._lookup) or self._lookup[v] < 0]
        if unknown:
            raise InputError(f"{path}: label values {unknown} are not in the class list "
                             f"{list(self.settings.label_values[1:])}")
        return self._lookup[values].astype(np.uint8)


def _value_lookup(label_values: Sequence[int]) -> np.ndarray:
    lookup = np.full(max(label_values) + 1, -1, dtype=np.int64)
    for channel, value in enumerate(label_values):
        lookup[value] = channel
    return lookup


def _close_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    return (np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-3)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4))


def _sources(image: Path, label: Path | None) -> dict[str, Any]:
    return {"image": file_stamp(Path(image)), "label": file_stamp(Path(label)) if label else None}


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_write(path, binary=True) as handle:
        np.save(handle, np.ascontiguousarray(array))


