"""Upload a large JSON (or .npy) matrix to a real ``gmm-service serve`` while probing
``/healthz``; report the slowest health answer and the API process's peak memory.

    .venv/bin/python bench/bench_upload.py --megabytes 44
    .venv/bin/python bench/bench_upload.py --megabytes 500 --npy
    .venv/bin/python bench/bench_upload.py --stream-gigabytes 2

``--stream-gigabytes G`` writes a G GiB float64 ``.npy`` file to disk (a block
at a time) and streams it from there to ``POST /v1/datasets``, which stores it
in the blob store as it arrives; the bar is an API process whose peak RSS
(VmHWM, start-up included in ``peak_mb``) stays under 300 MB.

Peak memory is the process's VmHWM (/proc/<pid>/status) after the upload, less
its resident size just before it (the high-water mark is reset first through
/proc/<pid>/clear_refs, so start-up does not count).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def body_of(megabytes: float, npy: bool) -> tuple[bytes, str]:
    n_features = 8
    if npy:
        rows = int(megabytes * 2**20 / (8 * n_features))
        buffer = io.BytesIO()
        matrix = np.random.default_rng(0).normal(size=(rows, n_features))
        np.save(buffer, matrix)
        return buffer.getvalue(), "application/x-npy"
    rows = int(megabytes * 2**20 / (n_features * 20))
    matrix = np.random.default_rng(0).normal(size=(rows, n_features))
    return json.dumps({"name": "big", "data": matrix.tolist()}).encode(), "application/json"


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def npy_file_of(path: Path, gigabytes: float, n_features: int = 16) -> int:
    """A ``gigabytes`` GiB float64 .npy file of random rows, written a block at a time."""
    rows = int(gigabytes * 2**30 / (8 * n_features))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (rows, n_features)}
    )
    rng = np.random.default_rng(0)
    block = 2**16
    with open(path, "wb") as out:
        out.write(header.getvalue())
        for start in range(0, rows, block):
            out.write(rng.normal(size=(min(block, rows - start), n_features)).tobytes())
    return rows


def _blocks(path: Path, size: int = 2**20):
    with open(path, "rb") as handle:
        while block := handle.read(size):
            yield block


def measure(base: str, pid: int, body: bytes | Path, content_type: str) -> dict:
    # Warm up the code paths (imports, first connection) with a small upload.
    small = {"data": [[1.0, 2.0], [3.0, 4.0]]}
    assert httpx.post(f"{base}/v1/datasets", json=small).status_code == 201
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM
    before = _status(pid, "VmRSS")
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=base, timeout=10) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    started = time.perf_counter()
    size = body.stat().st_size if isinstance(body, Path) else len(body)
    answer = httpx.post(
        f"{base}/v1/datasets",
        content=_blocks(body) if isinstance(body, Path) else body,
        headers={"content-type": content_type, "content-length": str(size)},
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    done.set()
    prober.join()
    assert answer.status_code == 201, answer.text[:500]
    peak = _status(pid, "VmHWM")
    return {
        "body_mb": round(size / 2**20, 1),
        "upload_seconds": round(seconds, 2),
        "healthz_max_ms": round(1000 * max(latencies), 1),
        "healthz_probes": len(latencies),
        "rss_before_mb": round(before / 2**20, 1),
        "peak_mb": round(peak / 2**20, 1),
        "peak_over_body": round((peak - before) / size, 2),
    }


def serve(database_url: str, port: int, **settings: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "GMM_DATABASE_URL": database_url,
        "GMM_LOG_LEVEL": "warning",
        **{f"GMM_{name.upper()}": value for name, value in settings.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), "--no-embedded-worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=44)
    parser.add_argument("--npy", action="store_true")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--stream-gigabytes",
        type=float,
        default=None,
        help="Stream an .npy file of this many GiB from disk (the 300 MB bar).",
    )
    args = parser.parse_args()
    if args.stream_gigabytes is not None:
        stream(args)
        return
    body, content_type = body_of(args.megabytes, args.npy)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/gmm.db"
        process = serve(url, args.port, max_body_bytes=str(len(body) + 1024), max_rows="100000000")
        try:
            print(
                json.dumps(
                    measure(f"http://127.0.0.1:{args.port}", process.pid, body, content_type)
                )
            )
        finally:
            process.terminate()
            process.wait(timeout=30)


def stream(args: argparse.Namespace) -> None:
    bar_mb = 300
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.npy"
        rows = npy_file_of(path, args.stream_gigabytes)
        url = args.database_url or f"sqlite:///{tmp}/gmm.db"
        process = serve(url, args.port, storage_url=f"{tmp}/datasets")
        try:
            figures = measure(
                f"http://127.0.0.1:{args.port}", process.pid, path, "application/x-npy"
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    figures["rows"] = rows
    figures["mb_per_second"] = round(figures["body_mb"] / figures["upload_seconds"], 1)
    print(json.dumps(figures))
    verdict = "ok" if figures["peak_mb"] < bar_mb else "OVER"
    print(
        f"streamed {figures['body_mb']:.0f} MiB .npy: API peak RSS (VmHWM) "
        f"{figures['peak_mb']} MB (bar < {bar_mb} MB) {verdict}"
    )


if __name__ == "__main__":
    main()
