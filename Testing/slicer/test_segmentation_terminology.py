"""The engine's terminology string is the one Slicer's own serializer makes."""
from __future__ import annotations

import pytest

from dcaseg.anatomy import organ_snomed
from dcaseg.terminology import REGION_CONTEXT, terminology_context, terminology_entry

slicer = pytest.importorskip("slicer")


@pytest.mark.parametrize("organ", ["kidney_left", "liver", "inferior_vena_cava"])
def test_entry_string_equals_slicers_own_serialization(organ):
    snomed = organ_snomed(organ)
    category, kind, modifier = snomed["category"], snomed["type"], snomed.get("modifier") or {}
    expected = slicer.vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry(
        terminology_context(snomed), category["code"], category["scheme"], category["meaning"],
        kind["code"], kind["scheme"], kind["meaning"], modifier.get("code", ""), modifier.get("scheme", ""),
        modifier.get("meaning", ""), REGION_CONTEXT, "", "", "", "", "", "")
    assert terminology_entry(snomed) == expected
