"""Organ names and the published semi-supervised splits of the Synapse (BTCV) and AMOS22 benchmarks.

Case lists are copied from the split files of the public repositories named in each
``provenance`` (see ``docs/reproduce.md`` for which paper used which).
"""
from __future__ import annotations

from dataclasses import dataclass

SYNAPSE_ORGANS = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "esophagus", "liver", "stomach",
    "aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein", "pancreas",
    "adrenal_gland_right", "adrenal_gland_left",
)
AMOS_ORGANS = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "esophagus", "liver", "stomach",
    "aorta", "inferior_vena_cava", "pancreas", "adrenal_gland_right", "adrenal_gland_left",
    "duodenum", "bladder", "prostate_uterus",
)

SYNAPSE_SCANS = tuple(range(1, 11)) + tuple(range(21, 41))
"""The 30 labeled BTCV training scans (img0001..img0010, img0021..img0040)."""


def synapse_case_id(scan: int) -> str:
    """Our case id of BTCV training scan ``scan`` (``img0002.nii.gz`` -> ``synapse_0002``)."""
    return f"synapse_{scan:04d}"


@dataclass(frozen=True)
class PublishedSplit:
    """Labeled, validation and test cases of a published split; every other case is unlabeled."""

    source: str
    provenance: str
    labeled: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]


def _synapse(*scans: int) -> tuple[str, ...]:
    return tuple(synapse_case_id(scan) for scan in scans)


SYNAPSE_20P = {
    "dhc": PublishedSplit(
        source="synapse-20p-dhc",
        provenance="xmed-lab/DHC@3a09c34 synapse_data/splits (labeled_20p, eval, test); "
                   "DHC's original split, also hard-coded by GALoss",
        labeled=_synapse(2, 23, 34, 39),
        validation=_synapse(6, 25, 26, 40),
        test=_synapse(4, 7, 10, 33, 35, 36),
    ),
    "ga": PublishedSplit(
        source="synapse-20p-ga",
        provenance="xmed-lab/GenericSSL@e73bde9 Synapse_data/split_txts (labeled_0.2, eval, test); "
                   "GA's split; its test set is also SKCDF's and DHC's after 2024-01-14",
        labeled=_synapse(9, 21, 25, 34),
        validation=_synapse(1, 7, 23, 30),
        test=_synapse(8, 27, 29, 33, 37, 39),
    ),
}
SYNAPSE_DEFAULT_TEST_SET = "dhc"

AMOS_5P_SOURCE = "amos-5p-dhc"
AMOS_5P_PROVENANCE = ("xmed-lab/DHC@3a09c34 amos_data/splits (labeled_5p, eval); test = all AMOS22 "
                      "validation cases (imagesVa/labelsVa), as in DHC's test.txt")
AMOS_5P_LABELED = ("amos_0078", "amos_0158", "amos_0170", "amos_0192", "amos_0391", "amos_0396",
                   "amos_0410", "amos_0514", "amos_0548", "amos_0578")
AMOS_5P_VALIDATION = ("amos_0027", "amos_0066", "amos_0097", "amos_0109", "amos_0116", "amos_0124",
                      "amos_0153", "amos_0154", "amos_0159", "amos_0197", "amos_0214", "amos_0215",
                      "amos_0297", "amos_0336", "amos_0337", "amos_0349", "amos_0353", "amos_0381",
                      "amos_0538", "amos_0540", "amos_0554", "amos_0585", "amos_0592", "amos_0599")
