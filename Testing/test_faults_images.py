"""Images that would give silently wrong results: NIfTI pixdim 0, a DICOM series with a corrupt or
missing slice, and a sheared direction matrix that the output format cannot hold."""
from __future__ import annotations

import gzip
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from tiny_series import write_dicom_series

from dcaseg.cli import main
from dcaseg.data.imageio import GeometryWarning, read_header, read_image, write_image_atomic
from dcaseg.errors import InputError

PIXDIM_X = 80  # byte offset of pixdim[1] in a NIfTI-1 header


def nifti_with_pixdim_x(path: Path, value: float) -> Path:
    """A valid 3-D NIfTI whose header says ``value`` for the x spacing (pixdim[1])."""
    plain = path.with_name("plain.nii")
    image = sitk.GetImageFromArray(np.zeros((6, 7, 8), np.int16))
    image.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(image, str(plain))
    data = bytearray(plain.read_bytes())
    plain.unlink()
    data[PIXDIM_X:PIXDIM_X + 4] = struct.pack("<f", value)
    path.write_bytes(gzip.compress(bytes(data)) if path.name.endswith(".gz") else bytes(data))
    return path


@pytest.mark.parametrize("value", [0.0, float("nan")])
@pytest.mark.parametrize("name", ["ct.nii", "ct.nii.gz"])
def test_a_nifti_spacing_of_zero_or_nan_is_refused_not_read_as_1_mm(tmp_path: Path, name: str, value: float):
    path = nifti_with_pixdim_x(tmp_path / name, value)
    for read in (read_image, read_header):
        with pytest.raises(InputError, match=r"voxel spacing \((0\.0|nan), 2\.0, 3\.0\) in the header \(pixdim\)"):
            read(path)


def test_a_negative_nifti_spacing_is_read_as_its_magnitude_as_every_nifti_reader_does(tmp_path: Path):
    assert read_image(nifti_with_pixdim_x(tmp_path / "ct.nii.gz", -2.0)).GetSpacing() == (2.0, 2.0, 3.0)


def test_a_metaimage_spacing_of_zero_is_refused(tmp_path: Path):
    path = tmp_path / "ct.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(path))
    path.write_bytes(path.read_bytes().replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = 0 1 1"))
    with pytest.raises(InputError, match=r"ct\.mha: .*spacing"):
        read_image(path)


def test_segment_refuses_a_pixdim_0_ct_in_one_line(capsys, tiny_model: Path, tmp_path: Path):
    path = nifti_with_pixdim_x(tmp_path / "ct.nii.gz", 0.0)
    status = main(["segment", "-m", str(tiny_model), "-i", str(path), "-o", str(tmp_path / "out.nii.gz"),
                   "--progress", "none"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "pixdim" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]


def test_a_whole_dicom_series_reads_with_its_slice_spacing(tmp_path: Path):
    write_dicom_series(tmp_path / "series", 12)
    (tmp_path / "series" / "README.txt").write_text("not a slice")  # other files do not count
    image = read_image(tmp_path / "series")
    assert image.GetSize() == (16, 16, 12) and np.allclose(image.GetSpacing(), (1.0, 1.0, 4.0))


def test_a_dicom_series_with_a_corrupt_slice_names_files_and_slices(tmp_path: Path):
    paths = write_dicom_series(tmp_path / "series", 12)
    paths[5].write_bytes(paths[5].read_bytes()[: paths[5].stat().st_size // 2])
    with pytest.raises(InputError) as refused:
        read_image(tmp_path / "series")
    assert str(refused.value) == (f"{tmp_path / 'series'}: 12 DICOM files but only 11 slices could be read as one "
                                  "series (1 corrupt or unreadable, e.g. slice005.dcm); repair or remove them")


def test_a_dicom_series_with_a_missing_slice_is_refused_not_stretched(tmp_path: Path):
    paths = write_dicom_series(tmp_path / "series", 12)
    paths[5].unlink()
    with pytest.raises(InputError, match=r"slices are unevenly spaced \(a gap of 8 mm between slices 5 and 6, "
                                         r"4 mm elsewhere\): a slice is missing or unreadable"):
        read_image(tmp_path / "series")


SHEARED = (1.0, 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def test_a_sheared_direction_warns_where_the_format_cannot_hold_it(tmp_path: Path):
    image = sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16))
    image.SetDirection(SHEARED)
    with pytest.warns(GeometryWarning, match=r"\.nii\.gz cannot hold a non-orthogonal \(sheared\) direction matrix"):
        write_image_atomic(image, tmp_path / "labels.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)
        write_image_atomic(image, tmp_path / "labels.mha")
        write_image_atomic(image, tmp_path / "labels.nrrd")
    assert sitk.ReadImage(str(tmp_path / "labels.mha")).GetDirection() == SHEARED


def test_segment_reports_the_coerced_direction_as_a_warning_event(capsys, tiny_model: Path, tmp_path: Path):
    array = np.full((12, 36, 40), -1000, np.int16)
    array[2:-2, 4:-4, 4:-4] = 40
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((3.0, 3.0, 3.0))
    image.SetDirection(SHEARED)
    sitk.WriteImage(image, str(tmp_path / "ct.mha"))
    out = tmp_path / "out.nii.gz"
    status = main(["segment", "-m", str(tiny_model), "-i", str(tmp_path / "ct.mha"), "-o", str(out),
                   "--device", "cpu", "--progress", "jsonl"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0
    assert [e["message"] for e in events if e["event"] == "warning"] == [
        f"{out}: .nii.gz cannot hold a non-orthogonal (sheared) direction matrix; the file's voxel positions "
        "differ from the image's (.nrrd and .mha keep them)"]
