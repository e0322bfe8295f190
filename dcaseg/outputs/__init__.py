"""Files that other tools open as they are: Slicer's ``.seg.nrrd`` and DICOM SEG, beside the label map."""
