"""Every terminology entry we write names a Slicer context that really lists its codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcaseg.anatomy import KNOWN_ORGANS, organ_snomed
from dcaseg.terminology import DICOM_MASTER, GENERAL_ANATOMY, terminology_context, terminology_entry

TORCH_FREE = True
FIXTURE = Path(__file__).parent / "Data" / "slicer_resources" / "category_type_codes.json"


def listed_codes() -> dict[str, dict[tuple[str, str], set[str]]]:
    """{context: {(category code, type code): modifier codes}} from Slicer's terminology files."""
    contexts = json.loads(FIXTURE.read_text(encoding="utf-8"))["contexts"]
    return {name: {(row[1], row[3]): set(row[4]) for row in rows} for name, rows in contexts.items()}


@pytest.mark.parametrize("organ", KNOWN_ORGANS)
def test_each_organ_code_is_in_the_context_its_entry_names(organ):
    snomed = organ_snomed(organ)
    entry = terminology_entry(snomed)
    context, category, kind, modifier = entry.split("~")[:4]
    assert context == terminology_context(snomed)
    listed = listed_codes()[context]
    key = (category.split("^")[1], kind.split("^")[1])
    assert key in listed, f"{organ}: {key} is not in {context!r}"
    modifier_code = modifier.split("^")[1]
    assert not modifier_code or modifier_code in listed[key]


def test_vessels_missing_from_the_general_anatomy_list_name_the_dicom_master_list():
    general = listed_codes()[GENERAL_ANATOMY]
    for organ in ("inferior_vena_cava", "portal_vein_and_splenic_vein"):
        snomed = organ_snomed(organ)
        assert ("123037004", snomed["type"]["code"]) not in general
        assert terminology_context(snomed) == DICOM_MASTER


def test_a_class_without_codes_has_no_entry():
    assert terminology_entry(None) == ""
    assert terminology_entry({"category": {"code": "x"}}) == ""
