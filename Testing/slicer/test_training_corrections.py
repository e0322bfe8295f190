"""Save correction round trip: an edited MRML segmentation -> the dataset's label file, history, split."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from training_fixtures import REAL_CASES, REALCT, real_class_names

from dcaseg.errors import InputError

slicer = pytest.importorskip("slicer")

from DCASegmentationLib.mrml_io import node_ids  # noqa: E402


def make_dataset(root):
    """Real CT: tsA labeled, tsB unlabeled, plain layout, and a run folder whose split knows both."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for case in ("tsA", "tsB"):
        shutil.copyfile(REALCT / f"{REAL_CASES[case]}_image.nii.gz", root / "images" / f"{case}.nii.gz")
    shutil.copyfile(REALCT / f"{REAL_CASES['tsA']}_label.nii.gz", root / "labels" / "tsA.nii.gz")
    (root / "labels.json").write_text(json.dumps({str(k): v for k, v in real_class_names().items()}))
    run = root.parent / "run"
    run.mkdir()
    (run / "split.json").write_text(json.dumps({"labeled": ["tsA"], "unlabeled": ["other", "tsB"],
                                                "validation": ["val1"]}))
    return root, run


def load_case(mrml, image_file, label_file):
    """What a user has after segmenting: the CT volume and a named segmentation on it."""
    volume = mrml.volumes.AddArchetypeVolume(str(image_file), "ct")
    labelmap = mrml.volumes.AddArchetypeVolume(str(label_file), "labels", 1)
    colors = mrml.scene.AddNewNodeByClass("vtkMRMLColorTableNode", "names")
    colors.SetTypeToUser()
    colors.SetNumberOfColors(15)
    colors.SetColor(0, "background", 0, 0, 0, 0)
    for value, name in real_class_names().items():
        colors.SetColor(value, name, 0.5, 0.5, 0.5, 1.0)
    labelmap.GetDisplayNode().SetAndObserveColorNodeID(colors.GetID())
    segmentation = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    mrml.scene.RemoveNode(labelmap)
    return volume, segmentation


def add_block(segmentation, volume, organ, block):
    """The edit: a voxel block painted into one organ's segment."""
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(organ)
    mask = np.array(slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, volume))
    mask[block] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentation, segment_id, volume)


def read(path):
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image


def assert_same_grid(a, b):
    assert a.GetSize() == b.GetSize()
    assert np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    assert np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    assert np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


def test_edited_segment_is_saved_exactly_and_every_earlier_label_is_kept(mrml, tmp_path):
    from DCATrainingLib.corrections import save_correction

    root, run = make_dataset(tmp_path / "data")
    names = {name: value for value, name in real_class_names().items()}
    original, _ = read(root / "labels" / "tsA.nii.gz")
    _, ct = read(root / "images" / "tsA.nii.gz")
    volume, segmentation = load_case(mrml, root / "images" / "tsA.nii.gz", root / "labels" / "tsA.nii.gz")
    first_block = (slice(10, 14), slice(0, 5), slice(0, 6))  # background in the original
    assert not original[first_block].any()

    add_block(segmentation, volume, "liver", first_block)
    nodes_before = node_ids(mrml.scene)
    saved = save_correction(segmentation, volume, root, run_dir=run)
    assert node_ids(mrml.scene) == nodes_before   # no colour table, label map or display node left behind

    expected_first = original.copy()
    expected_first[first_block] = names["liver"]
    written, label_image = read(root / "labels" / "tsA.nii.gz")
    assert saved.case_id == "tsA" and saved.label_path == root / "labels" / "tsA.nii.gz"
    assert not saved.image_copied
    assert np.array_equal(written, expected_first)
    assert_same_grid(label_image, ct)
    history = sorted((root / "labels" / ".history").iterdir())
    assert [p.name for p in history] == [saved.previous_label.name]
    assert history[0].name.startswith("tsA.") and history[0].name.endswith(".nii.gz")
    assert np.array_equal(read(history[0])[0], original)

    second_block = (slice(20, 22), slice(0, 3), slice(0, 3))
    add_block(segmentation, volume, "adrenal_gland_left", second_block)
    nodes_before = node_ids(mrml.scene)
    second = save_correction(segmentation, volume, root, run_dir=run)
    assert node_ids(mrml.scene) == nodes_before
    assert not [n for n in slicer.util.getNodesByClass("vtkMRMLColorTableNode") if "_ColorTable" in n.GetName()]
    expected_second = expected_first.copy()
    expected_second[second_block] = names["adrenal_gland_left"]
    assert np.array_equal(read(root / "labels" / "tsA.nii.gz")[0], expected_second)
    kept = {p.name: read(p)[0] for p in (root / "labels" / ".history").iterdir()}
    assert len(kept) == 2 and second.previous_label.name in kept
    assert np.array_equal(kept[saved.previous_label.name], original)
    assert np.array_equal(kept[second.previous_label.name], expected_first)
    assert not [p for p in (root / "labels").iterdir() if p.name.startswith(".tsA")]  # no temp files left
    assert json.loads((run / "split.json").read_text(encoding="utf-8")) == {
        "labeled": ["tsA"], "unlabeled": ["other", "tsB"], "validation": ["val1"]}
    assert "ERROR" not in mrml.vtk_log.GetOutput()


def test_an_unlabeled_case_joins_labeled_and_validation_stays(mrml, tmp_path):
    from DCATrainingLib.corrections import save_correction

    root, run = make_dataset(tmp_path / "data")
    # The user segmented tsB (here: the real tsB annotation stands in for the model + edits).
    volume, segmentation = load_case(mrml, root / "images" / "tsB.nii.gz",
                                     REALCT / f"{REAL_CASES['tsB']}_label.nii.gz")
    saved = save_correction(segmentation, volume, root, run_dir=run)

    assert saved.previous_label is None and saved.split_role == "labeled"
    assert not (root / "labels" / ".history").exists()
    written, label_image = read(root / "labels" / "tsB.nii.gz")
    truth, truth_image = read(REALCT / f"{REAL_CASES['tsB']}_label.nii.gz")
    assert np.array_equal(written, truth)
    assert_same_grid(label_image, truth_image)
    assert json.loads((run / "split.json").read_text(encoding="utf-8")) == {
        "labeled": ["tsA", "tsB"], "unlabeled": ["other"], "validation": ["val1"]}


def test_a_new_case_copies_its_image_and_unknown_segments_are_refused(mrml, tmp_path):
    from DCATrainingLib.corrections import save_correction

    root, run = make_dataset(tmp_path / "data")
    volume, segmentation = load_case(mrml, REALCT / f"{REAL_CASES['tsA']}_image.nii.gz",
                                     REALCT / f"{REAL_CASES['tsA']}_label.nii.gz")
    saved = save_correction(segmentation, volume, root, case_id="newcase", run_dir=run)
    assert saved.image_copied and saved.image_path == root / "images" / "newcase.nii.gz"
    copied, copied_image = read(saved.image_path)
    source, source_image = read(REALCT / f"{REAL_CASES['tsA']}_image.nii.gz")
    assert np.array_equal(copied, source)
    assert_same_grid(copied_image, source_image)
    assert json.loads((run / "split.json").read_text(encoding="utf-8"))["labeled"] == ["tsA", "newcase"]

    segment = segmentation.GetSegmentation().GetNthSegment(0)
    segment.SetName("tumour")
    before = (root / "labels" / "newcase.nii.gz").read_bytes()
    with pytest.raises(InputError, match="segment 'tumour' matches no class"):
        save_correction(segmentation, volume, root, case_id="newcase", run_dir=run)
    assert (root / "labels" / "newcase.nii.gz").read_bytes() == before
    assert not (root / "labels" / ".history").exists()


def test_nodes_outside_the_scene_are_refused_before_any_slicer_call(mrml, tmp_path):
    from DCATrainingLib.corrections import export_label_array

    root, _run = make_dataset(tmp_path / "data")
    volume, segmentation = load_case(mrml, root / "images" / "tsA.nii.gz", root / "labels" / "tsA.nii.gz")
    detached = slicer.vtkMRMLScalarVolumeNode()
    detached.SetAndObserveImageData(volume.GetImageData())
    first = segmentation.GetSegmentation().GetNthSegmentID(0)
    with pytest.raises(InputError, match="must both be in the scene"):
        export_label_array(segmentation, detached, {first: 1})
    other_scene = slicer.vtkMRMLScene()
    stray = other_scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    with pytest.raises(InputError, match="must both be in the scene"):
        export_label_array(stray, volume, {first: 1})


def test_a_history_folder_that_cannot_be_written_is_one_readable_error(mrml, tmp_path):
    from DCATrainingLib.corrections import save_correction

    root, run = make_dataset(tmp_path / "data")
    volume, segmentation = load_case(mrml, root / "images" / "tsA.nii.gz", root / "labels" / "tsA.nii.gz")
    (root / "labels" / ".history").write_text("a file where the history folder should be")
    before = (root / "labels" / "tsA.nii.gz").read_bytes()
    with pytest.raises(InputError, match="cannot keep a copy of"):
        save_correction(segmentation, volume, root, run_dir=run)
    assert (root / "labels" / "tsA.nii.gz").read_bytes() == before


def test_nnunet_layout_paths_come_from_the_engine_and_another_grid_is_refused(mrml, tmp_path):
    from DCATrainingLib.corrections import save_correction

    root = tmp_path / "nnunet"
    (root / "imagesTr").mkdir(parents=True)
    shutil.copyfile(REALCT / f"{REAL_CASES['tsA']}_image.nii.gz", root / "imagesTr" / "tsA_0000.nii.gz")
    labels = {"background": 0, **{name: value for value, name in real_class_names().items()}}
    (root / "dataset.json").write_text(json.dumps({"labels": labels, "channel_names": {"0": "CT"},
                                                   "file_ending": ".nii.gz"}))
    volume, segmentation = load_case(mrml, root / "imagesTr" / "tsA_0000.nii.gz",
                                     REALCT / f"{REAL_CASES['tsA']}_label.nii.gz")
    saved = save_correction(segmentation, volume, root)
    assert saved.label_path == root / "labelsTr" / "tsA.nii.gz" and not saved.image_copied
    new = save_correction(segmentation, volume, root, case_id="copy")
    assert new.image_path == root / "imagesTr" / "copy_0000.nii.gz"
    assert new.label_path == root / "labelsTr" / "copy.nii.gz"

    spacing = list(volume.GetSpacing())
    volume.SetSpacing(spacing[0] * 2, spacing[1], spacing[2])   # as if resampled in Slicer
    before = (root / "labelsTr" / "tsA.nii.gz").read_bytes()
    with pytest.raises(InputError, match="does not lie on the voxel grid .*spacing"):
        save_correction(segmentation, volume, root, case_id="tsA")
    assert (root / "labelsTr" / "tsA.nii.gz").read_bytes() == before
