"""Shared fixtures, and the torch-free selection for interpreters without torch.

Under Python 3.9 and 3.12 CI has no torch (Slicer's own process has none either on a fresh
install): there only test modules that declare ``TORCH_FREE = True`` are collected.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None
TORCH_FREE_MARK = "\nTORCH_FREE = True\n"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without torch, leave out every test module that does not declare itself torch-free."""
    if HAS_TORCH or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return TORCH_FREE_MARK not in collection_path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a saved package (folder) holding a random-weight n_filters=4 DCANet for the 14 classes."""
    import torch
    from support import random_network, tiny_model_meta

    from dcaseg.package import save_package

    meta = tiny_model_meta()
    torch.manual_seed(0)
    return save_package(tmp_path_factory.mktemp("models") / "tiny-abd14", random_network(meta.architecture), meta)
