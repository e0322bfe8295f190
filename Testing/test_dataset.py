"""Dataset folder scan (nnU-Net v2 and plain layouts) and image I/O, on real files."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dcaseg.data.dataset import load_class_names, require_trainable, scan_dataset
from dcaseg.data.imageio import read_header, read_image, write_image_atomic
from dcaseg.data.phantom import make_phantom
from dcaseg.errors import InputError

REALCT = Path(__file__).parent / "Data" / "realct"
REPO = Path(__file__).resolve().parents[1]
TSA, TSB = "tsA_ct_sm_noncontrast", "tsB_ct_full_noncontrast"
NAMES = {int(k): v for k, v in json.loads((REALCT / "labelmap_abd14.json").read_text(encoding="utf-8")).items()}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ds") / "phantom"
    make_phantom(root, cases=4, labeled=2, seed=1)
    return root


def dataset_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcaseg", "dataset", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_scan_phantom_folder(phantom):
    scan = scan_dataset(phantom)
    assert scan.layout == "plain" and not scan.problems
    assert [c.case_id for c in scan.labeled_cases] == ["phantom_000", "phantom_001"]
    assert [c.case_id for c in scan.unlabeled_cases] == ["phantom_002", "phantom_003"]
    assert scan.classes == {v: n for v, n in NAMES.items() if v <= 13}
    assert scan.infos["phantom_000"].organs == list(range(1, 14))
    assert scan.infos["phantom_002"].organs is None and not scan.infos["phantom_002"].labeled
    assert scan.infos["phantom_001"].size == (96, 96, 50) and scan.infos["phantom_001"].spacing == (3.0, 3.0, 4.0)
    require_trainable(scan)
    quick = scan_dataset(phantom, inspect=False)
    assert quick.infos == {} and quick.classes == scan.classes and len(quick.labeled_cases) == 2


def test_scan_nnunet_layout_from_the_real_fixture(tmp_path):
    root = tmp_path / "Dataset001_Abdomen"
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (root / folder).mkdir(parents=True)
    for case, name in (("tsA", TSA), ("tsB", TSB)):
        shutil.copy(REALCT / f"{name}_image.nii.gz", root / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copy(REALCT / f"{name}_label.nii.gz", root / "labelsTr" / f"{case}.nii.gz")
    shutil.copy(REALCT / f"{TSA}_image.nii.gz", root / "imagesTs" / "extra_0000.nii.gz")
    labels = {"background": 0, **{name: value for value, name in NAMES.items()}}
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": labels,
                                                   "numTraining": 2, "file_ending": ".nii.gz"}))
    scan = scan_dataset(root)
    assert scan.layout == "nnunet" and not scan.problems
    assert scan.classes == NAMES
    assert [c.case_id for c in scan.labeled_cases] == ["tsA", "tsB"]
    assert [c.case_id for c in scan.unlabeled_cases] == ["extra"]
    assert scan.infos["tsA"].organs == [v for v in range(1, 15) if v != 5]  # no esophagus in this patient
    assert scan.infos["tsB"].size == (122, 101, 112)
    assert load_class_names(root) == NAMES
    done = dataset_cli(str(root))
    assert done.returncode == 0, done.stderr
    assert "nnunet layout" in done.stdout and "122x101x30" in done.stdout and "adrenal_gland_left" in done.stdout


def test_nnunet_naming_problems_and_region_labels(tmp_path):
    root = tmp_path / "Dataset002"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    image = REALCT / f"{TSA}_image.nii.gz"
    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "noindex.nii.gz"):
        shutil.copy(image, root / "imagesTr" / name)
    shutil.copy(REALCT / f"{TSA}_label.nii.gz", root / "labelsTr" / "ghost.nii.gz")
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 6}}))
    scan = scan_dataset(root, inspect=False)
    assert sorted(str(p) for p in scan.problems) == sorted([
        f"{root / 'imagesTr' / 'a_0001.nii.gz'}: extra input channel (only single-channel CT is supported)",
        f"{root / 'imagesTr' / 'noindex.nii.gz'}: not named <case>_0000.nii.gz",
        f"{root / 'labelsTr' / 'ghost.nii.gz'}: label without an image (no case 'ghost')"])
    assert [c.case_id for c in scan.unlabeled_cases] == ["b"] and scan.classes == {6: "liver"}
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "kidneys": [2, 3]}}))
    with pytest.raises(InputError, match="region-based labels are not supported"):
        scan_dataset(root)


def test_broken_cases_are_reported_and_the_rest_still_listed(phantom, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(phantom, root)
    images, labels = root / "images", root / "labels"
    spacing = read_image(labels / "phantom_000.nii.gz")
    spacing.SetSpacing((3.0, 3.0, 5.0))
    write_image_atomic(spacing, labels / "phantom_000.nii.gz")
    origin = read_image(labels / "phantom_001.nii.gz")
    origin.SetOrigin(tuple(v + 2.0 for v in origin.GetOrigin()))
    write_image_atomic(origin, labels / "phantom_001.nii.gz")
    shutil.copy(images / "phantom_002.nii.gz", images / "value99.nii.gz")
    ninety_nine = read_image(labels / "phantom_000.nii.gz")
    ninety_nine.CopyInformation(read_image(images / "value99.nii.gz"))
    ninety_nine[10, 10, 10] = 99
    write_image_atomic(ninety_nine, labels / "value99.nii.gz")
    data = (images / "phantom_003.nii.gz").read_bytes()
    (images / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 30), np.int16)), str(images / "flat.nii.gz"))
    (images / "empty.nii.gz").write_bytes(b"")

    scan = scan_dataset(root)
    found = {p.path.name if p.path.parent == images else f"labels/{p.path.name}": p for p in scan.problems}
    assert set(found) == {"labels/phantom_000.nii.gz", "labels/phantom_001.nii.gz", "labels/value99.nii.gz",
                          "truncated.nii.gz", "flat.nii.gz", "empty.nii.gz"}
    assert "spacing (3, 3, 5)" in found["labels/phantom_000.nii.gz"].message
    assert "origin" in found["labels/phantom_001.nii.gz"].message
    assert "99" in found["labels/value99.nii.gz"].message
    assert "truncated" in found["truncated.nii.gz"].message
    assert "3-D" in found["flat.nii.gz"].message
    assert "empty file" in found["empty.nii.gz"].message
    for problem in scan.problems:
        assert str(problem).startswith(f"{problem.path}: ") and "\n" not in str(problem)
        assert problem.case_id == problem.path.name.removesuffix(".nii.gz")
    assert [c.case_id for c in scan.cases] == sorted(["phantom_000", "phantom_001", "phantom_002", "phantom_003",
                                                      "value99", "truncated", "flat", "empty"])
    assert scan.labeled_cases == []
    assert [c.case_id for c in scan.unlabeled_cases] == ["phantom_002", "phantom_003"]
    with pytest.raises(InputError) as refused:
        require_trainable(scan)
    assert str(refused.value).startswith(f"6 problems in {root} (`dcaseg dataset {root}` lists them): ")
    assert str(refused.value).endswith("; and 1 more") and sum(str(p) in str(refused.value) for p in scan.problems) == 5

    done = dataset_cli(str(root))
    assert done.returncode == 1
    problem_lines = [line for line in done.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problem_lines) == 6 and any(str(images / "empty.nii.gz") in line for line in problem_lines)
    assert "phantom_003" in done.stdout
    report = json.loads(dataset_cli(str(root), "--json").stdout)
    assert len(report["problems"]) == 6
    assert {c["case_id"] for c in report["cases"] if c["usable"]} == {"phantom_002", "phantom_003"}


def test_folder_level_errors(phantom, tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        scan_dataset(tmp_path / "missing")
    with pytest.raises(InputError, match="not a dataset folder"):
        scan_dataset(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="no images found"):
        scan_dataset(tmp_path)
    unlabeled = tmp_path / "unlabeled"
    shutil.copytree(phantom / "images", unlabeled / "images")
    with pytest.raises(InputError, match=f"^no labeled cases in {unlabeled}$"):
        require_trainable(scan_dataset(unlabeled))
    done = dataset_cli(str(tmp_path / "missing"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no such folder" in done.stderr


def test_class_names_without_json_and_stray_files(phantom, tmp_path):
    root = tmp_path / "nojson"
    shutil.copytree(phantom, root)
    (root / "labels.json").unlink()
    assert load_class_names(root) == {v: f"class_{v}" for v in range(1, 14)}
    assert scan_dataset(root).classes == {v: f"class_{v}" for v in range(1, 14)}
    (root / "images" / "notes.txt").write_text("scanner protocol")
    shutil.copy(root / "labels" / "phantom_000.nii.gz", root / "labels" / "orphan.nii.gz")
    scan = scan_dataset(root, inspect=False)
    assert sorted(str(p) for p in scan.problems) == sorted([
        f"{root / 'images' / 'notes.txt'}: not a recognised image file (.nii.gz, .nii, .nrrd, .mha, .mhd)",
        f"{root / 'labels' / 'orphan.nii.gz'}: label without an image (no case 'orphan')"])
    assert len(scan.labeled_cases) == 2


def test_read_image_errors_name_the_file(tmp_path):
    (tmp_path / "empty.nrrd").write_bytes(b"")
    (tmp_path / "text.mha").write_text("not an image")
    sitk.WriteImage(sitk.JoinSeries([sitk.Image(4, 4, 4, sitk.sitkInt16)] * 2), str(tmp_path / "four.nii.gz"))
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkVectorUInt8, 3), str(tmp_path / "rgb.nrrd"))
    expected = {"missing.nii.gz": "no such file", "empty.nrrd": "empty file", "text.mha": "not a readable image",
                "four.nii.gz": "got a 4-D image", "rgb.nrrd": "3 components"}
    for name, words in expected.items():
        for reader in (read_image, read_header):
            with pytest.raises(InputError) as error:
                reader(tmp_path / name)
            assert str(error.value).startswith(f"{tmp_path / name}: ") and words in str(error.value)
            assert "\n" not in str(error.value)


def test_header_matches_image_and_formats_round_trip(tmp_path):
    image = read_image(REALCT / f"{TSA}_image.nii.gz")
    header = read_header(REALCT / f"{TSA}_image.nii.gz")
    assert header.size == image.GetSize() and header.spacing == image.GetSpacing()
    assert header.origin == image.GetOrigin() and header.direction == image.GetDirection()
    assert header.pixel_type == "16-bit signed integer" and header.components == 1
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha"):
        target = tmp_path / f"case{ext}"
        write_image_atomic(image, target)
        again = read_image(target)
        assert np.array_equal(sitk.GetArrayViewFromImage(again), sitk.GetArrayViewFromImage(image))
        assert np.allclose(again.GetOrigin(), image.GetOrigin(), atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.mha", "case.nii", "case.nii.gz", "case.nrrd"]


def test_write_image_atomic_failures_leave_nothing_behind(tmp_path):
    image = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"^cannot write .*file/out\.nii\.gz: "):
        write_image_atomic(image, tmp_path / "file" / "out.nii.gz")
    with pytest.raises(InputError, match="unsupported extension"):
        write_image_atomic(image, tmp_path / "out.png")
    (tmp_path / "taken.nii.gz").mkdir()  # the final rename fails
    with pytest.raises(InputError, match=r"^cannot write .*taken\.nii\.gz: "):
        write_image_atomic(image, tmp_path / "taken.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken.nii.gz"]


def test_read_dicom_series_folder(tmp_path):
    voxels = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(4):
        slice_ = sitk.GetImageFromArray(voxels[k])
        slice_.SetSpacing((0.7, 0.7))
        for tag, value in (("0008|0060", "CT"), ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
                           ("0020|000e", "1.2.826.0.1.3680043.2.1125.2"), ("0020|0013", str(k)),
                           ("0020|0032", f"0\\0\\{2.5 * k}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0008|0018", f"1.2.826.0.1.3680043.2.1125.3.{k}")):
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(tmp_path / f"slice{k}.dcm"))
        writer.Execute(slice_)
    image = read_image(tmp_path)
    assert image.GetSize() == (6, 5, 4)
    assert np.allclose(image.GetSpacing(), (0.7, 0.7, 2.5))
    assert np.array_equal(sitk.GetArrayViewFromImage(image), voxels)
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(tmp_path / "..")
