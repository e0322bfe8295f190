"""The models a user can segment with: bundled demo models plus those imported into a user folder.

A model is a package folder (``model.json`` + ``weights.safetensors``) or a ``.zip`` of one
(see ``dcaseg.package``). Listing reads only each ``model.json`` (``dcaseg.package_meta``, which
needs no torch, so it runs in Slicer's own process before the engine's packages are installed) and
never fails: a broken package is listed with its reason. Importing validates the whole package
with the engine, so a broken or foreign file is refused with the engine's one-line reason, and
copies it atomically; an existing model is never replaced.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from dcaseg.atomic import atomic_folder, atomic_write
from dcaseg.errors import PackageError
from dcaseg.package_members import MODEL_JSON, PACKAGE_FILES
from dcaseg.package_meta import ModelMeta, read_meta


@dataclass
class ModelEntry:
    """One listed model: ``key`` is unique in the registry; ``problem`` says why it cannot be used."""

    key: str
    path: Path
    bundled: bool
    meta: ModelMeta | None = None
    problem: str = ""

    @property
    def title(self) -> str:
        name = self.meta.name if self.meta else self.key
        return f"{name} (bundled)" if self.bundled else name

    def describe(self) -> str:
        """Classes and expert groups in a few lines, for the GUI's tooltip/status."""
        if self.meta is None:
            return f"{self.key}: {self.problem}"
        names = self.meta.class_names
        lines = [self.meta.description] if self.meta.description else []
        lines.append(f"{len(self.meta.classes)} classes: " + ", ".join(c.name for c in self.meta.classes))
        for group, values in self.meta.groups.items():
            lines.append(f"{group}: " + ", ".join(names[v] for v in values))
        return "\n".join(lines)


class ModelRegistry:
    """Models found in ``user_dir`` (imported by the user) and in read-only ``bundled_dirs``."""

    def __init__(self, user_dir: Path, bundled_dirs: tuple[Path, ...] = ()) -> None:
        self.user_dir = Path(user_dir)
        self.bundled_dirs = tuple(Path(d) for d in bundled_dirs)

    def list_models(self) -> list[ModelEntry]:
        """Bundled models first, then the user's, each group sorted by key; a bad one says why."""
        entries: list[ModelEntry] = []
        for folder, bundled in [*((d, True) for d in self.bundled_dirs), (self.user_dir, False)]:
            try:
                paths = _candidates(folder)
            except OSError as error:
                entries.append(ModelEntry(folder.name, folder, bundled, problem=f"cannot list {folder}: {error}"))
                continue
            entries += [self._entry(path, bundled) for path in paths]
        return entries

    def find(self, key: str) -> ModelEntry | None:
        """The entry called ``key``, or None."""
        return next((entry for entry in self.list_models() if entry.key == key), None)

    def import_model(self, source: str | Path) -> ModelEntry:
        """Validate ``source`` (folder or .zip) with the engine and copy it into the user folder.

        Raises ``PackageError`` with the engine's reason when it is not a valid package.
        """
        from dcaseg.package import load_package

        source = Path(source)
        meta = load_package(source).meta
        self.user_dir.mkdir(parents=True, exist_ok=True)
        key = self._free_key(_safe_name(meta.name), ".zip" if source.is_file() else "")
        target = self.user_dir / key
        if source.is_file():
            with atomic_write(target, binary=True) as stream, open(source, "rb") as package:
                shutil.copyfileobj(package, stream)
        else:
            with atomic_folder(target) as staging:
                for name in PACKAGE_FILES:
                    if (source / name).is_file():
                        shutil.copyfile(source / name, staging / name)
        return self._entry(target, False)

    def _free_key(self, stem: str, suffix: str) -> str:
        taken = {entry.key for entry in self.list_models()}
        key, n = f"{stem}{suffix}", 2
        while key in taken or (self.user_dir / key).exists():
            key, n = f"{stem}-{n}{suffix}", n + 1
        return key

    @staticmethod
    def _entry(path: Path, bundled: bool) -> ModelEntry:
        entry = ModelEntry(key=path.name, path=path, bundled=bundled)
        try:
            entry.meta = read_meta(path)
        except PackageError as error:
            entry.problem = str(error)
        except OSError as error:
            entry.problem = f"{path}: cannot be read ({error})"
        return entry


def _candidates(folder: Path) -> list[Path]:
    """Package folders and zips in ``folder``, by name (raises OSError when it cannot be listed)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if not p.name.startswith(".")
             and ((p.is_dir() and (p / MODEL_JSON).is_file()) or (p.is_file() and p.suffix == ".zip"))]
    return sorted(found, key=lambda p: p.name)


def _safe_name(name: str) -> str:
    """A file-system-safe version of a model name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return safe[:64] or "model"
