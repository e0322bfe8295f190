"""Hostile and broken model packages: refused in one line before they cost memory, and a model list
that shows the good packages and says why the others cannot be used."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hostile_packages import (
    copy_package,
    deeply_nested,
    stored,
    with_model_json_text,
    with_weights,
    write_zip,
    zeros_deflated,
)

from dcaseg.cli import main as dcaseg_main
from dcaseg.errors import PackageError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "DCASegmentation") not in sys.path:
    sys.path.insert(0, str(ROOT / "DCASegmentation"))
from DCASegmentationLib.model_registry import ModelRegistry  # noqa: E402

BUNDLED = ROOT / "DCASegmentation" / "Resources" / "Models"
PEAK_MIB = 500
OVERFLOW = "<1e999>"  # written as 1e999, a number Python reads as infinity
TORCH_FREE = ("torch", "safetensors", "nibabel", "scipy", "matplotlib")
# A child's own peak resident memory (MiB). Linux: VmHWM of its address space (ru_maxrss would
# carry the forking parent's peak across exec); elsewhere ru_maxrss.
PEAK_OF_THIS_PROCESS = """
def peak_mib():
    import resource, sys
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
"""
# Runs `dcaseg info PATH` in a fresh interpreter and prints its own peak resident memory (MiB).
INFO_WITH_PEAK = PEAK_OF_THIS_PROCESS + """
import sys
from dcaseg.cli import main
status = main(["info", sys.argv[1]])
print(f"peak_mib {peak_mib():.0f}")
sys.exit(status)
"""


def arch(**fields) -> Callable[[dict], None]:
    return lambda data: data["architecture"].update(fields)


def pre(**fields) -> Callable[[dict], None]:
    return lambda data: data["preprocessing"].update(fields)


def set_group(data: dict, group: str, members: list) -> None:
    data["groups"][group] = members


def duplicate_first_name(data: dict) -> None:
    data["classes"][1]["name"] = data["classes"][0]["name"]


def model_json_edits() -> list:
    """(id, edit of the decoded model.json, reason) for descriptions that must be refused."""
    return [
        ("n_filters-200", arch(n_filters=200), "n_filters must be an integer 1..64, got 200"),
        ("n_filters-1e6", arch(n_filters=10**6), "n_filters must be an integer 1..64"),
        ("n_filters-float", arch(n_filters=8.0), "n_filters must be an integer 1..64, got 8.0"),
        ("num_classes-string", arch(num_classes="14"), "num_classes must be an integer"),
        ("dfam-string", arch(dfam="yes"), "dfam must be true or false"),
        ("window-strings", pre(intensity={"mode": "ct-window", "window": ["-75", "275"]}),
         "intensity.window must be two finite numbers"),
        ("percentiles-strings", pre(intensity={"mode": "zscore", "percentiles": ["a", "b"]}),
         "intensity.percentiles must be two numbers"),
        ("spacing-tiny", pre(target_spacing=[1e-6, 3.0, 3.0]), "target_spacing must be three finite numbers"),
        ("patch-huge", pre(patch_size=[4096, 32, 32]), "patch_size must be three positive multiples of 16"),
        ("group-member-list", lambda d: set_group(d, "tail", [d["groups"]["tail"]]),
         "group 'tail' must list label values"),
        ("group-member-bool", lambda d: set_group(d, "tail", [True]), "group 'tail' must list label values"),
        ("duplicate-class-names", duplicate_first_name, "class names must be unique"),
        ("name-number", lambda d: d.update(name=5), "field 'name' must be str"),
        ("description-list", lambda d: d.update(description=["x"]), "field 'description' must be str"),
        ("snomed-number", lambda d: d["classes"][0].update(snomed=5), "snomed must be an object"),
        ("training-nested", lambda d: d.update(training={"x": json.loads(deeply_nested(100))}),
         "nested deeper than 32 levels"),
    ]


@pytest.fixture(scope="session")
def huge_weights_zip(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 MB zip whose weights entry inflates to 2 GiB (of zeros) beside a valid model.json."""
    path = tmp_path_factory.mktemp("huge") / "huge.zip"
    write_zip(path, [stored("model.json", (tiny_model / "model.json").read_bytes()),
                     zeros_deflated("weights.safetensors", 2048)])
    assert path.stat().st_size < 3 * 2**20
    assert zipfile.ZipFile(path).getinfo("weights.safetensors").file_size == 2**31
    return path


def hostile_package(kind: str, tiny_model: Path, folder: Path) -> tuple[Path, str]:
    """(package, reason it must be refused with) for the hostile kinds that are not a model.json edit."""
    model_json = (tiny_model / "model.json").read_bytes()
    weights = (tiny_model / "weights.safetensors").read_bytes()
    if kind == "deeply-nested-json":
        return with_model_json_text(tiny_model, folder / kind, deeply_nested(100_000)), "nested too deeply"
    if kind in ("nan-spacing", "infinite-window"):
        data = json.loads(model_json)
        if kind == "nan-spacing":
            data["preprocessing"]["target_spacing"][0] = float("nan")
        else:
            data["preprocessing"]["intensity"] = {"mode": "ct-window", "window": [-75.0, float("inf")]}
        literal = "NaN" if kind == "nan-spacing" else "Infinity"
        text = json.dumps(data)  # Python writes the non-standard literals that JSON readers accept
        return with_model_json_text(tiny_model, folder / kind, text), f"holds {literal}, which is not a finite number"
    if kind in ("overflowing-spacing", "overflowing-window"):
        data = json.loads(model_json)
        if kind == "overflowing-spacing":
            data["preprocessing"]["target_spacing"][0] = OVERFLOW
            reason = "target_spacing must be three finite numbers"
        else:
            data["preprocessing"]["intensity"] = {"mode": "ct-window", "window": [-75.0, OVERFLOW]}
            reason = "intensity.window must be two finite numbers"
        text = json.dumps(data).replace(json.dumps(OVERFLOW), "1e999")
        return with_model_json_text(tiny_model, folder / kind, text), reason
    if kind in ("int8-weights", "bool-weights", "nan-weights"):
        dtype = {"int8-weights": torch.int8, "bool-weights": torch.bool}.get(kind)
        change = (lambda t: t.to(dtype)) if dtype else (lambda t: torch.full_like(t, float("nan")))
        reason = "holds NaN or infinite values" if dtype is None else f"is stored as {str(dtype)[6:]}"
        return with_weights(tiny_model, folder / kind, change), reason
    if kind == "encrypted-entry":
        members = [stored("model.json", model_json), stored("weights.safetensors", weights, flags=1)]
        return write_zip(folder / f"{kind}.zip", members), "weights.safetensors in the zip is encrypted"
    if kind == "unsupported-compression":
        members = [stored("model.json", model_json, method=9), stored("weights.safetensors", weights)]
        return write_zip(folder / f"{kind}.zip", members), "model.json in the zip uses compression method 9"
    if kind == "symlinked-preview":
        secret = folder / "secret.txt"
        secret.write_text("not part of any package")
        package = copy_package(tiny_model, folder / kind)
        (package / "preview.png").symlink_to(secret)
        return package, "may not contain symbolic links (preview.png)"
    raise ValueError(kind)


OTHER_KINDS = ("deeply-nested-json", "nan-spacing", "infinite-window", "overflowing-spacing", "overflowing-window",
               "int8-weights",
               "bool-weights", "nan-weights", "encrypted-entry", "unsupported-compression", "symlinked-preview")


def assert_one_line_refusal(capsys: pytest.CaptureFixture, package: Path, reason: str) -> None:
    status = dcaseg_main(["info", str(package)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dcaseg info: error: ")
    assert reason in err


@pytest.mark.parametrize("edit, reason", [(e, r) for _, e, r in model_json_edits()],
                         ids=[i for i, _, _ in model_json_edits()])
def test_invalid_model_json_fields_are_one_line_refusals(tiny_model, tmp_path, capsys, edit, reason):
    assert_one_line_refusal(capsys, copy_package(tiny_model, tmp_path / "model", edit), reason)


@pytest.mark.parametrize("kind", OTHER_KINDS)
def test_hostile_packages_are_one_line_refusals(tiny_model, tmp_path, capsys, kind):
    package, reason = hostile_package(kind, tiny_model, tmp_path)
    assert_one_line_refusal(capsys, package, reason)


def run_info_with_peak(package: Path) -> tuple[subprocess.CompletedProcess, float]:
    result = subprocess.run([sys.executable, "-c", INFO_WITH_PEAK, str(package)], capture_output=True,
                            text=True, cwd=ROOT)
    return result, float(result.stdout.split("peak_mib")[-1])


def test_n_filters_200_is_refused_before_it_costs_memory(tiny_model, tmp_path):
    package = copy_package(tiny_model, tmp_path / "wide", lambda d: d["architecture"].update(n_filters=200))
    result, peak_mib = run_info_with_peak(package)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "n_filters must be an integer 1..64" in result.stderr
    assert peak_mib < PEAK_MIB


def test_two_gib_of_weights_are_refused_unread(huge_weights_zip, tiny_model, tmp_path):
    sparse = copy_package(tiny_model, tmp_path / "sparse")
    os.truncate(sparse / "weights.safetensors", 2**31)  # a sparse file: 2 GiB declared, nothing on disk
    for package in (huge_weights_zip, sparse):
        result, peak_mib = run_info_with_peak(package)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1
        assert "weights.safetensors is 2,147,483,648 bytes, more than this architecture's weights can take" \
            in result.stderr
        assert peak_mib < PEAK_MIB


def test_model_list_without_torch_shows_good_packages_and_the_reasons_for_bad_ones(
        tiny_model, huge_weights_zip, tmp_path):
    user = tmp_path / "models"
    user.mkdir()
    copy_package(tiny_model, user / "good")
    shutil.copy(huge_weights_zip, user / "huge.zip")  # its model.json is fine; listing never reads the weights
    copy_package(tiny_model, user / "wide", lambda d: d["architecture"].update(n_filters=200))
    with_model_json_text(tiny_model, user / "nested", deeply_nested(100_000))
    (user / "junk.zip").write_bytes(b"not a zip")
    expected = {"good": "", "huge.zip": "", "wide": "n_filters must be an integer 1..64",
                "nested": "nested too deeply", "junk.zip": "not a readable model package"}
    for kind in ("encrypted-entry", "unsupported-compression", "symlinked-preview"):
        package, reason = hostile_package(kind, tiny_model, user)
        expected[package.name] = reason
    child = (PEAK_OF_THIS_PROCESS + "import json, sys\n"
             f"for name in {TORCH_FREE!r}: sys.modules[name] = None\n"
             f"sys.path[:0] = [{str(ROOT / 'DCASegmentation')!r}, {str(ROOT)!r}]\n"
             "from pathlib import Path\n"
             "from DCASegmentationLib.model_registry import ModelRegistry\n"
             f"entries = ModelRegistry(Path({str(user)!r}), (Path({str(BUNDLED)!r}),)).list_models()\n"
             "print(json.dumps({'peak_mib': peak_mib(), 'entries': [[e.key, e.bundled, e.meta is not None, e.problem]"
             " for e in entries]}))\n")
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    entries = {key: (bundled, has_meta, problem) for key, bundled, has_meta, problem in report["entries"]}
    assert entries.pop("dca-demo-synthetic-abdomen.zip") == (True, True, "")
    assert sorted(entries) == sorted(expected)
    for key, reason in expected.items():
        bundled, has_meta, problem = entries[key]
        assert not bundled and has_meta == (reason == "") and reason in problem, (key, problem)
        assert "\n" not in problem
    assert report["peak_mib"] < PEAK_MIB


def test_importing_a_package_with_a_symlink_copies_nothing(tiny_model, tmp_path):
    package, _ = hostile_package("symlinked-preview", tiny_model, tmp_path)
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(PackageError, match="symbolic links"):
        registry.import_model(package)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
