"""One reader of class names: labels.json, MSD / nnU-Net v1 and nnU-Net v2 dataset.json, the same
one-line errors from ``dataset``, ``groups --names``, ``train`` and ``evaluate``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from training_helpers import small_phantom

from dcaseg.cli import main
from dcaseg.data.class_names import read_class_names
from dcaseg.data.phantom_anatomy import CLASS_NAMES
from dcaseg.errors import InputError
from dcaseg.package import load_package

MSD_LABELS = {"0": "background", **{str(v): n for v, n in CLASS_NAMES.items()}}
MALFORMED = {
    "region-based": ({"labels": {"background": 0, "kidneys": [2, 3], "liver": 6}},
                     "region-based labels are not supported ('kidneys': [2, 3])"),
    "mixed": ({"labels": {"0": "background", "1": "spleen", "liver": 6}},
              'mixes "value": "name" entries with "name": value entries'),
    "not JSON": ('{"labels": {"1": "spleen",}}', "not valid JSON"),
}


def write_json(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def msd_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An nnU-Net raw folder (3 cases, 2 labeled) whose dataset.json names the classes the MSD / v1 way."""
    root = tmp_path_factory.mktemp("msd")
    plain = small_phantom(root / "plain", cases=3, labeled=2)
    data = root / "Dataset009_Abdomen"
    (data / "imagesTr").mkdir(parents=True)
    (data / "labelsTr").mkdir()
    for image in sorted((plain / "images").glob("*.nii.gz")):
        case = image.name.removesuffix(".nii.gz")
        shutil.copy(image, data / "imagesTr" / f"{case}_0000.nii.gz")
        if (plain / "labels" / image.name).is_file():
            shutil.copy(plain / "labels" / image.name, data / "labelsTr" / image.name)
    write_json(data / "dataset.json", {"name": "Abdomen", "modality": {"0": "CT"}, "labels": MSD_LABELS,
                                       "numTraining": 2, "training": []})
    return data


def error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The message of the one-line CLI error that ``command`` just printed."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dcaseg {command}: error: "), lines
    return lines[0].removeprefix(f"dcaseg {command}: error: ")


def test_the_three_spellings_give_the_same_names(tmp_path: Path) -> None:
    names = {1: "spleen", 6: "liver"}
    plain = write_json(tmp_path / "labels.json", {"1": "spleen", "6": "liver"})
    msd = write_json(tmp_path / "msd.json", {"labels": {"0": "background", "1": "spleen", "6": "liver"}})
    v2 = write_json(tmp_path / "v2.json", {"labels": {"background": 0, "spleen": 1, "liver": 6}})
    assert read_class_names(plain) == read_class_names(msd) == read_class_names(v2) == names


@pytest.mark.parametrize("content, message", [
    ({"labels": {"background": 0, "kidneys": [2, 3]}}, "region-based labels are not supported"),
    ({"labels": {"background": 0, "kidney": [2]}, "regions_class_order": [2]}, "region-based labels"),
    ({"labels": {"liver": 1, "spleen": 1}}, "label value 1 is given to both 'liver' and 'spleen'"),
    ('{"1": "liver", "1": "spleen"}', "key '1' appears twice"),
    ({"1": "spleen", "x": "liver"}, "needs an integer label value as its key"),
    ({"labels": {"liver": True}}, "is neither"),
    ({"labels": {"liver": -1}}, "label value -1 of 'liver' is outside 0..65535"),
    ({"1": " "}, "label value 1 has an empty name"),
    ({"0": "background"}, "names no foreground class"),
    (["spleen"], "expected a JSON object"),
    ("[" * 100_000, "not valid JSON"),
])
def test_malformed_files_are_one_line_naming_the_file(tmp_path: Path, content: object, message: str) -> None:
    path = write_json(tmp_path / "labels.json", content)
    with pytest.raises(InputError) as raised:
        read_class_names(path)
    text = str(raised.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_an_msd_dataset_json_works_with_dataset_groups_train_and_evaluate(
        msd_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = dict(CLASS_NAMES)
    assert main(["dataset", str(msd_dataset), "--json"]) == 0
    scan = json.loads(capsys.readouterr().out)
    assert {int(v): n for v, n in scan["classes"].items()} == names and not scan["problems"]

    assert main(["groups", str(msd_dataset), "--names", str(msd_dataset / "dataset.json"), "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    assert sorted(groups["head"] + groups["medium"] + groups["tail"]) == sorted(names.values())

    labels = msd_dataset / "labelsTr"
    assert main(["evaluate", str(labels), str(labels), "--names", str(msd_dataset / "dataset.json"), "--json",
                 "--progress", "none"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores["organs"]) == set(names.values()) and scores["mean_dice"] == 1.0

    run = tmp_path / "run"
    assert main(["train", str(msd_dataset), "--run", str(run), "--preset", "tiny", "--iterations", "1",
                 "--validation-cases", "0", "--progress", "none"]) == 0
    assert load_package(run / "model").meta.class_names == names


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_dataset_json_gives_the_same_line_from_every_command(
        kind: str, msd_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(msd_dataset, data)
    content, message = MALFORMED[kind]
    names = write_json(data / "dataset.json", content)
    labels = data / "labelsTr"
    calls = {"dataset": ["dataset", str(data)],
             "groups": ["groups", str(labels), "--names", str(names)],
             "train": ["train", str(data), "--run", str(tmp_path / "run"), "--preset", "tiny", "--progress", "none"],
             "evaluate": ["evaluate", str(labels), str(labels), "--names", str(names), "--progress", "none"]}
    errors = set()
    for command, argv in calls.items():
        assert main(argv) == 2, command
        errors.add(error_line(capsys, command))
    assert len(errors) == 1
    error = errors.pop()
    assert error.startswith(f"{names}: ") and message in error


def test_duplicate_class_names_are_a_dataset_problem_and_refused_by_train(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = small_phantom(tmp_path / "data", cases=3, labeled=2)
    names = {str(v): n for v, n in CLASS_NAMES.items()}
    names["13"] = names["12"]
    labels_json = write_json(data / "labels.json", names)
    problem = (f"{labels_json}: class name {names['12']!r} is used for labels 12 and 13; "
               "give each class its own name")

    assert main(["dataset", str(data)]) == 1
    assert f"problem: {problem}" in capsys.readouterr().out.splitlines()
    assert main(["train", str(data), "--run", str(tmp_path / "run"), "--preset", "tiny", "--progress", "none"]) == 2
    assert error_line(capsys, "train") == f"1 problem in {data} (`dcaseg dataset {data}` lists them): {problem}"
    for command, argv in {"groups": ["groups", str(data), "--names", str(labels_json)],
                          "evaluate": ["evaluate", str(data / "labels"), str(data / "labels"),
                                       "--names", str(labels_json)]}.items():
        assert main(argv) == 2
        assert error_line(capsys, command) == problem
