"""The fit worker: claims queued jobs, runs the EM core, stores results.

``Worker`` loads lazily, so that ``service.worker.heartbeat`` (the container's
healthcheck) imports without NumPy and SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import Worker

__all__ = ["Worker"]


def __getattr__(name: str):
    if name == "Worker":
        from .runner import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
