"""``dcaseg info``: summarise a model package or say why it is not a valid one."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..grouping import GROUP_NAMES
from ..package_meta import read_meta

HELP = "summarise a model package (classes, groups, preprocessing, provenance)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model package folder or .zip")
    parser.add_argument("--json", action="store_true", help="print model.json as validated")


def run(args: argparse.Namespace) -> int:
    read_meta(args.model)  # a bad model.json is refused before torch is imported
    from ..package import load_package

    package = load_package(args.model)
    meta = package.meta
    if args.json:
        print(json.dumps(meta.to_dict(), indent=2))
        return 0
    arch = meta.architecture
    names = meta.class_names
    n_params = sum(t.numel() for k, t in package.state_dict.items() if "running" not in k and "num_batches" not in k)
    print(f"model      {meta.name} (format {meta.format_version}, engine {meta.engine_version or '?'})")
    if meta.description:
        print(f"           {meta.description}")
    fusion = f" fusion={arch.fusion}" if arch.experts != "none" else ""
    print(f"network    experts={arch.experts} dfam={arch.dfam}{fusion} n_filters={arch.n_filters} "
          f"({n_params / 1e6:.2f} M parameters)")
    print(f"output     {meta.output.replace('_', ' ')} (the head that gives the label map)")
    print(f"classes    {len(meta.classes)}: " + ", ".join(f"{c.value}={c.name}" for c in meta.classes))
    for group in GROUP_NAMES:
        print(f"{group:<10} " + ", ".join(names[v] for v in meta.groups[group]))
    pre = meta.preprocessing
    print(f"preproc.   {pre.modality}, spacing {tuple(pre.target_spacing)} mm, patch {tuple(pre.patch_size)}, "
          f"intensity {pre.intensity}, body crop {pre.body_crop}")
    for key, value in meta.training.items():
        text = json.dumps(value) if not isinstance(value, str) else value
        print(f"training   {key}: {text[:200]}")
    return 0
