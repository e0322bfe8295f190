"""Next case to annotate: the engine's ``dcaseg rank`` in the background, its ranking as a table,
and the top case opened in one click."""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dcaseg.errors import InputError
from DCASegmentationLib.engine_process import EngineProcess, ProcessResult, engine_environment, python_for_engine

from .plot_nodes import fill_table, new_table

RANKING_FILE = "ranking.json"


@dataclass(frozen=True)
class RankedCase:
    """One unlabeled case and how unsure the model is about it."""

    case_id: str
    image: Path
    disagreement: float
    entropy: float


def rank_command(model: str | Path, data: str | Path, out: str | Path, score: str = "disagreement",
                 device: str | None = None) -> list[str]:
    """``dcaseg rank`` writing its ranking to ``out`` and JSON-line events to stdout."""
    command = [python_for_engine(), "-m", "dcaseg", "rank", str(data), "-m", str(model), "--score", score,
               "--out", str(out), "--progress", "jsonl"]
    return command + (["--device", device] if device else [])


def read_ranking(path: str | Path) -> list[RankedCase]:
    """The cases of a ranking file, most uncertain first."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return [RankedCase(c["case_id"], Path(c["image"]), float(c["disagreement"]), float(c["entropy"]))
                for c in document["cases"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a ranking written by dcaseg rank ({error})") from None


class NextCaseRanking:
    """Rank a dataset's unlabeled cases with a model in a background process."""

    def __init__(self, model: str | Path, data: str | Path, score: str = "disagreement", device: str | None = None,
                 on_finish: Callable[[ProcessResult], None] | None = None,
                 on_progress: Callable[[float], None] | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dca-rank-"))
        self.on_finish = on_finish
        self.on_progress = on_progress
        self.ranking: list[RankedCase] = []
        self.engine = EngineProcess(rank_command(model, data, self.folder / RANKING_FILE, score, device),
                                    on_event=self._event, on_finish=self._finished, env=engine_environment(),
                                    temp_dir=self.folder)

    def start(self) -> None:
        self.engine.start()

    def poll(self) -> bool:
        return self.engine.poll()

    def wait(self, timeout: float | None = None) -> ProcessResult | None:
        return self.engine.wait(timeout)

    def cancel(self) -> None:
        self.engine.cancel()

    def _event(self, event: dict) -> None:
        if event.get("event") == "progress" and event.get("total") and self.on_progress:
            self.on_progress(float(event.get("done", 0)) / float(event["total"]))

    def _finished(self, result: ProcessResult) -> None:
        if result.status == "done":  # read before the engine process removes the temporary folder
            self.ranking = read_ranking(result.outputs.get("ranking") or self.folder / RANKING_FILE)
        if self.on_finish:
            self.on_finish(result)


def show_ranking(scene, ranking: list[RankedCase], table_node=None):
    """Fill ``table_node`` (a new one by default) with the ranking, most uncertain first."""
    table_node = table_node or new_table(scene, "DCA next case to annotate")
    fill_table(table_node, {"rank": list(range(1, len(ranking) + 1)),
                            "case": [c.case_id for c in ranking],
                            "disagreement": [c.disagreement for c in ranking],
                            "entropy": [c.entropy for c in ranking],
                            "image": [str(c.image) for c in ranking]})
    return table_node


def open_case(volumes_logic, case: RankedCase):
    """Load the case's image as a volume node (Volumes module logic); returns the node."""
    node = volumes_logic.AddArchetypeVolume(str(case.image), case.case_id)
    if node is None:
        raise InputError(f"{case.image}: Slicer could not load this image")
    return node
