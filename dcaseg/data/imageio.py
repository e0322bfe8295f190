"""Reading and writing 3-D medical images (NIfTI, NRRD, MetaImage, DICOM series) via SimpleITK.

Every failure is an ``InputError`` with one line that names the file. Truncated NIfTI files,
which SimpleITK silently fills with zeros, are detected by checking the data length.
"""
from __future__ import annotations

import gzip
import os
import secrets
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel
import SimpleITK as sitk

from ..errors import InputError

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


@dataclass(frozen=True)
class ImageHeader:
    """Geometry and voxel type of an image, read without its voxels. Tuples are in (x, y, z) order."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    pixel_type: str
    components: int


def image_extension(path: str | Path) -> str | None:
    """The recognised image extension of ``path`` (``.nii.gz`` counts as one), or None."""
    name = Path(path).name.lower()
    return next((ext for ext in IMAGE_EXTENSIONS if name.endswith(ext) and len(name) > len(ext)), None)


def strip_image_extension(path: str | Path) -> str:
    """File name of ``path`` without its image extension (``case_1.nii.gz`` -> ``case_1``)."""
    name = Path(path).name
    ext = image_extension(name)
    return name[: -len(ext)] if ext else name


def case_id_from_file(path: str | Path) -> str:
    """Case id of an image file: its name without image extension or nnU-Net channel suffix ``_0000``."""
    name = strip_image_extension(path)
    return name[:-5] if name.endswith("_0000") else name


def read_image(path: str | Path) -> sitk.Image:
    """Read a single-component 3-D image from a file or a DICOM series folder."""
    path = Path(path)
    if path.is_dir():
        image = _read_dicom_series(path)
    else:
        _check_file(path)
        _check_nifti_complete(path)
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as error:
            raise InputError(f"{path}: {_reason(error)}") from None
    _check_3d(path, image.GetDimension(), image.GetNumberOfComponentsPerPixel())
    return image


def read_header(path: str | Path) -> ImageHeader:
    """Size, spacing, origin, direction and pixel type of a 3-D image, without reading its voxels.

    A DICOM series folder is read in full (its geometry needs every slice).
    """
    path = Path(path)
    if path.is_dir():
        image = read_image(path)
        return ImageHeader(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection(),
                           image.GetPixelIDTypeAsString(), image.GetNumberOfComponentsPerPixel())
    _check_file(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise InputError(f"{path}: {_reason(error)}") from None
    _check_3d(path, reader.GetDimension(), reader.GetNumberOfComponents())
    pixel_type = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    return ImageHeader(reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection(),
                       pixel_type, reader.GetNumberOfComponents())


def write_image_atomic(image: sitk.Image, path: str | Path) -> None:
    """Write ``image`` to ``path`` through a temporary file in the same folder, then rename it."""
    path = Path(path)
    ext = image_extension(path)
    if ext is None:
        raise InputError(f"cannot write {path}: unsupported extension (use one of {', '.join(IMAGE_EXTENSIONS)})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None
    temp_name = str(temporary_sibling(path, ext))
    try:
        sitk.WriteImage(image, temp_name, useCompression=True)
        os.replace(temp_name, path)
    except (RuntimeError, OSError) as error:
        Path(temp_name).unlink(missing_ok=True)
        reason = _sitk_message(error) if isinstance(error, RuntimeError) else (error.strerror or str(error))
        raise InputError(f"cannot write {path}: {reason}") from None


def temporary_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh hidden name in ``path``'s folder for writing before an atomic rename; it ends in ``suffix``."""
    return path.with_name(f".{strip_image_extension(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    if image_extension(path) is None:
        raise InputError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)} "
                         "or a DICOM folder)")


def _check_3d(path: Path, dimension: int, components: int) -> None:
    if dimension != 3:
        raise InputError(f"{path}: expected a 3-D image, got a {dimension}-D image")
    if components != 1:
        raise InputError(f"{path}: expected a single-component image, got {components} components per voxel")


def _check_nifti_complete(path: Path) -> None:
    """Raise if a NIfTI file holds fewer data bytes than its header promises (SimpleITK pads with zeros)."""
    ext = image_extension(path)
    if ext not in (".nii", ".nii.gz"):
        return
    try:
        header = nibabel.load(str(path)).header
        expected = int(header.get_data_offset()) + int(header.get_data_dtype().itemsize) * _count(
            header.get_data_shape())
    except Exception:  # not parseable as NIfTI: SimpleITK gives the reason
        return
    actual = path.stat().st_size if ext == ".nii" else _gunzipped_length(path)
    if actual is None:
        raise InputError(f"{path}: truncated or corrupt compressed data")
    if actual < expected:
        raise InputError(f"{path}: truncated file ({actual} of {expected} bytes)")


def _gunzipped_length(path: Path) -> int | None:
    """Length of the decompressed stream (read in chunks), or None if the stream is broken."""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 22):
                total += len(chunk)
    except (EOFError, OSError, zlib.error):
        return None
    return total


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for extent in shape:
        count *= int(extent)
    return count


def _read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError(f"{folder}: no DICOM series in this folder")
    if len(series) > 1:
        raise InputError(f"{folder}: holds {len(series)} DICOM series; put each series in its own folder")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise InputError(f"{folder}: {_reason(error)}") from None


def _reason(error: RuntimeError) -> str:
    """One short line from a multi-line SimpleITK exception."""
    text = str(error)
    if "Unable to determine ImageIO reader" in text:
        return "not a readable image (unknown or corrupt format)"
    if "does not exist" in text:
        return "no such file"
    if "No such file or directory" in text:  # MetaImage's words for a short data block
        return "cannot read image data (truncated or corrupt file?)"
    return f"cannot read image ({_sitk_message(error)})"


def _sitk_message(error: RuntimeError) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else "unknown error"
    return last.split("sitk::ERROR:", 1)[-1].strip()[:160]
