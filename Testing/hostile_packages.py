"""Builders of broken and hostile model packages for the fault tests.

``write_zip`` writes zip files byte by byte, so entries can claim what ``zipfile`` would never
write: encryption, a compression method nobody reads, or 2 GiB of weights in a 2 MB file.
"""
from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MIB = 1 << 20


@dataclass
class RawMember:
    """One zip entry as written: ``data`` already compressed with ``method``, ``size`` uncompressed."""

    name: str
    data: bytes
    size: int
    crc: int
    method: int = 0
    flags: int = 0


def stored(name: str, data: bytes, method: int = 0, flags: int = 0) -> RawMember:
    """An entry holding ``data`` as is, declared with compression ``method`` and ``flags``."""
    return RawMember(name, data, len(data), zlib.crc32(data), method, flags)


def zeros_deflated(name: str, size_mib: int) -> RawMember:
    """``size_mib`` MiB of zero bytes, deflated to about 1 KB per MiB without compressing them all:
    every MiB is one fully flushed deflate block, so the same bytes repeat."""
    chunk = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size_mib):
        crc = zlib.crc32(chunk, crc)
    return RawMember(name, block * size_mib + compressor.flush(zlib.Z_FINISH), size_mib * MIB, crc, zlib.DEFLATED)


def write_zip(path: Path, members: list[RawMember]) -> Path:
    """A zip archive of ``members`` (local headers, central directory, end record)."""
    body, directory = bytearray(), bytearray()
    for member in members:
        name = member.name.encode("utf-8")
        fields = (member.flags, member.method, 0, 0x21, member.crc, len(member.data), member.size, len(name))
        directory += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, *fields, 0, 0, 0, 0, 0, len(body)) + name
        body += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, *fields, 0) + name + member.data
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    path.write_bytes(bytes(body + directory + end))
    return path


def copy_package(source: Path, target: Path, edit: Callable[[dict], object] | None = None) -> Path:
    """A copy of package folder ``source``; ``edit`` changes its decoded ``model.json`` in place."""
    shutil.copytree(source, target)
    if edit is not None:
        data = json.loads((target / "model.json").read_text(encoding="utf-8"))
        edit(data)
        (target / "model.json").write_text(json.dumps(data), encoding="utf-8")
    return target


def with_model_json_text(source: Path, target: Path, text: str) -> Path:
    """A copy of package folder ``source`` whose ``model.json`` is ``text``."""
    shutil.copytree(source, target)
    (target / "model.json").write_text(text, encoding="utf-8")
    return target


def with_weights(source: Path, target: Path, change: Callable[[torch.Tensor], torch.Tensor]) -> Path:
    """A copy of package folder ``source`` whose floating-point tensors are replaced by ``change(t)``."""
    shutil.copytree(source, target)
    weights = target / "weights.safetensors"
    tensors = load_file(weights)
    save_file({k: change(t) if t.is_floating_point() else t for k, t in tensors.items()}, weights)
    return target


def deeply_nested(depth: int) -> str:
    """A JSON text ``depth`` lists deep."""
    return "[" * depth + "]" * depth
