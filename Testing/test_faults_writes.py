"""Faults while writing: a full disk, outputs that alias inputs, SIGTERM, and what killed writers leave.

A full disk is made without root by a file-size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored) on a
real subprocess: writes past the limit fail with EFBIG exactly where a full disk fails with ENOSPC.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from support import REALCT_IMAGE
from tiny_series import write_dicom_series

from dcaseg.atomic import atomic_write
from dcaseg.cli import main
from dcaseg.data.imageio import GeometryWarning, write_image_atomic
from dcaseg.stale_temps import ABANDONED_AFTER_S, DEAD_WRITER_GRACE_S, remove_stale_temps, temp_prefix
from dcaseg.training.checkpoint import load_checkpoint, save_checkpoint

MODELS = Path(__file__).parents[1] / "DCASegmentation" / "Resources" / "Models"
BUNDLED_MODEL = MODELS / "dca-demo-synthetic-abdomen.zip"
FORMATS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def size_limit(limit: int):
    """A ``preexec_fn``: files may not grow past ``limit`` bytes, and a write past it fails instead of killing."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def python(code: str, *args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          preexec_fn=size_limit(limit) if limit is not None else None)


def segment(*args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcaseg", "segment", *args], capture_output=True, text=True,
                          preexec_fn=size_limit(limit) if limit is not None else None)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0]


def noise_image(shape=(12, 20, 24)) -> sitk.Image:
    """Voxels that do not compress, so a file's size is known to exceed a small limit."""
    return sitk.GetImageFromArray(np.random.default_rng(0).integers(-1000, 1000, shape).astype(np.int16))


def small_ct() -> sitk.Image:
    """A small CT-like volume (air, soft tissue, a bright blob) at 3 mm, for runs whose content does not matter."""
    array = np.full((12, 36, 40), -1000, np.int16)
    array[2:-2, 4:-4, 4:-4] = 40
    array[4:8, 10:20, 12:24] = 180
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((3.0, 3.0, 3.0))
    return image


def copy_ct(folder: Path, name: str = "ct.nii.gz") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(REALCT_IMAGE, folder / name))


# ----------------------------------------------------------------------------- full disk

WRITE_EVERY_FORMAT = """
import json, sys
import numpy as np, SimpleITK as sitk
from dcaseg.data.imageio import write_image_atomic
from dcaseg.errors import InputError
image = sitk.GetImageFromArray(np.random.default_rng(0).integers(-1000, 1000, (12, 20, 24)).astype(np.int16))
outcome = {}
for ext in %r:
    try:
        write_image_atomic(image, f"{sys.argv[1]}/ct{ext}")
        outcome[ext] = "written"
    except InputError as error:
        outcome[ext] = str(error)
print(json.dumps(outcome))
""" % (FORMATS,)


def test_a_full_disk_keeps_every_format_s_previous_file_and_says_why(tmp_path: Path):
    small = sitk.GetImageFromArray(np.arange(8, dtype=np.int16).reshape(2, 2, 2))
    for ext in FORMATS:
        write_image_atomic(small, tmp_path / f"ct{ext}")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = python(WRITE_EVERY_FORMAT, str(tmp_path), limit=2000)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {ext: f"cannot write {tmp_path}/ct{ext}: File too large" for ext in FORMATS}
    assert result.stderr == ""  # niftilib's "** ERROR: NWAD" and MetaImage's complaints are kept off
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # intact, and no temporary file left


def test_without_a_limit_every_format_is_written_verified_and_read_back_equal(tmp_path: Path):
    result = python(WRITE_EVERY_FORMAT, str(tmp_path))
    assert json.loads(result.stdout) == {ext: "written" for ext in FORMATS}
    for ext in FORMATS:
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"ct{ext}"))),
                              sitk.GetArrayFromImage(noise_image()))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"ct{ext}" for ext in FORMATS] + ["ct.zraw"])


def test_segment_overwrite_on_a_full_disk_fails_in_one_line_and_keeps_the_previous_result(tmp_path: Path):
    out = tmp_path / "out.nii.gz"
    write_image_atomic(sitk.GetImageFromArray(np.ones((2, 2, 2), np.uint8)), out)
    previous = out.read_bytes()
    result = segment("-m", str(BUNDLED_MODEL), "-i", str(REALCT_IMAGE), "-o", str(out), "--overwrite",
                     "--progress", "jsonl", limit=1024)
    assert one_error_line(result) == f"dcaseg segment: error: cannot write {out}: File too large"
    assert json.loads(result.stdout.splitlines()[-1])["event"] == "error"
    assert out.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]


SAVE_CHECKPOINT = """
import sys, torch
from dcaseg.errors import InputError
from dcaseg.training.checkpoint import save_checkpoint
network = torch.nn.Linear(64, 64)
try:
    save_checkpoint(sys.argv[1], network=network, optimizer=torch.optim.SGD(network.parameters(), lr=0.1),
                    scaler=None, iteration=7)
except InputError as error:
    print(error)
"""


def test_a_checkpoint_on_a_full_disk_is_a_one_line_error_and_the_last_one_survives(tmp_path: Path):
    last = tmp_path / "last.pt"
    small = torch.nn.Linear(2, 2)
    save_checkpoint(last, network=small, optimizer=torch.optim.SGD(small.parameters(), lr=0.1), scaler=None,
                    iteration=1)
    result = python(SAVE_CHECKPOINT, str(last), limit=8000)
    assert result.stdout.strip() == f"cannot write {last}: File too large", result.stderr
    assert load_checkpoint(last)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_training_that_fails_records_the_error_event_in_its_run(tmp_path: Path):
    data = tmp_path / "data"
    copy_ct(data / "images", "a.nii.gz")
    (data / "labels").mkdir()
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "dcaseg", "train", str(data), "--run", str(run), "--progress",
                             "none"], capture_output=True, text=True)
    assert one_error_line(result) == f"dcaseg train: error: no labeled cases in {data}"
    last = json.loads((run / "events.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert last["event"] == "error" and last["message"] == f"no labeled cases in {data}"


# ----------------------------------------------------------------------------- outputs never alias inputs
# The refusals come before the model is loaded; ``dcaseg.cli.main`` runs them in this process (one torch import).

def segment_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[dict]]:
    """``dcaseg segment ARGS --progress jsonl`` in this process: exit status, stderr, stdout events."""
    status = main(["segment", *args, "--progress", "jsonl"])
    captured = capsys.readouterr()
    return status, captured.err, [json.loads(line) for line in captured.out.splitlines()]


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one error line of a refused ``dcaseg segment`` (exit 2, an ``error`` event last)."""
    status, stderr, events = segment_here(capsys, *args)
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1 and events[-1]["event"] == "error", stderr
    return lines[0]


@pytest.mark.parametrize("overwrite", [False, True])
def test_segment_refuses_to_write_over_its_input_ct_in_any_spelling(capsys, monkeypatch, tmp_path: Path,
                                                                     overwrite: bool):
    ct = copy_ct(tmp_path / "a")
    original = ct.read_bytes()
    os.link(ct, tmp_path / "hardlink.nii.gz")
    (tmp_path / "symlink.nii.gz").symlink_to(ct)
    monkeypatch.chdir(ct.parent)
    flags = ["--overwrite"] if overwrite else []
    for output in (str(ct), f"{tmp_path}/a/../a/ct.nii.gz", "./ct.nii.gz", str(tmp_path / "hardlink.nii.gz"),
                   str(tmp_path / "symlink.nii.gz")):
        line = refused(capsys, "-m", str(BUNDLED_MODEL), "-i", str(ct), "-o", output, *flags)
        assert line.startswith(f"dcaseg segment: error: {Path(output)}: this output is the input {ct}"), line
    assert ct.read_bytes() == original
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["ct.nii.gz"]


def test_segment_refuses_an_output_inside_the_input_dicom_series_or_the_model(capsys, tiny_model: Path,
                                                                              tmp_path: Path):
    series = tmp_path / "series"
    write_dicom_series(series, 4)
    files = {p.name: p.read_bytes() for p in series.iterdir()}
    line = refused(capsys, "-m", str(tiny_model), "-i", str(series), "-o", str(series / "seg.nii.gz"), "--overwrite")
    assert f"{series / 'seg.nii.gz'}: this output lies inside the input folder {series}" in line
    assert {p.name: p.read_bytes() for p in series.iterdir()} == files
    model_files = sorted(p.name for p in tiny_model.iterdir())
    line = refused(capsys, "-m", str(tiny_model), "-i", str(REALCT_IMAGE), "-o", str(tiny_model / "seg.nii.gz"))
    assert f"lies inside the input folder {tiny_model}" in line
    assert sorted(p.name for p in tiny_model.iterdir()) == model_files


@pytest.mark.parametrize("overwrite", [False, True])
def test_folder_segment_refuses_the_input_folder_as_output(capsys, tmp_path: Path, overwrite: bool):
    cases = tmp_path / "cases"
    ct = copy_ct(cases)
    original = ct.read_bytes()
    for output in (cases, tmp_path / "other" / ".." / "cases"):
        line = refused(capsys, "-m", str(BUNDLED_MODEL), "-i", str(cases), "-o", str(output),
                       *(["--overwrite"] if overwrite else []))
        assert f"{output}: the output folder is the input folder {cases}" in line
    assert ct.read_bytes() == original and [p.name for p in cases.iterdir()] == ["ct.nii.gz"]


def test_folder_segment_leaves_out_the_entry_holding_a_nested_output_folder(capsys, tiny_model: Path,
                                                                            tmp_path: Path):
    cases = tmp_path / "cases"
    cases.mkdir()
    ct = cases / "ct.nii.gz"
    sitk.WriteImage(small_ct(), str(ct))
    original = ct.read_bytes()
    out = cases / "seg"
    out.mkdir()
    status, stderr, events = segment_here(capsys, "-m", str(tiny_model), "-i", str(cases), "-o", str(out),
                                          "--overwrite", "--device", "cpu")
    assert status == 0, stderr
    warnings_seen = [e["message"] for e in events if e["event"] == "warning"]
    assert f"{out}: left out, it holds the output folder {out}" in warnings_seen
    assert events[-1]["summary"] == {"done": 1, "skipped": 0, "failed": 0}
    assert ct.read_bytes() == original
    assert sorted(p.name for p in out.iterdir()) == ["ct.nii.gz"]


def test_an_empty_shard_is_a_one_line_error(capsys, tmp_path: Path):
    copy_ct(tmp_path / "cases")
    line = refused(capsys, "-m", str(BUNDLED_MODEL), "-i", str(tmp_path / "cases"), "-o", str(tmp_path / "out"),
                   "--shard", "")
    assert line == "dcaseg segment: error: --shard '': use I/N, e.g. 0/4"
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- signals

def start_segment(out: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dcaseg", "segment", "-m", str(BUNDLED_MODEL), "-i",
                             str(REALCT_IMAGE), "-o", str(out / "ct.nii.gz"), "--attention", *flags,
                             "--device", "cpu", "--progress", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def terminate_at(process: subprocess.Popen, wanted) -> list[dict]:
    """Send SIGTERM once an event satisfies ``wanted``; return every event read."""
    events = []
    for line in process.stdout:
        events.append(json.loads(line))
        if wanted(events[-1]):
            process.send_signal(signal.SIGTERM)
            break
    events += [json.loads(line) for line in process.stdout]
    process.wait()
    return events


def test_sigterm_during_segmentation_stops_it_with_nothing_written(tmp_path: Path):
    process = start_segment(tmp_path)
    events = terminate_at(process, lambda e: e["event"] == "progress")
    assert process.returncode == 143
    assert process.stderr.read().strip() == "dcaseg segment: terminated"
    assert "done" not in [e["event"] for e in events]
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_writing_leaves_all_of_a_case_or_none_of_it(tmp_path: Path):
    process = start_segment(tmp_path, "--probabilities")
    events = terminate_at(process, lambda e: e.get("stage") == "writing")
    names = sorted(p.name for p in tmp_path.iterdir())
    if process.returncode == 0:  # the signal came after the last rename
        assert events[-1]["event"] == "done" and len(names) == 5
    else:
        assert process.returncode == 143 and names == []


# ----------------------------------------------------------------------------- leftovers of killed writers

KILLED_WHILE_WRITING = """
import os, signal, sys
import numpy as np, SimpleITK as sitk
from dcaseg.atomic import atomic_write
from dcaseg.cli import main
from dcaseg.stale_temps import temp_prefix
folder = sys.argv[1]
sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.int16)), f"{folder}/{temp_prefix('tsA')}a1b2c3d4.nii.gz")
with atomic_write(f"{folder}/last.pt", binary=True) as stream:
    stream.write(b"half a checkpoint")
    stream.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("next_writer", ["image", "checkpoint"])
def test_temporary_files_of_killed_writers_are_removed_by_the_next_write(tmp_path: Path, next_writer: str):
    killed = python(KILLED_WHILE_WRITING, str(tmp_path))
    assert killed.returncode == -signal.SIGKILL
    leftovers = sorted(tmp_path.iterdir())
    assert [p.name.split(".tmp-")[0] for p in leftovers] == [".last.pt", ".tsA"]
    stale = time.time() - DEAD_WRITER_GRACE_S - 1
    for path in leftovers:
        os.utime(path, (stale, stale))
    if next_writer == "image":
        write_image_atomic(noise_image((2, 2, 2)), tmp_path / "tsA.nii.gz")
    else:
        network = torch.nn.Linear(2, 2)
        save_checkpoint(tmp_path / "last.pt", network=network, optimizer=torch.optim.SGD(network.parameters(), lr=0.1),
                        scaler=None, iteration=3)
    assert [p.name for p in tmp_path.iterdir()] == ["tsA.nii.gz" if next_writer == "image" else "last.pt"]


def test_only_temporary_files_whose_writer_is_gone_count_as_stale(tmp_path: Path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(finished.stdout), os.getppid()
    names = {"dead": f".a.nii.gz.tmp-{dead_pid}-x1.tmp", "live": f".b.tmp-{live_pid}-x2.nii.gz",
             "mine": f"{temp_prefix('c')}x3.tmp", "user": ".c.tmp-notes.txt"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"")
    now = time.time()
    assert remove_stale_temps(tmp_path, now=now) == []  # a fresh file may be a writer elsewhere
    assert remove_stale_temps(tmp_path, now=now + DEAD_WRITER_GRACE_S + 1) == [tmp_path / names["dead"]]
    assert remove_stale_temps(tmp_path, now=now + ABANDONED_AFTER_S + 1) == [tmp_path / names["live"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["mine"], names["user"]])


def test_an_interrupt_after_the_temporary_file_is_written_removes_it(tmp_path: Path):
    target = tmp_path / "labels.nii.gz"
    write_image_atomic(noise_image((2, 2, 2)), target)
    previous = target.read_bytes()
    sheared = noise_image()
    sheared.SetDirection((1, 0.3, 0, 0, 1, 0, 0, 0, 1))

    def interrupt(*args) -> None:
        raise KeyboardInterrupt

    with warnings.catch_warnings(), pytest.raises(KeyboardInterrupt):
        warnings.simplefilter("always", GeometryWarning)
        warnings.showwarning = interrupt  # runs inside the writer, after its temporary file is complete
        write_image_atomic(sheared, target)
    assert target.read_bytes() == previous and [p.name for p in tmp_path.iterdir()] == ["labels.nii.gz"]
    with pytest.raises(RuntimeError), atomic_write(target, binary=True) as stream:
        stream.write(b"x")
        raise RuntimeError("not an OSError: stays itself")
    assert [p.name for p in tmp_path.iterdir()] == ["labels.nii.gz"]
