"""Out-of-memory fallback: fewer windows per pass, then host accumulation, then the CPU."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import torch

from ..errors import DcaError
from ..events import Reporter
from .devices import is_out_of_memory, release_cached_memory

T = TypeVar("T")
CPU = torch.device("cpu")


@dataclass(frozen=True)
class ExecutionPlan:
    """Where the network runs, how many windows go through it at once, where outputs accumulate."""

    device: torch.device
    windows_per_batch: int
    accumulate_on_device: bool = True

    @property
    def accumulate_device(self) -> torch.device:
        return self.device if self.accumulate_on_device else CPU

    def describe(self) -> str:
        where = "device" if self.accumulate_on_device or self.device.type == "cpu" else "host"
        return f"{self.device}, {self.windows_per_batch} window(s) per pass, accumulating in {where} memory"


def next_plan(plan: ExecutionPlan) -> tuple[ExecutionPlan, str] | None:
    """The next, lighter plan after an out-of-memory error and why; None when nothing is left."""
    if plan.windows_per_batch > 1:
        fewer = plan.windows_per_batch // 2
        return replace(plan, windows_per_batch=fewer), f"retrying with {fewer} window(s) per pass"
    if plan.device.type != "cpu" and plan.accumulate_on_device:
        return replace(plan, accumulate_on_device=False), "retrying with the accumulation buffers in host memory"
    if plan.device.type != "cpu":
        return ExecutionPlan(CPU, 1, True), "retrying on the CPU"
    return None


def run_with_fallback(attempt: Callable[[ExecutionPlan], T], plan: ExecutionPlan, reporter: Reporter) -> T:
    """Call ``attempt(plan)``; on out-of-memory, report a warning and retry with ``next_plan``."""
    while True:
        try:
            return attempt(plan)
        except Exception as error:  # noqa: BLE001 - anything but out-of-memory is re-raised
            if not is_out_of_memory(error):
                raise
            reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        failed = plan
        release_cached_memory(failed.device)
        step = next_plan(failed)
        if step is None:
            raise DcaError(f"out of memory on {failed.device} ({reason}); close other programs or use a "
                           "machine with more memory")
        plan, action = step
        reporter.emit("warning", message=f"out of memory on {failed.device} ({failed.windows_per_batch} window(s) "
                                         f"per pass); {action}", fallback=plan.describe())
