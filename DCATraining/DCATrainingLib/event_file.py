"""Incremental reader of a run's ``events.jsonl`` (the trainer appends while we read)."""
from __future__ import annotations

from pathlib import Path

from dcaseg.events import Event, parse_event_line


class EventFileReader:
    """Returns the events appended since the last call; a line still being written waits for its newline."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.restarted = False

    def read_new(self) -> list[Event]:
        """New complete events; sets ``restarted`` when the file shrank (a fresh run replaced it)."""
        self.restarted = False
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            self.offset, self.restarted = 0, True
        if size == self.offset:
            return []
        with self.path.open("rb") as stream:
            stream.seek(self.offset)
            chunk = stream.read(size - self.offset)
        complete = chunk.rfind(b"\n") + 1
        self.offset += complete
        lines = chunk[:complete].decode("utf-8", errors="replace").splitlines()
        return [event for event in map(parse_event_line, lines) if event is not None]
