"""Ablation results: per-run summaries, mean ± std over seeds, a markdown table and a figure.

Scores are on held-out test cases. An organ's Dice in one run is its mean over the test cases
that have it (on either side); a group's Dice is the mean of its organs' Dice, with the groups
the log-gap analysis gives on the labeled set (the same groups for every variant, so rows are
comparable). ASD (mm) averages only defined distances: an organ the model misses entirely has
Dice 0 but no ASD, so ``missed`` counts those organ-case pairs next to it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..grouping import GROUP_NAMES, group_color_hex
from ..metrics import MISSING_IN_PREDICTION
from ..package_meta import OUTPUTS
from .variants import ROWS, VARIANTS

SHORT_NAMES = {"spleen": "Sp", "kidney_right": "RK", "kidney_left": "LK", "gallbladder": "Ga",
               "esophagus": "Es", "liver": "Li", "stomach": "St", "aorta": "Ao", "inferior_vena_cava": "IVC",
               "portal_vein_and_splenic_vein": "PSV", "pancreas": "Pa", "adrenal_gland_right": "RAG",
               "adrenal_gland_left": "LAG"}
HEADLINE = ("mean_dice", *GROUP_NAMES, "asd_mm")


def summarise_run(cases: Mapping[str, Mapping[str, Mapping[str, Any]]], organs: Sequence[str],
                  groups: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """One run's scores ({case: {organ: OrganScore dict}}) → organ and group Dice (%), ASD (mm)."""
    dice: dict[str, float] = {}
    asd: dict[str, float] = {}
    missed = 0
    for organ in organs:
        scores = [case[organ] for case in cases.values() if organ in case]
        values = [s["dice"] for s in scores if s["dice"] is not None]
        if values:
            dice[organ] = 100.0 * float(np.mean(values))
        distances = [s["asd_mm"] for s in scores if s["asd_mm"] is not None]
        if distances:
            asd[organ] = float(np.mean(distances))
        missed += sum(s["status"] == MISSING_IN_PREDICTION for s in scores)
    summary: dict[str, Any] = {"mean_dice": _mean(dice.values())}
    for group in GROUP_NAMES:
        summary[group] = _mean(dice[o] for o in groups[group] if o in dice)
    summary.update(asd_mm=_mean(asd.values()), missed=missed, organs=dice, organ_asd_mm=asd)
    return summary


def aggregate(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of every headline number and organ Dice."""
    out: dict[str, Any] = {"seeds": len(summaries)}
    for key in (*HEADLINE, "missed"):
        out[key] = _mean_std([s[key] for s in summaries])
    organs = sorted({o for s in summaries for o in s["organs"]})
    out["organs"] = {o: _mean_std([s["organs"].get(o) for s in summaries]) for o in organs}
    return out


def build_report(header: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]],
                 keys: Mapping[str, str], organs: Sequence[str], groups: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The report: ``header`` plus one entry per report row that has finished runs.

    ``records``: finished runs by ``"<run key>#<seed>"``; ``keys``: run key of each variant.
    ``machines`` counts the reported runs per machine that trained them (a folder can be continued
    on another machine); ``machine`` in the header is the last call's.
    """
    rows = []
    for section, label, variant in ROWS:
        if variant not in keys:
            continue
        runs = sorted((r for r in records.values() if r["key"] == keys[variant]), key=lambda r: r["seed"])
        if not runs:
            continue
        entry: dict[str, Any] = {"section": section, "label": label, "variant": variant,
                                 "description": VARIANTS[variant].description, "seeds": [r["seed"] for r in runs],
                                 "train_seconds": _mean_std([r["train_seconds"] for r in runs])}
        for head in OUTPUTS:
            per_seed = [summarise_run(r["scores"][head], organs, groups) for r in runs if head in r["scores"]]
            if per_seed:
                entry[head] = aggregate(per_seed)
                entry[f"{head}_per_seed"] = per_seed
        rows.append(entry)
    reported = {keys[row["variant"]] for row in rows}
    machines = Counter(r.get("machine", "not recorded") for r in records.values() if r["key"] in reported)
    return {**header, "machines": dict(machines), "organs": list(organs),
            "report_groups": {g: list(v) for g, v in groups.items()}, "rows": rows}


def _machines(report: Mapping[str, Any]) -> Mapping[str, int]:
    """Runs per machine; reports written before runs recorded theirs name the last call's machine."""
    return report.get("machines") or {report["machine"]: report["finished_runs"]}


def markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown: settings, the headline table and the per-organ Dice table."""
    s = report["settings"]
    machines = _machines(report)
    trained_on = next(iter(machines)) if len(machines) == 1 else "; ".join(
        f"{machine} ({n} run{'s' if n != 1 else ''})" for machine, n in machines.items())
    lines = [f"- Machine: {trained_on}; date {report['date']}; engine {report['engine_version']}",
             f"- Command: `{report['command']}`",
             f"- Budget: {s['iterations']} iterations per run (budget x{s['budget']}), n_filters {s['n_filters']}, "
             f"patch {'x'.join(map(str, s['patch_size']))}, batch {s['labeled_batch']} labeled + "
             f"{s['unlabeled_batch']} unlabeled, seeds {s['seeds']}; data: {s['labeled']} labeled + "
             f"{s['unlabeled']} unlabeled phantom cases at {s['spacing_mm']} mm, {s['test']} held-out test cases; "
             f"labeled patches {s.get('sampling', 'balanced')}; phantom family {s.get('family', 'standard')}"
             + _all_labeled_note(report),
             "- Report groups (log-gap on the labeled set): " + "; ".join(
                 f"{g} = {', '.join(SHORT_NAMES.get(o, o) for o in report['report_groups'][g])}" for g in GROUP_NAMES),
             f"- Time: {report['wall_minutes']:.1f} min of wall time in the last call; "
             f"{report.get('run_minutes', 0.0):.1f} min of training and scoring summed over "
             f"{report['finished_runs']} of {report['planned_runs']} runs (runs side by side overlap)", "",
             "Dice in %, mean ± std over seeds (aggregation decoder output; *Tail (experts fused)* is the "
             "experts' logit-concatenation output). ASD in mm over the organs found; *missed* = organ-case pairs "
             "with no predicted voxel (mean over seeds).", "",
             "| Section | Variant | Mean Dice | Head | Medium | Tail | ASD mm | missed | Tail (experts fused) | seeds "
             "| train s/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        agg = row["aggregator"]
        fused = _fmt(row["experts_fused"]["tail"]) if "experts_fused" in row else "–"
        lines.append(f"| {row['section']} | {row['label']} | " + " | ".join(_fmt(agg[k]) for k in HEADLINE)
                     + f" | {_fmt(agg['missed'], 1)} | {fused} | {agg['seeds']} | {_fmt(row['train_seconds'], 0)} |")
    organs = report["organs"]
    lines += ["", "Per-organ Dice (%), mean ± std over seeds:", "",
              "| Variant | " + " | ".join(SHORT_NAMES.get(o, o) for o in organs) + " |",
              "|---|" + "---|" * len(organs)]
    seen = set()
    for row in report["rows"]:
        if row["variant"] in seen:
            continue
        seen.add(row["variant"])
        agg = row["aggregator"]
        lines.append(f"| {row['variant']} | " + " | ".join(_fmt(agg["organs"].get(o)) for o in organs) + " |")
    return "\n".join(lines) + "\n"


def _all_labeled_note(report: Mapping[str, Any]) -> str:
    """Which rows train with every training case's labels, for the data line."""
    rows = [row["label"] for row in report["rows"] if VARIANTS[row["variant"]].all_labeled]
    if not rows:
        return ""
    s = report["settings"]
    return f"; *{'*, *'.join(rows)}* trains on the same {s['labeled'] + s['unlabeled']} cases with all their labels"


def figure(report: Mapping[str, Any], path: Path) -> Path:
    """Bar chart of mean / head / medium / tail Dice per row with ± std error bars (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    metrics = ("mean_dice", *GROUP_NAMES)
    colors = ("#444444", *(group_color_hex(g) for g in GROUP_NAMES))
    fig, ax = plt.subplots(figsize=(max(8.0, 1.0 * len(rows) + 2), 4.8))
    width = 0.8 / len(metrics)
    x = np.arange(len(rows))
    for i, (metric, color) in enumerate(zip(metrics, colors)):
        means = [_value(r["aggregator"][metric], 0) for r in rows]
        stds = [_value(r["aggregator"][metric], 1) for r in rows]
        ax.bar(x + (i - 1.5) * width, means, width, yerr=stds, capsize=2, color=color,
               label=metric.replace("_dice", " Dice"))
    for boundary in [i for i in range(1, len(rows)) if rows[i]["section"] != rows[i - 1]["section"]]:
        ax.axvline(boundary - 0.5, color="#999999", linewidth=0.8, linestyle="--")
    ax.set_xticks(x)
    ax.set_xticklabels([r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Dice (%) on held-out phantom cases")
    s = report["settings"]
    seeds = max((len(r["seeds"]) for r in rows), default=0)
    machines = _machines(report)
    where = next(iter(machines)) if len(machines) == 1 else f"runs from {len(machines)} machines"
    ax.set_title(f"DCA ablation, synthetic abdomen: {s['iterations']} iterations, nf{s['n_filters']}, "
                 f"up to {seeds} seed{'s' if seeds != 1 else ''} ({report['date']}, {where})",
                 fontsize=9)
    ax.legend(fontsize=8, ncol=4, loc="upper left")
    ax.set_ylim(0, 100)
    fig.tight_layout()
    with atomic_write(path, binary=True) as stream:
        fig.savefig(stream, format="png", dpi=110)
    plt.close(fig)
    return path


def _mean(values: Any) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _mean_std(values: Sequence[float | None]) -> list[float | None]:
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return [None, None]
    return [float(np.mean(kept)), float(np.std(kept, ddof=1)) if len(kept) > 1 else 0.0]


def _value(pair: Sequence[float | None], index: int) -> float:
    value = pair[index]
    return float(value) if value is not None else 0.0


def _fmt(pair: Sequence[float | None], digits: int = 1) -> str:
    if pair is None or pair[0] is None:
        return "–"
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"
