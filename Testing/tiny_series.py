"""A minimal CT DICOM series written with SimpleITK: one 16x16 slice per file, slice k at z = k * spacing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_dicom_series(folder: Path, slices: int, spacing: float = 4.0) -> list[Path]:
    """A minimal CT series, one slice per file, slice k at z = k * spacing."""
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(slices):
        plane = sitk.GetImageFromArray(np.full((16, 16), k * 10, np.int16))
        plane.SetSpacing((1.0, 1.0))
        for tag, value in (("0008|0060", "CT"), ("0020|000d", "1.2.826.0.1.3680043.2.1125.7"),
                           ("0020|000e", "1.2.826.0.1.3680043.2.1125.8"), ("0020|0013", str(k + 1)),
                           ("0020|0032", f"0\\0\\{spacing * k}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0008|0018", f"1.2.826.0.1.3680043.2.1125.9.{k}")):
            plane.SetMetaData(tag, value)
        paths.append(folder / f"slice{k:03d}.dcm")
        writer.SetFileName(str(paths[-1]))
        writer.Execute(plane)
    return paths
