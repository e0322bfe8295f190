"""Scoring a model's heads: each head is scored on its own prediction, whichever head the package names."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from support import REALCT_IMAGE, REALCT_LABEL

from dcaseg.ablation.runner import SCORE_OVERLAP, _read_records, score_cases
from dcaseg.data.imageio import read_image
from dcaseg.inference import Predictor, PredictorOptions
from dcaseg.package import ModelPackage, load_package
from dcaseg.scoring import heads_of, score_case, scoring_predictor

OPTIONS = PredictorOptions(device="cpu", overlap=0.0, precision="fp32")


def _with_output(package: ModelPackage, output: str) -> ModelPackage:
    return ModelPackage(replace(package.meta, output=output), package.state_dict, package.source)


def _labels(package: ModelPackage, image: sitk.Image, options: PredictorOptions = OPTIONS) -> np.ndarray:
    return sitk.GetArrayFromImage(Predictor(package, options).predict(image).labels)


def _volumes_ml(labels: np.ndarray, package: ModelPackage, image: sitk.Image) -> dict[str, float]:
    """Each organ's predicted volume in ml, counted from a label map."""
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    return {name: float((labels == value).sum()) * voxel_ml for value, name in package.meta.class_names.items()}


def _same_volumes(scores: dict[str, float], expected: dict[str, float]) -> bool:
    return all(np.isclose(scores[name], ml, rtol=1e-3, atol=1e-3) for name, ml in expected.items() if name in scores)


def test_each_head_is_scored_on_its_own_labels_when_the_package_names_the_experts(tiny_model: Path) -> None:
    package = _with_output(load_package(tiny_model), "experts_fused")
    image, reference = read_image(REALCT_IMAGE), read_image(REALCT_LABEL)
    aggregator = _labels(_with_output(package, "aggregator"), image)
    experts = _labels(package, image)
    # the two heads disagree on organ volumes, so scoring one head's labels under the other's name would show
    assert _volumes_ml(aggregator, package, image) != _volumes_ml(experts, package, image)

    scored = score_case(scoring_predictor(package.build_network(torch.device("cpu")), package.meta, OPTIONS),
                        image, reference)
    assert set(scored.scores) == set(heads_of(package.meta)) == {"aggregator", "experts_fused"}
    assert (sitk.GetArrayFromImage(scored.labels("aggregator")) == aggregator).all()
    assert (sitk.GetArrayFromImage(scored.labels("experts_fused")) == experts).all()
    for head, labels in (("aggregator", aggregator), ("experts_fused", experts)):
        predicted = {organ: score.volume_ml_pred for organ, score in scored.scores[head].items()}
        assert _same_volumes(predicted, _volumes_ml(labels, package, image))


def test_the_ablation_scores_the_aggregator_under_its_own_name(tiny_model: Path, tmp_path: Path) -> None:
    package = _with_output(load_package(tiny_model), "experts_fused")
    cases = tmp_path / "cases"
    for sub, source in (("images", REALCT_IMAGE), ("labels", REALCT_LABEL)):
        (cases / sub).mkdir(parents=True)
        sitk.WriteImage(read_image(source), str(cases / sub / "tsA.nii.gz"))
    scores = score_cases(package, cases, torch.device("cpu"))
    image = read_image(REALCT_IMAGE)
    assert set(scores) == {"aggregator", "experts_fused"}
    for head, output in (("aggregator", "aggregator"), ("experts_fused", "experts_fused")):
        labels = _labels(_with_output(package, output), image, PredictorOptions(device="cpu", overlap=SCORE_OVERLAP))
        expected = _volumes_ml(labels, package, image)
        assert _same_volumes({o: s["volume_ml_pred"] for o, s in scores[head]["tsA"].items()}, expected)


def test_ablation_records_of_before_read_the_experts_head_under_its_one_name(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    old = {"aggregator": {"case": {}}, "fused": {"case": {"liver": {"dice": 0.5}}}}
    results.write_text(json.dumps({"runs": {"k#0": {"key": "k", "seed": 0, "scores": old}}}), encoding="utf-8")
    record = _read_records(results)["k#0"]
    assert record["scores"] == {"aggregator": {"case": {}}, "experts_fused": {"case": {"liver": {"dice": 0.5}}}}
    assert _read_records(tmp_path / "absent.json") == {}
