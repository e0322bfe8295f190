"""``dcaseg prepare``: fake official downloads (real NIfTI files, official names) -> dataset folders."""
from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dcaseg.errors import InputError
from dcaseg.prepare import prepare_amos, prepare_synapse
from dcaseg.prepare.splits import AMOS_5P_LABELED, AMOS_5P_VALIDATION, AMOS_ORGANS, SYNAPSE_ORGANS

BTCV_SCANS = list(range(1, 11)) + list(range(21, 41))
# The published lists, copied from the split files (DHC synapse_data/splits, GenericSSL split_txts).
DHC_LABELED = ["synapse_0002", "synapse_0023", "synapse_0034", "synapse_0039"]
DHC_UNLABELED = [f"synapse_{n:04d}" for n in (1, 3, 5, 8, 9, 21, 22, 24, 27, 28, 29, 30, 31, 32, 37, 38)]
DHC_TEST = [f"synapse_{n:04d}" for n in (4, 7, 10, 33, 35, 36)]
GA_LABELED = ["synapse_0009", "synapse_0021", "synapse_0025", "synapse_0034"]
GA_UNLABELED = [f"synapse_{n:04d}" for n in (2, 3, 4, 5, 6, 10, 22, 24, 26, 28, 31, 32, 35, 36, 38, 40)]
GA_TEST = [f"synapse_{n:04d}" for n in (8, 27, 29, 33, 37, 39)]


def write_volume(path: Path, seed: int, max_label: int | None = None, size: int = 16) -> None:
    rng = np.random.default_rng(seed)
    if max_label is None:
        array = rng.integers(-1000, 1000, (size, size, size), dtype=np.int16)
    else:
        array = rng.integers(0, max_label + 1, (size, size, size), dtype=np.uint8)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 2.5))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def fake_btcv(root: Path, nested: bool = True) -> Path:
    """BTCV RawData: Training/img/img0001.nii.gz + Training/label/label0001.nii.gz (+ unlabeled Testing)."""
    training = root / "RawData" / "Training" if nested else root
    for scan in BTCV_SCANS:
        write_volume(training / "img" / f"img{scan:04d}.nii.gz", scan)
        write_volume(training / "label" / f"label{scan:04d}.nii.gz", 100 + scan, max_label=13)
    if nested:
        write_volume(root / "RawData" / "Testing" / "img" / "img0061.nii.gz", 61)
    return root


def fake_amos(root: Path, extra_train=("amos_0001", "amos_0004", "amos_0507"),
              validation_release=("amos_0008", "amos_0013", "amos_0544")) -> Path:
    """AMOS22: imagesTr/labelsTr (the split's 34 cases + a few more), imagesVa/labelsVa, dataset.json."""
    for number, case in enumerate(AMOS_5P_LABELED + AMOS_5P_VALIDATION + tuple(extra_train)):
        write_volume(root / "imagesTr" / f"{case}.nii.gz", number)
        write_volume(root / "labelsTr" / f"{case}.nii.gz", 500 + number, max_label=15)
    for number, case in enumerate(validation_release):
        write_volume(root / "imagesVa" / f"{case}.nii.gz", 900 + number)
        write_volume(root / "labelsVa" / f"{case}.nii.gz", 950 + number, max_label=15)
    labels = {"0": "background", **{str(v): name for v, name in enumerate(AMOS_ORGANS, 1)}}
    (root / "dataset.json").write_text(json.dumps({"name": "AMOS", "labels": labels}))
    return root


def names_in(folder: Path) -> list[str]:
    return sorted(p.name.removesuffix(".nii.gz") for p in folder.iterdir())


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcaseg", "prepare", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def btcv(tmp_path_factory) -> Path:
    return fake_btcv(tmp_path_factory.mktemp("btcv"))


def test_synapse_default_is_dhc_split_with_labels_where_the_split_allows(btcv, tmp_path):
    out = tmp_path / "synapse"
    split = prepare_synapse(btcv, out)
    saved = json.loads((out / "split.json").read_text(encoding="utf-8"))
    assert saved == split
    assert saved["labeled"] == DHC_LABELED
    assert saved["unlabeled"] == DHC_UNLABELED
    assert saved["validation"] == ["synapse_0006", "synapse_0025", "synapse_0026", "synapse_0040"]
    assert saved["test"] == DHC_TEST
    assert saved["source"] == "synapse-20p-dhc" and saved["test_set"] == "dhc"
    assert saved["test_sets"] == {"dhc": DHC_TEST, "ga": GA_TEST}
    training_pool = sorted(saved["labeled"] + saved["unlabeled"] + saved["validation"])
    assert names_in(out / "images") == training_pool
    assert names_in(out / "labels") == sorted(saved["labeled"] + saved["validation"])
    assert names_in(out / "labels_heldout") == DHC_UNLABELED
    assert names_in(out / "test" / "images") == names_in(out / "test" / "labels") == DHC_TEST
    labels = json.loads((out / "labels.json").read_text(encoding="utf-8"))
    assert labels == {str(v): name for v, name in enumerate(SYNAPSE_ORGANS, 1)}
    assert labels["5"] == "esophagus" and labels["13"] == "adrenal_gland_left" and len(labels) == 13
    raw = btcv / "RawData" / "Training"
    assert filecmp.cmp(raw / "img" / "img0002.nii.gz", out / "images" / "synapse_0002.nii.gz", shallow=False)
    assert filecmp.cmp(raw / "label" / "label0033.nii.gz", out / "test" / "labels" / "synapse_0033.nii.gz",
                       shallow=False)
    assert not list(tmp_path.glob(".synapse.partial-*"))


def test_synapse_cli_ga_split_from_flat_folders(tmp_path):
    raw = fake_btcv(tmp_path / "raw", nested=False)
    out = tmp_path / "ga"
    result = run_cli("synapse", str(raw), str(out), "--test-set", "ga", "--progress", "none")
    assert result.returncode == 0, result.stderr
    assert "4 labeled, 16 unlabeled, 4 validation, 6 test" in result.stdout
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    assert split["labeled"] == GA_LABELED
    assert split["unlabeled"] == GA_UNLABELED
    assert split["validation"] == ["synapse_0001", "synapse_0007", "synapse_0023", "synapse_0030"]
    assert split["test"] == GA_TEST and split["source"] == "synapse-20p-ga"
    assert names_in(out / "labels") == sorted(GA_LABELED + split["validation"])


def test_synapse_refuses_incomplete_download_in_one_line(btcv, tmp_path):
    raw = tmp_path / "raw"
    training = raw / "RawData" / "Training"
    for kind in ("img", "label"):
        (training / kind).mkdir(parents=True)
        for file in (btcv / "RawData" / "Training" / kind).iterdir():
            (training / kind / file.name).symlink_to(file)
    (training / "label" / "label0007.nii.gz").unlink()
    result = run_cli("synapse", str(raw), str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "1 of the 60 BTCV training files are missing: label0007.nii.gz" in result.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="no BTCV training folders"):
        prepare_synapse(tmp_path, tmp_path / "out2")


def test_synapse_refuses_label_of_other_size(btcv, tmp_path):
    raw = tmp_path / "raw"
    for kind in ("img", "label"):
        (raw / kind).mkdir(parents=True)
        for file in (btcv / "RawData" / "Training" / kind).iterdir():
            (raw / kind / file.name).symlink_to(file)
    (raw / "label" / "label0021.nii.gz").unlink()
    write_volume(raw / "label" / "label0021.nii.gz", 1, max_label=13, size=12)
    with pytest.raises(InputError, match=r"label0021.nii.gz: size \(12, 12, 12\) differs"):
        prepare_synapse(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_existing_output_is_kept_unless_overwrite_and_then_backed_up(btcv, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli("synapse", str(btcv), str(out), "--progress", "none")
    assert result.returncode == 2 and "is not empty; pass --overwrite" in result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    result = run_cli("synapse", str(btcv), str(out), "--overwrite", "--progress", "none")
    assert result.returncode == 0, result.stderr
    assert (out / "split.json").is_file()
    backups = list(tmp_path.glob("data.previous-*"))
    assert len(backups) == 1 and (backups[0] / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_amos_five_percent_split(tmp_path):
    raw = fake_amos(tmp_path / "amos22")
    out = tmp_path / "amos"
    result = run_cli("amos", str(raw), str(out), "--progress", "none")
    assert result.returncode == 0, result.stderr
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    assert split["labeled"] == ["amos_0078", "amos_0158", "amos_0170", "amos_0192", "amos_0391",
                                "amos_0396", "amos_0410", "amos_0514", "amos_0548", "amos_0578"]
    assert split["validation"] == list(AMOS_5P_VALIDATION) and len(split["validation"]) == 24
    assert split["unlabeled"] == ["amos_0001", "amos_0004", "amos_0507"]
    assert split["test"] == ["amos_0008", "amos_0013", "amos_0544"]
    assert split["source"] == "amos-5p-dhc"
    assert names_in(out / "labels") == sorted(AMOS_5P_LABELED + AMOS_5P_VALIDATION)
    assert names_in(out / "labels_heldout") == split["unlabeled"]
    assert names_in(out / "test" / "labels") == split["test"]
    labels = json.loads((out / "labels.json").read_text(encoding="utf-8"))
    assert len(labels) == 15 and labels["13"] == "duodenum" and labels["15"] == "prostate_uterus"


def test_amos_refusals_name_what_is_missing(tmp_path):
    raw = fake_amos(tmp_path / "amos22", extra_train=(), validation_release=("amos_0008",))
    (raw / "labelsVa" / "amos_0008.nii.gz").rename(tmp_path / "moved.nii.gz")
    with pytest.raises(InputError, match="amos_0008 of the test set has no label file"):
        prepare_amos(raw, tmp_path / "out")
    (raw / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "spleen"}}))
    with pytest.raises(InputError, match="lists 1 foreground labels; AMOS22 has 15"):
        prepare_amos(raw, tmp_path / "out")
    (raw / "dataset.json").unlink()
    (raw / "imagesTr" / "amos_0410.nii.gz").unlink()
    with pytest.raises(InputError, match="missing: amos_0410"):
        prepare_amos(raw, tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("amos", str(empty), str(tmp_path / "out"))
    assert result.returncode == 2
    assert "missing folder(s) imagesTr, labelsTr, imagesVa, labelsVa" in result.stderr
    assert not (tmp_path / "out").exists()


def test_trainer_reads_exactly_the_published_split_from_the_prepared_folder(btcv, tmp_path):
    """The dataset scanner and the trainer's split resolution see 4 labeled / 16 unlabeled / 4 val."""
    from dcaseg.data.dataset import scan_dataset
    from dcaseg.training.run_folder import resolve_split

    out = tmp_path / "synapse"
    published = prepare_synapse(btcv, out)
    scan = scan_dataset(out, inspect=False)
    labeled = sorted(case.case_id for case in scan.cases if case.label is not None)
    unlabeled = sorted(case.case_id for case in scan.cases if case.label is None)
    split, notes = resolve_split(labeled, unlabeled, published, None, seed=0)
    assert split == {"labeled": DHC_LABELED, "unlabeled": DHC_UNLABELED,
                     "validation": published["validation"]}
    assert notes == []
    assert scan.classes[1] == "spleen" and scan.classes[13] == "adrenal_gland_left"
