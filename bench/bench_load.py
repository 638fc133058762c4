"""A short load test: 16 concurrent clients scoring a fitted model while fits run.

Starts `gmm-service serve` on a free loopback port with a throw-away SQLite
database, fits one model, then for a bounded time runs 16 clients that mix
score / predict / anomalies requests (100 points each) while another task keeps
queueing fits of other models. Prints requests/s, p50/p99 latency and the
count of errors (target: 0). Loopback only; it stops by itself.

    python bench/bench_load.py               # 15 s
    python bench/bench_load.py --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np

CLIENTS = 16
BATCH = 100


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def blobs(n: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    return (centers[rng.integers(3, size=n)] + rng.normal(size=(n, 2))).tolist()


async def wait_for_job(http: httpx.AsyncClient, job_id: str) -> dict:
    while True:
        job = (await http.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)


async def scorer(http, model_id, deadline, latencies, errors, seed):
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        kind = rng.choice(["score", "predict", "anomalies"])
        body = {"data": blobs(BATCH, rng.randrange(10**6))}
        started = time.perf_counter()
        try:
            response = await http.post(f"/v1/models/{model_id}/{kind}", json=body)
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        latencies.append(time.perf_counter() - started)
        if not ok:
            errors.append(kind)


async def fitter(http, deadline, fits):
    seed = 0
    while time.monotonic() < deadline:
        seed += 1
        model = (
            await http.post("/v1/models", json={"n_components": 3, "random_state": seed})
        ).json()
        job = (
            await http.post(f"/v1/models/{model['id']}/fit", json={"data": blobs(5000, seed)})
        ).json()
        job = await wait_for_job(http, job["id"])
        fits.append(job["status"])


async def run(base_url: str, seconds: float) -> None:
    limits = httpx.Limits(max_connections=CLIENTS + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        model = (await http.post("/v1/models", json={"n_components": 3, "random_state": 0})).json()
        job = (
            await http.post(f"/v1/models/{model['id']}/fit", json={"data": blobs(3000, 0)})
        ).json()
        assert (await wait_for_job(http, job["id"]))["status"] == "succeeded"

        latencies: list[float] = []
        errors: list[str] = []
        fits: list[str] = []
        deadline = time.monotonic() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            fitter(http, deadline, fits),
            *(scorer(http, model["id"], deadline, latencies, errors, i) for i in range(CLIENTS)),
        )
        elapsed = time.perf_counter() - started

    ms = np.array(latencies) * 1000
    print(f"{CLIENTS} clients, {seconds:g} s, {BATCH} points per request, fits running alongside")
    print(f"requests: {len(latencies)}  ({len(latencies) / elapsed:.1f} req/s)")
    print(f"latency:  p50 {np.percentile(ms, 50):.1f} ms   p99 {np.percentile(ms, 99):.1f} ms")
    print(f"errors:   {len(errors)}")
    print(
        f"fits completed meanwhile: {fits.count('succeeded')} succeeded, {len(fits) - fits.count('succeeded')} other"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "GMM_DATA_DIR": data_dir,
            "GMM_PORT": str(port),
            "GMM_LOG_LEVEL": "warning",
        }
        env.pop("GMM_DATABASE_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    if httpx.get(f"{base_url}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            asyncio.run(run(base_url, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
