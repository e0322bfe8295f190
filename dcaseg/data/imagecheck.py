"""Is an image file complete? The data bytes it holds, counted after its header (and decompressed).

SimpleITK's writers do not report a full disk: NIfTI prints a line and goes on, small images come
out as short or empty files. A written file is therefore checked here against the data length
the image needs: NIfTI (``.nii``, ``.nii.gz``), NRRD with attached raw or gzip data, MetaImage
(``.mha`` with the data inline, ``.mhd`` beside a raw or zlib-compressed data file).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO

import nibabel

HEADER_LIMIT = 1 << 20
NIFTI_HEADER_BYTES = 540
_CHUNK = 1 << 22


def incomplete_reason(path: Path, kind: str, data_bytes: int) -> str | None:
    """Why ``path`` (written as ``kind``, an image extension) lacks the image's ``data_bytes``; None if complete."""
    try:
        if kind in (".nii", ".nii.gz"):
            found = _nifti_data_length(path, kind == ".nii.gz")
        elif kind == ".nrrd":
            found = _nrrd_data_length(path)
        else:
            found = _meta_data_length(path)
    except (OSError, EOFError, ValueError, zlib.error) as error:
        return f"incomplete or unreadable file ({error.__class__.__name__})"
    if found is None:
        return "incomplete file (header or compressed data cut short)"
    if found < data_bytes:
        return f"incomplete file ({found} of {data_bytes} data bytes)"
    return None


def gunzipped_length(stream: BinaryIO) -> int | None:
    """Length of the gzip data in ``stream`` from its position on (read in chunks); None if broken."""
    total = 0
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
            while True:
                chunk = unzipped.read(_CHUNK)
                if not chunk:
                    return total
                total += len(chunk)
    except (EOFError, OSError, zlib.error):
        return None


def _nifti_data_length(path: Path, compressed: bool) -> int | None:
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
        head = stream.read(NIFTI_HEADER_BYTES)
    header = nifti_header(head)
    if header is None:
        return None
    offset = int(header.get_data_offset())
    if compressed:
        with open(path, "rb") as raw:
            total = gunzipped_length(raw)
    else:
        total = path.stat().st_size
    return None if total is None else total - offset


def nifti_header(head: bytes) -> nibabel.Nifti1Header | None:
    """The NIfTI-1 or NIfTI-2 header at the start of ``head``, as stored (no fixes); None if there is none."""
    for header_class in (nibabel.Nifti1Header, nibabel.Nifti2Header):
        size = header_class.template_dtype.itemsize
        if len(head) < size:
            return None
        try:
            header = header_class(head[:size], check=False)
        except Exception:  # nibabel raises several kinds for foreign bytes
            return None
        if int(header["sizeof_hdr"]) == size:
            return header
    return None


def _nrrd_data_length(path: Path) -> int | None:
    with open(path, "rb") as stream:
        head = stream.read(HEADER_LIMIT)
        end = head.find(b"\n\n")
        if not head.startswith(b"NRRD") or end < 0:
            return None
        fields = _fields(head[:end], b":")
        if "data file" in fields or "datafile" in fields:
            raise ValueError("detached NRRD data")
        stream.seek(end + 2)
        if fields.get("encoding") in ("gzip", "gz"):
            return gunzipped_length(stream)
        if fields.get("encoding") != "raw":
            raise ValueError(f"NRRD encoding {fields.get('encoding')}")
        return path.stat().st_size - (end + 2)


def _meta_data_length(path: Path) -> int | None:
    with open(path, "rb") as stream:
        head = stream.read(HEADER_LIMIT)
    marker = head.find(b"ElementDataFile")
    line_end = head.find(b"\n", marker)
    if marker < 0 or line_end < 0:
        return None
    fields = _fields(head[:line_end], b"=")
    data_file = head[marker:line_end].split(b"=", 1)[1].strip().decode("utf-8")
    data_path, offset = (path, line_end + 1) if data_file.upper() == "LOCAL" else (path.parent / data_file, 0)
    with open(data_path, "rb") as stream:
        stream.seek(offset)
        if fields.get("compresseddata") == "true":
            return _inflated_length(stream)
        return data_path.stat().st_size - offset


def _inflated_length(stream: BinaryIO) -> int | None:
    inflater = zlib.decompressobj()
    total = 0
    while chunk := stream.read(_CHUNK):
        total += len(inflater.decompress(chunk))
    return total + len(inflater.flush()) if inflater.eof else None


def _fields(header: bytes, separator: bytes) -> dict[str, str]:
    """``key<separator>value`` lines as lower-case keys and values."""
    fields = {}
    for line in header.decode("latin-1").splitlines():
        key, found, value = line.partition(separator.decode())
        if found:
            fields[key.strip().lower()] = value.strip().lower()
    return fields
