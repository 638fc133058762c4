"""Drive a running gmm-service container or compose stack over HTTP, for scripts/image-test.sh.

    python scripts/image_api.py --url URL fit            # healthz, dataset, fit, wait, score
    python scripts/image_api.py --url URL start-long-fit # prints the job id once it runs
    python scripts/image_api.py --url URL wait JOB_ID    # the job succeeds; its model scores

Talks to the service as any client would (httpx, the REST contract); exits non-zero,
with the reason, when an answer is not the one expected.
"""

from __future__ import annotations

import argparse
import sys
import time

import httpx
import numpy as np


def _data(rows: int, features: int, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(3, features))
    points = centres[rng.integers(0, 3, size=rows)] + rng.normal(size=(rows, features))
    return points.round(6).tolist()


def _expect(response: httpx.Response, status: int) -> dict:
    if response.status_code != status:
        sys.exit(
            f"{response.request.method} {response.request.url}: {response.status_code}, "
            f"expected {status}: {response.text[:500]}"
        )
    return response.json()


def wait_until_ready(http: httpx.Client, path: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = http.get(path)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as error:
            last = repr(error)
        time.sleep(0.5)
    sys.exit(f"{path} not ready after {seconds:.0f} s: {last}")


def queue_fit(http: httpx.Client, *, rows: int, features: int, **config) -> tuple[str, str]:
    """(model id, job id) of a fit queued on a new dataset."""
    data = _data(rows, features)
    dataset = _expect(http.post("/v1/datasets", json={"name": "image-test", "data": data}), 201)
    model = _expect(http.post("/v1/models", json={"name": "image-test", **config}), 201)
    job = _expect(
        http.post(f"/v1/models/{model['id']}/fit", json={"dataset_id": dataset["id"]}), 202
    )
    return model["id"], job["id"]


def wait_for_job(http: httpx.Client, job_id: str, seconds: float, until=("succeeded",)) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = _expect(http.get(f"/v1/jobs/{job_id}"), 200)
        if job["status"] in until:
            return job
        if job["status"] in ("succeeded", "failed", "cancelled"):
            sys.exit(f"job {job_id} ended {job['status']}: {job.get('error')}")
        time.sleep(0.2)
    sys.exit(f"job {job_id} not {'/'.join(until)} after {seconds:.0f} s: {job}")


def check_scores(http: httpx.Client, model_id: str) -> None:
    model = _expect(http.get(f"/v1/models/{model_id}"), 200)
    features = len(_expect(http.get(f"/v1/models/{model_id}/parameters"), 200)["means"][0])
    scored = _expect(
        http.post(f"/v1/models/{model_id}/score", json={"data": _data(5, features, seed=1)}),
        200,
    )
    if len(scored["log_likelihood"]) != 5 or not np.isfinite(scored["mean_log_likelihood"]):
        sys.exit(f"model {model_id} scored badly: {scored}")
    print(f"model {model_id} ({model['status']}) scores: mean {scored['mean_log_likelihood']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--ready-seconds", type=float, default=90)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fit", help="healthz, create a dataset, fit, wait, score")
    commands.add_parser(
        "start-long-fit", help="queue a fit of ~10 s; print its job id once it runs"
    )
    wait = commands.add_parser("wait", help="wait for a job to succeed, then score its model")
    wait.add_argument("job_id")
    args = parser.parse_args()

    with httpx.Client(base_url=args.url, timeout=30) as http:
        wait_until_ready(http, "/healthz", args.ready_seconds)
        if args.command == "fit":
            model_id, job_id = queue_fit(http, rows=500, features=3, n_components=3, random_state=0)
            job = wait_for_job(http, job_id, 120)
            print(f"fit {job_id} succeeded in {job['progress']['iteration']} iterations")
            check_scores(http, model_id)
        elif args.command == "start-long-fit":
            # tol far below what EM reaches: it runs all max_iter iterations
            model_id, job_id = queue_fit(
                http,
                rows=20_000,
                features=8,
                n_components=8,
                covariance_type="full",
                tol=0.0,
                max_iter=3000,
                random_state=0,
            )
            wait_for_job(http, job_id, 120, until=("running",))
            print(job_id)
        else:
            job = wait_for_job(http, args.job_id, 240)
            print(f"job {job['id']} succeeded after {job['attempts']} attempt(s)")
            check_scores(http, job["model_id"])


if __name__ == "__main__":
    main()
