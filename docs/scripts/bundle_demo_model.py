"""Make the DCA Segmentation module's bundled demo model from a demo run's model package.

    .venv/bin/python docs/scripts/bundle_demo_model.py demo_out/model

Writes ``DCASegmentation/Resources/Models/dca-demo-synthetic-abdomen.zip``: the same network
with float16 weights (half the size), renamed and described as what it is — a model trained for
a few CPU minutes on the synthetic abdomen, for trying the module, not for patients' scans.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from dcaseg.package import load_package, save_package

TARGET = Path(__file__).resolve().parents[2] / "DCASegmentation" / "Resources" / "Models" \
    / "dca-demo-synthetic-abdomen.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a demo run's model package (demo_out/model)")
    args = parser.parse_args()
    package = load_package(args.model)
    training = package.meta.training
    validation = training.get("validation") or {}
    meta = replace(package.meta, name="DCA demo (synthetic abdomen)",
                   description=(f"Trained by `dcaseg demo` on synthetic abdomen phantoms ({training.get('iterations')} "
                                f"iterations, preset {training.get('preset')}, validation mean Dice "
                                f"{validation.get('mean_dice')}); for trying the module, not for real scans."))
    save_package(TARGET, package.build_network(), meta, half=True)
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
