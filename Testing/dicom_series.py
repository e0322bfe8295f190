"""A real CT DICOM series written from a volume with pydicom: one CT Image Storage file per slice.

Every slice shares the study, series and frame-of-reference UIDs; each has its own SOP instance
UID, instance number, ImagePositionPatient (the volume's voxel (0, 0, k) in LPS millimetres) and the
volume's ImageOrientationPatient, pixel spacing and rescale, as a scanner writes them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_ct_series(image: sitk.Image, folder: Path, series_number: int = 2, prefix: str = "CT") -> list[Path]:
    """Write ``image`` (Hounsfield units) as a new CT series into ``folder`` as ``<prefix>0001.dcm``, ...;
    return the files, slice by slice."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_of_reference_uid = generate_uid(), generate_uid(), generate_uid()
    voxels = sitk.GetArrayFromImage(image).astype(np.int16)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    orientation = [float(v) for v in (*direction[:, 0], *direction[:, 1])]
    spacing_x, spacing_y, spacing_z = image.GetSpacing()
    paths = []
    for k in range(voxels.shape[0]):
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Fixture", "DCA-TEST", "", "O"
        ds.StudyInstanceUID, ds.StudyID, ds.StudyDate, ds.StudyTime = study_uid, "1", "20250101", "120000"
        ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, series_number, "CT abdomen"
        ds.Modality, ds.Manufacturer = "CT", "pydicom test fixture"
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference_uid, ""
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [float(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = [float(spacing_y), float(spacing_x)]  # row spacing, then column spacing
        ds.SliceThickness = float(spacing_z)
        ds.KVP, ds.AcquisitionNumber = "120", 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = voxels.shape[1], voxels.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.PixelData = voxels[k].tobytes()
        path = folder / f"{prefix}{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
