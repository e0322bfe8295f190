"""Patch sampling: batches of labeled + unlabeled patches, foreground-centred on rare classes.

Every batch is drawn from its own random generator seeded by (seed, rank, iteration), so a resumed
or prefetched run samples exactly the patches an uninterrupted one would, and each distributed
rank samples different patches. Volumes smaller than the patch are padded (image with its minimum,
label with background).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .cache import CachedCase

MAX_POSITIONS_PER_CLASS = 4096


@dataclass
class Batch:
    """One training batch in array order: images (N, 1, z, y, x) float32, labels (N_labeled, z, y, x) int64."""

    iteration: int
    labeled_images: np.ndarray
    labels: np.ndarray
    unlabeled_images: np.ndarray


class PatchSampler:
    """Draws patches of ``patch_zyx`` voxels from cached cases.

    A share ``foreground_share`` of labeled patches is centred (with jitter) on a voxel of a
    chosen class; class c is chosen with probability ∝ voxels_c^(1 − rare_class_power), so power 0
    follows voxel counts, power 1 picks every class equally often and a power above 1 picks the
    smaller organs more often than the larger ones (which still fill the patches around them).
    Without unlabeled cases the "unlabeled" patches come from the labeled volumes (labels unused).
    """

    def __init__(self, labeled: Sequence[CachedCase], unlabeled: Sequence[CachedCase],
                 patch_zyx: Sequence[int], num_classes: int, foreground_share: float = 0.5,
                 rare_class_power: float = 0.5, seed: int = 0, rank: int = 0) -> None:
        if not labeled:
            raise ValueError("the patch sampler needs at least one labeled case")
        self.labeled = list(labeled)
        self.unlabeled = list(unlabeled) or list(labeled)
        self.patch = tuple(int(p) for p in patch_zyx)
        self.foreground_share = foreground_share
        self.seed, self.rank = seed, rank
        self._pad = {id(c): float(np.min(c.image)) for c in [*self.labeled, *self.unlabeled]}
        self._positions: list[dict[int, np.ndarray]] = []
        counts = np.zeros(num_classes, dtype=np.float64)
        index_rng = np.random.default_rng([seed, 7919])
        for case in self.labeled:
            positions, case_counts = _class_positions(case.label, num_classes, index_rng)
            self._positions.append(positions)
            counts += case_counts
        present = np.flatnonzero(counts[1:] > 0) + 1
        weights = counts[present] ** (1.0 - rare_class_power)
        self.classes = present
        self.class_probabilities = weights / weights.sum() if weights.size else weights

    def rng(self, iteration: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.rank, iteration])

    def batch(self, iteration: int, n_labeled: int, n_unlabeled: int) -> Batch:
        """The batch of ``iteration`` (deterministic for a given seed and rank)."""
        rng = self.rng(iteration)
        images, labels = [], []
        for _ in range(n_labeled):
            image, label = self._labeled_patch(rng)
            images.append(image)
            labels.append(label)
        unlabeled = [self._crop(case.image, self._random_start(case.image.shape, rng), self._pad[id(case)])
                     for case in (self.unlabeled[i] for i in rng.integers(len(self.unlabeled), size=n_unlabeled))]
        shape = (0, 1, *self.patch)
        return Batch(iteration, np.stack(images)[:, None],
                     np.stack(labels).astype(np.int64),
                     np.stack(unlabeled)[:, None] if unlabeled else np.zeros(shape, np.float32))

    def _labeled_patch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.classes.size and rng.random() < self.foreground_share:
            cls = int(rng.choice(self.classes, p=self.class_probabilities))
            holders = [i for i, p in enumerate(self._positions) if cls in p]
            index = holders[int(rng.integers(len(holders)))]
            positions = self._positions[index][cls]
            centre = positions[int(rng.integers(len(positions)))]
            jitter = rng.integers(-(np.array(self.patch) // 4), np.array(self.patch) // 4 + 1)
            start = np.asarray(centre) + jitter - np.array(self.patch) // 2
        else:
            index = int(rng.integers(len(self.labeled)))
            start = self._random_start(self.labeled[index].image.shape, rng)
        case = self.labeled[index]
        assert case.label is not None
        return self._crop(case.image, start, self._pad[id(case)]), self._crop(case.label, start, 0)

    def _random_start(self, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        """A start so the patch lies inside the volume (or the volume inside the patch)."""
        return np.array([int(rng.integers(min(0, n - p), max(0, n - p) + 1)) for n, p in zip(shape, self.patch)])

    def _crop(self, volume: np.ndarray, start: Sequence[int] | np.ndarray, pad_value: float) -> np.ndarray:
        out = np.full(self.patch, pad_value, dtype=volume.dtype)
        src, dst = [], []
        for s, n, p in zip(start, volume.shape, self.patch):
            lo, hi = max(int(s), 0), min(int(s) + p, n)
            if hi <= lo:
                return out
            src.append(slice(lo, hi))
            dst.append(slice(lo - int(s), hi - int(s)))
        out[tuple(dst)] = volume[tuple(src)]
        return out


def _class_positions(label: np.ndarray | None, num_classes: int,
                     rng: np.random.Generator) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Up to MAX_POSITIONS_PER_CLASS voxel positions per present class, and voxel counts per class."""
    assert label is not None
    flat = np.asarray(label).ravel()
    counts = np.bincount(flat, minlength=num_classes)[:num_classes].astype(np.float64)
    order = np.argsort(flat, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=num_classes))])
    positions = {}
    for cls in range(1, num_classes):
        members = order[bounds[cls]:bounds[cls + 1]]
        if members.size == 0:
            continue
        if members.size > MAX_POSITIONS_PER_CLASS:
            members = rng.choice(members, MAX_POSITIONS_PER_CLASS, replace=False)
        positions[cls] = np.stack(np.unravel_index(members, label.shape), axis=1)
    return positions, counts


def prefetch(sampler: PatchSampler, start: int, stop: int, n_labeled: int, n_unlabeled: int,
             depth: int = 2) -> Iterator[Batch]:
    """Yield the batches of iterations start..stop-1, prepared ``depth`` ahead in a thread."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop_event = threading.Event()

    def produce() -> None:
        try:
            for iteration in range(start, stop):
                if stop_event.is_set():
                    return
                slots.put(sampler.batch(iteration, n_labeled, n_unlabeled))
        except BaseException as error:  # handed to the consumer, raised there
            slots.put(error)

    worker = threading.Thread(target=produce, name="dcaseg-patches", daemon=True)
    worker.start()
    try:
        for _ in range(start, stop):
            item = slots.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_event.set()
        while worker.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
