"""Real service processes for the tests: ``gmm-service serve`` on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["free_port", "serve_process"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_process(
    database_url: str,
    *,
    embedded_worker: bool = False,
    timeout: float = 30.0,
    args: tuple[str, ...] = (),
    stderr: Path | None = None,
    **settings: str,
) -> Iterator[str]:
    """``gmm-service serve`` in its own process; yields its base URL once /healthz answers.

    ``settings`` become ``GMM_*`` variables; ``args`` are more command-line
    arguments; ``stderr`` a file for its log. The process gets SIGTERM on the way out.
    """
    port = free_port()
    env = {
        **os.environ,
        "GMM_DATABASE_URL": database_url,
        "GMM_WORKER_POLL_SECONDS": "0.02",
        "GMM_PROGRESS_INTERVAL_SECONDS": "0",
        "GMM_LOG_LEVEL": "warning",
        **{f"GMM_{name.upper()}": value for name, value in settings.items()},
    }
    worker_flag = "--embedded-worker" if embedded_worker else "--no-embedded-worker"
    log = open(stderr, "wb") if stderr is not None else subprocess.PIPE  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), worker_flag, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                output = process.stderr.read() if process.stderr else stderr.read_bytes()
                raise RuntimeError(f"serve exited {process.returncode}: {output!r}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer within {timeout} s")
            time.sleep(0.05)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if stderr is not None:
            log.close()
