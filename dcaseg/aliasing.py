"""Outputs never alias inputs: an output that is an input file (any spelling, a link) or lies inside
an input folder (a DICOM series, a model package) is refused before any work.

``os.path.samefile`` sees through hard links, symbolic links and spellings such as ``./a/../a/x``;
a path that does not exist yet is compared by its resolved form.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import InputError


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return _resolved(a) == _resolved(b)


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies within ``folder`` (links resolved); ``folder`` itself does not count."""
    return _resolved(folder) in _resolved(path).parents


def check_apart(outputs: Iterable[Path], inputs: Sequence[Path]) -> None:
    """Refuse an output that is one of ``inputs`` or lies inside an input folder."""
    for output in outputs:
        for source in inputs:
            if same_file(output, source):
                raise InputError(f"{output}: this output is the input {source}; choose another output "
                                 "(an input is never overwritten)")
            if source.is_dir() and inside(output, source):
                raise InputError(f"{output}: this output lies inside the input folder {source}; "
                                 "write it elsewhere")


def check_output_folder(output: Path, input_folder: Path) -> None:
    """Refuse an output folder that is the input folder."""
    if same_file(output, input_folder):
        raise InputError(f"{output}: the output folder is the input folder {input_folder}; "
                         "choose another output folder (inputs are never overwritten)")


def entry_holding(path: Path, folder: Path) -> str | None:
    """The name of ``folder``'s entry that holds ``path`` (``cases/seg/x`` in ``cases``: ``seg``), or None."""
    if not inside(path, folder):
        return None
    return _resolved(path).relative_to(_resolved(folder)).parts[0]


def _resolved(path: Path) -> Path:
    return Path(os.path.normcase(os.path.realpath(path)))
