"""``dcaseg segment --format dicom-seg``: a DICOM SEG for a real CT series, read back with highdicom and pydicom."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_series import write_ct_series
from pydicom.uid import SegmentationStorage
from support import REALCT_IMAGE

from dcaseg import __version__
from dcaseg.data.imageio import read_image
from dcaseg.package import read_meta

DEMO_MODEL = Path(__file__).resolve().parents[1] / "DCASegmentation" / "Resources" / "Models" / \
    "dca-demo-synthetic-abdomen.zip"


def segment(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcaseg", "segment", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real CT fixture as a DICOM CT series folder (one file per slice)."""
    folder = tmp_path_factory.mktemp("ct") / "series"
    write_ct_series(read_image(REALCT_IMAGE), folder)
    return folder


@pytest.fixture(scope="module")
def demo_run(ct_series: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One run of the bundled model on the series: the DICOM SEG and the label map beside it."""
    out = tmp_path_factory.mktemp("dicom-seg") / "case.dcm"
    result = segment("-m", DEMO_MODEL, "-i", ct_series, "-o", out, "--format", "dicom-seg,labelmap",
                     "--progress", "jsonl")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout.splitlines()[-1])
    assert done["outputs"] == {"dicom_seg": str(out), "labels": str(out.parent / "case.nii.gz")}
    return done["outputs"]


def read_sources(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(folder.iterdir())]


def test_seg_references_the_source_series_in_its_frame_of_reference(ct_series, demo_run):
    sources = read_sources(ct_series)
    seg = highdicom.seg.segread(demo_run["dicom_seg"])
    first = sources[0]
    assert seg.SOPClassUID == SegmentationStorage and seg.Modality == "SEG"
    assert (seg.StudyInstanceUID, seg.PatientID, seg.FrameOfReferenceUID) == \
        (first.StudyInstanceUID, first.PatientID, first.FrameOfReferenceUID)
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID
    [referenced] = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == first.SeriesInstanceUID
    assert sorted(i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence) == \
        sorted(s.SOPInstanceUID for s in sources)


def test_every_segment_has_the_model_name_codes_colour_and_algorithm(demo_run):
    seg = highdicom.seg.segread(demo_run["dicom_seg"])
    found = [int(v) for v in np.unique(sitk.GetArrayFromImage(sitk.ReadImage(demo_run["labels"]))) if v]
    meta = read_meta(DEMO_MODEL)
    classes = {info.value: info for info in meta.classes}
    assert len(found) >= 3
    assert seg.get_segment_numbers() == list(range(1, len(found) + 1))
    for number, value in zip(seg.get_segment_numbers(), found):
        info, description = classes[value], seg.get_segment_description(number)
        assert description.segment_label == info.name
        for concept, code in ((description.segmented_property_category, info.snomed["category"]),
                              (description.segmented_property_type, info.snomed["type"])):
            assert (concept.scheme_designator, concept.value, concept.meaning) == \
                (code["scheme"], code["code"], code["meaning"])
        modifiers = description.SegmentedPropertyTypeCodeSequence[0].get("SegmentedPropertyTypeModifierCodeSequence")
        if "modifier" in info.snomed:
            assert [(m.CodingSchemeDesignator, m.CodeValue, m.CodeMeaning) for m in modifiers] == \
                [tuple(info.snomed["modifier"][k] for k in ("scheme", "code", "meaning"))]
        else:
            assert modifiers is None
        assert description.algorithm_type == highdicom.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        [algorithm] = description.algorithm_identification
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("DCA", __version__)
        assert f"model={meta.name}" in algorithm.AlgorithmParameters
        rgb = highdicom.color.CIELabColor.from_dicom_value(description.RecommendedDisplayCIELabValue).to_rgb()
        assert np.abs(np.array(rgb, int) - info.color).max() <= 1


def test_each_segment_frame_equals_the_label_map_on_its_source_slice(ct_series, demo_run):
    """Decoded with pydicom alone: every frame's source image and segment, pixel for pixel."""
    labels = sitk.ReadImage(demo_run["labels"])
    label_slices = sitk.GetArrayFromImage(labels)
    expected = {}  # (source SOP instance UID, segment number) -> mask; a missing frame means an empty mask
    seg = pydicom.dcmread(demo_run["dicom_seg"])
    value_of = {info.name: info.value for info in read_meta(DEMO_MODEL).classes}
    values = {int(s.SegmentNumber): value_of[s.SegmentLabel] for s in seg.SegmentSequence}
    for source in read_sources(ct_series):
        k = labels.TransformPhysicalPointToIndex([float(v) for v in source.ImagePositionPatient])[2]
        for number, value in values.items():
            expected[source.SOPInstanceUID, number] = label_slices[k] == value
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    seen = set()
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        assert np.array_equal(frame.astype(bool), expected[uid, number]), (uid, number)
        seen.add((uid, number))
    assert all(not mask.any() for key, mask in expected.items() if key not in seen)
    assert seen  # frames were compared


def test_non_dicom_input_and_two_series_fail_before_any_work(ct_series, tmp_path):
    two_series = tmp_path / "two-series"
    two_series.mkdir()
    for path in sorted(ct_series.iterdir())[:4]:
        shutil.copy(path, two_series / path.name)
    write_ct_series(read_image(REALCT_IMAGE)[:, :, :4], two_series, series_number=3, prefix="CTB")
    cases = {"NIfTI input": (REALCT_IMAGE, "needs a DICOM series folder as input"),
             "two series": (two_series, "holds 2 DICOM series")}
    for what, (source, message) in cases.items():
        out_dir = tmp_path / f"out-{what.replace(' ', '-')}"
        result = segment("-m", DEMO_MODEL, "-i", source, "-o", out_dir / "case.dcm", "--format", "dicom-seg",
                         "--progress", "jsonl")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (what, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("dcaseg segment: error:") and message in lines[0], what
        assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == ["error"], what  # no work
        assert not out_dir.exists(), what
