"""Slicer's *Reload* re-reads only the module file; forgetting our packages makes it re-read them too."""
from __future__ import annotations

import sys

# The packages a module file imports from: both modules' Libs and the engine.
RELOADED_PACKAGES = ("DCASegmentationLib", "DCATrainingLib", "dcaseg")


def forget_modules(packages: tuple[str, ...] = RELOADED_PACKAGES) -> list[str]:
    """Drop ``packages`` and their submodules from ``sys.modules``; the next import reads the files again."""
    names = [name for name in sys.modules if any(name == p or name.startswith(p + ".") for p in packages)]
    for name in names:
        del sys.modules[name]
    return names
