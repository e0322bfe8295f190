"""Reading and writing 3-D medical images (NIfTI, NRRD, MetaImage, DICOM series) via SimpleITK.

Every failure is an ``InputError`` with one line that names the file. Truncated NIfTI files,
which SimpleITK silently fills with zeros, are detected by checking the data length.
"""
from __future__ import annotations

import gzip
import math
import os
import secrets
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import cannot_write_reason, fsync_folder
from ..errors import InputError
from ..stale_temps import sweep_once, temp_prefix
from .imagecheck import NIFTI_HEADER_BYTES, gunzipped_length, incomplete_reason, nifti_header
from .native_stderr import native_stderr_silenced
from .series_check import gap_problem, parse_position, unread_file_problem

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
_IMAGE_POSITION = "0020|0032"


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
        _check_nifti_header(path)
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as error:
            raise InputError(f"{path}: {_reason(error)}") from None
    _check_3d(path, image.GetDimension(), image.GetNumberOfComponentsPerPixel())
    _check_spacing(path, image.GetSpacing())
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
    _check_nifti_header(path, data=False)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise InputError(f"{path}: {_reason(error)}") from None
    _check_3d(path, reader.GetDimension(), reader.GetNumberOfComponents())
    _check_spacing(path, reader.GetSpacing())
    pixel_type = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    return ImageHeader(reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection(),
                       pixel_type, reader.GetNumberOfComponents())


class GeometryWarning(UserWarning):
    """An image was written, but its file format could not hold its geometry exactly."""


def write_image_atomic(image: sitk.Image, path: str | Path) -> None:
    """Write ``image`` to ``path`` through a verified temporary sibling, then rename it over ``path``.

    Before the rename the temporary file must hold all of the image's data (decompressed) and read
    back with the image's size; it is then flushed to disk. A short or failed write (a full disk)
    is ``InputError("cannot write PATH: disk full")`` or the system's reason, the target untouched;
    on any failure, an interrupt included, the temporary file is removed. A geometry the format
    cannot hold (a non-orthogonal direction in NIfTI) is written as the format allows, with a
    ``GeometryWarning``. Temporary files a killed writer left in the folder are removed first.
    """
    path = Path(path)
    ext = image_extension(path)
    if ext is None:
        raise InputError(f"cannot write {path}: unsupported extension (use one of {', '.join(IMAGE_EXTENSIONS)})")
    stem = temp_prefix(strip_image_extension(path)) + secrets.token_hex(4)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_once(path.parent)
        # MetaImage .mhd names its data file after itself: write both under their final names in a staging folder.
        staging = Path(tempfile.mkdtemp(prefix=stem, dir=path.parent)) if ext == ".mhd" else None
    except OSError as error:
        raise InputError(f"cannot write {path}: {cannot_write_reason(error)}") from None
    temp = staging / path.name if staging else path.with_name(stem + ext)
    try:
        read_back = _write_verified(image, temp, ext, path)
        _warn_if_geometry_changed(image, read_back, path, ext)
        data_files = [part for part in staging.iterdir() if part != temp] if staging else []
        for part in [*data_files, temp]:  # the header last: it names its data file
            os.replace(part, path.with_name(path.name if part == temp else part.name))
        fsync_folder(path.parent)
    except BaseException as error:
        _remove(staging or temp)
        if isinstance(error, OSError):
            raise InputError(f"cannot write {path}: {cannot_write_reason(error)}") from None
        raise
    if staging:
        _remove(staging)


def _write_verified(image: sitk.Image, temp: Path, ext: str, path: Path) -> sitk.ImageFileReader:
    """Write ``temp``, check it is complete, fsync it; return its header read back."""
    with native_stderr_silenced():
        try:
            sitk.WriteImage(image, str(temp), useCompression=True)
            problem = None
        except RuntimeError as error:
            problem = _sitk_message(error)
        data_bytes = image.GetNumberOfPixels() * image.GetNumberOfComponentsPerPixel() * image.GetSizeOfPixelComponent()
        problem = problem or incomplete_reason(temp, ext, data_bytes)
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(temp))
        if problem is None:
            try:
                reader.ReadImageInformation()
            except RuntimeError:
                problem = "the written header cannot be read back"
    if problem is None and (reader.GetSize() != image.GetSize()
                            or reader.GetNumberOfComponents() != image.GetNumberOfComponentsPerPixel()):
        problem = "the written header does not match the image"
    if problem is not None:
        raise InputError(f"cannot write {path}: {_system_reason(temp) or problem}")
    for part in temp.parent.iterdir() if ext == ".mhd" else [temp]:
        _fsync(part)
    return reader


def _system_reason(temp: Path) -> str | None:
    """Why the system refuses more data in ``temp``'s folder now (full disk, file size limit), if it does."""
    try:
        with open(temp, "ab") as stream:
            stream.write(bytes(1 << 20))
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as error:
        return cannot_write_reason(error)
    return None


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDWR)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _warn_if_geometry_changed(image: sitk.Image, read_back: sitk.ImageFileReader, path: Path, ext: str) -> None:
    """Warn when the file places the voxels elsewhere than the image did (a sheared direction in NIfTI)."""
    def axes(spacing: tuple[float, ...], direction: tuple[float, ...]) -> np.ndarray:
        return np.asarray(direction, float).reshape(3, 3) * np.asarray(spacing, float)

    kept = (np.allclose(axes(image.GetSpacing(), image.GetDirection()),
                        axes(read_back.GetSpacing(), read_back.GetDirection()), rtol=1e-4, atol=1e-4)
            and np.allclose(image.GetOrigin(), read_back.GetOrigin(), rtol=1e-5, atol=1e-3))
    if kept:
        return
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    sheared = not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4)
    what = "a non-orthogonal (sheared) direction matrix" if sheared else "the image's geometry"
    warnings.warn(f"{path}: {ext} cannot hold {what}; the file's voxel positions differ from the image's "
                  "(.nrrd and .mha keep them)", GeometryWarning, stacklevel=3)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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


def _check_spacing(path: Path, spacing: tuple[float, ...]) -> None:
    if not all(math.isfinite(value) and value > 0 for value in spacing):
        raise InputError(f"{path}: voxel spacing {tuple(spacing)} in the header: every spacing must be a positive "
                         "number of millimetres")


def _check_nifti_header(path: Path, data: bool = True) -> None:
    """Refuse a NIfTI file whose pixdim holds a 0 or NaN spacing (readers quietly make it 1 mm) or,
    with ``data``, that holds fewer data bytes than its header promises (SimpleITK pads with zeros)."""
    ext = image_extension(path)
    if ext not in (".nii", ".nii.gz"):
        return
    try:
        with (gzip.open(path, "rb") if ext == ".nii.gz" else open(path, "rb")) as stream:
            header = nifti_header(stream.read(NIFTI_HEADER_BYTES))
        if header is None:
            return
        shape = header.get_data_shape()
        expected = int(header.get_data_offset()) + int(header.get_data_dtype().itemsize) * math.prod(shape)
    except Exception:  # not parseable as NIfTI: SimpleITK gives the reason
        return
    spacing = tuple(float(v) for v in header["pixdim"][1:1 + min(len(shape), 3)])
    if not all(math.isfinite(value) and value != 0 for value in spacing):
        raise InputError(f"{path}: voxel spacing {spacing} in the header (pixdim): a spacing of 0 or NaN cannot "
                         "place the image; fix the file's pixdim")
    if not data:
        return
    actual: int | None
    if ext == ".nii":
        actual = path.stat().st_size
    else:
        with open(path, "rb") as raw:
            actual = gunzipped_length(raw)
    if actual is None:
        raise InputError(f"{path}: truncated or corrupt compressed data")
    if actual < expected:
        raise InputError(f"{path}: truncated file ({actual} of {expected} bytes)")


def _read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError(f"{folder}: no DICOM series in this folder")
    if len(series) > 1:
        raise InputError(f"{folder}: holds {len(series)} DICOM series; put each series in its own folder")
    files = reader.GetGDCMSeriesFileNames(str(folder), series[0])
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        with native_stderr_silenced():  # ITK's own warning about missing slices: said below in one line
            image = reader.Execute()
    except RuntimeError as error:
        raise InputError(f"{folder}: {_reason(error)}") from None
    positions = [parse_position(reader.GetMetaData(k, _IMAGE_POSITION)) if reader.HasMetaDataKey(k, _IMAGE_POSITION)
                 else None for k in range(len(files))]
    normal = np.asarray(image.GetDirection(), float).reshape(3, 3)[:, 2].tolist()
    known = [position for position in positions if position is not None]
    problem = unread_file_problem(folder, files) or (
        gap_problem(known, normal) if len(files) > 1 and len(known) == len(positions) else None)
    if problem:
        raise InputError(f"{folder}: {problem}")
    return image


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
