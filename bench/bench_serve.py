"""The request path of `score`, against a bare FastAPI route, under wrk.

In one run: `gmm-service serve` (SQLite, embedded worker idle, one process) with
a fitted model (16 features, K=8, full), and `bench/bare_app.py` (a route that
reads the same body and answers one float per row) under the same uvicorn
options. Each is loaded by wrk (16 connections, 2 threads) with the same
payloads: 1, 100 and 10,000 rows as JSON, and 10,000 rows as application/x-npy
(answered as npy). Prints req/s, rows/s, p50/p99 latency and service / bare;
then the service with API keys on, and with observability (request log line
and metrics) off, to show what each costs. Last, in-process and with no HTTP,
what parsing and scoring 10,000 rows cost on this machine: the ceilings any
server here could reach for those cells.

    python bench/bench_serve.py              # 5 s per cell
    python bench/bench_serve.py --seconds 10

wrk is a Debian package: `apt-get install --no-install-recommends wrk`.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
N_FEATURES, N_COMPONENTS = 16, 8
API_KEY = "bench-key"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def process(command: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{command} exited {proc.returncode}") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def service(database: str, **settings: str):
    port = free_port()
    env = {
        "GMM_DATABASE_URL": f"sqlite:///{database}",
        **{f"GMM_{name.upper()}": value for name, value in settings.items()},
    }
    return process([sys.executable, "-m", "service", "serve", "--port", str(port)], port, env)


def bare():
    port = free_port()
    return process([sys.executable, "bench/bare_app.py", "--port", str(port)], port, {})


def fit_model(url: str, headers: dict[str, str]) -> str:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5.0, size=(N_COMPONENTS, N_FEATURES))
    X = centres[rng.integers(N_COMPONENTS, size=20_000)] + rng.normal(size=(20_000, N_FEATURES))
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        model = http.post("/v1/models", json={"n_components": N_COMPONENTS, "random_state": 0})
        model_id = model.json()["id"]
        job = http.post(f"/v1/models/{model_id}/fit", json={"data": X.tolist()}).json()
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.1)
            job = http.get(f"/v1/jobs/{job['id']}").json()
        assert job["status"] == "succeeded", job
    return model_id


@dataclass
class Payload:
    name: str
    rows: int
    body: bytes
    content_type: str
    accept: str


def payloads(quick: bool) -> list[Payload]:
    X = np.random.default_rng(1).normal(size=(10_000, N_FEATURES))
    npy = io.BytesIO()
    np.save(npy, X)
    cells = [
        Payload(
            "1 row JSON",
            1,
            orjson.dumps({"data": X[:1].tolist()}),
            "application/json",
            "application/json",
        ),
        Payload(
            "100 rows JSON",
            100,
            orjson.dumps({"data": X[:100].tolist()}),
            "application/json",
            "application/json",
        ),
        Payload(
            "10k rows JSON",
            10_000,
            orjson.dumps({"data": X.tolist()}),
            "application/json",
            "application/json",
        ),
        Payload("10k rows npy", 10_000, npy.getvalue(), "application/x-npy", "application/x-npy"),
    ]
    return cells[:2] if quick else cells


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _latency(text: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def run_wrk(
    url: str, payload: Payload, seconds: float, connections: int, headers: dict[str, str]
) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body"
        body_path.write_bytes(payload.body)
        lines = [
            'wrk.method = "POST"',
            f'local f = io.open("{body_path}", "rb"); wrk.body = f:read("*all"); f:close()',
            f'wrk.headers["Content-Type"] = "{payload.content_type}"',
            f'wrk.headers["Accept"] = "{payload.accept}"',
            *(f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()),
        ]
        script = Path(tmp) / "post.lua"
        script.write_text("\n".join(lines) + "\n")
        output = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{round(seconds)}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:.*", output)
    return Result(
        float(rate.group(1)) if rate else 0.0,
        _latency(output, "50"),
        _latency(output, "99"),
        (int(errors.group(1)) if errors else 0)
        + (1 if socket_errors and "timeout 0" not in socket_errors.group(0) else 0),
    )


def row(label: str, payload: Payload, result: Result, floor: Result | None) -> str:
    ratio = (
        f"{100 * result.requests_per_second / floor.requests_per_second:5.0f}%"
        if floor
        else "     -"
    )
    return (
        f"{label:<28} {payload.name:<14} {result.requests_per_second:9.0f} "
        f"{result.requests_per_second * payload.rows / 1e6:9.3f} {result.p50_ms:8.2f} "
        f"{result.p99_ms:8.2f} {ratio} {result.errors:6d}"
    )


def _served_model():
    """A fitted version like the service's, in-process."""
    from service.cache import ServedVersion
    from service.gmm import FitConfig, fit_mixture

    X = np.random.default_rng(0).normal(size=(20_000, N_FEATURES))
    fitted = fit_mixture(X, FitConfig(n_components=N_COMPONENTS, random_state=0, max_iter=5))
    return ServedVersion("m", 1, fitted.parameters, 1.0)


def ceilings(seconds: float = 2.0) -> None:
    """What 10,000 rows cost in-process, with no HTTP: the most any server could do here.

    JSON parsing holds the GIL, so one thread's rate is one process's ceiling;
    scoring releases it and runs on every core (one thread per core, for
    ``seconds``).
    """
    import threading

    from service.gmm.kernels import pin_blas_to_one_thread, serial_chunks
    from service.matrices import fast_json_matrix, matrix_from_npy

    pin_blas_to_one_thread()
    served = _served_model()
    cells = {payload.name: payload for payload in payloads(quick=False)}
    limits = {"n_features": N_FEATURES, "max_rows": None, "max_features": None}
    json_body, npy_body = cells["10k rows JSON"].body, cells["10k rows npy"].body
    X = matrix_from_npy(npy_body, **limits)  # the rows the 10k cells send

    def rate(function, repeats: int = 30) -> float:
        function()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return len(X) / float(np.median(times)) / 1e6

    parse_json = rate(lambda: fast_json_matrix(json_body, **limits))
    parse_npy = rate(lambda: matrix_from_npy(npy_body, allow_missing=True, **limits))
    cores = os.cpu_count() or 1
    done = [0] * cores
    stop = time.perf_counter() + seconds

    def score_until_stop(slot: int) -> None:
        with serial_chunks():
            while time.perf_counter() < stop:
                served.parameters.score_samples(X)
                done[slot] += 1

    threads = [threading.Thread(target=score_until_stop, args=(i,)) for i in range(cores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    scoring = sum(done) * len(X) / seconds / 1e6
    print(
        f"in-process, no HTTP, 10k rows: JSON parse {parse_json:.2f} M rows/s (one thread, "
        f"holding the GIL), npy parse {parse_npy:.1f} M rows/s, score_samples on "
        f"{cores} cores {scoring:.2f} M rows/s"
    )


def cutover() -> None:
    """What a body of each size costs on the event loop, against one thread hop."""
    import anyio

    from service.api.routers.inference import _encode, _parse
    from service.api.schemas import ScoreRequest
    from service.config import Settings
    from service.gmm.kernels import pin_blas_to_one_thread
    from service.inference import score

    pin_blas_to_one_thread()
    X = np.random.default_rng(0).normal(size=(20_000, N_FEATURES))
    served = _served_model()
    settings = Settings()

    def best_of(function, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return min(times) * 1e6

    async def hop() -> float:
        times = []
        for _ in range(2000):
            started = time.perf_counter()
            await anyio.to_thread.run_sync(lambda: None)
            times.append(time.perf_counter() - started)
        return float(np.median(times)) * 1e6

    print(f"thread hop (anyio.to_thread, median): {anyio.run(hop):.0f} us")
    print(f"{'rows':>6} {'body KiB':>9} {'parse+score+encode us':>22}")
    for rows in (1, 10, 50, 100, 250, 500, 1000, 4000):
        body = orjson.dumps({"data": X[:rows].tolist()})

        def work(body=body) -> None:
            _, matrix = _parse(ScoreRequest, "application/json", body, {}, served, settings)
            _encode(score(served, matrix), "json", "log_likelihood")

        print(f"{rows:>6} {len(body) / 1024:9.1f} {best_of(work, 200):22.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="1 and 100 rows only, 3 s each")
    parser.add_argument(
        "--cutover",
        action="store_true",
        help="in-process: what each body size costs on the loop, against a thread hop",
    )
    args = parser.parse_args()
    if args.cutover:
        cutover()
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install --no-install-recommends wrk")
    seconds = 3.0 if args.quick else args.seconds
    cells = payloads(args.quick)
    print(
        f"wrk, {args.connections} connections, 2 threads, {seconds:g} s per cell; "
        f"model {N_FEATURES} features, K={N_COMPONENTS}, full; one process each"
    )
    print(
        f"{'server':<28} {'payload':<14} {'req/s':>9} {'Mrows/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'/bare':>6} {'errors':>6}"
    )
    floors: dict[str, Result] = {}
    with bare() as url:
        for payload in cells:
            floors[payload.name] = run_wrk(f"{url}/score", payload, seconds, args.connections, {})
            print(row("bare FastAPI route", payload, floors[payload.name], None), flush=True)

    keyed = {"Authorization": f"Bearer {API_KEY}"}
    variants = [
        ("gmm-service", {}, {}, cells),
        ("gmm-service, API keys on", {"api_keys": f"bench:{API_KEY}"}, keyed, cells[:2]),
        (
            "gmm-service, no log/metrics",
            {"log_level": "warning", "metrics_enabled": "false"},
            {},
            cells[:2],
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for label, settings, headers, variant_cells in variants:
            database = Path(tmp) / f"{len(label)}.db"
            with service(str(database), **settings) as url:
                model_id = fit_model(url, headers)
                for payload in variant_cells:
                    result = run_wrk(
                        f"{url}/v1/models/{model_id}/score",
                        payload,
                        seconds,
                        args.connections,
                        headers,
                    )
                    print(row(label, payload, result, floors[payload.name]), flush=True)
    if not args.quick:
        ceilings()


if __name__ == "__main__":
    main()
