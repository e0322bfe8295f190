"""Inference benchmark: our predictor against MONAI's ``sliding_window_inference`` and nnU-Net v2's predictor.

    .venv/bin/python benchmarks/bench_inference.py [--model DIR|ZIP] [--rounds 3] [--skip-memory]
                                                   [--device cuda] [--slices 100]

1. A model with non-trivial output: ``--model`` (the run of record uses the bundled demo model),
   else a DCA n_filters=8 network (96³ windows, 1.5×1.5×3 mm) whose output layer is fitted to
   the real CT fixture (tsB; see ``fit_model``), so its labels vary with the anatomy.
2. A CT-sized volume: the real CT fixture resampled to 0.78×0.78×2.5 mm, 100 slices, padded with
   air to 512×512 (a 400 mm field of view).
3. Configurations (``configurations``), each timed from the image in memory to the label map in
   the input's geometry, with the same preprocessing and restoring code:
   - ours at our defaults (body crop, windows without a body voxel skipped, background outside
     the body, bf16 only where the CPU computes it natively, several small windows per pass,
     BatchNorm folded into the convolutions, ``channels_last_3d``, ``torch.inference_mode``);
   - ours with the peers' windows (overlap 0.5, Gaussian, float32, no crop, no skipping, no
     mask): the dense float32 reference;
   - MONAI matched: the same windows and Gaussian, ``sw_batch_size`` equal to our windows per
     pass, the network as our predictor prepares it (BatchNorm folded, ``channels_last_3d``),
     ``torch.inference_mode``;
   - MONAI defaults (``SlidingWindowInferer``'s: ``sw_batch_size`` 1, overlap 0.25, constant
     weights; the network as built, in the default memory format, ``torch.no_grad`` as in MONAI's
     docs);
   - nnU-Net v2: ``nnUNetPredictor.predict_sliding_window_return_logits`` (step 0.5, its
     Gaussian, mirroring off, the network prepared as ours; its step rule spreads the windows
     evenly, so they lie a few voxels from ours); "skipped: reason" where it cannot run.
   Every engine calls the network for the package's output head only
   (``DCANet.inference_maps``), so none runs a decoder whose output it does not read.
   Every configuration runs in its own process (peak RSS = its VmHWM; on a GPU also torch's
   allocator peak), ``--calls`` times per process (the best counts; the first pays one-off kernel
   selection), in ``--rounds`` rounds, each in a new shuffled order; the best round counts.
   Agreement is the share of equal voxels inside the body (HU > -500) against the reference.
4. Memory (CPU): ``dcaseg segment`` on a 512×512×400 volume (0.8 mm slices), peak RSS of the
   process. On a GPU instead: ``dcaseg segment`` end to end on the benchmark volume.

The last line is ``same-windows speedup X.XX, defaults speedup Y.YY, agreement Z.ZZZZ``: the
reference's time against MONAI matched (same windows, same settings), our defaults against
MONAI's defaults, and our defaults' agreement with the reference. Each speedup is the median over
rounds of the two configurations' time ratio within a round (they run minutes apart at most, so
a machine whose speed drifts moves both); the ratio of the best rounds is printed above it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from dcaseg.anatomy import organ_color
from dcaseg.data.orientation import to_standard_orientation
from dcaseg.data.preprocess import normalise_intensity, resample
from dcaseg.grouping import group_label_files
from dcaseg.inference import DEFAULT_OVERLAP, Predictor, PredictorOptions
from dcaseg.inference.devices import default_windows_per_batch, resolve_device
from dcaseg.inference.model_grid import ModelGridVolume, restore, to_model_grid
from dcaseg.inference.predictor import inference_network
from dcaseg.inference.sliding_window import plan_windows
from dcaseg.nets import ArchitectureConfig, DCANet
from dcaseg.package import (
    ClassInfo,
    ModelMeta,
    ModelPackage,
    Preprocessing,
    expert_classes_from_groups,
    load_package,
    save_package,
)

REALCT = Path(__file__).resolve().parents[1] / "Testing" / "Data" / "realct"
CT_IMAGE = REALCT / "tsB_ct_full_noncontrast_image.nii.gz"
CT_LABEL = REALCT / "tsB_ct_full_noncontrast_label.nii.gz"
MODEL_SPACING = (1.5, 1.5, 3.0)
PATCH = (96, 96, 96)
N_FILTERS = 8
PEER_OVERLAP = 0.5  # the windows every "same windows" configuration runs (nnU-Net's tile_step_size 0.5)
MONAI_DEFAULT_OVERLAP, MONAI_DEFAULT_MODE, MONAI_DEFAULT_BATCH = 0.25, "constant", 1  # SlidingWindowInferer's


# ----------------------------------------------------------------------------- model

def benchmark_meta() -> ModelMeta:
    names = json.loads((REALCT / "labelmap_abd14.json").read_text(encoding="utf-8"))
    classes = [ClassInfo(int(v), n, organ_color(n, int(v))) for v, n in sorted(names.items(), key=lambda i: int(i[0]))]
    groups = group_label_files([CT_LABEL], classes=[c.value for c in classes]).as_dict()
    architecture = ArchitectureConfig(len(classes) + 1, expert_classes_from_groups(groups, classes),
                                      n_filters=N_FILTERS)
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


# ----------------------------------------------------------------------------- configurations

# (peer, ours) pairs of the last line: same windows, then defaults against defaults
SPEEDUPS = (("monai-matched", "ours-same"), ("monai-defaults", "ours-defaults"))


def configurations(windows_per_batch: int) -> dict[str, dict]:
    """What is compared; ``windows_per_batch`` is ours at the defaults, which MONAI matched uses too."""
    return {
        "ours-defaults": {"engine": "ours"},
        "ours-same": {"engine": "ours", "overlap": PEER_OVERLAP, "crop": False, "mask": False, "skip": False,
                      "precision": "fp32"},
        "monai-matched": {"engine": "monai", "overlap": PEER_OVERLAP, "mode": "gaussian", "batch": windows_per_batch,
                          "prepared": True, "inference_mode": True},
        "monai-defaults": {"engine": "monai", "overlap": MONAI_DEFAULT_OVERLAP, "mode": MONAI_DEFAULT_MODE,
                           "batch": MONAI_DEFAULT_BATCH, "prepared": False, "inference_mode": False},
        "nnunet": {"engine": "nnunet", "overlap": PEER_OVERLAP, "prepared": True},
    }


# ----------------------------------------------------------------------------- one configuration (child)

Segmenter = Callable[[], sitk.Image]


def ours(config: dict, package: ModelPackage, image: sitk.Image, device: str) -> tuple[Segmenter, Callable[[], int]]:
    predictor = Predictor(package, PredictorOptions(
        device=device, overlap=config.get("overlap", DEFAULT_OVERLAP), body_crop=config.get("crop"),
        precision=config.get("precision", "auto"), mask_to_body=config.get("mask"),
        skip_outside_body=config.get("skip")))
    events = []
    predictor.reporter.sinks.append(events.append)

    def windows() -> int:
        return [e for e in events if e["event"] == "progress"][-1]["total"]

    return (lambda: predictor.predict(image).labels), windows


def peer_network(config: dict, package: ModelPackage, device: str) -> torch.nn.Module:
    """The package's network as a module returning only the package's output head (every engine runs
    just the decoders that head needs); ``prepared``: as our predictor prepares it (BatchNorm folded,
    ``channels_last_3d``), else as built, in the default memory layout."""
    network = package.build_network(device).eval()
    if config["prepared"]:
        network = inference_network(network, torch.device(device))
    head = "fused" if package.meta.output == "experts_fused" else "logits"

    class OutputHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.network.inference_maps(x, (head,))[head]

    return OutputHead().eval()


def peer(config: dict, package: ModelPackage, image: sitk.Image,
         device: str) -> tuple[Segmenter, Callable[[], int]]:
    """MONAI's or nnU-Net's sliding window between our preprocessing (no crop) and our restoring."""
    meta = package.meta
    head = peer_network(config, package, device)
    values = torch.tensor(meta.label_values)
    patch = tuple(reversed(meta.preprocessing.patch_size))
    if config["engine"] == "monai":
        from monai.inferers import sliding_window_inference

        grad_mode = torch.inference_mode if config["inference_mode"] else torch.no_grad

        def logits_of(grid: ModelGridVolume) -> torch.Tensor:
            with grad_mode():
                volume = torch.from_numpy(grid.array)[None, None].to(device)
                return sliding_window_inference(volume, patch, config["batch"], head, overlap=config["overlap"],
                                                mode=config["mode"])[0]

        def windows() -> int:
            grid, _ = to_model_grid(image, meta.preprocessing, body_crop=False)
            return len(plan_windows(grid.array.shape, patch, config["overlap"]))
    else:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
        from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

        predictor = nnUNetPredictor(tile_step_size=config["overlap"], use_gaussian=True, use_mirroring=False,
                                    perform_everything_on_device=device != "cpu", device=torch.device(device),
                                    verbose=False, allow_tqdm=False)
        labels = {"background": 0, **{c.name: i + 1 for i, c in enumerate(meta.classes)}}
        predictor.manual_initialization(head, PlansManager({"label_manager": "LabelManager"}),
                                        ConfigurationManager({"architecture": {}, "patch_size": list(patch)}),
                                        None, {"labels": labels}, "dcaseg-benchmark", None)

        def logits_of(grid: ModelGridVolume) -> torch.Tensor:
            return predictor.predict_sliding_window_return_logits(torch.from_numpy(grid.array)[None])

        def windows() -> int:
            grid, _ = to_model_grid(image, meta.preprocessing, body_crop=False)
            padded = [max(n, p) for n, p in zip(grid.array.shape, patch)]
            return int(np.prod([len(s) for s in compute_steps_for_sliding_window(padded, patch, config["overlap"])]))

    def segment() -> sitk.Image:
        grid, _ = to_model_grid(image, meta.preprocessing, body_crop=False)
        index = logits_of(grid).argmax(0).cpu()
        return restore(grid, values[index].numpy().astype(np.uint8), image, is_label=True)

    return segment, windows


def run_configuration(config: dict, model: Path, volume: Path, labels_out: Path, device: str, calls: int) -> dict:
    """Segment ``volume`` one way ``calls`` times; time image-in-memory → labels-in-input-geometry."""
    image = sitk.ReadImage(str(volume))
    package = load_package(model)
    engine = ours if config["engine"] == "ours" else peer
    segment, windows = engine(config, package, image, device)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        labels = segment()
        seconds.append(time.perf_counter() - start)
    np.save(labels_out, sitk.GetArrayViewFromImage(labels))
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return {"seconds": min(seconds), "calls": seconds, "windows": windows(), "peak_rss_mib": peak_rss_mib(),
            "gpu_peak_mib": gpu_peak}


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited from the parent)."""
    status = Path("/proc/self/status").read_text(encoding="utf-8")
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def child_environment() -> dict[str, str]:
    """The same OpenMP wait policy for every configuration: the one ``dcaseg`` sets unless the user chose."""
    return {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def child(config: dict, model: Path, volume: Path, labels_out: Path, device: str, calls: int) -> dict:
    """Run one configuration in a fresh process; a failure is reported as {"skipped": reason}."""
    command = [sys.executable, __file__, "--child", json.dumps(config), "--model", str(model), "--volume", str(volume),
               "--labels-out", str(labels_out), "--device", device, "--calls", str(calls)]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_environment())
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"status {result.returncode}"]
        return {"skipped": lines[-1][:200]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def nnunet_missing() -> str | None:
    """Why nnU-Net v2 cannot run here, or None."""
    try:
        import nnunetv2  # noqa: F401
    except ImportError as error:
        return f"nnunetv2 is not installed ({error}); pip install -e '.[bench]'"
    return None


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
    peak = float(result.stderr.split("peak_rss_mib")[-1].split()[0])
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": peak}


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


def machine_line(device: str) -> str:
    """The hardware and software the figures belong to."""
    if device.startswith("cuda"):
        hardware = torch.cuda.get_device_name()
    else:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").exists() else ""
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
        avx512 = sorted({flag for flag in cpuinfo.split() if flag.startswith("avx512")}) or ["no AVX-512"]
        hardware = f"{names[0] if names else platform.processor()}, {os.cpu_count()} cores, {' '.join(avx512)}"
    versions = [f"torch {torch.__version__}"]
    for name in ("monai", "nnunetv2"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} not installed")
    policy = child_environment()["OMP_WAIT_POLICY"]
    return f"device {device} ({hardware}); {', '.join(versions)}; OMP_WAIT_POLICY={policy}"


def run_rounds(configs: dict[str, dict], model: Path, volume: Path, work: Path, device: str, rounds: int,
               calls: int, seed: int) -> dict[str, dict]:
    """Every configuration once per round, each round in a new shuffled order; per configuration the
    best round's result, with every round's time under "rounds" (or {"skipped": reason})."""
    order = random.Random(seed)
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for index in range(rounds):
        names = list(configs)
        order.shuffle(names)
        print(f"round {index + 1}/{rounds}: {', '.join(names)} (load {os.getloadavg()[0]:.2f})", flush=True)
        for name in names:
            if not any("skipped" in run for run in runs[name]):
                run = child(configs[name], model, volume, work / f"{name}.npy", device, calls)
                runs[name].append(run)
                print(f"  {name:<15} {run.get('seconds', float('nan')):7.2f} s  {run.get('skipped', '')}", flush=True)
    results = {}
    for name, done in runs.items():
        skipped = [run for run in done if "skipped" in run]
        results[name] = skipped[0] if skipped else {**min(done, key=lambda run: run["seconds"]),
                                                    "rounds": [run["seconds"] for run in done]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model package to benchmark (else fit one)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 512×512×400 memory check (CPU)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where every engine runs")
    parser.add_argument("--slices", type=int, default=100, help="slices of the 512×512 benchmark CT (2.5 mm)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each configuration once per round (default 3)")
    parser.add_argument("--calls", type=int, default=2, help="timed calls per process, the best counts (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rounds' shuffled orders")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--volume", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--labels-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_configuration(json.loads(args.child), args.model, args.volume, args.labels_out,
                                           args.device, args.calls)))
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
        print(machine_line(args.device), flush=True)
        meta = load_package(model).meta
        per_pass = default_windows_per_batch(resolve_device(args.device), int(np.prod(meta.preprocessing.patch_size)))
        configs = configurations(per_pass)
        missing = nnunet_missing()
        results = {"nnunet": {"skipped": missing}} if missing else {}
        results.update(run_rounds({k: v for k, v in configs.items() if k not in results}, model, volume, work,
                                  args.device, args.rounds, args.calls, args.seed))
        failed = [f"{name}: {results[name]['skipped']}" for name in configs
                  if name != "nnunet" and "skipped" in results[name]]
        if failed:
            raise SystemExit("configuration failed: " + "; ".join(failed))
        print(f"model {meta.name}: {meta.preprocessing.patch_size} windows, {per_pass} per pass at our defaults")
        for name in configs:
            result = results[name]
            if "skipped" in result:
                print(f"  {name:<15} skipped: {result['skipped']}")
                continue
            gpu = f"  GPU peak {result['gpu_peak_mib']:6.0f} MiB" if result["gpu_peak_mib"] is not None else ""
            rounds = " ".join(f"{s:.2f}" for s in result["rounds"])
            print(f"  {name:<15} {result['windows']:>4} windows  {result['seconds']:7.2f} s (rounds {rounds}; "
                  f"calls of the best {' '.join(f'{s:.2f}' for s in result['calls'])})  "
                  f"peak RSS {result['peak_rss_mib']:6.0f} MiB{gpu}", flush=True)
        labels = {name: np.load(work / f"{name}.npy") for name in configs if "skipped" not in results[name]}
        reference = labels["ours-same"]
        every = np.ones_like(body)
        print(f"reference labels: {len(np.unique(reference)) - 1} organs, foreground {(reference > 0).mean():.1%}")
        differing = int((labels["monai-matched"] != reference).sum())
        print(f"same windows: {differing} of {reference.size} voxels differ between MONAI matched and ours")
        for name in ("ours-defaults", "monai-defaults", "nnunet"):
            if name in labels:
                print(f"{name}: agreement with the dense float32 reference "
                      f"{agreement(labels[name], reference, body):.4f} inside the body, "
                      f"{agreement(labels[name], reference, every):.4f} overall")
        if "nnunet" in labels:
            nnunet = results["nnunet"]["seconds"]
            print(f"nnU-Net v2 at the same step: time ratio nnU-Net / ours-same "
                  f"{nnunet / results['ours-same']['seconds']:.2f}, nnU-Net / ours-defaults "
                  f"{nnunet / results['ours-defaults']['seconds']:.2f}")
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
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
        best = {pair: results[pair[0]]["seconds"] / results[pair[1]]["seconds"] for pair in SPEEDUPS}
        per_round = {pair: round_ratios(results[pair[0]]["rounds"], results[pair[1]]["rounds"]) for pair in SPEEDUPS}
        for (peer, ours_name), ratios in per_round.items():
            print(f"{peer} / {ours_name}: per round {' '.join(f'{r:.2f}' for r in ratios)}, "
                  f"best rounds {best[(peer, ours_name)]:.2f}")
        same, defaults = (float(np.median(per_round[pair])) for pair in SPEEDUPS)
        print(f"same-windows speedup {same:.2f}, defaults speedup {defaults:.2f}, "
              f"agreement {agreement(labels['ours-defaults'], reference, body):.4f}")


def round_ratios(peer_rounds: list[float], our_rounds: list[float]) -> list[float]:
    """The peer's time over ours in each round (the two ran in the same round)."""
    return [peer / ours for peer, ours in zip(peer_rounds, our_rounds)]


if __name__ == "__main__":
    main()
