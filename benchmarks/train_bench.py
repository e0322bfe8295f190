"""Training throughput: data-loader batches/s (sampling + augmentation) and training iterations/s.

Usage: python benchmarks/train_bench.py [--preset cpu-demo] [--device cpu] [--steps 10] [--batches 30]
Prints one JSON object: wall and CPU seconds per loader batch and per training step (the CPU figure
tells what the step costs when other processes share the machine), peak GPU memory on CUDA.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from dcaseg.data.augment import augment
from dcaseg.data.cache import PreprocessCache
from dcaseg.data.phantom import make_phantom
from dcaseg.data.sampling import PatchSampler
from dcaseg.training.config import preset
from dcaseg.training.plan import make_plan
from dcaseg.training.run_folder import RunFolder
from dcaseg.training.trainer import Trainer, TrainRequest


def _timed(fn, repeats: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(repeats):
        fn(i)
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cpu-demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    config = preset(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_phantom(root / "data", 6, 3, 0)
        plan = make_plan(root / "data", RunFolder(root / "plan"), config, write=False)
        cache = PreprocessCache(root / "cache", plan.cache_settings())
        for case_id in plan.split["labeled"] + plan.split["unlabeled"]:
            case = plan.cases[case_id]
            cache.prepare(case_id, case.image, case.label if case_id in plan.split["labeled"] else None)
        sampler = PatchSampler([cache.load(c, True) for c in plan.split["labeled"]],
                               [cache.load(c, False) for c in plan.split["unlabeled"]],
                               tuple(reversed(config.patch_size)), plan.architecture.num_classes,
                               config.foreground_share, config.rare_class_power)
        device = torch.device("cuda" if args.device == "cuda" else "cpu")

        def load(i: int) -> None:
            batch = sampler.batch(i, config.labeled_batch, config.unlabeled_batch)
            generator = torch.Generator().manual_seed(i)
            images = torch.from_numpy(batch.labeled_images).to(device)
            augment(images, torch.from_numpy(batch.labels).to(device), config.augment, generator)
            augment(torch.from_numpy(batch.unlabeled_images).to(device), None, config.augment, generator)

        loader_wall, loader_cpu = _timed(load, args.batches)
        request = TrainRequest(run=root / "run", config=config.with_overrides(
            iterations=args.steps, validation_cases=0, val_every=10**6, log_every=1), data=root / "data",
            device=args.device)
        wall, cpu = time.perf_counter(), time.process_time()
        Trainer(request).train()
        total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
        events = [json.loads(line) for line in (root / "run" / "events.jsonl").read_text(encoding="utf-8").splitlines()]
        rates = [e["iterations_per_s"] for e in events if e["event"] == "metrics"][1:]  # first has warm-up
    result = {"preset": args.preset, "device": args.device, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "loader_batches_per_s": round(1 / loader_wall, 2), "loader_cpu_s_per_batch": round(loader_cpu, 3),
              "train_iterations_per_s": round(sum(rates) / len(rates), 3) if rates else None,
              "train_run_wall_s": round(total_wall, 1), "train_run_cpu_s": round(total_cpu, 1),
              "steps": args.steps}
    if device.type == "cuda":
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
