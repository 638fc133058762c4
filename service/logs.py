"""Logging: JSON lines for machines, a readable format in a terminal.

Anything passed in ``extra=`` (job_id, request_id, ...) becomes a field of the
JSON line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["JSONFormatter", "configure_logging", "line_writer"]

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


def line_writer(logger: logging.Logger) -> Callable[[str, dict[str, Any]], None]:
    """A cheap ``logger.info(message, extra=fields)`` for one line per request.

    When every handler the line reaches is a stream writing JSON lines (the
    service's own set-up), the line is serialised once and written under the
    handler's lock, without building a ``LogRecord`` (most of what a log call
    costs). Otherwise, and whenever the logger would not log at INFO, it is
    exactly ``logger.info``.
    """

    def through_logging(message: str, fields: dict[str, Any]) -> None:
        logger.info(message, extra=fields)

    handlers = [handler for current in _chain(logger) for handler in current.handlers]
    if not handlers or not all(
        type(handler) is logging.StreamHandler and isinstance(handler.formatter, JSONFormatter)
        for handler in handlers
    ):
        return through_logging
    formatter = handlers[0].formatter
    assert isinstance(formatter, JSONFormatter)

    def direct(message: str, fields: dict[str, Any]) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        line = {
            "time": formatter._time(time.time()),
            "level": "info",
            "logger": logger.name,
            "message": message,
            **fields,
        }
        text = orjson.dumps(line, default=str) + b"\n"
        for handler in handlers:
            with handler.lock:  # type: ignore[union-attr]
                stream = handler.stream  # type: ignore[attr-defined]
                stream.write(text.decode())
                stream.flush()

    return direct


def _chain(logger: logging.Logger):
    """The logger and the ancestors its records propagate to."""
    current: logging.Logger | None = logger
    while current is not None:
        yield current
        if not current.propagate:
            return
        current = current.parent  # type: ignore[assignment]
