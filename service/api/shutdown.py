"""Shutting down in order, within ``GMM_SHUTDOWN_SECONDS``.

On SIGTERM (see ``gmm-service serve``): the embedded worker stops claiming and
hands its running job back at the fit's next iteration; every open Server-Sent
Events stream sends a final ``shutdown`` event and closes, so the server is not
left waiting on streams that would never end; then uvicorn finishes the
requests in flight, and the lifespan waits for the worker for what is left
of the time.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Shutdown"]


class Shutdown:
    """The process's shutdown: whether it started, and how much time is left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.draining = threading.Event()
        self._started: float | None = None
        self._on_begin: list = []

    def on_begin(self, callback) -> None:
        """Call ``callback()`` when the shutdown begins (e.g. stop a worker claiming)."""
        self._on_begin.append(callback)

    def begin(self) -> None:
        """Start draining (idempotent; safe from a signal handler)."""
        if self._started is not None:
            return
        self._started = time.monotonic()
        self.draining.set()
        for callback in self._on_begin:
            callback()

    def remaining(self, margin: float = 0.5) -> float:
        """Seconds left before the process must be gone (all of them before ``begin``)."""
        if self._started is None:
            return self.seconds
        return max(0.0, self.seconds - (time.monotonic() - self._started) - margin)
