"""One "Segment organs" run: volume -> temp file -> ``dcaseg segment`` subprocess -> MRML nodes.

The volume is written with its full geometry to a private temp folder; the engine runs in the
background (``EngineProcess``) and reports JSON-line events; when it is done, the label map and the
attention maps are imported all-or-nothing, then the temp folder is removed. Cancel kills the
engine's process tree and imports nothing.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import slicer

from dcaseg.grouping import GROUP_NAMES

from .attention import AttentionOverlays, load_overlays
from .engine_process import EngineProcess, ProcessResult, engine_environment, python_for_engine
from .mrml_io import ResultError, UndoOnError, write_volume
from .result_import import import_label_map


@dataclass
class SegmentRequest:
    """What to segment, with which model and how; ``classes`` are the model's ``ClassInfo`` list."""

    input_volume: slicer.vtkMRMLScalarVolumeNode
    model_path: Path
    classes: Sequence
    device: str = "auto"
    overlap: float = 0.5
    output_segmentation: slicer.vtkMRMLSegmentationNode | None = None
    attention: bool = True
    show_3d: bool = False


@dataclass
class SegmentOutcome:
    """The end of a run: ``status`` is ``done``, ``failed`` or ``cancelled``."""

    status: str
    segmentation: slicer.vtkMRMLSegmentationNode | None = None
    overlays: AttentionOverlays | None = None
    error: str = ""
    warnings: list[str] = field(default_factory=list)


class SegmentRun:
    """Start with ``start()``; drive with ``poll()`` from a timer (or ``wait()``); ``cancel()`` any time."""

    def __init__(self, request: SegmentRequest, on_progress: Callable[[float | None, str], None] | None = None,
                 on_log: Callable[[str], None] | None = None,
                 on_finish: Callable[[SegmentOutcome], None] | None = None, python: str | None = None) -> None:
        self.request = request
        self.on_progress = on_progress
        self.on_log = on_log
        self.on_finish = on_finish
        self.python = python or python_for_engine()
        self.outcome: SegmentOutcome | None = None
        self.temp_dir: Path | None = None
        self.process: EngineProcess | None = None

    def command(self, input_path: Path, output_path: Path) -> list[str]:
        """The engine command line for this request."""
        request = self.request
        command = [self.python, "-m", "dcaseg", "segment", "-m", str(request.model_path), "-i", str(input_path),
                   "-o", str(output_path), "--progress", "jsonl", "--device", request.device,
                   "--overlap", f"{request.overlap:g}"]
        if request.attention:
            command.append("--attention")
        return command

    def start(self) -> None:
        """Write the input volume and launch the engine."""
        self.temp_dir = Path(tempfile.mkdtemp(prefix="DCASegmentation-"))
        input_path, output_path = self.temp_dir / "input.nrrd", self.temp_dir / "labels.nii.gz"
        try:
            write_volume(self.request.input_volume, input_path)
        except ResultError as error:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self._deliver(SegmentOutcome("failed", error=str(error)))
            return
        self.process = EngineProcess(self.command(input_path, output_path), on_event=self._on_event,
                                     on_finish=self._on_engine_finished, on_log=self.on_log,
                                     env=engine_environment(), temp_dir=self.temp_dir)
        self._report(0.0, "starting the engine")
        self.process.start()

    def poll(self) -> bool:
        """Deliver pending events (and the outcome when the engine has ended); True while running."""
        return self.process.poll() if self.process else False

    def wait(self, timeout: float | None = None) -> SegmentOutcome | None:
        """Block until the run ends (scripts, tests); None if ``timeout`` passes first."""
        if self.process is not None:
            self.process.wait(timeout)
        return self.outcome

    def cancel(self) -> None:
        """Stop the engine and everything it started; nothing is imported."""
        if self.process is not None:
            self.process.cancel()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "progress" and event.get("total"):
            done, total = int(event.get("done", 0)), int(event["total"])
            self._report(done / total, f"{event.get('stage', 'working')}: {done}/{total}")
        elif kind == "stage":
            self._report(None, str(event.get("stage", "")))
        elif kind == "warning" and self.on_log:
            self.on_log(f"warning: {event.get('message', '')}")

    def _report(self, fraction: float | None, text: str) -> None:
        if self.on_progress:
            self.on_progress(fraction, text)

    def _on_engine_finished(self, result: ProcessResult) -> None:
        if result.status != "done":
            self._deliver(SegmentOutcome(result.status, error=result.error, warnings=result.warnings))
            return
        try:
            segmentation, overlays = self._import(result.outputs)
        except (ResultError, ValueError) as error:
            self._deliver(SegmentOutcome("failed", error=str(error), warnings=result.warnings))
            return
        self._report(1.0, "done")
        self._deliver(SegmentOutcome("done", segmentation, overlays, warnings=result.warnings))

    def _import(self, outputs: dict[str, str]):
        request = self.request
        if "labels" not in outputs:
            raise ResultError("the engine finished without writing a label map")
        scene = request.input_volume.GetScene()
        with UndoOnError(scene):
            segmentation = import_label_map(outputs["labels"], request.input_volume, request.classes,
                                            request.output_segmentation, request.show_3d)
            overlays = None
            if request.attention:
                maps = {g: outputs[f"attention_{g}"] for g in GROUP_NAMES if f"attention_{g}" in outputs}
                overlays = load_overlays(maps, request.input_volume, segmentation)
        return segmentation, overlays

    def _deliver(self, outcome: SegmentOutcome) -> None:
        self.outcome = outcome
        if self.on_finish:
            self.on_finish(outcome)
