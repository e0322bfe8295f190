"""``dcaseg segment`` as users and Slicer run it: real subprocesses, real files, one-line errors."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support import REALCT_IMAGE

from dcaseg.data.imageio import read_image


def segment(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcaseg", "segment", *args], capture_output=True, text=True)


def events_of(result: subprocess.CompletedProcess) -> list[dict]:
    """Every stdout line must be a JSON event (Slicer parses them)."""
    return [json.loads(line) for line in result.stdout.splitlines()]


def small_ct(path: Path, size=(40, 36, 12), direction=(0, 1, 0, -1, 0, 0, 0, 0, 1)) -> Path:
    """A small CT-like volume (air, soft tissue, a bright blob) with a non-identity direction."""
    array = np.full(tuple(reversed(size)), -1000, np.int16)
    array[2:-2, 4:-4, 4:-4] = 40
    array[4:8, 10:20, 12:24] = 180
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.5, 2.5, 3.0))
    image.SetOrigin((-40.0, 12.5, 100.0))
    image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-5))


def test_slicer_call_writes_labels_and_attention_and_only_json_on_stdout(tiny_model, tmp_path):
    out = tmp_path / "result" / "out.nii.gz"
    result = segment("-m", str(tiny_model), "-i", str(REALCT_IMAGE), "-o", str(out), "--attention",
                     "--overlap", "0.25", "--progress", "jsonl")
    assert result.returncode == 0, result.stderr
    events = events_of(result)
    done = events[-1]
    assert done["event"] == "done"
    attention = {f"attention_{g}": str(tmp_path / "result" / f"out_attention_{g}.nii.gz")
                 for g in ("head", "medium", "tail")}
    assert done["outputs"] == {"labels": str(out), **attention}
    assert [c["value"] for c in done["classes"]] == list(range(1, 15))
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["stage"] == "windows" and progress[-1]["done"] == progress[-1]["total"]
    image = read_image(REALCT_IMAGE)
    for path in done["outputs"].values():
        assert same_geometry(sitk.ReadImage(path), image)
    assert sitk.ReadImage(done["outputs"]["attention_head"]).GetPixelID() == sitk.sitkFloat32
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(Path(p).name for p in done["outputs"].values())


def test_existing_output_needs_overwrite(tiny_model, tmp_path):
    source = small_ct(tmp_path / "ct.nrrd")
    out = tmp_path / "seg.nrrd"
    out.write_bytes(b"user data")
    refused = segment("-m", str(tiny_model), "-i", str(source), "-o", str(out), "--progress", "none")
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert out.read_bytes() == b"user data"
    replaced = segment("-m", str(tiny_model), "-i", str(source), "-o", str(out), "--overwrite", "--fused",
                       "--progress", "none")
    assert replaced.returncode == 0, replaced.stderr
    assert same_geometry(sitk.ReadImage(str(out)), sitk.ReadImage(str(source)))
    assert (tmp_path / "seg_fused.nii.gz").exists()


def write_bad_inputs(folder: Path, tiny_model: Path) -> dict[str, tuple[Path, Path]]:
    """(model, input) pairs that must each fail with one line."""
    folder.mkdir()
    good = small_ct(folder / "good.nii.gz")
    flat = folder / "flat.nrrd"
    sitk.WriteImage(sitk.Image([20, 20], sitk.sitkInt16), str(flat))
    movie = folder / "movie.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 8, 8), np.int16), isVector=False), str(movie))
    text = folder / "notes.nii.gz"
    text.write_text("this is not an image\n")
    empty = folder / "empty.nii.gz"
    empty.write_bytes(b"")
    zipped = folder / "model.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for member in ("model.json", "weights.safetensors"):
            archive.write(tiny_model / member, member)
    corrupt = folder / "corrupt.zip"
    corrupt.write_bytes(zipped.read_bytes()[: zipped.stat().st_size // 2])
    mismatched = folder / "mismatched"
    shutil.copytree(tiny_model, mismatched)
    meta = json.loads((mismatched / "model.json").read_text(encoding="utf-8"))
    last = meta["classes"].pop()["value"]
    meta["architecture"]["num_classes"] -= 1
    for group in ("head", "medium", "tail"):
        meta["groups"][group] = [v for v in meta["groups"][group] if v != last]
        meta["architecture"]["expert_classes"][group] = [c for c in meta["architecture"]["expert_classes"][group]
                                                         if c != len(meta["classes"]) + 1]
    (mismatched / "model.json").write_text(json.dumps(meta))
    return {"2-D image": (tiny_model, flat), "4-D image": (tiny_model, movie), "non-image file": (tiny_model, text),
            "empty file": (tiny_model, empty), "missing input": (tiny_model, folder / "nowhere.nii.gz"),
            "missing model": (folder / "no-model", good), "corrupt model zip": (corrupt, good),
            "classes do not match weights": (mismatched, good)}


def test_bad_inputs_give_one_line_and_no_output(tiny_model, tmp_path):
    cases = write_bad_inputs(tmp_path / "inputs", tiny_model)
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("a file where a folder should be")
    cases["unwritable output"] = (tiny_model, tmp_path / "inputs" / "good.nii.gz")
    for what, (model, source) in cases.items():
        out_dir = blocker if what == "unwritable output" else tmp_path / f"out-{what.replace(' ', '-')}"
        out = out_dir / "seg.nii.gz"
        result = segment("-m", str(model), "-i", str(source), "-o", str(out), "--attention", "--progress", "jsonl")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (what, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("dcaseg segment: error:"), (what, result.stderr)
        assert events_of(result)[-1]["event"] == "error", what
        assert not out.exists() and not (out_dir.is_dir() and any(out_dir.iterdir())), what


def test_folder_input_skips_done_cases_continues_past_failures_and_shards(tiny_model, tmp_path):
    inputs = tmp_path / "cases"
    for name in ("a", "b", "c"):
        small_ct(inputs / f"{name}.nii.gz")
    (inputs / "broken.nii.gz").write_bytes(b"")
    out = tmp_path / "out"
    first = segment("-m", str(tiny_model), "-i", str(inputs), "-o", str(out), "--progress", "none")
    assert first.returncode == 1
    assert "4 case(s): 3 segmented, 0 skipped (already done), 1 failed" in first.stdout
    assert "failed broken" in first.stdout
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]
    again = segment("-m", str(tiny_model), "-i", str(inputs), "-o", str(out), "--progress", "jsonl")
    cases = {e["case"]: e["status"] for e in events_of(again) if e["event"] == "case" and e["status"] != "started"}
    assert cases == {"a": "skipped", "b": "skipped", "broken": "failed", "c": "skipped"}
    (inputs / "broken.nii.gz").unlink()
    shards = [segment("-m", str(tiny_model), "-i", str(inputs), "-o", str(tmp_path / "sharded"), "--shard", f"{i}/2",
                      "--progress", "jsonl") for i in (0, 1)]
    assert all(s.returncode == 0 for s in shards)
    seen = [[e["case"] for e in events_of(s) if e["event"] == "case" and e["status"] == "done"] for s in shards]
    assert seen == [["a", "c"], ["b"]]


@pytest.mark.parametrize("args, message", [
    (["--shard", "2/2"], "0 <= I < N"),
    (["--device", "tpu"], "unknown device"),
    (["--overlap", "1.5"], "overlap"),
])
def test_bad_options_give_one_line(tiny_model, tmp_path, args, message):
    source = small_ct(tmp_path / "in" / "ct.nii.gz")
    result = segment("-m", str(tiny_model), "-i", str(source.parent), "-o", str(tmp_path / "out"), *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
