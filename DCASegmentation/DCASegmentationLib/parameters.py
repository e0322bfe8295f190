"""The user's segmentation choices: typed defaults and how they are remembered across sessions.

The module file's ``parameterNodeWrapper`` class uses these defaults and ranges; the widget stores
``SegmentChoices.to_settings()`` in ``QSettings`` and reads them back with ``from_settings``.
Plain Python (no Qt) so the rules are tested without Slicer.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from dcaseg.grouping import GROUP_NAMES

SETTINGS_GROUP = "DCASegmentation"
DEVICE_AUTO = "auto"
OVERLAP_RANGE = (0.0, 0.9)
OPACITY_RANGE = (0.0, 1.0)


@dataclass
class SegmentChoices:
    """What the user picked last time: model, device, sliding-window overlap and overlay display."""

    model: str = ""
    device: str = DEVICE_AUTO
    overlap: float = 0.5
    show_attention: bool = True
    experts_shown: tuple[str, ...] = ("head",)
    attention_opacity: float = 0.5
    show_3d: bool = False

    def to_settings(self) -> dict[str, str]:
        """``{settings key: text}`` for ``QSettings`` (text keeps every platform's backend happy)."""
        values = {"model": self.model, "device": self.device, "overlap": f"{self.overlap:g}",
                  "show_attention": str(self.show_attention).lower(),
                  "experts_shown": ",".join(self.experts_shown),
                  "attention_opacity": f"{self.attention_opacity:g}", "show_3d": str(self.show_3d).lower()}
        return {settings_key(name): value for name, value in values.items()}

    @classmethod
    def from_settings(cls, stored: Mapping[str, Any]) -> SegmentChoices:
        """Rebuild choices from stored settings; missing or unreadable entries keep their defaults."""
        defaults = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = stored.get(settings_key(f.name))
            if raw is None:
                continue
            value = _convert(f.name, raw)
            if value is not None:
                values[f.name] = value
        return cls(**{**{f.name: getattr(defaults, f.name) for f in fields(cls)}, **values})


def settings_key(name: str) -> str:
    """The ``QSettings`` key of one choice."""
    return f"{SETTINGS_GROUP}/{name}"


def _convert(name: str, raw: Any) -> Any:
    text = str(raw).strip()
    if name in ("model", "device"):
        return text or None
    if name in ("show_attention", "show_3d"):
        return {"true": True, "1": True, "false": False, "0": False}.get(text.lower())
    if name == "experts_shown":
        shown = tuple(g for g in GROUP_NAMES if g in {part.strip() for part in text.split(",")})
        return shown if shown or not text else None
    low, high = OVERLAP_RANGE if name == "overlap" else OPACITY_RANGE
    try:
        number = float(text)
    except ValueError:
        return None
    return number if low <= number <= high else None
