"""``dcaseg train DATA --run RUN``: semi-supervised DCA training on a partly annotated folder."""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from ..errors import InputError
from ..events import reporter_for
from ..inference.devices import DEVICE_CHOICES, resolve_device
from ..labelsplit import FUSION_RULES
from ..training.config import PRESETS, preset, preset_for_device
from ..training.distributed import launch
from ..training.run_folder import check_outside_dataset
from ..training.run_lock import run_lock
from ..training.trainer import Trainer, TrainRequest, TrainResult

HELP = "train a DCA model on a dataset folder (labeled + unlabeled cases) into a run folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="?", type=Path, metavar="DATA",
                        help="dataset folder (plain images/ + labels/ or nnU-Net raw); optional on --resume")
    parser.add_argument("--run", "--run-dir", dest="run_dir", type=Path,
                        help="run folder (config, split, events, checkpoints, model)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN",
                        help="continue the run in --run (or RUN) at its last checkpoint: same iteration, "
                             "lr, λ and random state")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="training preset (default: paper on a CUDA GPU, the paper's setting; cpu-demo elsewhere)")
    parser.add_argument("--iterations", type=int, help="total iterations (overrides the preset)")
    parser.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default auto: CUDA, then MPS, then CPU)")
    parser.add_argument("--seed", type=int, help="random seed (split, sampling, initial weights)")
    parser.add_argument("--fusion", choices=FUSION_RULES,
                        help="how expert logits are concatenated: sum (default) or mean (the paper's rule)")
    parser.add_argument("--unlabeled-weight", type=float, metavar="LAMBDA",
                        help="weight λ of the unlabeled (pseudo-label) loss, reached by ramp-up (paper preset 10, "
                             "cpu-demo 1); 0 trains on the labels only")
    parser.add_argument("--val-every", type=int, help="validate every N iterations")
    parser.add_argument("--checkpoint-every", type=int, help="write checkpoints/last.pt every N iterations")
    parser.add_argument("--validation-cases", type=int,
                        help="labeled cases held out for validation on the first run (default a fifth)")
    parser.add_argument("--init-from", type=Path, metavar="MODEL",
                        help="start from a model package: its classes, groups and weights (fine-tune)")
    parser.add_argument("--regroup", action="store_true", help="recompute head/medium/tail from the labeled set")
    parser.add_argument("--cache-dir", type=Path, help="preprocessing cache (default RUN/cache)")
    parser.add_argument("--gpus", type=int, default=1,
                        help="processes to launch through torchrun (one per GPU; on --device cpu, CPU processes)")
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="progress display (default: bar on stderr)")


def run(args: argparse.Namespace) -> int:
    run_dir = args.resume if isinstance(args.resume, str) else args.run_dir
    if run_dir is None:
        raise InputError("say where the run lives: --run RUN (or --resume RUN)")
    if args.unlabeled_weight is not None and not args.unlabeled_weight >= 0:
        raise InputError(f"--unlabeled-weight must be 0 or more, got {args.unlabeled_weight}")
    device = resolve_device(args.device)  # an unknown or absent device is refused before any work or worker starts
    if not args.resume and args.preset is None:
        args.preset = preset_for_device(device.type)
        if args.progress == "bar":
            print(f"preset {args.preset} (chosen for {device}; --preset picks another)", file=sys.stderr)
    if not args.resume and args.data is None:
        raise InputError("give the dataset folder DATA (only --resume can do without it)")
    if args.data is not None:
        check_outside_dataset(Path(run_dir), args.data)  # before the lock makes the folder
    with _run_lock(Path(run_dir), bool(args.resume)):
        if args.gpus > 1 and "WORLD_SIZE" not in os.environ:
            return launch(_worker_argv(args), args.gpus)
        result = _train(args, Path(run_dir))
    if args.progress == "bar":
        where = f"model in {result.model}" if result.model else "no model exported yet"
        state = "stopped" if result.stopped else "finished"
        print(f"training {state} at iteration {result.iteration}; {where}", file=sys.stderr)
    return 130 if result.interrupted else 0


def _run_lock(run_dir: Path, resume: bool) -> AbstractContextManager:
    """The run folder's lock for this process; torchrun ranks above 0 take none (rank 0 or the launcher holds it)."""
    if os.environ.get("RANK", "0") != "0":
        return nullcontext()
    return run_lock(run_dir, create=not resume)


def _train(args: argparse.Namespace, run_dir: Path) -> TrainResult:
    overrides = {"iterations": args.iterations, "seed": args.seed, "val_every": args.val_every,
                 "checkpoint_every": args.checkpoint_every, "validation_cases": args.validation_cases,
                 "fusion": args.fusion, "lambda_max": args.unlabeled_weight}
    request = TrainRequest(run=run_dir, config=None if args.resume else preset(args.preset),
                           overrides=overrides, data=args.data, device=args.device, resume=bool(args.resume),
                           init_from=args.init_from, regroup=args.regroup, cache_dir=args.cache_dir)
    reporter = reporter_for(args.progress)
    if "WORLD_SIZE" in os.environ and os.environ.get("RANK", "0") != "0":
        reporter = reporter_for("none")
    return Trainer(request, reporter).train()


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The ``dcaseg train`` arguments of one torchrun worker (all but ``--gpus``)."""
    argv = [str(args.data)] if args.data is not None else []
    if args.run_dir is not None:
        argv += ["--run-dir", str(args.run_dir)]  # torchrun would read "--run" as its --run-path
    if args.resume:
        argv += ["--resume"] + ([str(args.resume)] if isinstance(args.resume, str) else [])
    if args.regroup:
        argv.append("--regroup")
    options = {"--preset": args.preset, "--iterations": args.iterations, "--device": args.device,
               "--seed": args.seed, "--fusion": args.fusion, "--unlabeled-weight": args.unlabeled_weight,
               "--val-every": args.val_every,
               "--checkpoint-every": args.checkpoint_every,
               "--validation-cases": args.validation_cases, "--init-from": args.init_from,
               "--cache-dir": args.cache_dir, "--progress": args.progress}
    for flag, value in options.items():
        if value is not None:
            argv += [flag, str(value)]
    return argv
