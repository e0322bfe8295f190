"""How a predictor runs: the one list of its settings, checked when they are made."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .devices import PRECISIONS
from .sliding_window import DEFAULT_OVERLAP


@dataclass(frozen=True)
class PredictorOptions:
    """Settings of a ``Predictor``.

    ``device``: auto, cpu, cuda, cuda:N or mps (a network in memory keeps its own device under
    auto). ``overlap``: share of a window its neighbours overlap, in [0, 1). ``windows_per_batch``:
    windows per network pass (None: the device's default). ``precision``: ``auto`` (bf16/fp16 where
    the device runs it natively) or ``fp32``. ``body_crop`` (run windows only around the body) and
    ``mask_to_body`` (background outside the patient) follow the model when None: on for CT models
    whose preprocessing crops to the body. ``skip_outside_body`` (run no window that holds no body
    voxel; labels inside the body stay those of the run over every window) follows ``body_crop``
    when None.
    """

    device: str = "auto"
    overlap: float = DEFAULT_OVERLAP
    windows_per_batch: int | None = None
    precision: str = "auto"
    body_crop: bool | None = None
    mask_to_body: bool | None = None
    skip_outside_body: bool | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            raise InputError(f"overlap must be at least 0 and below 1, got {self.overlap}")
        if self.windows_per_batch is not None and self.windows_per_batch < 1:
            raise InputError(f"windows per batch must be at least 1, got {self.windows_per_batch}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
