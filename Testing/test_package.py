"""Model packages: round trip, validation reasons, and refusal of pickles and broken weights."""
from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from dcaseg.anatomy import organ_color, organ_snomed
from dcaseg.errors import PackageError
from dcaseg.nets import ArchitectureConfig, DCANet
from dcaseg.package import (
    ClassInfo,
    ModelMeta,
    Preprocessing,
    expert_classes_from_groups,
    load_package,
    read_meta,
    save_package,
)

NAMES = {1: "spleen", 2: "kidney_right", 6: "liver", 12: "adrenal_gland_right"}
GROUPS = {"head": [6], "medium": [1, 2], "tail": [12]}


def make_meta(n_filters: int = 4) -> ModelMeta:
    classes = [ClassInfo(v, n, organ_color(n, v), organ_snomed(n)) for v, n in NAMES.items()]
    arch = ArchitectureConfig(len(classes) + 1, expert_classes_from_groups(GROUPS, classes), n_filters=n_filters)
    return ModelMeta("tiny", arch, classes, GROUPS, Preprocessing((3.0, 3.0, 3.0), (32, 32, 32)))


@pytest.fixture
def package(tmp_path) -> Path:
    meta = make_meta()
    torch.manual_seed(0)
    return save_package(tmp_path / "model", DCANet(meta.architecture), meta)


class Marker:
    """Unpickling this writes a file: proof that code ran."""

    path = ""

    def __reduce__(self):
        return (Path(self.path).write_text, ("pwned",))


def test_round_trip_folder_and_zip_give_identical_networks(package, tmp_path):
    loaded = load_package(package)
    zipped = save_package(tmp_path / "model.zip", loaded.build_network(), loaded.meta)
    again = load_package(zipped)
    assert again.meta.to_dict() == loaded.meta.to_dict()
    assert all(torch.equal(again.state_dict[k], loaded.state_dict[k]) for k in loaded.state_dict)
    assert again.meta.label_values == [0, 1, 2, 6, 12]
    assert again.meta.classes[2].snomed["type"]["code"] == "10200004"


def test_half_precision_package_is_half_the_size_and_predicts_like_the_original(package, tmp_path):
    loaded = load_package(package)
    network = loaded.build_network().eval()
    half = save_package(tmp_path / "half.zip", network, loaded.meta, half=True)
    full = save_package(tmp_path / "full.zip", network, loaded.meta)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    again = load_package(half).build_network().eval()
    assert next(again.parameters()).dtype == torch.float32
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(again(x).logits, network(x).logits, atol=1e-2)


def test_output_head_round_trips_and_defaults_to_the_aggregator(package, tmp_path):
    data = json.loads((package / "model.json").read_text(encoding="utf-8"))
    assert data["output"] == "aggregator"
    del data["output"]  # a package written before the field existed
    (package / "model.json").write_text(json.dumps(data))
    loaded = load_package(package)
    assert loaded.meta.output == "aggregator"
    loaded.meta.output = "experts_fused"
    assert read_meta(save_package(tmp_path / "fused", loaded.build_network(), loaded.meta)).output == "experts_fused"


def test_saving_over_an_existing_package_replaces_it_whole(package):
    meta = make_meta()
    meta.name = "second"
    save_package(package, DCANet(meta.architecture), meta)
    assert read_meta(package).name == "second"
    assert sorted(p.name for p in package.iterdir()) == ["model.json", "weights.safetensors"]
    assert not any(p.name.startswith(".") for p in package.parent.iterdir())


@pytest.mark.parametrize("edit, reason", [
    (lambda d: d.pop("classes"), "missing field 'classes'"),
    (lambda d: d["classes"].pop(), "foreground classes but the class list names"),
    (lambda d: d["groups"].update(tail=[99]), "not classes"),
    (lambda d: d["groups"].update(tail=[]), "exactly one of head/medium/tail"),
    (lambda d: d["preprocessing"].update(patch_size=[30, 32, 32]), "multiples of 16"),
    (lambda d: d["classes"][0].update(color=[300, 0, 0]), "colour"),
    (lambda d: d.update(format_version=99), "newer than this engine"),
    (lambda d: d.update(output="ensemble"), "output must be one of"),
    (lambda d: (d.update(output="experts_fused"), d["architecture"].update(experts="none")), "needs expert decoders"),
])
def test_invalid_model_json_is_refused_with_a_reason(package, edit, reason):
    data = json.loads((package / "model.json").read_text(encoding="utf-8"))
    edit(data)
    (package / "model.json").write_text(json.dumps(data))
    with pytest.raises(PackageError, match=reason):
        load_package(package)


def test_pickled_weights_are_refused_and_run_no_code(package, tmp_path):
    marker = tmp_path / "marker.txt"
    Marker.path = str(marker)
    (package / "weights.safetensors").write_bytes(pickle.dumps(Marker()))
    with pytest.raises(PackageError, match="not a valid safetensors file"):
        load_package(package)
    torch.save({"x": Marker()}, tmp_path / "evil.pt")  # a torch checkpoint is a zip of pickles
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("model.json", (package / "model.json").read_text(encoding="utf-8"))
        z.writestr("weights.safetensors", (tmp_path / "evil.pt").read_bytes())
    result = subprocess.run([sys.executable, "-m", "dcaseg", "info", str(archive)], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not a valid safetensors file" in result.stderr
    assert not marker.exists()


def test_truncated_and_mismatched_weights_are_refused_with_reasons(package, tmp_path):
    weights = package / "weights.safetensors"
    full = weights.read_bytes()
    weights.write_bytes(full[: len(full) // 2])
    with pytest.raises(PackageError, match="not a valid safetensors file"):
        load_package(package)
    for n_filters, reason in ((2, "do not fit the architecture.*shape"), (8, "more than this architecture's weights")):
        other = make_meta(n_filters=n_filters)
        save_package(tmp_path / f"nf{n_filters}", DCANet(other.architecture), other)
        weights.write_bytes((tmp_path / f"nf{n_filters}" / "weights.safetensors").read_bytes())
        with pytest.raises(PackageError, match=reason):
            load_package(package)


def test_not_a_package_is_reported_in_one_line(tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    for path, reason in ((tmp_path / "junk.zip", "not a readable model package"),
                         (tmp_path, "no model.json"), (tmp_path / "missing", "no such model package")):
        result = subprocess.run([sys.executable, "-m", "dcaseg", "info", str(path)], capture_output=True, text=True)
        assert result.returncode == 2 and reason in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_info_summarises_a_valid_package(package):
    result = subprocess.run([sys.executable, "-m", "dcaseg", "info", str(package)], capture_output=True,
                            text=True, check=True)
    assert "head       liver" in result.stdout and "tail       adrenal_gland_right" in result.stdout
    assert "output     aggregator" in result.stdout and "fusion=sum" in result.stdout


def test_a_saved_package_folder_has_the_umasks_normal_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    meta = make_meta()
    path = save_package(tmp_path / "shared-model", DCANet(meta.architecture), meta)
    assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask     # not mkdtemp's 0700: others can use it
    assert {stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()} == {0o666 & ~umask}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no staging folder left
