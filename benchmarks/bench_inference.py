"""Inference benchmark: our predictor vs MONAI's ``sliding_window_inference`` on a CT-sized volume.

    .venv/bin/python benchmarks/bench_inference.py [--model DIR|ZIP] [--skip-memory] [--device cuda] [--slices 200]

1. A model with non-trivial output: a DCA n_filters=8 network (96³ windows, 1.5×1.5×3 mm) whose
   output layer is fitted to the real CT fixture (tsB; see ``fit_model``), so its labels vary with
   the anatomy (random weights give near-constant labels, which would make agreement meaningless).
2. A CT-sized volume: the real CT fixture resampled to 0.78×0.78×2.5 mm, 100 slices, padded with
   air to 512×512 (a 400 mm field of view) → 266×266×84 on the model grid.
3. Each configuration runs in its own process (peak RSS = its VmHWM; on a GPU also the peak of
   torch's allocator), timed from the image in memory to the label map in the input's geometry,
   twice, the faster call counted (the first pays one-off kernel selection), with the same
   preprocessing and restoring code:
   same windows (overlap 0.5, Gaussian, float32, no body mask) through both; then each side's
   defaults (ours: body crop and mask, bf16 where the CPU has it natively, several small windows
   per pass). Agreement is the share of equal voxels inside the body (HU > -500) against the
   dense overlap-0.5 float32 reference.
4. Memory (CPU): ``dcaseg segment`` on a 512×512×400 volume (0.8 mm slices), peak RSS of the
   process. On a GPU instead: ``dcaseg segment`` end to end (process start, model and NIfTI read,
   segmentation, NIfTI written) on the benchmark volume.

The last line is ``same-windows speedup X.XX, defaults speedup Y.YY, agreement Z.ZZZZ``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from dcaseg.anatomy import organ_color
from dcaseg.data.orientation import to_standard_orientation
from dcaseg.data.preprocess import normalise_intensity, resample
from dcaseg.grouping import group_label_files
from dcaseg.inference import DEFAULT_OVERLAP, Predictor
from dcaseg.inference.model_grid import restore, to_model_grid
from dcaseg.inference.sliding_window import plan_windows
from dcaseg.nets import ArchitectureConfig, DCANet
from dcaseg.package import (ClassInfo, ModelMeta, Preprocessing, expert_classes_from_groups, load_package,
                            save_package)

REALCT = Path(__file__).resolve().parents[1] / "Testing" / "Data" / "realct"
CT_IMAGE = REALCT / "tsB_ct_full_noncontrast_image.nii.gz"
CT_LABEL = REALCT / "tsB_ct_full_noncontrast_label.nii.gz"
MODEL_SPACING = (1.5, 1.5, 3.0)
PATCH = (96, 96, 96)
N_FILTERS = 8
MONAI_DEFAULT_OVERLAP, MONAI_DEFAULT_MODE = 0.25, "constant"  # monai.inferers.sliding_window_inference defaults


# ----------------------------------------------------------------------------- model

def benchmark_meta() -> ModelMeta:
    names = json.loads((REALCT / "labelmap_abd14.json").read_text(encoding="utf-8"))
    classes = [ClassInfo(int(v), n, organ_color(n, int(v))) for v, n in sorted(names.items(), key=lambda i: int(i[0]))]
    groups = group_label_files([CT_LABEL], classes=[c.value for c in classes]).as_dict()
    architecture = ArchitectureConfig(len(classes) + 1, expert_classes_from_groups(groups, classes), n_filters=N_FILTERS)
    return ModelMeta("bench-abd14-nf8", architecture, classes, groups, Preprocessing(MODEL_SPACING, PATCH),
                     description="fitted briefly to one CT, for benchmarking only")


def fit_model(path: Path, samples_per_class: int = 3000, seed: int = 0) -> Path:
    """A DCA nf8 network with random convolutions whose output layer is fitted to the real CT.

    Fitting a 3-D network properly takes hours on 2 cores, so instead the aggregator's last
    features (random but image-driven: intensity, texture, context) are computed once on the CT and
    its 1×1×1 output convolution is fitted to the reference labels by class-balanced softmax
    regression (a linear probe). Its labels vary over the body (13+ classes) but, unlike a trained
    network's, they depend on where the window borders fall: even two overlap-0.5 layouts shifted
    by the body crop disagree on many voxels. The benchmark reports that floor beside the
    agreement of each configuration; ``--model`` runs it with a trained package instead.
    """
    meta = benchmark_meta()
    image = resample(to_standard_orientation(sitk.ReadImage(str(CT_IMAGE))), MODEL_SPACING)
    label = resample(to_standard_orientation(sitk.ReadImage(str(CT_LABEL))), MODEL_SPACING, is_label=True,
                     size=image.GetSize())
    x = torch.from_numpy(normalise_intensity(sitk.GetArrayFromImage(image), meta.preprocessing.intensity))
    lookup = np.zeros(256, np.int64)
    lookup[meta.label_values] = np.arange(len(meta.label_values))
    y = lookup[sitk.GetArrayFromImage(label)]
    torch.manual_seed(seed)
    network = DCANet(meta.architecture).eval()
    captured = {}
    hook = network.aggregator.convs[-1].register_forward_hook(lambda _m, _i, out: captured.update(features=out))
    padded = [int(np.ceil(n / 16) * 16) for n in x.shape]
    volume = torch.nn.functional.pad(x, [a for n, p in zip(reversed(x.shape), reversed(padded)) for a in (0, p - n)])
    with torch.inference_mode():
        network(volume[None, None], with_fused=False)
    hook.remove()
    features = captured["features"][0, :, :x.shape[0], :x.shape[1], :x.shape[2]].reshape(N_FILTERS, -1).T
    rng = np.random.default_rng(seed)
    flat = y.ravel()
    chosen = np.concatenate([rng.choice(np.flatnonzero(flat == c), min(samples_per_class, int((flat == c).sum())),
                                        replace=False) for c in np.unique(flat)])
    inputs, targets = features[chosen].clone(), torch.from_numpy(flat[chosen])
    mean, std = inputs.mean(0), inputs.std(0) + 1e-6
    probe = torch.nn.Linear(N_FILTERS, meta.architecture.num_classes)
    optimiser = torch.optim.Adam(probe.parameters(), lr=0.05)
    for _ in range(400):
        loss = torch.nn.functional.cross_entropy(probe((inputs - mean) / std), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        out = network.aggregator.out_conv
        out.weight.copy_((probe.weight / std)[..., None, None, None])
        out.bias.copy_(probe.bias - (probe.weight * mean / std).sum(1))
    print(f"  output layer fitted: cross-entropy {loss.item():.3f} on {len(chosen)} class-balanced voxels", flush=True)
    return save_package(path, network, meta)


# ----------------------------------------------------------------------------- volumes

def ct_volume(spacing: tuple[float, float, float], slices: int) -> sitk.Image:
    """The real CT resampled to ``spacing``, ``slices`` slices from the middle, padded with air to 512×512."""
    source = sitk.ReadImage(str(CT_IMAGE))
    size = [int(round(n * s / t)) for n, s, t in zip(source.GetSize(), source.GetSpacing(), spacing)]
    image = sitk.Resample(source, size, sitk.Transform(), sitk.sitkLinear, source.GetOrigin(), spacing,
                          source.GetDirection(), -1024.0, sitk.sitkInt16)
    array = sitk.GetArrayFromImage(image)
    z0 = max(0, (array.shape[0] - slices) // 2)
    array = array[z0:z0 + slices]
    if array.shape[0] < slices:
        array = np.concatenate([array] * (slices // array.shape[0] + 1))[:slices]
    pad_y, pad_x = 512 - array.shape[1], 512 - array.shape[2]
    array = np.pad(array, ((0, 0), (pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2)),
                   constant_values=-1024)
    result = sitk.GetImageFromArray(array)
    result.SetSpacing(spacing)
    result.SetDirection(source.GetDirection())
    result.SetOrigin(image.TransformIndexToPhysicalPoint((-(pad_x // 2), -(pad_y // 2), z0)))
    return result


# ----------------------------------------------------------------------------- one configuration (child)

def run_configuration(config: dict, model: Path, volume: Path, labels_out: Path, device: str) -> dict:
    """Segment ``volume`` one way, twice; time image-in-memory → labels-in-input-geometry."""
    image = sitk.ReadImage(str(volume))
    package = load_package(model)
    meta = package.meta
    if config["engine"] == "ours":
        predictor = Predictor(package, device=device, overlap=config["overlap"], body_crop=config["crop"],
                              precision=config.get("precision", "auto"), mask_to_body=config.get("mask"))
        events = []
        predictor.reporter.sinks.append(events.append)

        def segment() -> sitk.Image:
            return predictor.predict(image).labels
    else:
        from monai.inferers import sliding_window_inference

        network = package.build_network(device)
        values = torch.tensor(meta.label_values)
        patch = tuple(reversed(meta.preprocessing.patch_size))
        fused = meta.output == "experts_fused"  # the package's output head, as our predictor uses it

        def output_head(x: torch.Tensor) -> torch.Tensor:
            result = network(x, with_fused=fused)
            return result.fused if fused else result.logits

        def segment() -> sitk.Image:
            grid, _ = to_model_grid(image, meta.preprocessing, body_crop=False)
            with torch.no_grad():
                logits = sliding_window_inference(torch.from_numpy(grid.array)[None, None].to(device), patch, 1,
                                                  output_head, overlap=config["overlap"], mode=config["mode"])
            return restore(grid, values[logits[0].argmax(0).cpu()].numpy().astype(np.uint8), image, is_label=True)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        labels = segment()
        seconds.append(time.perf_counter() - start)
    if config["engine"] == "ours":
        windows = [e for e in events if e["event"] == "progress"][-1]["total"]
    else:
        grid, _ = to_model_grid(image, meta.preprocessing, body_crop=False)
        windows = len(plan_windows(grid.array.shape, patch, config["overlap"]))
    np.save(labels_out, sitk.GetArrayViewFromImage(labels))
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return {"seconds": min(seconds), "first_seconds": seconds[0], "windows": windows,
            "peak_rss_mib": peak_rss_mib(), "gpu_peak_mib": gpu_peak}


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited from the parent)."""
    status = Path("/proc/self/status").read_text(encoding="utf-8")
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def child(config: dict, model: Path, volume: Path, labels_out: Path, device: str) -> dict:
    """Run one configuration in a fresh process."""
    command = [sys.executable, __file__, "--child", json.dumps(config), "--model", str(model), "--volume", str(volume),
               "--labels-out", str(labels_out), "--device", device]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"configuration {config} failed (status {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def segment_file(model: Path, path: Path, device: str) -> dict:
    """``dcaseg segment`` (defaults) on the NIfTI ``path`` in a fresh process: wall time and peak RSS."""
    report_peak = (f"import atexit, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                   "from bench_inference import peak_rss_mib; "
                   "atexit.register(lambda: print(f'peak_rss_mib {peak_rss_mib()}', file=sys.stderr)); "
                   "from dcaseg.cli import main; sys.exit(main(sys.argv[1:]))")
    command = [sys.executable, "-c", report_peak, "segment", "-m", str(model), "-i", str(path), "-o",
               str(path.with_name(path.name.replace(".nii", "_labels.nii"))), "--device", device, "--progress", "none"]
    start = time.perf_counter()
    result = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dcaseg segment failed on {path.name}: {result.stderr.strip()[-300:]}")
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": float(result.stderr.split("peak_rss_mib")[-1].split()[0])}


def memory_check(model: Path, folder: Path) -> dict:
    """``dcaseg segment`` (defaults, CPU) on a 512×512×400 CT; peak RSS of that process."""
    image = ct_volume((0.78125, 0.78125, 0.8), 400)
    path = folder / "ct_512x512x400.nii"
    sitk.WriteImage(image, str(path))
    del image
    voxels = 512 * 512 * 400
    return {**segment_file(model, path, "cpu"), "int16_volume_mib": voxels * 2 / 2**20,
            "float32_volume_mib": voxels * 4 / 2**20}


# ----------------------------------------------------------------------------- main

def agreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float((a[mask] == b[mask]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model package to benchmark (else fit one)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 512×512×400 memory check (CPU)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where both engines run")
    parser.add_argument("--slices", type=int, default=100, help="slices of the 512×512 benchmark CT (2.5 mm)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--volume", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--labels-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_configuration(json.loads(args.child), args.model, args.volume, args.labels_out,
                                           args.device)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            print(f"fitting the output layer of a DCA nf{N_FILTERS} model to the real CT ...", flush=True)
            started = time.perf_counter()
            model = fit_model(work / "model")
            print(f"  fitted in {time.perf_counter() - started:.0f} s", flush=True)
        image = ct_volume((0.78125, 0.78125, 2.5), args.slices)
        volume = work / f"ct_512x512x{args.slices}.nii"
        sitk.WriteImage(image, str(volume))
        body = sitk.GetArrayViewFromImage(image) > -500
        print(f"volume {image.GetSize()} at {image.GetSpacing()} mm; body voxels {body.mean():.1%}", flush=True)
        hardware = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
        print(f"device {args.device} ({hardware}), torch {torch.__version__}", flush=True)
        configs = {
            "monai-same": {"engine": "monai", "overlap": 0.5, "mode": "gaussian"},
            "ours-same": {"engine": "ours", "overlap": 0.5, "crop": False, "precision": "fp32", "mask": False},
            "monai-defaults": {"engine": "monai", "overlap": MONAI_DEFAULT_OVERLAP, "mode": MONAI_DEFAULT_MODE},
            "ours-defaults": {"engine": "ours", "overlap": DEFAULT_OVERLAP, "crop": None},
            "ours-overlap-0.25": {"engine": "ours", "overlap": 0.25, "crop": None},
        }
        results, labels = {}, {}
        for name, config in configs.items():
            results[name] = result = child(config, model, volume, work / f"{name}.npy", args.device)
            labels[name] = np.load(work / f"{name}.npy")
            gpu = f"  GPU peak {result['gpu_peak_mib']:6.0f} MiB" if result["gpu_peak_mib"] is not None else ""
            print(f"  {name:<18} {result['windows']:>3} windows  {result['seconds']:7.2f} s (first call "
                  f"{result['first_seconds']:.2f} s)  peak RSS {result['peak_rss_mib']:6.0f} MiB{gpu}", flush=True)
        reference = labels["ours-same"]
        every = np.ones_like(body)
        differing = int((labels["monai-same"] != reference).sum())
        foreground = (reference > 0).mean()
        print(f"reference labels: {len(np.unique(reference)) - 1} organs, foreground {foreground:.1%} of voxels")
        print(f"same windows: {differing} of {reference.size} voxels differ between MONAI and ours "
              f"(agreement {agreement(labels['monai-same'], reference, every):.6f})")
        for name in ("monai-defaults", "ours-defaults", "ours-overlap-0.25"):
            print(f"{name}: agreement with the dense reference {agreement(labels[name], reference, body):.4f} "
                  f"inside the body, {agreement(labels[name], reference, every):.4f} overall")
        if args.device != "cpu":
            end_to_end = segment_file(model, volume, args.device)
            print(f"end to end: dcaseg segment --device {args.device} on the 512x512x{args.slices} NIfTI in "
                  f"{end_to_end['seconds']:.1f} s (process start, model, read, segment, write)")
        elif not args.skip_memory:
            memory = memory_check(model, work)
            print(f"memory: 512x512x400 CT segmented in {memory['seconds']:.0f} s, peak RSS "
                  f"{memory['peak_rss_mib']:.0f} MiB = {memory['peak_rss_mib'] / memory['int16_volume_mib']:.1f}x the "
                  f"int16 volume ({memory['int16_volume_mib']:.0f} MiB), "
                  f"{memory['peak_rss_mib'] / memory['float32_volume_mib']:.1f}x as float32")
        same = results["monai-same"]["seconds"] / results["ours-same"]["seconds"]
        defaults = results["monai-defaults"]["seconds"] / results["ours-defaults"]["seconds"]
        print(f"same-windows speedup {same:.2f}, defaults speedup {defaults:.2f}, "
              f"agreement {agreement(labels['ours-defaults'], reference, body):.4f}")


if __name__ == "__main__":
    main()
