"""Decoded fitted parameters, kept in memory per model id and version.

A refit bumps the version, so the next request misses and loads the new
parameters; entries of old versions simply age out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from .gmm import MixtureParameters

__all__ = ["ModelCache"]


class ModelCache:
    """A small thread-safe LRU of :class:`MixtureParameters`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, int], MixtureParameters] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(
        self, model_id: str, version: int, load: Callable[[], MixtureParameters]
    ) -> MixtureParameters:
        key = (model_id, version)
        with self._lock:
            parameters = self._entries.get(key)
            if parameters is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return parameters
            self.misses += 1
        parameters = load()
        parameters.kernel  # build the scoring kernel once, outside requests  # noqa: B018
        with self._lock:
            self._entries[key] = parameters
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return parameters

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
