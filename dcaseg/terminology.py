"""Slicer's terminology entries for segments: which context lists a code, and the serialized string.

A segment's terminology is one string, ``context~category~type~modifier~regionContext~region~
regionModifier`` with each code as ``scheme^value^meaning``: the format Slicer's
``vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry`` writes (the same in 5.8 and later).
The Slicer module stores it as a segment tag; the ``.seg.nrrd`` writer puts it in the file header.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GENERAL_ANATOMY = "Segmentation category and type - 3D Slicer General Anatomy list"
DICOM_MASTER = "Segmentation category and type - DICOM master list"
REGION_CONTEXT = "Anatomic codes - DICOM master list"
ANATOMICAL_STRUCTURE = {"scheme": "SCT", "code": "123037004", "meaning": "Anatomical Structure"}
# Anatomical-structure types that Slicer's short General Anatomy list holds, among the organs we
# name (dcaseg.anatomy). Every other code is looked up in the DICOM master list, its superset.
GENERAL_ANATOMY_TYPES = frozenset({
    "78961009", "64033007", "28231008", "32849002", "10200004", "69695003", "15825003", "15776009",
    "23451007", "38848004", "89837001", "41216001",
})


def terminology_context(snomed: Mapping[str, Any]) -> str:
    """The Slicer terminology context in which a class's category and type codes are listed."""
    category = snomed.get("category") or ANATOMICAL_STRUCTURE
    in_general = category.get("code") == ANATOMICAL_STRUCTURE["code"] and \
        snomed["type"].get("code") in GENERAL_ANATOMY_TYPES
    return GENERAL_ANATOMY if in_general else DICOM_MASTER


def terminology_entry(snomed: Mapping[str, Any] | None) -> str:
    """The serialized terminology of a class's SNOMED codes ("" when it has none)."""
    if not snomed or "type" not in snomed:
        return ""
    category = snomed.get("category") or ANATOMICAL_STRUCTURE
    modifier = snomed.get("modifier") or {}
    empty = "^^"
    return "~".join((terminology_context(snomed), _code(category), _code(snomed["type"]),
                     _code(modifier) if modifier else empty, REGION_CONTEXT, empty, empty))


def _code(code: Mapping[str, Any]) -> str:
    return f"{code.get('scheme', '')}^{code.get('code', '')}^{code.get('meaning', '')}"
