"""The engine's Python packages inside Slicer: what is missing, what the user is asked, how it is installed.

torch comes from the PyTorch extension's ``PyTorchUtils`` (it picks the CUDA build that fits the
driver); the other packages from Slicer's pip helper. Nothing is installed at import time: the
widget asks once (``consent_text``) and then calls ``install``. No Qt here; ``slicer`` is imported
only when installing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

TORCH_REQUIREMENT = "torch>=2.3"
# The engine's other runtime packages (kept equal to pyproject.toml's dependencies by a test).
PIP_REQUIREMENTS = ("numpy>=1.24", "scipy>=1.10", "SimpleITK>=2.3", "nibabel>=5.0", "safetensors>=0.4",
                    "matplotlib>=3.7")


class DependencyError(RuntimeError):
    """Installing the engine's packages failed or needs the user to act (one readable line)."""


@dataclass
class MissingPackages:
    """Requirements that are absent or too old; ``torch`` is handled by PyTorchUtils."""

    torch: bool
    pip: list[str]

    def __bool__(self) -> bool:
        return self.torch or bool(self.pip)


def split_requirement(requirement: str) -> tuple[str, str]:
    """``"nibabel>=5.0"`` -> ``("nibabel", "5.0")`` (only ``>=`` lower bounds are used here)."""
    name, _, minimum = requirement.partition(">=")
    return name.strip(), minimum.strip()


def satisfied(requirement: str, version_of=metadata.version) -> bool:
    """True when the package is installed in at least the required version."""
    name, minimum = split_requirement(requirement)
    try:
        installed = version_of(name)
    except metadata.PackageNotFoundError:
        return False
    return not minimum or _numbers(installed) >= _numbers(minimum)


def missing_packages(version_of=metadata.version) -> MissingPackages:
    """What ``install`` would have to install in this Python."""
    return MissingPackages(torch=not satisfied(TORCH_REQUIREMENT, version_of),
                           pip=[r for r in PIP_REQUIREMENTS if not satisfied(r, version_of)])


def consent_text(missing: MissingPackages) -> str:
    """The one question the user is asked before anything is downloaded."""
    items = ([f"{TORCH_REQUIREMENT} (through the PyTorch extension, matched to your GPU driver)"]
             if missing.torch else []) + missing.pip
    return ("DCA Segmentation needs these Python packages, which are not installed yet:\n\n  "
            + "\n  ".join(items)
            + "\n\nDownload and install them now? This can take several minutes (torch is large).")


def install(missing: MissingPackages) -> None:
    """Install what is missing (call only after the user agreed). Raises ``DependencyError``."""
    import slicer

    if missing.torch:
        try:
            import PyTorchUtils
        except ImportError:
            raise DependencyError("DCA Segmentation needs the 'PyTorch' extension: install it from the "
                                  "Extensions Manager and restart Slicer") from None
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=False, torchVersionRequirement=TORCH_REQUIREMENT[len("torch"):])
        if torch is None:
            raise DependencyError("PyTorch was not installed; see the Python console for the reason")
    if missing.pip:
        slicer.util.pip_install(list(missing.pip))


def _numbers(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)
