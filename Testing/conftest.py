"""Shared fixtures: a tiny random-weight DCA model package (paths and metadata live in support.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dcaseg.package import save_package
from support import random_network, tiny_model_meta


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a saved package (folder) holding a random-weight n_filters=4 DCANet for the 14 classes."""
    meta = tiny_model_meta()
    torch.manual_seed(0)
    return save_package(tmp_path_factory.mktemp("models") / "tiny-abd14", random_network(meta.architecture), meta)
