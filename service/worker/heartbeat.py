"""A worker's sign of life on disk, for a container healthcheck.

A worker serves no HTTP, so its container's healthcheck cannot ask it over the
network. Instead the worker touches a file (``GMM_WORKER_HEARTBEAT_FILE``) on
each pass of its loop and each lease renewal of a running job, and
``gmm-service worker --check`` reads the file's age: fresh while younger than
``2 * lease_seconds + worker_poll_seconds`` (the bound
:meth:`service.worker.Worker.healthy` uses for the embedded worker).

This module imports nothing heavy: the check runs in a fraction of a second.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["HeartbeatFile", "check", "stale_after"]


def stale_after(lease_seconds: float, worker_poll_seconds: float) -> float:
    """Seconds without a beat after which a worker counts as stuck or dead."""
    return 2 * lease_seconds + worker_poll_seconds


class HeartbeatFile:
    """Touches ``path`` at most every ``min_interval`` seconds (beats come often)."""

    def __init__(self, path: Path, min_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.min_interval = min_interval
        self._last = -float("inf")

    def beat(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self._last < self.min_interval:
            return
        self._last = now
        try:
            self.path.touch()
        except OSError:  # a full or read-only disk must not stop the worker; the check will tell
            self._last = -float("inf")


def check(path: Path | None, limit: float, now: float | None = None) -> tuple[bool, str]:
    """``(fresh, reason)``: whether the heartbeat file was touched within ``limit`` seconds."""
    if path is None:
        return False, "GMM_WORKER_HEARTBEAT_FILE is not set: no heartbeat to check"
    try:
        modified = os.stat(path).st_mtime
    except FileNotFoundError:
        return False, f"no heartbeat file at {path}: the worker has not started or cannot write it"
    except OSError as error:
        return False, f"cannot read the heartbeat file {path}: {error}"
    age = (time.time() if now is None else now) - modified
    if age > limit:
        return (
            False,
            f"heartbeat {age:.1f} s old at {path} (limit {limit:.1f} s): worker stuck or gone",
        )
    return True, f"heartbeat {age:.1f} s old (limit {limit:.1f} s)"
