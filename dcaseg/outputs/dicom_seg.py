"""A label map as one DICOM Segmentation (SEG) instance that references its source CT series.

Built with highdicom (pydicom datasets in, a standard-conformant SEG out): one segment per organ
found, with its SNOMED CT category, type and laterality modifier, its display colour and the
algorithm that made it (dcaseg, its version and the model), in the source's frame of reference.
Only a single-frame DICOM series read from a folder can be a source: a SEG points at its source
images, so NIfTI, NRRD or MetaImage inputs cannot give one.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..atomic import atomic_write
from ..errors import DcaError, InputError
from ..package import ClassInfo, ModelMeta
from ..terminology import ANATOMICAL_STRUCTURE

DICOM_SEG_EXTENSION = ".dcm"
INSTALL_HINT = "pip install 'dcaseg[dicom]'"
MAX_SLICE_OFFSET = 0.01  # voxels: how far a source slice may lie from the label map's grid


def require_highdicom() -> None:
    """Fail with one line when highdicom (the optional ``dicom`` extra) is not installed."""
    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise InputError(f"DICOM SEG output needs highdicom (Python 3.10 or newer): {INSTALL_HINT}") from None


def check_sources(source: Path, cases: Sequence[Path] | None) -> None:
    """Fail before any work unless every input is a DICOM series folder (``cases``: a folder's volumes)."""
    require_highdicom()
    if cases is None:
        read_source_series(source)
        return
    files = [case for case in cases if not case.is_dir()]
    if files:
        raise InputError(f"{files[0]}: --format dicom-seg needs DICOM series folders as cases, not files "
                         f"(a DICOM SEG references its source images; {len(files)} case(s) of {source} are files)")


def read_source_series(folder: Path) -> list:
    """Headers (no pixels) of the one single-frame DICOM image series in ``folder``, in file-name order."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    if not folder.is_dir():
        raise InputError(f"{folder}: --format dicom-seg needs a DICOM series folder as input, not a file "
                         "(a DICOM SEG references its source images)")
    series: dict[str, list] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            dataset = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        if "SeriesInstanceUID" in dataset and "Rows" in dataset and "ImagePositionPatient" in dataset:
            series.setdefault(str(dataset.SeriesInstanceUID), []).append(dataset)
    if not series:
        raise InputError(f"{folder}: no DICOM image series in this folder, so no DICOM SEG can reference it")
    if len(series) > 1:
        raise InputError(f"{folder}: holds {len(series)} DICOM series; a DICOM SEG references one, "
                         "so put each series in its own folder")
    datasets = next(iter(series.values()))
    if any(int(getattr(d, "NumberOfFrames", 1) or 1) > 1 for d in datasets):
        raise InputError(f"{folder}: multi-frame DICOM images are not supported as a DICOM SEG source")
    return datasets


def write_dicom_seg(labels: sitk.Image, sources: Sequence, meta: ModelMeta, path: str | Path) -> list[ClassInfo]:
    """Write ``labels`` (on the series' grid) to ``path`` as a SEG; return the classes that became segments."""
    import highdicom

    path = Path(path)
    frames = source_frames(labels, sources)
    found = [info for info in meta.classes if np.any(frames == info.value)]
    if not found:
        raise DcaError(f"cannot write {path}: no organ was found, and a DICOM SEG needs at least one segment")
    numbers = np.zeros(int(frames.max()) + 1, np.uint16)
    for number, info in enumerate(found, start=1):
        numbers[info.value] = number
    first = sources[0]
    try:
        seg = highdicom.seg.Segmentation(
            source_images=list(sources), pixel_array=numbers[frames],
            segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment_description(number, info, meta)
                                  for number, info in enumerate(found, start=1)],
            series_instance_uid=highdicom.UID(), series_number=_series_number(first),
            sop_instance_uid=highdicom.UID(), instance_number=1,
            manufacturer="dcaseg", manufacturer_model_name="DCA Segmentation", software_versions=__version__,
            device_serial_number="0", content_label="ORGANS",
            content_description=f"DCA organ segmentation ({meta.name})"[:64],
            series_description=f"DCA organs {getattr(first, 'SeriesDescription', '')}".strip()[:64])
    except (ValueError, TypeError, AttributeError) as error:
        raise DcaError(f"cannot write {path}: the source series cannot carry a DICOM SEG ({error})") from None
    with atomic_write(path, binary=True) as handle:
        seg.save_as(handle)
    return found


def source_frames(labels: sitk.Image, sources: Sequence) -> np.ndarray:
    """The label map's slice under each source image, in the sources' order: ``(images, rows, columns)``."""
    array = sitk.GetArrayViewFromImage(labels)
    depth, rows, columns = array.shape
    frames = np.empty((len(sources), rows, columns), array.dtype)
    for index, dataset in enumerate(sources):
        position = [float(v) for v in dataset.ImagePositionPatient]
        i, j, k = labels.TransformPhysicalPointToContinuousIndex(position)
        slice_index = int(round(k))
        off_grid = max(abs(i), abs(j), abs(k - slice_index)) > MAX_SLICE_OFFSET
        if off_grid or not 0 <= slice_index < depth or (int(dataset.Rows), int(dataset.Columns)) != (rows, columns):
            raise DcaError(f"source image {dataset.SOPInstanceUID} does not lie on the segmented volume's grid")
        frames[index] = array[slice_index]
    return frames


def segment_description(number: int, info: ClassInfo, meta: ModelMeta):
    """highdicom's description of one segment: label, SNOMED CT codes, colour, algorithm."""
    import highdicom
    from pydicom import Dataset
    from pydicom.sr.codedict import codes

    snomed = info.snomed or {}
    category = _coded(snomed.get("category") or ANATOMICAL_STRUCTURE)
    kind = _coded(snomed.get("type")) or highdicom.sr.CodedConcept("85756007", "SCT", "Tissue")
    algorithm = highdicom.AlgorithmIdentificationSequence(
        name="DCA", family=codes.cid7162.ArtificialIntelligence, version=__version__, source="dcaseg",
        parameters={"model": meta.name, "output": meta.output})
    description = highdicom.seg.SegmentDescription(
        segment_number=number, segment_label=info.name[:64], segmented_property_category=category,
        segmented_property_type=kind, algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        display_color=highdicom.color.CIELabColor.from_rgb(*info.color))
    modifier = _coded(snomed.get("modifier"))
    if modifier is not None:
        item = Dataset()
        item.update(modifier)
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [item]
    return description


def _coded(code: dict | None):
    if not code:
        return None
    import highdicom
    return highdicom.sr.CodedConcept(str(code["code"]), str(code["scheme"]), str(code["meaning"]))


def _series_number(source) -> int:
    """The SEG's series number: the source's plus 1000 (readers list it next to its source)."""
    return int(getattr(source, "SeriesNumber", 0) or 0) + 1000
