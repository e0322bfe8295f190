"""The module's plain-Python parts: remembered choices, colour maps, dependencies, model registry, devices."""
from __future__ import annotations

import json
import shutil
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from segmentation_models import tiny_abd14_model

from dcaseg.data.imageio import read_image
from dcaseg.data.phantom import make_phantom
from dcaseg.errors import PackageError
from dcaseg.inference import Predictor, PredictorOptions
from DCASegmentationLib.attention import EXPERT_COLORMAPS, color_node_id
from DCASegmentationLib.dependencies import PIP_REQUIREMENTS, MissingPackages, consent_text, missing_packages, satisfied
from DCASegmentationLib.device_info import DeviceQuery, query_devices
from DCASegmentationLib.model_registry import ModelRegistry
from DCASegmentationLib.parameters import SegmentChoices, settings_key

# ----------------------------------------------------------------------------- choices

def test_choices_survive_a_round_trip_through_text_settings():
    choices = SegmentChoices(model="liver-v2.zip", device="cuda:1", overlap=0.25, show_attention=False,
                             experts_shown=("medium", "tail"), attention_opacity=0.8, show_3d=True)
    stored = choices.to_settings()
    assert all(isinstance(v, str) for v in stored.values())
    assert SegmentChoices.from_settings(stored) == choices


def test_unreadable_or_out_of_range_settings_fall_back_to_defaults():
    stored = {settings_key("overlap"): "1.7", settings_key("attention_opacity"): "half",
              settings_key("experts_shown"): "nonsense", settings_key("show_3d"): "maybe",
              settings_key("device"): "cpu"}
    choices = SegmentChoices.from_settings(stored)
    defaults = SegmentChoices()
    assert (choices.overlap, choices.attention_opacity, choices.show_3d) == \
        (defaults.overlap, defaults.attention_opacity, defaults.show_3d)
    assert choices.experts_shown == defaults.experts_shown
    assert choices.device == "cpu"
    assert SegmentChoices.from_settings({settings_key("experts_shown"): ""}).experts_shown == ()


# ----------------------------------------------------------------------------- colour maps

@pytest.mark.parametrize("expert", sorted(EXPERT_COLORMAPS))
def test_each_expert_uses_a_perceptual_colour_table_that_slicer_ships(mrml, expert):
    node = mrml.scene.GetNodeByID(color_node_id(expert))
    assert node is not None and node.GetName() == EXPERT_COLORMAPS[expert]
    rgb = np.array([node.GetLookupTable().GetTableValue(i)[:3] for i in range(node.GetNumberOfColors())])
    assert len(rgb) >= 255
    lightness = rgb @ [0.2126, 0.7152, 0.0722]           # sequential: brighter with higher attention
    assert np.all(np.diff(lightness) > -1e-3)
    assert lightness[-1] - lightness[0] > 0.5


# ----------------------------------------------------------------------------- dependencies

def test_missing_packages_reports_absent_and_too_old_ones():
    versions = {"torch": "2.1.0+cu121", "numpy": "2.0.1", "scipy": "1.13", "SimpleITK": "2.4.0",
                "safetensors": "0.4.5", "matplotlib": "3.9"}

    def version_of(name):
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    missing = missing_packages(version_of)
    assert missing.torch                                   # 2.1 < 2.3
    assert missing.pip == ["nibabel>=5.0"]
    text = consent_text(missing)
    assert "PyTorch extension" in text and "nibabel>=5.0" in text
    assert not missing_packages()                          # this test environment has everything
    assert not MissingPackages(torch=False, pip=[])


def test_version_comparison_is_numeric_not_textual():
    assert satisfied("numpy>=1.24", lambda name: "1.100.0")
    assert not satisfied("numpy>=1.24", lambda name: "1.9.3")
    assert satisfied("nibabel", lambda name: "0.1")


def test_pip_requirements_match_the_engines_pyproject():
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    engine = {r.replace(" ", "") for r in pyproject["project"]["dependencies"]}
    assert set(PIP_REQUIREMENTS) | {"torch>=2.3"} == engine


# ----------------------------------------------------------------------------- model registry

@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return tiny_abd14_model(tmp_path_factory.mktemp("pkg") / "tiny", name="tiny abd14")


def test_import_lists_the_model_with_its_classes_and_groups(model_folder, tmp_path):
    registry = ModelRegistry(tmp_path / "models", (tmp_path / "bundled",))
    entry = registry.import_model(model_folder)
    assert entry.key == "tiny_abd14" and not entry.bundled and entry.problem == ""
    assert (tmp_path / "models" / "tiny_abd14" / "weights.safetensors").is_file()
    listed = registry.list_models()
    assert [e.key for e in listed] == ["tiny_abd14"]
    text = listed[0].describe()
    assert "14 classes" in text and "tail: esophagus, adrenal_gland_right, adrenal_gland_left" in text
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]   # no staging left


def test_importing_again_never_replaces_an_existing_model(model_folder, tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    first = registry.import_model(model_folder)
    # the user's copy stays as is
    (first.path / "model.json").write_text((first.path / "model.json").read_text(encoding="utf-8"))
    archive = tmp_path / "shared.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("model.json", "weights.safetensors"):
            z.write(model_folder / name, name)
    second = registry.import_model(model_folder)
    third = registry.import_model(archive)
    assert [first.key, second.key, third.key] == ["tiny_abd14", "tiny_abd14-2", "tiny_abd14.zip"]
    assert {e.key for e in registry.list_models()} == {"tiny_abd14", "tiny_abd14-2", "tiny_abd14.zip"}
    assert registry.find("tiny_abd14.zip").meta.name == "tiny abd14"


def test_a_corrupt_model_is_refused_with_the_engines_reason_and_nothing_is_copied(model_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(model_folder, broken)
    (broken / "weights.safetensors").write_bytes(b"\x80\x04not safetensors")
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(PackageError, match="not a valid safetensors file"):
        registry.import_model(broken)
    assert registry.list_models() == []


def test_a_broken_bundled_model_is_listed_with_its_problem(model_folder, tmp_path):
    bundled = tmp_path / "bundled"
    shutil.copytree(model_folder, bundled / "demo")
    meta = json.loads((bundled / "demo" / "model.json").read_text(encoding="utf-8"))
    meta["classes"][0]["color"] = [300, 0, 0]
    (bundled / "demo" / "model.json").write_text(json.dumps(meta))
    entry = ModelRegistry(tmp_path / "models", (bundled,)).list_models()[0]
    assert entry.bundled and entry.meta is None
    assert "colour must be three integers 0..255" in entry.problem
    assert "colour must be" in entry.describe()


# ----------------------------------------------------------------------------- devices

def test_device_query_asks_the_real_engine_in_the_background():
    query = DeviceQuery(sys.executable)
    query.start()
    query._thread.join(timeout=120)
    info = query.info
    assert info.problem == ""
    import torch

    assert info.torch == torch.__version__
    assert info.devices[0]["name"] == "cpu"
    assert info.choices()[0][0] == "auto" and ("cpu", info.devices[0]["label"]) in info.choices()
    assert f"torch {torch.__version__}" in info.summary()


def test_a_python_without_the_engine_gives_a_readable_device_problem(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    fake.chmod(0o755)
    info = query_devices(str(fake))
    assert info.problem == "could not ask the engine for devices: ModuleNotFoundError: No module named torch"
    assert info.choices() == [("auto", "Automatic (CPU)")]


def test_the_shipped_demo_model_is_listed_valid_and_finds_organs_in_a_phantom(tmp_path):
    bundled = Path(__file__).resolve().parents[2] / "DCASegmentation" / "Resources" / "Models"
    entries = ModelRegistry(tmp_path / "models", (bundled,)).list_models()
    demo = next(e for e in entries if e.key == "dca-demo-synthetic-abdomen.zip")
    assert demo.bundled and demo.problem == "" and demo.title == "DCA demo (synthetic abdomen) (bundled)"
    assert demo.meta is not None and demo.meta.groups["tail"]
    make_phantom(tmp_path / "phantom", 1, 1, seed=1000)
    image = tmp_path / "phantom" / "images" / "phantom_000.nii.gz"
    labels = Predictor(demo.path, PredictorOptions(device="cpu", overlap=0.25)).predict(image).labels
    reference = read_image(tmp_path / "phantom" / "labels" / "phantom_000.nii.gz")
    liver = 6
    found = sitk.GetArrayFromImage(labels) == liver
    truth = sitk.GetArrayFromImage(reference) == liver
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) > 0.6
