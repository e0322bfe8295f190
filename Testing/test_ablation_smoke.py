"""The ablation benchmark end to end at a toy budget: 2 variants, 1 seed, a few iterations."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import SimpleITK as sitk

from dcaseg.ablation.report import build_report, markdown
from dcaseg.ablation.runner import AblationSettings, run_ablation
from dcaseg.ablation.variants import (
    DEFAULT_ITERATIONS,
    PAPER_VARIANTS,
    VARIANTS,
    base_config,
    run_key,
    select_variants,
    variant_config,
    variant_key,
)
from dcaseg.cli import main
from dcaseg.errors import InputError

GROUPINGS = {
    "top2": {"head": [6], "medium": [1, 2, 3, 4, 7, 8, 9, 10, 11], "tail": [5, 12, 13]},
    "uniform": {"head": [6, 1, 2, 7], "medium": [3, 9, 8, 4, 10], "tail": [11, 5, 12, 13]},
    "threshold": {"head": [6, 1], "medium": [2, 7, 3, 9, 8, 4, 10, 11], "tail": [5, 12, 13]},
}


def test_rows_that_train_the_same_network_share_runs() -> None:
    base = base_config()
    keys = {name: variant_key(base, name, GROUPINGS) for name in VARIANTS}
    assert len(set(keys.values())) == len(VARIANTS)
    # The fully supervised V-Net is the labeled-only one trained on every case's labels.
    assert keys["vnet-full"] == keys["vnet-labeled"] + ":all-labeled"
    same_as_top2 = {**GROUPINGS, "uniform": GROUPINGS["top2"]}
    assert run_key(variant_config(base, "group-uniform", 0), same_as_top2) == keys["dca"]
    assert run_key(variant_config(base, "experts-nosplit", 0), same_as_top2) == \
        run_key(variant_config(base.with_overrides(grouping_rule="uniform"), "experts-nosplit", 0), GROUPINGS)
    assert variant_config(base, "vnet-pseudo", 2).seed == 2
    # Runs finished before the λ rows existed keep their keys; only another weight is named.
    assert keys["vnet-pseudo"] == "vnet-pseudo" and "lambda" not in keys["dca"]
    assert keys["lambda-1"] == keys["dca"] + ":lambda1" and keys["vnet-pseudo-lambda-1"] == "vnet-pseudo:lambda1"
    assert variant_config(base, "lambda-1", 0).lambda_max == 1.0 and base.lambda_max == 10.0
    assert keys["lambda-0"] == keys["dca"] + ":lambda0"


def test_the_default_selection_is_the_papers_tables() -> None:
    assert select_variants(None) == list(PAPER_VARIANTS) and len(PAPER_VARIANTS) == 11
    assert PAPER_VARIANTS[0] == "vnet-full" and [n for n in VARIANTS if VARIANTS[n].all_labeled] == ["vnet-full"]
    assert select_variants(["all"]) == list(VARIANTS)
    assert select_variants(["dca", "lambda-1", "vnet-labeled"]) == ["vnet-labeled", "dca", "lambda-1"]
    with pytest.raises(InputError, match="unknown ablation variants"):
        select_variants(["dfam-only"])


def test_budget_scales_the_iterations() -> None:
    assert base_config(2.0).iterations == 2 * base_config(1.0).iterations
    with pytest.raises(InputError):
        base_config(0.0)


def test_sampling_chooses_how_labeled_patches_are_drawn() -> None:
    balanced, random = base_config(), base_config(sampling="random")
    assert (balanced.foreground_share, balanced.rare_class_power) == (0.9, 1.0)
    assert (random.foreground_share, random.rare_class_power) == (0.0, 0.0)
    assert random.with_overrides(foreground_share=0.9, rare_class_power=1.0) == balanced
    with pytest.raises(InputError, match="--sampling"):
        base_config(sampling="organs")


def test_ablation_writes_table_json_and_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ablation"
    argv = ["ablate", str(out), "--budget", "0.015", "--seeds", "1", "--variants", "vnet-labeled", "dca",
            "--labeled", "2", "--unlabeled", "1", "--test", "1", "--device", "cpu", "--jobs", "2"]
    assert main(argv) == 0
    assert "2 runs" in capsys.readouterr().out

    report = json.loads((out / "ablation.json").read_text(encoding="utf-8"))
    assert report["settings"]["iterations"] == round(0.015 * DEFAULT_ITERATIONS)
    assert report["planned_runs"] == report["finished_runs"] == 2
    rows = [(r["section"], r["variant"]) for r in report["rows"]]
    assert rows == [("components", "vnet-labeled"), ("components", "dca"), ("fusion", "dca"),
                    ("unlabeled weight", "dca"), ("grouping", "dca"), ("architecture", "dca")]
    organs = set(report["organs"])
    assert len(organs) == 13 and {"esophagus", "adrenal_gland_left", "liver"} <= organs
    for row in report["rows"]:
        agg = row["aggregator"]
        assert row["seeds"] == [0] and agg["seeds"] == 1
        assert set(agg["organs"]) == organs
        assert all(0.0 <= agg[k][0] <= 100.0 for k in ("mean_dice", "head", "medium", "tail") if agg[k][0] is not None)
    dca = next(r for r in report["rows"] if r["variant"] == "dca")
    vnet = report["rows"][0]
    assert "experts_fused" in dca and "experts_fused" not in vnet
    assert set(report["report_groups"]["tail"]) == {"esophagus", "adrenal_gland_right", "adrenal_gland_left"}

    table = (out / "ablation.md").read_text(encoding="utf-8")
    assert "| components | V-Net, labeled only |" in table and "| grouping | log-gap (ours) |" in table
    assert "| Variant | Sp | RK |" in table
    assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))["runs"]
    assert len(results) == 2
    assert all(Path(r["model"], "model.json").is_file() for r in results.values())
    assert report["machines"] == {report["machine"]: 2} and f"- Machine: {report['machine']};" in table

    # A folder continued on another machine says which runs ran where.
    moved = {**results, **{k: {**r, "machine": "GPU box"} for k, r in list(results.items())[:1]}}
    mixed = build_report(report, moved, report["run_keys"], report["organs"], report["report_groups"])
    assert mixed["machines"] == {report["machine"]: 1, "GPU box": 1}
    assert f"- Machine: GPU box (1 run); {report['machine']} (1 run);" in markdown(mixed)

    # Calling again (here with fewer variants) reuses the finished runs: nothing is retrained.
    again = run_ablation(out, AblationSettings(budget=0.015, seeds=1, variants=("dca",),
                                               labeled=2, unlabeled=1, test=1), "rerun", "cpu", log=print)
    assert again["finished_runs"] == 2 and len(again["rows"]) == 6 and "[" not in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["runs"] == results

    with pytest.raises(InputError, match="other settings"):
        run_ablation(out, AblationSettings(budget=0.03, seeds=1, variants=("vnet-labeled", "dca"),
                                           labeled=2, unlabeled=1, test=1), "changed", "cpu")
    with pytest.raises(InputError, match=r"other settings \(sampling\)"):
        run_ablation(out, AblationSettings(budget=0.015, seeds=1, variants=("dca",), labeled=2, unlabeled=1,
                                           test=1, sampling="random"), "changed", "cpu")


def test_the_fully_supervised_row_trains_on_every_label_of_the_same_cases(tmp_path: Path) -> None:
    out = tmp_path / "ablation"
    report = run_ablation(out, AblationSettings(budget=0.015, seeds=1, variants=("vnet-full",), labeled=2,
                                                unlabeled=2, test=1), "full", "cpu", log=lambda _: None)
    images = sorted(p.name for p in (out / "data" / "images").iterdir())
    assert sorted(p.name for p in (out / "data" / "labels").iterdir()) == images[:2]
    assert sorted(p.name for p in (out / "data-full" / "labels").iterdir()) == images
    for name in images:
        assert (sitk.GetArrayFromImage(sitk.ReadImage(str(out / "data-full" / "images" / name))) ==
                sitk.GetArrayFromImage(sitk.ReadImage(str(out / "data" / "images" / name)))).all()
    split = json.loads((out / "runs" / "vnet-full" / "seed0" / "split.json").read_text(encoding="utf-8"))
    assert sorted(split["labeled"]) == [n.removesuffix(".nii.gz") for n in images] and not split["unlabeled"]
    assert [(r["section"], r["variant"]) for r in report["rows"]] == [("upper bound", "vnet-full")]
    table = (out / "ablation.md").read_text(encoding="utf-8")
    assert "*V-Net, every training case labeled* trains on the same 4 cases with all their labels" in table


def test_ablation_refuses_a_folder_that_holds_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an ablation folder"):
        run_ablation(tmp_path, AblationSettings(seeds=1), "x", "cpu")
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
