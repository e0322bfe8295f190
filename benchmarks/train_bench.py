"""Training throughput: where a training step's time goes, and the trainer's rate in a given layout.

Usage: python benchmarks/train_bench.py [--preset cpu-demo] [--set KEY=VALUE ...] [--device cpu]
           [--steps 20] [--phase-steps 10] [--batches 30] [--processes 1] [--validation]

On the demo's data (16 phantom cases, 8 labeled) it prints one JSON object:
- ``kernels``: ATen's CPU capability (``ATEN_CPU_CAPABILITY`` caps it), oneDNN's instruction set
  (``ONEDNN_MAX_CPU_ISA`` caps it; read from oneDNN's own verbose line), whether the CPU has native
  bf16, and whether training or inference would autocast on this device;
- ``loader``: wall and CPU seconds per batch of patch sampling + augmentation;
- ``step``: wall and CPU seconds per training step and per part (forward, losses, backward,
  optimizer) of the preset's network on sampler batches, in the trainer's memory layout;
- ``trainer``: iterations/s of the real trainer for ``--steps`` iterations, in ``--processes``
  DistributedDataParallel processes (one thread each on a CPU, as ``dcaseg demo`` runs them), and
  rank 0's wall and CPU seconds per iteration (all its threads: DDP's, the patch prefetcher's);
- ``validation`` (``--validation``): seconds for one BatchNorm recalibration and one validation.
``--set`` overrides preset fields (``--set channels_last=false --set unlabeled_batch=1``; values in
JSON). CPU seconds tell what a part costs when other processes share the machine.
"""
from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it, before torch loads

import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dcaseg.data.augment import augment
from dcaseg.data.cache import PreprocessCache
from dcaseg.data.phantom import make_phantom
from dcaseg.data.sampling import PatchSampler
from dcaseg.events import Reporter
from dcaseg.inference.devices import autocast_dtype, cpu_has_native_bf16, usable_cores
from dcaseg.nets import DCANet
from dcaseg.package import ModelMeta
from dcaseg.training.batchnorm import recalibrate_batch_norm
from dcaseg.training.config import TrainConfig, preset
from dcaseg.training.losses import dice_ce_loss, supervised_loss, unsupervised_loss
from dcaseg.training.plan import TrainingPlan, make_plan
from dcaseg.training.run_folder import RunFolder
from dcaseg.training.trainer import BN_CROP_PATCHES, BN_VOLUMES, Trainer, TrainRequest, _take, make_optimizer
from dcaseg.training.validation import Validator

# One oneDNN convolution (channels_last_3d, 8 channels, as the demo's first stage) with its verbose log.
ONEDNN_PROBE = ("import torch; layout = torch.channels_last_3d; torch.nn.functional.conv3d("
                "torch.ones(2, 8, 16, 16, 16).contiguous(memory_format=layout), "
                "torch.ones(8, 8, 3, 3, 3).contiguous(memory_format=layout), padding=1)")


def _config(name: str, sets: list[str]) -> TrainConfig:
    overrides = {}
    for item in sets:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    return preset(name).with_overrides(**overrides)


def kernels(device: torch.device, config: TrainConfig) -> dict[str, Any]:
    """Which CPU kernels run: ATen's capability, oneDNN's ISA (from its verbose output), bf16."""
    probe = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], capture_output=True, text=True,
                           env=dict(os.environ, ONEDNN_VERBOSE="1"), check=False)
    isa = re.search(r"isa:([^,\n]+)", probe.stdout)
    kernel = re.search(r"exec,cpu,convolution,([^,]+)", probe.stdout)
    inference = autocast_dtype(device)
    return {"aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_isa": isa.group(1).strip() if isa else None,
            "onednn_convolution": kernel.group(1) if kernel else None,
            "env": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ},
            "cpu_native_bf16": cpu_has_native_bf16(),
            "training_autocast": bool(config.amp and device.type == "cuda"),
            "inference_autocast": str(inference) if inference else None}


def _timed(fn: Callable[[int], Any], repeats: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(repeats):
        fn(i)
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def _data(root: Path, config: TrainConfig) -> tuple[TrainingPlan, PatchSampler]:
    make_phantom(root / "data", 16, 8, 0)
    plan = make_plan(root / "data", RunFolder(root / "plan"), config, write=False)
    cache = PreprocessCache(root / "cache", plan.cache_settings())
    for case_id in plan.split["labeled"] + plan.split["unlabeled"]:
        case = plan.cases[case_id]
        cache.prepare(case_id, case.image, case.label if case_id in plan.split["labeled"] else None)
    sampler = PatchSampler([cache.load(c, True) for c in plan.split["labeled"]],
                           [cache.load(c, False) for c in plan.split["unlabeled"]],
                           tuple(reversed(config.patch_size)), plan.architecture.num_classes,
                           config.foreground_share, config.rare_class_power)
    return plan, sampler


def loader(sampler: PatchSampler, config: TrainConfig, device: torch.device, batches: int) -> dict[str, float]:
    def load(i: int) -> None:
        batch = sampler.batch(i, config.labeled_batch, config.unlabeled_batch)
        generator = torch.Generator().manual_seed(i)
        images = torch.from_numpy(batch.labeled_images).to(device)
        augment(images, torch.from_numpy(batch.labels).to(device), config.augment, generator)
        augment(torch.from_numpy(batch.unlabeled_images).to(device), None, config.augment, generator)

    wall, cpu = _timed(load, batches)
    return {"batches_per_s": round(1 / wall, 2), "cpu_s_per_batch": round(cpu, 4)}


def _network(plan: TrainingPlan, config: TrainConfig, device: torch.device) -> tuple[DCANet, torch.memory_format]:
    torch.manual_seed(0)
    layout = torch.channels_last_3d if config.channels_last and device.type in ("cuda", "cpu") \
        else torch.contiguous_format
    return DCANet(plan.architecture).to(device).to(memory_format=layout), layout  # type: ignore[call-overload]


def step_parts(plan: TrainingPlan, sampler: PatchSampler, config: TrainConfig, device: torch.device,
               steps: int) -> dict[str, Any]:
    """Forward, losses, backward and optimizer step of the trainer's network, timed apart (λ = 1)."""
    network, layout = _network(plan, config, device)
    optimizer = make_optimizer(network, config)
    arch, n_labeled = plan.architecture, config.labeled_batch
    parts = ("forward", "losses", "backward", "optimizer")
    totals = {p: [0.0, 0.0] for p in parts}

    def clock() -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()

    def one(i: int, record: bool) -> None:
        batch = sampler.batch(i, n_labeled, config.unlabeled_batch)
        x = torch.from_numpy(np.concatenate([batch.labeled_images, batch.unlabeled_images]))
        x = x.to(device).contiguous(memory_format=layout)
        labels = torch.from_numpy(batch.labels).to(device)
        marks = [clock()]
        output = network(x)
        marks.append(clock())
        loss, _ = supervised_loss(_take(output, slice(0, n_labeled)), labels, arch.expert_classes, arch.num_classes)
        if config.aggregator_on_labels and output.expert_logits:
            loss = loss + dice_ce_loss(output.logits[:n_labeled], labels)
        if config.unlabeled_batch and output.expert_logits:
            loss = loss + unsupervised_loss(_take(output, slice(n_labeled, None)))
        marks.append(clock())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(clock())
        optimizer.step()
        marks.append(clock())
        if record:
            for k, part in enumerate(parts):
                totals[part][0] += marks[k + 1][0] - marks[k][0]
                totals[part][1] += marks[k + 1][1] - marks[k][1]

    for i in range(3):  # warm-up: oneDNN primitives and allocator
        one(i, False)
    wall, cpu = _timed(lambda i: one(i + 3, True), steps)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "parts_wall_s": {p: round(w / steps, 3) for p, (w, _) in totals.items()},
            "parts_cpu_s": {p: round(c / steps, 3) for p, (_, c) in totals.items()},
            "patches": f"{n_labeled}+{config.unlabeled_batch} of {list(config.patch_size)}",
            "layout": "channels_last_3d" if layout == torch.channels_last_3d else "contiguous"}


def validation_cost(plan: TrainingPlan, sampler: PatchSampler, config: TrainConfig,
                    device: torch.device) -> dict[str, Any]:
    """One BatchNorm recalibration (as the trainer's) and one validation pass on the split's cases."""
    network, layout = _network(plan, config, device)
    volumes = [c.image for c in sampler.labeled + sampler.unlabeled][:BN_VOLUMES]
    limit = [BN_CROP_PATCHES * p for p in reversed(config.patch_size)]
    wall = time.perf_counter()
    recalibrate_batch_norm(network, volumes, limit, device, layout)
    recalibrate_s = time.perf_counter() - wall
    validator = Validator(plan, config.val_overlap)
    meta = ModelMeta(name="bench", architecture=plan.architecture, classes=plan.classes, groups=plan.groups,
                     preprocessing=plan.preprocessing)
    wall = time.perf_counter()
    validator.run(network, meta)
    return {"cases": len(validator.cases), "recalibrate_s": round(recalibrate_s, 2),
            "validate_s": round(time.perf_counter() - wall, 2)}


def trainer_rate(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The real trainer for ``--steps`` iterations (in ``--processes`` torchrun processes)."""
    run = root / "run"
    wall = time.perf_counter()
    if args.processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={args.processes}", __file__, "--worker", str(root), "--preset", args.preset,
                   "--device", args.device, "--steps", str(args.steps), *[f"--set={s}" for s in args.set]]
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, usable_cores() // args.processes)))
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    else:
        _train(root, args)
    total = time.perf_counter() - wall
    events = [json.loads(line) for line in (run / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    rates = [e["iterations_per_s"] for e in events if e["event"] == "metrics"][1:]  # the first has warm-up
    clock = root / "clock.json"
    return {"processes": args.processes, "steps": args.steps,
            **(json.loads(clock.read_text(encoding="utf-8")) if clock.is_file() else {}),
            "iterations_per_s": round(float(np.median(rates)), 3) if rates else None,
            "patches_per_s": round(float(np.median(rates)) * args.processes * _patches(args), 2) if rates else None,
            "run_wall_s": round(total, 1)}


def _patches(args: argparse.Namespace) -> int:
    config = _config(args.preset, args.set)
    return config.labeled_batch + config.unlabeled_batch


def _train(root: Path, args: argparse.Namespace) -> None:
    """Train; rank 0 writes its wall and CPU seconds per iteration (first to last metrics event) to clock.json."""
    config = _config(args.preset, args.set).with_overrides(
        iterations=args.steps, validation_cases=0, val_every=10**6, checkpoint_every=10**6, log_every=5)
    clocks: list[tuple[int, float, float]] = []

    def clock(record: dict[str, Any]) -> None:
        if record["event"] == "metrics":
            clocks.append((record["iteration"], time.perf_counter(), time.process_time()))

    Trainer(TrainRequest(run=root / "run", config=config, data=root / "data", device=args.device),
            Reporter(clock)).train()
    if len(clocks) > 1:
        (first, wall, cpu), (last, wall_end, cpu_end) = clocks[0], clocks[-1]
        (root / "clock.json").write_text(json.dumps({
            "wall_s_per_iteration": round((wall_end - wall) / (last - first), 3),
            "cpu_s_per_iteration": round((cpu_end - cpu) / (last - first), 3)}), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cpu-demo")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="trainer iterations (0: skip)")
    parser.add_argument("--phase-steps", type=int, default=10, help="steps timed part by part (0: skip)")
    parser.add_argument("--batches", type=int, default=30, help="loader batches (0: skip)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--validation", action="store_true")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a torchrun rank of trainer_rate
    args = parser.parse_args()
    if args.worker:
        _train(args.worker, args)
        return
    config = _config(args.preset, args.set)
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    result: dict[str, Any] = {"preset": args.preset, "set": args.set, "device": args.device,
                              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                              "kernels": kernels(device, config)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plan, sampler = _data(root, config)
        if device.type == "cpu":
            torch.set_num_threads(max(1, usable_cores() // args.processes))
        result["threads"] = torch.get_num_threads()
        if args.batches:
            result["loader"] = loader(sampler, config, device, args.batches)
        if args.phase_steps:
            result["step"] = step_parts(plan, sampler, config, device, args.phase_steps)
        if args.validation:
            result["validation"] = validation_cost(plan, sampler, config, device)
        if args.steps:
            result["trainer"] = trainer_rate(root, args)
    if device.type == "cuda":
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
