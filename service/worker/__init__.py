"""The fit worker: claims queued jobs, runs the EM core, stores results."""

from .runner import Worker

__all__ = ["Worker"]
