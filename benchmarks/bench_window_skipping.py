"""Windows skipped outside the body: windows run, time and labels on the real CT fixtures and their 512×512 padding.

    .venv/bin/python benchmarks/bench_window_skipping.py [--model DIR|ZIP] [--calls 3]

For each real CT fixture (Testing/Data/realct/*_image.nii.gz) and its body-centred padding with air
to 512×512 (spacing kept, ``Testing/padded_ct.py``), the predictor runs at its defaults in float32
with and without skipping the windows that hold no body voxel (the body crop on in both), each
``--calls`` times alternately in one process, the best call counted. Printed per volume: the
windows the model grid would need without crop, after the crop, and after skipping; the best
time of each; and the voxels whose label differs inside the body (HU > -500) and anywhere.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Testing"))

from padded_ct import pad_body_centred  # noqa: E402

from dcaseg.data.imageio import read_image  # noqa: E402
from dcaseg.events import Reporter  # noqa: E402
from dcaseg.inference import Predictor, PredictorOptions  # noqa: E402
from dcaseg.inference.model_grid import to_model_grid  # noqa: E402
from dcaseg.inference.sliding_window import plan_windows  # noqa: E402
from dcaseg.package import load_package  # noqa: E402

DEMO_MODEL = ROOT / "DCASegmentation" / "Resources" / "Models" / "dca-demo-synthetic-abdomen.zip"
FIXTURES = sorted((ROOT / "Testing" / "Data" / "realct").glob("*_image.nii.gz"))


def uncropped_windows(predictor: Predictor, image: sitk.Image) -> int:
    """Windows over the whole model grid (no crop, no skipping), counted without running them."""
    grid, _ = to_model_grid(image, predictor.meta.preprocessing, body_crop=False)
    return len(plan_windows(grid.array.shape, tuple(reversed(predictor.meta.preprocessing.patch_size)),
                            predictor.overlap))


def measure(predictors: dict[str, Predictor], image: sitk.Image, calls: int) -> dict[str, dict]:
    """Best time, windows run and labels of each predictor, called alternately ``calls`` times."""
    results: dict[str, dict] = {name: {"seconds": float("inf")} for name in predictors}
    for _ in range(calls):
        for name, predictor in predictors.items():
            events: list[dict] = []
            predictor.reporter = Reporter(events.append)
            start = time.perf_counter()
            labels = predictor.predict(image).labels
            seconds = time.perf_counter() - start
            stage = next(e for e in events if e["event"] == "stage" and e["stage"] == "windows")
            results[name].update(windows=stage["windows"], labels=sitk.GetArrayFromImage(labels),
                                 seconds=min(seconds, results[name]["seconds"]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEMO_MODEL, help="model package (default: the demo model)")
    parser.add_argument("--calls", type=int, default=3, help="calls per configuration, the best counts (default 3)")
    args = parser.parse_args()
    package = load_package(args.model)
    predictors = {name: Predictor(package, PredictorOptions(device="cpu", precision="fp32", skip_outside_body=skip))
                  for name, skip in (("no skipping", False), ("skipping", True))}
    print(f"model {package.meta.name}: {package.meta.preprocessing.patch_size} windows at "
          f"{package.meta.preprocessing.target_spacing} mm, overlap {predictors['skipping'].overlap}, float32, "
          f"body crop on; load {os.getloadavg()[0]:.2f}", flush=True)
    print("volume | size | windows without crop | after the crop | run with skipping | s without skipping | "
          "s with skipping | labels differing inside the body | anywhere")
    for path in FIXTURES:
        fixture = read_image(path)
        for image, name in ((fixture, path.name.replace("_image.nii.gz", "")),
                            (pad_body_centred(fixture, 512), "padded to 512x512")):
            results = measure(predictors, image, args.calls)
            every, skipped = results["no skipping"], results["skipping"]
            body = sitk.GetArrayViewFromImage(image) > -500
            differ = every["labels"] != skipped["labels"]
            whole = uncropped_windows(predictors["skipping"], image)
            print(f"{name} | {'x'.join(map(str, image.GetSize()))} | {whole} | "
                  f"{every['windows']} | {skipped['windows']} | {every['seconds']:.2f} | {skipped['seconds']:.2f} | "
                  f"{int(differ[body].sum())} of {int(body.sum())} | {int(differ.sum())}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
