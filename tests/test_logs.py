"""Log lines: JSON with every extra field; the request line's fast path writes the same."""

from __future__ import annotations

import io
import json
import logging

import pytest

from service.logs import JSONFormatter, line_writer

FIELDS = {"request_id": "abc", "method": "POST", "route": "/v1/x", "status": 200, "ms": 1.5}


@pytest.fixture
def json_logger():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("tests.logs.json")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.handlers[:] = []


def test_the_direct_line_is_the_line_logging_writes(json_logger):
    logger, stream = json_logger
    logger.info("request", extra=FIELDS)
    line_writer(logger)("request", FIELDS)
    through_logging, direct = (json.loads(line) for line in stream.getvalue().splitlines())
    assert through_logging.pop("time")[:16] == direct.pop("time")[:16]
    assert (
        through_logging
        == direct
        == {"level": "info", "logger": logger.name, "message": "request", **FIELDS}
    )


def test_the_direct_line_respects_the_level(json_logger):
    logger, stream = json_logger
    logger.setLevel(logging.WARNING)
    line_writer(logger)("request", FIELDS)
    assert stream.getvalue() == ""


def test_other_handlers_get_the_record_through_logging(caplog):
    logger = logging.getLogger("tests.logs.plain")
    with caplog.at_level(logging.INFO, logger=logger.name):
        line_writer(logger)("request", FIELDS)
    (record,) = caplog.records
    assert record.getMessage() == "request" and record.request_id == "abc"
