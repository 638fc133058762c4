"""Large uploads do not stop the event loop, and take a small multiple of their size."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import pytest

from .conftest import start_serve

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_upload", ROOT / "bench/bench_upload.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("megabytes", "npy"), [(12, False), (24, True)])
def test_healthz_answers_during_a_large_upload_and_memory_stays_bounded(tmp_path, megabytes, npy):
    """The bar is a 44 MB JSON and a 500 MB .npy body; the suite runs smaller ones
    (bench/bench_upload.py measures the full sizes by hand)."""
    bench = _bench()
    body, content_type = bench.body_of(megabytes, npy)
    process, base = start_serve(
        f"sqlite:///{tmp_path / 'gmm.db'}",
        embedded_worker=False,
        max_body_bytes=str(len(body) + 1024),
        log_level="warning",
    )
    try:
        figures = bench.measure(base, process.pid, body, content_type)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    print(figures)
    assert figures["healthz_probes"] >= 2, figures
    assert figures["healthz_max_ms"] < 500, figures
    assert figures["peak_over_body"] < 5, figures
