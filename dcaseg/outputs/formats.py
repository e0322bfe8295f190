"""Which files ``dcaseg segment`` writes: the output formats, their file names and how each is written.

``labelmap`` is the label map (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``), ``seg.nrrd`` Slicer's
segmentation file and ``dicom-seg`` a DICOM SEG (``.dcm``). Without ``--format`` the output's
extension names the one format; with it, ``-o`` names one of the files and the others are written
beside it under the same stem (``case.nii.gz`` and ``case.seg.nrrd``).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import SimpleITK as sitk

from ..data.imageio import image_extension, strip_image_extension
from ..errors import InputError
from ..package import ModelMeta
from .dicom_seg import DICOM_SEG_EXTENSION, write_dicom_seg
from .seg_nrrd import SEG_NRRD_EXTENSION, write_seg_nrrd

FORMATS = ("labelmap", "seg.nrrd", "dicom-seg")
# The key of each format's file in the command's ``outputs`` (the label map keeps its old key).
OUTPUT_KEYS = {"labelmap": "labels", "seg.nrrd": "segmentation", "dicom-seg": "dicom_seg"}
SEGMENTATION_KEYS = (OUTPUT_KEYS["seg.nrrd"], OUTPUT_KEYS["dicom-seg"])  # the files ``write_format`` writes
FOLDER_EXTENSIONS = {"labelmap": ".nii.gz", "seg.nrrd": SEG_NRRD_EXTENSION, "dicom-seg": DICOM_SEG_EXTENSION}
EXTENSIONS_HELP = ".nii.gz, .nii, .nrrd, .mha (label map), .seg.nrrd (Slicer segmentation) or .dcm (DICOM SEG)"


def output_format(path: Path) -> str | None:
    """The format a file name asks for, or None when its extension names none."""
    name = path.name.lower()
    for fmt in ("seg.nrrd", "dicom-seg"):
        extension = FOLDER_EXTENSIONS[fmt]
        if name.endswith(extension) and len(name) > len(extension):
            return fmt
    return "labelmap" if image_extension(path) else None


def output_stem(path: Path) -> Path:
    """``path`` without its output extension: ``out/case.seg.nrrd`` -> ``out/case``."""
    fmt = output_format(path)
    if fmt in ("seg.nrrd", "dicom-seg"):
        return path.with_name(path.name[: -len(FOLDER_EXTENSIONS[fmt])])
    return path.with_name(strip_image_extension(path))


def parse_formats(text: str | None, output: Path, folder_input: bool) -> tuple[str, ...]:
    """The formats to write: ``--format``'s comma-separated list, else the one ``output`` names."""
    if text is None:
        if folder_input:
            return ("labelmap",)
        fmt = output_format(output)
        if fmt is None:
            raise InputError(f"{output}: the output needs an extension: {EXTENSIONS_HELP}")
        return (fmt,)
    formats = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not formats or any(fmt not in FORMATS for fmt in formats):
        raise InputError(f"--format {text!r}: use one or more of {', '.join(FORMATS)}, separated by commas")
    if not folder_input and output_format(output) not in formats:
        raise InputError(f"{output}: with --format {text}, -o names one of its files "
                         f"(e.g. {output_stem(output).name}{FOLDER_EXTENSIONS[formats[0]]})")
    return formats


def format_paths(output: Path, formats: Sequence[str]) -> dict[str, Path]:
    """Each format's file, keyed as in ``outputs``: ``output`` for its own format, the others beside it."""
    own = output_format(output)
    stem = output_stem(output)
    return {OUTPUT_KEYS[fmt]: output if fmt == own else Path(f"{stem}{FOLDER_EXTENSIONS[fmt]}") for fmt in formats}


def write_format(key: str, labels: sitk.Image, path: Path, meta: ModelMeta, dicom_sources: Sequence | None) -> None:
    """Write the segmentation file ``key`` names (``segmentation`` or ``dicom_seg``) from the label map."""
    if key == OUTPUT_KEYS["seg.nrrd"]:
        write_seg_nrrd(labels, meta.classes, path)
    elif key == OUTPUT_KEYS["dicom-seg"]:
        write_dicom_seg(labels, dicom_sources or [], meta, path)
    else:
        raise ValueError(f"no writer for output {key!r}")
