"""The semi-supervised trainer: experts on labeled patches, aggregator on pseudo-labels.

Per iteration: lr = poly(0.9) decay, λ = sigmoid ramp-up; one forward pass over labeled +
unlabeled patches; loss = Σ_experts (CE + Dice) on the labeled part + λ · (CE + Dice) of the
aggregator against the fused experts' pseudo-label on the unlabeled part (``aggregator_on_labels``
adds its CE + Dice on the labeled part). Checkpoints every N iterations and on SIGTERM/SIGINT;
validation every N iterations scores both the aggregator and the experts' fused prediction; the
best model (mean Dice) is exported as a model package with its provenance, its ``output`` naming
the head that scored higher (the aggregator after a long run; the experts after a short one).
"""
from __future__ import annotations

import datetime
import hashlib
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..atomic import write_json_atomic
from ..data.augment import augment
from ..data.cache import PreprocessCache, dataset_fingerprint
from ..data.sampling import Batch, PatchSampler, prefetch
from ..errors import DcaError, InputError
from ..events import Reporter, file_sink
from ..inference.devices import all_cpu_cores, resolve_device, usable_cores
from ..nets import DCANet, DCAOutput
from ..package import ModelMeta, save_package
from .batchnorm import recalibrate_batch_norm
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .config import TrainConfig, preset, preset_for_device
from .distributed import any_rank, barrier, gather_floats, init_distributed, shutdown, wrap
from .losses import dice_ce_loss, ramp_weight, supervised_loss, unsupervised_loss
from .mean_teacher import MeanTeacher, consistency_loss
from .plan import TrainingPlan, make_plan
from .run_config import StoredRun, read_run_config
from .run_folder import RunFolder, check_outside_dataset, tensorboard_sink
from .stop_request import StopRequest
from .validation import Validator

BN_VOLUMES = 8        # training volumes that set BatchNorm statistics before validation/export
BN_CROP_PATCHES = 2   # each centre-cropped to at most this many patch sizes per axis


@dataclass
class TrainRequest:
    """What ``dcaseg train`` asks for. ``config`` starts a new run (default: the device's preset,
    ``preset_for_device``);
    on ``resume`` the run's stored config is used. ``overrides`` (non-None values) apply to either."""

    run: Path
    config: TrainConfig | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    data: Path | None = None
    device: str = "auto"
    resume: bool = False
    init_from: Path | None = None
    regroup: bool = False
    cache_dir: Path | None = None


@dataclass
class TrainResult:
    """How a training call ended; ``interrupted`` is True when a signal (not a stop request) stopped it."""

    model: Path | None
    iteration: int
    stopped: bool
    best_mean_dice: float | None
    interrupted: bool = False


@dataclass
class RunState:
    """What one run trains with, made once before the first iteration and carried by the loop."""

    plan: TrainingPlan
    network: DCANet                  # the weights
    model: torch.nn.Module           # what each step calls: the network, wrapped in DDP under torchrun
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler     # enabled exactly when the steps run in float16 (CUDA, config.amp)
    sampler: PatchSampler
    validator: Validator | None      # rank 0 only
    teacher: MeanTeacher | None      # the mean-teacher baseline's EMA network
    bn_volumes: list[np.ndarray]     # training volumes that set BatchNorm statistics before validation
    memory_format: torch.memory_format
    iteration: int = 0               # iterations done
    best: float | None = None        # the best validation mean Dice so far


def cpu_threads(processes: int = 1) -> int:
    """Threads per training process on CPU: the usable cores shared out, at least one.

    Fixed by the machine, not by its momentary load, so a run and its resume compute the same
    numbers. (Threads that spin while waiting make steps much slower on a busy machine; the CLI
    sets ``OMP_WAIT_POLICY=PASSIVE`` for that: benchmarks/RESULTS.md, "Hardware notes".)
    """
    return max(1, usable_cores() // processes)


def make_optimizer(network: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum and Nesterov (the paper's), or AdamW; lr is set every iteration (poly decay)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(network.parameters(), lr=config.base_lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(network.parameters(), lr=config.base_lr, momentum=config.momentum,
                           nesterov=config.nesterov, weight_decay=config.weight_decay)


def _take(output: DCAOutput, part: slice) -> DCAOutput:
    """The batch entries ``part`` of a network output."""
    return DCAOutput(output.logits[part], {g: v[part] for g, v in output.expert_logits.items()},
                     output.fused[part] if output.fused is not None else None,
                     [a[part] for a in output.attention])


def _batch_seed(seed: int, rank: int, iteration: int) -> int:
    """The augmentation seed of one batch: fixed by (seed, rank, iteration), so resumes repeat it."""
    return ((seed * 1_000_003 + rank) * 1_000_033 + iteration) % (2**63 - 1)


def _weights_checksum(network: torch.nn.Module) -> float:
    """A number that differs when any trainable weight differs (for checking ranks stay in step).

    BatchNorm running statistics are left out: each rank updates them from its own patches."""
    digest = hashlib.sha256()
    for tensor in network.parameters():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return float(int(digest.hexdigest()[:12], 16))


class Trainer:
    """One training run in a run folder (single process or one rank of a torchrun job)."""

    def __init__(self, request: TrainRequest, reporter: Reporter | None = None) -> None:
        self.request = request
        self.run_folder = RunFolder(Path(request.run))
        device = resolve_device(request.device)
        stored = self._stored_run() if request.resume else None
        base = stored.train if stored else (request.config or preset(preset_for_device(device.type)))
        self.config = base.with_overrides(**request.overrides)
        # On resume the run's own dataset (unless another copy is named), initial weights and grid.
        data = request.data or (stored.data if stored else None)
        if data is None:
            raise InputError("no dataset folder given")
        self.data = Path(data)
        self.init_from = stored.init_from if stored else request.init_from
        self.target_spacing = stored.target_spacing if stored else None
        check_outside_dataset(self.run_folder.path, self.data)
        self.ctx = init_distributed(use_cuda=device.type == "cuda")
        # under torchrun each rank takes its local GPU
        on_rank_gpu = device.type == "cuda" and self.ctx.enabled
        self.device = torch.device("cuda", self.ctx.local_rank) if on_rank_gpu else device
        self.reporter = self._reporter(reporter)

    # ------------------------------------------------------------------ setup

    def _stored_run(self) -> StoredRun:
        if not self.run_folder.config.is_file():
            raise InputError(f"{self.run_folder.path}: not a training run (no config.json) to resume")
        return read_run_config(self.run_folder.config)

    def _reporter(self, reporter: Reporter | None) -> Reporter:
        if not self.ctx.is_main:
            return Reporter()
        sinks = list(reporter.sinks) if reporter else []
        self.run_folder.path.mkdir(parents=True, exist_ok=True)
        sinks.append(file_sink(self.run_folder.events))
        board = tensorboard_sink(self.run_folder.tensorboard)
        if board is not None:
            sinks.append(board)
        return Reporter(*sinks)

    def _prepare_cache(self, plan: TrainingPlan) -> PreprocessCache:
        root = self.request.cache_dir or self.run_folder.cache
        data_root = Path(plan.data).resolve()
        if Path(root).resolve().is_relative_to(data_root):
            raise InputError(f"{root}: the preprocessing cache must not live inside the dataset folder")
        cache = PreprocessCache(root, plan.cache_settings())
        if self.ctx.is_main:
            ids = plan.split["labeled"] + plan.split["unlabeled"]
            for done, case_id in enumerate(ids, start=1):
                case = plan.cases[case_id]
                cache.prepare(case_id, case.image, case.label if case_id in plan.split["labeled"] else None)
                self.reporter.progress("preprocess", done, len(ids))
        barrier(self.ctx)
        return cache

    def _meta(self, plan: TrainingPlan, iteration: int, validation: dict[str, Any] | None,
              output: str = "aggregator") -> ModelMeta:
        training = {"preset": self.config.preset, "mode": self.config.mode, "iterations": iteration,
                    "planned_iterations": self.config.iterations,
                    "data_fingerprint": dataset_fingerprint(plan.files("labeled") + plan.files("unlabeled")
                                                            + plan.files("validation")),
                    "cases": {k: len(v) for k, v in plan.split.items()},
                    "validation": validation, "seed": self.config.seed, "world_size": self.ctx.world_size,
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "engine_version": __version__}
        if plan.initial is not None:
            training["initialised_from"] = str(plan.initial.source)
        # The run folder in the name tells apart the models of several runs (retrains) on one dataset.
        return ModelMeta(name=f"DCA {Path(plan.data).name} ({Path(self.request.run).name})",
                         architecture=plan.architecture,
                         classes=plan.classes, groups=plan.groups, preprocessing=plan.preprocessing,
                         description=f"DCA trained by dcaseg {__version__} on {Path(plan.data).name}",
                         training=training, output=output)

    # ------------------------------------------------------------------ run

    def train(self) -> TrainResult:
        """Run (or continue) training to ``config.iterations``; returns where it ended."""
        try:
            return self._train()
        except DcaError as error:
            if self.ctx.is_main:  # events.jsonl says why the run ended; the command line prints it once itself
                try:
                    Reporter(file_sink(self.run_folder.events)).error(str(error))
                except OSError:  # a full disk refuses the event too
                    pass
            raise
        finally:
            shutdown(self.ctx)

    def _train(self) -> TrainResult:
        run, reporter = self.run_folder, self.reporter
        if not self.request.resume and run.checkpoint.is_file() and self.ctx.is_main:
            reporter.warning(f"{run.path} holds an earlier run; starting again at iteration 0 "
                             "with its split and grouping (use --resume to continue it)")
        reporter.stage("plan")
        plan = make_plan(self.data, run, self.config, init_from=self.init_from, regroup=self.request.regroup,
                         write=self.ctx.is_main, reporter=reporter, target_spacing=self.target_spacing)
        if self.ctx.is_main:
            write_json_atomic(run.config, {"data": str(self.data.resolve()),
                                           "train": self.config.to_dict(), "world_size": self.ctx.world_size,
                                           "init_from": str(self.init_from) if self.init_from else None,
                                           "target_spacing": list(plan.preprocessing.target_spacing),
                                           "engine_version": __version__})
        barrier(self.ctx)
        state = self._start(plan)
        reporter.stage("train")
        with StopRequest(self.run_folder.path) as stop, warnings.catch_warnings():
            # In channels_last_3d the CPU's 1×1×1 kernels return their gradients in other strides
            # of the same memory order; DistributedDataParallel copies them into its buckets and
            # would warn about it once.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            return self._loop(state, stop)

    def _start(self, plan: TrainingPlan) -> RunState:
        """The network, optimizer and data of the run (from its checkpoint on resume)."""
        config, run, reporter = self.config, self.run_folder, self.reporter
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(self.ctx.world_size))
        torch.manual_seed(config.seed)
        network = DCANet(plan.architecture)
        if plan.initial is not None:
            network.load_state_dict(plan.initial.state_dict)
        network.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch shapes: let cuDNN time and keep its fastest kernels
        # channels_last_3d also on CPU: oneDNN's convolution backward at few channels is several
        # times faster in it (benchmarks/RESULTS.md, "Throughput")
        memory_format = torch.channels_last_3d if config.channels_last and self.device.type in ("cuda", "cpu") \
            else torch.contiguous_format
        # torch's stubs omit Module.to's memory_format
        network = network.to(memory_format=memory_format)  # type: ignore[call-overload]
        optimizer = make_optimizer(network, config)
        scaler = torch.amp.GradScaler("cuda", enabled=config.amp and self.device.type == "cuda")
        teacher = MeanTeacher(network, config.ema_decay) if config.mean_teacher else None
        iteration, best = 0, None
        if self.request.resume:
            saved = load_checkpoint(run.checkpoint)
            network.load_state_dict(saved["network"])
            optimizer.load_state_dict(saved["optimizer"])
            if saved["scaler"]:
                scaler.load_state_dict(saved["scaler"])
            set_rng_state(saved["rng"])
            iteration, best = int(saved["iteration"]), saved["extra"].get("best_mean_dice")
            if teacher is not None:
                teacher.load_state_dict(saved["extra"]["teacher"])
            reporter.emit("resumed", iteration=iteration, checkpoint=str(run.checkpoint))
        reporter.stage("preprocess")
        cache = self._prepare_cache(plan)
        sampler = PatchSampler([cache.load(c, True) for c in plan.split["labeled"]],
                               [cache.load(c, False) for c in plan.split["unlabeled"]],
                               tuple(reversed(config.patch_size)), plan.architecture.num_classes,
                               config.foreground_share, config.rare_class_power, config.seed, self.ctx.rank)
        cases = sampler.labeled + [c for c in sampler.unlabeled if c not in sampler.labeled]
        picks = np.linspace(0, len(cases) - 1, min(len(cases), BN_VOLUMES)).round().astype(int)
        model = wrap(network, self.ctx, self.device)
        model.train()
        return RunState(plan=plan, network=network, model=model, optimizer=optimizer, scaler=scaler, sampler=sampler,
                        validator=Validator(plan, config.val_overlap) if self.ctx.is_main else None,
                        teacher=teacher, bn_volumes=[cases[i].image for i in sorted(set(picks.tolist()))],
                        memory_format=memory_format, iteration=iteration, best=best)

    def _loop(self, state: RunState, stop: StopRequest) -> TrainResult:
        config, run, reporter, ctx = self.config, self.run_folder, self.reporter, self.ctx
        use_unsup = config.mode == "dca" or config.self_training or state.teacher is not None
        sums = {"loss": 0.0, "loss_sup": 0.0, "loss_unsup": 0.0}
        counted, tick = 0, time.perf_counter()
        stopped = False
        for batch in prefetch(state.sampler, state.iteration, config.iterations, config.labeled_batch,
                              config.unlabeled_batch):
            iteration = batch.iteration
            lr = config.lr_at(iteration)
            lam = ramp_weight(iteration, config.ramp_iterations, config.lambda_max) if use_unsup else 0.0
            for group in state.optimizer.param_groups:
                group["lr"] = lr
            losses = self._step(state, batch, lam, use_unsup)
            state.iteration = done = iteration + 1
            if state.teacher is not None:
                state.teacher.update(state.network, done)
            for name, value in losses.items():
                sums[name] += value
            counted += 1
            reporter.progress("train", done, config.iterations)
            if done % config.log_every == 0 or done == config.iterations:
                elapsed = time.perf_counter() - tick
                reporter.emit("metrics", iteration=done, **{k: round(v / counted, 5) for k, v in sums.items()},
                              lr=round(lr, 7), **{"lambda": round(lam, 5)},
                              iterations_per_s=round(counted / elapsed, 4) if elapsed > 0 else None)
                sums = dict.fromkeys(sums, 0.0)
                counted, tick = 0, time.perf_counter()
            if done % config.val_every == 0 or done == config.iterations:
                self._validate(state)
                barrier(ctx)
            stopped = any_rank(ctx, stop.requested, self.device)
            if ctx.is_main and (done % config.checkpoint_every == 0 or done == config.iterations or stopped):
                teacher = state.teacher
                save_checkpoint(run.checkpoint, network=state.network, optimizer=state.optimizer,
                                scaler=state.scaler, iteration=done,
                                extra={"best_mean_dice": state.best,
                                       **({"teacher": teacher.state_dict()} if teacher else {})})
                reporter.emit("checkpoint", iteration=done, path=str(run.checkpoint))
            if stopped:
                reporter.emit("stopped", iteration=done, checkpoint=str(run.checkpoint))
                break
        checksums = gather_floats(ctx, [_weights_checksum(state.network)], self.device)
        model_path = run.model if (run.model / "model.json").is_file() else None
        if not stopped:
            reporter.emit("done", iteration=state.iteration, best_mean_dice=state.best,
                          outputs={"model": str(run.model) if model_path else None, "run": str(run.path)},
                          rank_weight_checksums=[c[0] for c in checksums])
        return TrainResult(model_path, state.iteration, stopped, state.best, interrupted=stopped and stop.signalled)

    def _step(self, state: RunState, batch: Batch, lam: float, use_unsup: bool) -> dict[str, float]:
        """One optimizer step on ``batch`` (labeled patches first); returns its losses."""
        config, ctx, device = self.config, self.ctx, self.device
        n_labeled, teacher, memory_format = config.labeled_batch, state.teacher, state.memory_format
        architecture = state.plan.architecture
        generator = torch.Generator().manual_seed(_batch_seed(config.seed, ctx.rank, batch.iteration))
        labeled = torch.from_numpy(batch.labeled_images).to(device, non_blocking=True)
        labels = torch.from_numpy(batch.labels).to(device, non_blocking=True)
        labeled, augmented_labels = augment(labeled, labels, config.augment, generator)
        assert augmented_labels is not None  # labels in, labels out
        labels = augmented_labels
        inputs, unlabeled = [labeled], None
        with_unlabeled = batch.iteration >= config.unlabeled_from * config.iterations
        if with_unlabeled:  # the generator is this batch's own: skipping its draws here changes no other batch
            unlabeled = torch.from_numpy(batch.unlabeled_images).to(device, non_blocking=True)
            unlabeled, _ = augment(unlabeled, None, config.augment, generator)
            inputs.append(unlabeled if teacher is None else teacher.student_input(unlabeled, generator))
        x = torch.cat(inputs).contiguous(memory_format=memory_format)
        with torch.autocast("cuda", dtype=torch.float16) if state.scaler.is_enabled() else nullcontext():
            output: DCAOutput = state.model(x)
            targets = None
            if teacher is not None and unlabeled is not None:
                targets = teacher.targets(unlabeled.contiguous(memory_format=memory_format))
        loss_sup, _ = supervised_loss(_take(output, slice(0, n_labeled)), labels, architecture.expert_classes,
                                      architecture.num_classes)
        if config.aggregator_on_labels and output.expert_logits:
            loss_sup = loss_sup + dice_ce_loss(output.logits[:n_labeled], labels)
        loss_unsup = torch.zeros((), device=device)
        unsup_on_all = config.pseudo_on_labeled or config.unlabeled_batch == 0
        if targets is not None:
            loss_unsup = consistency_loss(output.logits[n_labeled:], targets)
        elif use_unsup and (unsup_on_all or with_unlabeled):
            loss_unsup = unsupervised_loss(_take(output, slice(0, None) if unsup_on_all else slice(n_labeled, None)))
        loss = loss_sup + lam * loss_unsup
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        return {"loss": float(loss.detach()), "loss_sup": float(loss_sup.detach()),
                "loss_unsup": float(loss_unsup.detach())}

    def _validate(self, state: RunState) -> None:
        """Score on the validation cases (rank 0) and export the model when it is the best so far."""
        if not self.ctx.is_main or state.validator is None:
            return
        plan, network, iteration = state.plan, state.network, state.iteration
        limit = [BN_CROP_PATCHES * p for p in reversed(self.config.patch_size)]
        # The other ranks wait at a barrier meanwhile, so on a CPU rank 0 may use their cores.
        with all_cpu_cores() if self.device.type == "cpu" else nullcontext():
            recalibrate_batch_norm(network, state.bn_volumes, limit, self.device, state.memory_format)
            if not state.validator:
                save_package(self.run_folder.model, network, self._meta(plan, iteration, None))
                return
            self.reporter.stage("validation")
            result = state.validator.run(network, self._meta(plan, iteration, None))
        dice, mean_dice = result.best
        output = result.best_output
        self.reporter.emit("validation", iteration=iteration, dice=dice, mean_dice=mean_dice, output=output,
                           aggregator_mean_dice=result.mean_dice, experts_fused_mean_dice=result.fused_mean_dice)
        if state.best is None or mean_dice > state.best:
            summary = {"iteration": iteration, "mean_dice": mean_dice, "dice": dice, "output": output,
                       "aggregator_mean_dice": result.mean_dice, "experts_fused_mean_dice": result.fused_mean_dice,
                       "cases": plan.split["validation"]}
            save_package(self.run_folder.model, network, self._meta(plan, iteration, summary, output))
            self.reporter.emit("model", iteration=iteration, mean_dice=mean_dice, output=output,
                               path=str(self.run_folder.model))
            state.best = mean_dice
