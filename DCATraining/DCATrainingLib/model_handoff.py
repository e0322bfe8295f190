""""Use this model": hand a finished run's best model package to DCASegmentation's model registry."""
from __future__ import annotations

from pathlib import Path

from dcaseg.errors import PackageError
from dcaseg.package_members import MODEL_JSON
from DCASegmentationLib.model_registry import ModelEntry, ModelRegistry


def use_model(registry: ModelRegistry, model_path: str | Path) -> ModelEntry:
    """Validate and copy the model package into the registry's user folder; returns its entry.

    The run folder keeps its own copy, so a later retrain never replaces a registered model.
    """
    model_path = Path(model_path)
    if not (model_path / MODEL_JSON).is_file():
        raise PackageError(f"{model_path}: no model package yet (training has not validated a model)")
    return registry.import_model(model_path)
