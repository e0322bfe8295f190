"""Checked reads of a model package's files (a folder or a ``.zip``), with the standard library only.

Every read has a size limit that is checked against the declared size before anything is read,
and again while reading; symlinks inside a package folder, encrypted zip entries and compression
methods this Python cannot read are refused. Every failure is a one-line ``PackageError``.
"""
from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

from .errors import PackageError

MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"
MEMBERS = (MODEL_JSON, WEIGHTS)
PREVIEW = "preview.png"  # optional picture of what the model segments
PACKAGE_FILES = (*MEMBERS, PREVIEW)
READABLE_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate",
                        zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
_ENCRYPTED = 0x1  # general-purpose flag bit 0 of a zip entry
# What reading a broken or hostile archive can raise; zipfile raises NotImplementedError for a
# compression method it does not support (a caught error, not a stub).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, struct.error, OSError, EOFError, RuntimeError,
               NotImplementedError, ValueError, LookupError)


def _unreadable(path: Path, error: Exception) -> PackageError:
    reason = str(error).splitlines()[0] if str(error) else ""
    return PackageError(f"{path}: not a readable model package ({error.__class__.__name__}: {reason})")


def _folder_member(path: Path, name: str) -> Path:
    """The regular file ``name`` of package folder ``path``; no entry of the folder may be a symlink."""
    try:
        links = sorted(entry.name for entry in path.iterdir() if entry.is_symlink())
    except OSError as error:
        raise _unreadable(path, error) from None
    if links:
        raise PackageError(f"{path}: a model package may not contain symbolic links ({', '.join(links[:3])})")
    member = path / name
    if not member.is_file():
        raise PackageError(f"{path}: not a model package (no {name})")
    return member


def _zip_member(archive: zipfile.ZipFile, path: Path, name: str) -> zipfile.ZipInfo:
    """The entry of ``archive`` named ``name`` (in any folder), if this Python can read it."""
    found = [info for info in archive.infolist() if not info.is_dir() and Path(info.filename).name == name]
    if not found:
        raise PackageError(f"{path}: not a model package (the zip has no {name})")
    if len(found) > 1:
        raise PackageError(f"{path}: the zip holds {len(found)} files called {name}; a package has one")
    info = found[0]
    if info.flag_bits & _ENCRYPTED:
        raise PackageError(f"{path}: {name} in the zip is encrypted; repack the package without a password")
    if info.compress_type not in READABLE_COMPRESSION:
        raise PackageError(f"{path}: {name} in the zip uses compression method {info.compress_type}, which "
                           f"cannot be read; repack it with one of {sorted(set(READABLE_COMPRESSION.values()))}")
    return info


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except _ZIP_ERRORS as error:
        raise _unreadable(path, error) from None


def check_package(path: Path) -> None:
    """Raise PackageError unless ``path`` is a package whose members can all be read (reads none)."""
    if not path.exists():
        raise PackageError(f"{path}: no such model package")
    if path.is_dir():
        for name in MEMBERS:
            _folder_member(path, name)
        return
    with _open_zip(path) as archive:
        for name in MEMBERS:
            _zip_member(archive, path, name)


def member_size(path: Path, name: str) -> int:
    """The size in bytes that the package declares for member ``name`` (nothing is read)."""
    if path.is_dir():
        try:
            return _folder_member(path, name).stat().st_size
        except OSError as error:
            raise _unreadable(path, error) from None
    with _open_zip(path) as archive:
        return _zip_member(archive, path, name).file_size


def read_member(path: Path, name: str, max_bytes: int, limit_reason: str) -> bytes:
    """The bytes of member ``name``; refused, before reading, when it is larger than ``max_bytes``."""
    check_package(path)
    declared = member_size(path, name)
    if declared > max_bytes:
        raise PackageError(f"{path}: {name} is {declared:,} bytes, more than {limit_reason} ({max_bytes:,})")
    try:
        if path.is_dir():
            with _folder_member(path, name).open("rb") as handle:
                data = handle.read(max_bytes + 1)
        else:
            with _open_zip(path) as archive, archive.open(_zip_member(archive, path, name)) as handle:
                data = handle.read(max_bytes + 1)
    except _ZIP_ERRORS as error:
        raise _unreadable(path, error) from None
    if len(data) > max_bytes:
        raise PackageError(f"{path}: {name} is larger than {limit_reason} ({max_bytes:,} bytes)")
    return data
