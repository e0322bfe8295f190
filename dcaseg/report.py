"""Report pictures and tables: Dice table (markdown), grouping chart, segmentation/attention overlays."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .grouping import GROUP_NAMES, group_color_hex  # noqa: E402
from .package import ModelMeta  # noqa: E402


def dice_table(columns: Mapping[str, Mapping[str, Any]], groups_by_organ: Mapping[str, str]) -> str:
    """A markdown table: organ, group, then one Dice column per output; the group means and the mean.

    ``columns`` maps a column title to ``{"dice": {organ: Dice}, "group_dice": {...}, "mean_dice": ...}``.
    """
    titles = list(columns)
    lines = ["| organ | group | " + " | ".join(titles) + " |", "|---|---|" + "---|" * len(titles)]
    organs = list(dict.fromkeys(o for c in columns.values() for o in c["dice"]))
    for organ in organs:
        values = " | ".join(_fmt(columns[t]["dice"].get(organ)) for t in titles)
        lines.append(f"| {organ} | {groups_by_organ.get(organ, '')} | {values} |")
    for group in GROUP_NAMES:
        values = " | ".join(f"**{_fmt(columns[t]['group_dice'].get(group))}**" for t in titles)
        lines.append(f"| **{group} group** | {group} | {values} |")
    lines.append("| **mean** | | " + " | ".join(f"**{_fmt(columns[t]['mean_dice'])}**" for t in titles) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def grouping_chart(meta: ModelMeta, shares: Mapping[int, float], path: Path) -> Path:
    """Bar chart of each class's share of the labeled foreground (log scale), coloured by group."""
    names = meta.class_names
    group_of = {v: g for g in GROUP_NAMES for v in meta.groups[g]}
    order = sorted(shares, key=lambda v: -shares[v])
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    ax.bar(range(len(order)), [shares[v] * 100 for v in order],
           color=[group_color_hex(group_of[v]) for v in order])
    ax.set_yscale("log")
    ax.set_xticks(range(len(order)), [names[v] for v in order], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("share of labeled foreground (%)")
    ax.set_title("Divide: log-gap grouping of the labeled voxels")
    ax.legend(handles=[Patch(color=group_color_hex(group), label=group) for group in GROUP_NAMES])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _label_cmap(meta: ModelMeta) -> tuple[ListedColormap, int]:
    top = max(meta.label_values)
    colors = np.zeros((top + 1, 4))
    for c in meta.classes:
        colors[c.value] = (*(np.array(c.color) / 255.0), 1.0)
    return ListedColormap(colors), top


def overlay_slices(image: sitk.Image, reference: sitk.Image, prediction: sitk.Image,
                   attention: Mapping[str, sitk.Image] | None, meta: ModelMeta,
                   slices: Sequence[int], path: Path, window: tuple[float, float] = (-160.0, 240.0)) -> Path:
    """One row per axial slice: CT, reference, prediction, and the head/medium/tail attention maps."""
    ct = sitk.GetArrayFromImage(image)
    ref = sitk.GetArrayFromImage(reference)
    pred = sitk.GetArrayFromImage(prediction)
    maps = {g: sitk.GetArrayFromImage(attention[g]) for g in GROUP_NAMES} if attention else {}
    cmap, top = _label_cmap(meta)
    columns = ["CT", "reference", "prediction", *(f"attention: {g}" for g in maps)]
    fig, axes = plt.subplots(len(slices), len(columns), figsize=(2.4 * len(columns), 2.4 * len(slices)),
                             dpi=90, squeeze=False)
    for row, z in enumerate(slices):
        for col, title in enumerate(columns):
            ax = axes[row][col]
            ax.imshow(ct[z], cmap="gray", vmin=window[0], vmax=window[1])
            if title == "reference":
                ax.imshow(np.ma.masked_equal(ref[z], 0), cmap=cmap, vmin=0, vmax=top, alpha=0.6,
                          interpolation="nearest")
            elif title == "prediction":
                ax.imshow(np.ma.masked_equal(pred[z], 0), cmap=cmap, vmin=0, vmax=top, alpha=0.6,
                          interpolation="nearest")
            elif title.startswith("attention"):
                ax.imshow(maps[title.split(": ")[1]][z], cmap="magma", vmin=0, vmax=1, alpha=0.7)
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title, fontsize=9)
        axes[row][0].text(2, 8, f"z={z}", color="yellow", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def pick_slices(reference: sitk.Image, values: Sequence[int], count: int = 3) -> list[int]:
    """Axial slices that show the given label values best (most of them), spread over the volume."""
    ref = sitk.GetArrayFromImage(reference)
    present = np.stack([(ref == v).any(axis=(1, 2)) for v in values]).sum(axis=0)
    area = (ref > 0).sum(axis=(1, 2))
    ranked = sorted(range(ref.shape[0]), key=lambda z: (-present[z], -area[z]))
    chosen: list[int] = []
    for z in ranked:
        if all(abs(z - c) >= 3 for c in chosen):
            chosen.append(z)
        if len(chosen) == count:
            break
    return sorted(chosen)


def training_curves(events: Sequence[Mapping], path: Path) -> Path:
    """Loss and λ per iteration, and validation mean Dice, from a run's events."""
    metrics = [e for e in events if e.get("event") == "metrics"]
    validation = [e for e in events if e.get("event") == "validation"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    its = [e["iteration"] for e in metrics]
    left.plot(its, [e["loss_sup"] for e in metrics], label="supervised (experts)")
    left.plot(its, [e["loss_unsup"] for e in metrics], label="unsupervised (aggregator)")
    left.set_xlabel("iteration")
    left.set_ylabel("loss")
    left.legend(fontsize=8)
    twin = left.twinx()
    twin.plot(its, [e["lambda"] for e in metrics], color="gray", linestyle=":", label="λ")
    twin.set_ylabel("λ")
    right.plot([e["iteration"] for e in validation], [e["mean_dice"] for e in validation], marker="o")
    right.set_xlabel("iteration")
    right.set_ylabel("validation mean Dice")
    right.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
