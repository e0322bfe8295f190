"""Small synthetic datasets and folder fingerprints shared by the training tests."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dcaseg.data.phantom import make_phantom

SMALL_SIZE = (40, 40, 32)
SMALL_SPACING = (7.0, 7.0, 7.0)


def small_phantom(out: Path, cases: int = 5, labeled: int = 3, seed: int = 3) -> Path:
    """A plain-layout phantom dataset small enough for 32³ patches and seconds-long runs."""
    make_phantom(out, cases, labeled, seed, size=SMALL_SIZE, spacing=SMALL_SPACING)
    return out


def folder_digest(root: Path) -> str:
    """Hash of every file's relative path, bytes and mtime under ``root`` (detects any change)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
            digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()


def read_events(run: Path) -> list[dict]:
    lines = (run / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
