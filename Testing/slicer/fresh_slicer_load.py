"""Import both module files the way a fresh Slicer install does, then list the models.

Run as a script: ``python fresh_slicer_load.py REPO_ROOT USER_SETTINGS_DIR``. torch, safetensors,
nibabel, scipy and matplotlib cannot be imported (the PyTorch extension installs torch only when
the user agrees). ``slicer`` and ``slicer.util`` are the real PyPI ``slicer-core`` (where no wheel
exists for the running Python, 3.9, they and ``vtk`` are stand-ins, and the report says so); stand-ins
are made only for what it lacks: ``qt``, ``ctk``, ``slicer.app``, ``slicer.i18n``,
``slicer.parameterNodeWrapper`` and ``slicer.ScriptedLoadableModule``. Prints one JSON line.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

HEAVY = ("torch", "safetensors", "nibabel", "scipy", "matplotlib")
MODULES = ("DCASegmentation", "DCATraining")
CLASS_SUFFIXES = ("", "Widget", "Logic", "Test")


class Anything:
    """Any attribute, call or base class: enough of Qt for a module file's import-time lines."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, *args, **kwargs):
        return args[0] if len(args) == 1 and callable(args[0]) and not kwargs else Anything()

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Anything()

    def __mro_entries__(self, bases):
        return (object,)


def stand_in(name: str, **names) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(names)
    module.__getattr__ = lambda attr: Anything() if not attr.startswith("__") else (_ for _ in ()).throw(
        AttributeError(attr))
    sys.modules[name] = module
    return module


class Base:
    def __init__(self, *args, **kwargs) -> None:
        pass


def main(root: Path, settings_dir: Path) -> dict:
    for name in HEAVY:
        sys.modules[name] = None  # "import torch" now raises ImportError, as on a fresh install
    stand_in("qt")
    stand_in("ctk")
    try:
        import slicer
        import slicer.util
        import vtk  # noqa: F401 - Slicer bundles it; a module file may import it
        report: dict = {"slicer": "slicer-core"}
    except ImportError:  # no slicer-core wheel for this Python (3.9): the module files' syntax and imports still run
        slicer = stand_in("slicer")
        slicer.util = stand_in("slicer.util")
        stand_in("vtk")
        report = {"slicer": "stand-in"}

    slicer.app = types.SimpleNamespace(slicerUserSettingsFilePath=str(settings_dir / "Slicer.ini"))
    stand_in("slicer.i18n", tr=lambda text: text, translate=lambda context, text: text)
    stand_in("slicer.parameterNodeWrapper", parameterNodeWrapper=lambda cls: cls, WithinRange=Anything,
             Choice=Anything)
    stand_in("slicer.ScriptedLoadableModule", ScriptedLoadableModule=Base, ScriptedLoadableModuleWidget=Base,
             ScriptedLoadableModuleLogic=Base, ScriptedLoadableModuleTest=Base)
    if not hasattr(slicer.util, "VTKObservationMixin"):
        slicer.util.VTKObservationMixin = Base
    for module in MODULES:
        sys.path.insert(0, str(root / module))
    report.update(classes={}, errors={})
    for module in MODULES:
        spec = importlib.util.spec_from_file_location(module, root / module / f"{module}.py")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[module] = loaded
        try:
            spec.loader.exec_module(loaded)
        except Exception as error:  # noqa: BLE001 - the report says what Slicer would swallow
            report["errors"][module] = f"{type(error).__name__}: {error}"
            continue
        report["classes"][module] = [module + s for s in CLASS_SUFFIXES if hasattr(loaded, module + s)]
    if "DCASegmentation" in report["classes"]:
        registry = sys.modules["DCASegmentation"].DCASegmentationLogic().registry
        report["models"] = [{"key": e.key, "bundled": e.bundled, "name": e.meta.name if e.meta else None,
                             "problem": e.problem} for e in registry.list_models()]
    report["imported_heavy"] = sorted(n for n in HEAVY if sys.modules.get(n) is not None)
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
