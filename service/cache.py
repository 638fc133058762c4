"""Decoded fitted versions, kept in memory per model id and version number.

A version never changes once written, so an entry is never stale: a refit or
a rollback changes which version a request resolves to (read per request),
and entries nobody asks for any more age out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from .gmm import MixtureParameters, ScoreDistribution, ScoreReservoir

__all__ = ["ModelCache", "ServedVersion"]


@dataclass(frozen=True)
class ServedVersion:
    """One version of a model, ready to answer: its parameters and their derived factors."""

    model_id: str
    version: int
    parameters: MixtureParameters
    anomaly_threshold: float | None
    contamination: float = 0.01
    training_scores: ScoreDistribution | None = None
    # The anomaly scores this process served from this version: a bounded sample.
    live: ScoreReservoir = field(default_factory=ScoreReservoir)

    @property
    def n_features(self) -> int:
        return self.parameters.n_features


class ModelCache:
    """A small thread-safe LRU of :class:`ServedVersion`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, int], ServedVersion] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, model_id: str, version: int, load: Callable[[], ServedVersion]) -> ServedVersion:
        key = (model_id, version)
        with self._lock:
            served = self._entries.get(key)
            if served is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return served
            self.misses += 1
        served = load()
        served.parameters.kernel  # build the scoring kernel once  # noqa: B018
        with self._lock:
            self._entries[key] = served
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return served

    def entries(self) -> list[ServedVersion]:
        """The versions held now, least recently used first."""
        with self._lock:
            return list(self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
