"""Organ names, display colours and SNOMED CT codes for abdominal CT label maps."""
from __future__ import annotations

import colorsys
from typing import Any

from .terminology import ANATOMICAL_STRUCTURE

RIGHT = {"scheme": "SCT", "code": "24028007", "meaning": "Right"}
LEFT = {"scheme": "SCT", "code": "7771000", "meaning": "Left"}

# name: (RGB colour, SNOMED type code, type meaning, modifier)
_ORGANS: dict[str, tuple[tuple[int, int, int], str, str, dict | None]] = {
    "spleen": ((157, 108, 162), "78961009", "Spleen", None),
    "kidney_right": ((185, 102, 83), "64033007", "Kidney", RIGHT),
    "kidney_left": ((212, 126, 101), "64033007", "Kidney", LEFT),
    "gallbladder": ((139, 150, 98), "28231008", "Gallbladder", None),
    "esophagus": ((211, 171, 143), "32849002", "Esophagus", None),
    "liver": ((221, 130, 101), "10200004", "Liver", None),
    "stomach": ((216, 132, 105), "69695003", "Stomach", None),
    "aorta": ((224, 97, 76), "15825003", "Aorta", None),
    "inferior_vena_cava": ((0, 151, 206), "64131007", "Inferior vena cava", None),
    "portal_vein_and_splenic_vein": ((0, 112, 165), "32764006", "Portal vein", None),
    "pancreas": ((249, 180, 111), "15776009", "Pancreas", None),
    "adrenal_gland_right": ((244, 214, 49), "23451007", "Adrenal gland", RIGHT),
    "adrenal_gland_left": ((255, 176, 0), "23451007", "Adrenal gland", LEFT),
    "duodenum": ((255, 253, 229), "38848004", "Duodenum", None),
    "urinary_bladder": ((222, 154, 132), "89837001", "Urinary bladder", None),
    "bladder": ((222, 154, 132), "89837001", "Urinary bladder", None),
    "prostate_uterus": ((230, 158, 140), "41216001", "Prostate", None),
}

KNOWN_ORGANS = tuple(_ORGANS)
BTCV_ORGANS = ("spleen", "kidney_right", "kidney_left", "gallbladder", "esophagus", "liver",
               "stomach", "aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein",
               "pancreas", "adrenal_gland_right", "adrenal_gland_left")


def organ_color(name: str, value: int) -> tuple[int, int, int]:
    """The display colour of an organ; unknown names get a distinct colour from their label value."""
    known = _ORGANS.get(name.lower())
    if known:
        return known[0]
    golden = (value * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(golden, 0.65, 0.9)
    return int(255 * r), int(255 * g), int(255 * b)


def organ_snomed(name: str) -> dict[str, Any] | None:
    """SNOMED CT category/type/modifier for a known organ name (Slicer terminology), else None."""
    known = _ORGANS.get(name.lower())
    if not known:
        return None
    _, code, meaning, modifier = known
    entry: dict[str, Any] = {"category": ANATOMICAL_STRUCTURE,
                             "type": {"scheme": "SCT", "code": code, "meaning": meaning}}
    if modifier:
        entry["modifier"] = modifier
    return entry

