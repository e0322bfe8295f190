"""Keep what ITK and niftilib print on the process's standard error (file descriptor 2) off it.

Their messages ("** ERROR: NWAD: wrote only 0 of N bytes", "WARNING: In .../itkNiftiImageIO.cxx")
bypass Python and would break the one-line error a command prints. The callers check the outcome
themselves (the written file's length, the geometry read back, the slices read) and say what went
wrong in their own words.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point descriptor 2 at the null device for the block (not thread-safe: one block at a time)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (a detached process): nothing to silence
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
