"""Is a DICOM series folder read whole? Unread files and uneven slice gaps, found before they mislead.

GDCM leaves out a slice file it cannot parse, and ITK then spreads the remaining slices over the
whole range (49 slices at 4.083 mm instead of 50 at 4 mm); a deleted slice does the same. Both
are caught here: DICOM files that the series did not take, and gaps between slice positions that
differ from the others.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

GAP_TOLERANCE = 0.1  # a gap may differ from the median gap by this fraction (rounded positions)
_DICOM_SUFFIXES = (".dcm", ".ima", ".dicom")


def unread_file_problem(folder: Path, series_files: Sequence[str]) -> str | None:
    """Name how many DICOM-looking files of ``folder`` the series left out; None if it took them all."""
    taken = {os.path.abspath(name) for name in series_files}
    candidates = [entry.path for entry in os.scandir(folder) if _looks_like_dicom(entry)]
    unread = [path for path in candidates if os.path.abspath(path) not in taken]
    if not unread:
        return None
    example = Path(sorted(unread)[0]).name
    return (f"{len(candidates)} DICOM files but only {len(series_files)} slices could be read as one series "
            f"({len(unread)} corrupt or unreadable, e.g. {example}); repair or remove them")


def gap_problem(positions: Sequence[Sequence[float]], normal: Sequence[float]) -> str | None:
    """Describe an uneven gap between consecutive slice positions along ``normal``; None if even."""
    if len(positions) < 3:
        return None
    heights = [sum(p * n for p, n in zip(position, normal)) for position in positions]
    gaps = [abs(b - a) for a, b in zip(heights, heights[1:])]
    typical = sorted(gaps)[len(gaps) // 2]
    for index, gap in enumerate(gaps):
        if abs(gap - typical) > max(GAP_TOLERANCE * typical, 0.01):
            return (f"slices are unevenly spaced (a gap of {gap:.4g} mm between slices {index + 1} and {index + 2}, "
                    f"{typical:.4g} mm elsewhere): a slice is missing or unreadable")
    return None


def parse_position(text: str) -> tuple[float, float, float] | None:
    """An ImagePositionPatient value (``x\\y\\z``), or None if it is not three finite numbers."""
    try:
        values = tuple(float(part) for part in text.strip().split("\\"))
    except ValueError:
        return None
    return values if len(values) == 3 and all(math.isfinite(v) for v in values) else None


def _looks_like_dicom(entry: os.DirEntry) -> bool:
    if entry.name.startswith(".") or entry.name.upper() == "DICOMDIR" or not entry.is_file():
        return False
    if entry.name.lower().endswith(_DICOM_SUFFIXES):
        return True
    try:
        with open(entry.path, "rb") as stream:
            return stream.read(132)[128:132] == b"DICM"
    except OSError:
        return False
