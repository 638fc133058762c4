"""Logging: JSON lines for machines, a readable format in a terminal.

Anything passed in ``extra=`` (job_id, request_id, ...) becomes a field of the
JSON line.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

__all__ = ["JSONFormatter", "configure_logging"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every extra field."""

    _second = -1
    _second_text = ""

    def _time(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the seconds part is formatted once a second."""
        second = int(created)
        if second != self._second:
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for key in fields.keys() - _STANDARD:  # the extras, found by one set difference
            if key[0] != "_":
                line[key] = fields[key]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        }
        if extras:
            text += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        return text


def configure_logging(level: str = "info", json_lines: bool | None = None) -> None:
    """Log to stderr: JSON lines unless stderr is a terminal (or ``json_lines`` says)."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler()
    handler.setFormatter(
        JSONFormatter()
        if json_lines
        else _ConsoleFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    # No line shows where a call was made from: skip finding it for every record
    # (the "Optimization" section of the logging documentation).
    logging._srcfile = None
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our request lines replace it
