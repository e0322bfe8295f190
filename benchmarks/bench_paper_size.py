"""The paper-size model on a CPU: ``dcaseg segment`` end to end, with and without attention maps.

    .venv/bin/python benchmarks/bench_paper_size.py [--work DIR]

A DCA n_filters=16 network with 96³ windows on a 1.5×1.5×3 mm grid (the paper's width and
window; random weights with a uniform start, as the tests build them: the timing does not depend
on the weights), 14 abdominal classes, saved with ``dcaseg.package.save_package``. The CT: the
real fixture (tsB) resampled to 0.78×0.78×1.5 mm, the middle 200 slices, padded with air to
512×512 (``bench_inference.ct_volume``). Each run is ``/usr/bin/time -v dcaseg segment`` in its own
process (file in → label map, and with ``--attention`` the three attention maps, out), timed
wall clock, with the process's peak resident memory; the windows come from its JSON events.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import SimpleITK as sitk
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Testing"))

from bench_inference import MODEL_SPACING, ct_volume  # noqa: E402
from support import random_network, tiny_model_meta  # noqa: E402

from dcaseg.nets import ArchitectureConfig  # noqa: E402
from dcaseg.package import ModelMeta, Preprocessing, save_package  # noqa: E402

PAPER_FILTERS, PAPER_WINDOW = 16, (96, 96, 96)
SLICES, SLICE_MM = 200, 1.5


def paper_size_model(path: Path) -> Path:
    """An nf16, 96³-window DCA package with random weights (the classes and groups of the real CT's labels)."""
    tiny = tiny_model_meta()
    architecture = ArchitectureConfig(num_classes=tiny.architecture.num_classes, n_filters=PAPER_FILTERS,
                                      expert_classes=tiny.architecture.expert_classes)
    meta = ModelMeta(name="paper-size-random", architecture=architecture, classes=tiny.classes, groups=tiny.groups,
                     preprocessing=Preprocessing(target_spacing=MODEL_SPACING, patch_size=PAPER_WINDOW),
                     description="random weights, for timing only")
    torch.manual_seed(0)
    return save_package(path, random_network(architecture), meta)


def timed_segment(model: Path, image: Path, output: Path, attention: bool) -> dict:
    """``dcaseg segment`` under ``/usr/bin/time -v``: wall seconds, peak RSS and the windows it ran."""
    command = ["/usr/bin/time", "-v", str(Path(sys.executable).with_name("dcaseg")), "segment", "-m", str(model),
               "-i", str(image), "-o", str(output), "--device", "cpu", "--progress", "jsonl", "--overwrite"]
    if attention:
        command.append("--attention")
    load = os.getloadavg()[0]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dcaseg segment failed: {result.stderr.strip()[-500:]}")
    report = dict(line.strip().rsplit(": ", 1) for line in result.stderr.splitlines() if ": " in line)
    wall = report["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    stage = next(e for e in events if e["event"] == "stage" and e["stage"] == "windows")
    return {"seconds": sum(float(part) * 60**i for i, part in enumerate(reversed(wall))),
            "peak_rss_mib": int(report["Maximum resident set size (kbytes)"]) / 1024,
            "windows": stage["windows"], "skipped": stage["skipped"], "load_before": load,
            "command": " ".join(command[2:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the model, the CT and the outputs (default: temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-paper-size-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        model = paper_size_model(work / "paper-size-model")
        ct = ct_volume((0.78125, 0.78125, SLICE_MM), SLICES)
        image = work / "ct_512x512x200.nii.gz"
        sitk.WriteImage(ct, str(image))
        print(f"model: DCA nf{PAPER_FILTERS}, {PAPER_WINDOW} windows at {MODEL_SPACING} mm, random weights; CT "
              f"{ct.GetSize()} at {ct.GetSpacing()} mm; {os.cpu_count()} cores", flush=True)
        for attention in (False, True):
            result = timed_segment(model, image, work / f"labels_attention_{attention}.nii.gz", attention)
            print(f"{'with' if attention else 'without'} --attention: {result['seconds']:.0f} s wall, peak RSS "
                  f"{result['peak_rss_mib']:.0f} MiB, {result['windows']} windows run ({result['skipped']} skipped), "
                  f"load before {result['load_before']:.2f}; {result['command']}", flush=True)


if __name__ == "__main__":
    main()
