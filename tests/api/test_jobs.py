"""/v1/jobs over HTTP: reading, listing and cancelling fits."""

import itertools
import json
import time

import numpy as np

from ..conftest import wait_for_job
from .helpers import assert_problem, create_model, three_blobs


def _queue_fit(client, **config):
    model_id = create_model(client, **config)
    return client.post(f"/v1/models/{model_id}/fit", json={"data": three_blobs().tolist()}).json()


def test_jobs_are_listed_and_filtered_by_model_and_status(idle_client):
    first, second = _queue_fit(idle_client), _queue_fit(idle_client)
    listed = idle_client.get("/v1/jobs").json()
    assert {j["id"] for j in listed["items"]} == {first["id"], second["id"]}
    by_model = idle_client.get(f"/v1/jobs?model_id={first['model_id']}").json()["items"]
    assert [j["id"] for j in by_model] == [first["id"]]
    assert idle_client.get("/v1/jobs?status=succeeded").json()["items"] == []
    assert len(idle_client.get("/v1/jobs?status=queued").json()["items"]) == 2
    assert_problem(idle_client.get("/v1/jobs?status=bogus"), 422)


def test_cancelling_a_queued_job_stops_it_at_once(idle_client):
    job = _queue_fit(idle_client)
    response = idle_client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    model = idle_client.get(f"/v1/models/{job['model_id']}").json()
    assert (model["status"], model["version"]) == ("new", 0)


def test_cancelling_a_running_job_stops_it_at_its_next_iteration(client):
    data = np.random.default_rng(0).normal(size=(20000, 4))
    model_id = create_model(client, n_components=8, max_iter=10000, tol=0.0)
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist()}).json()
    running = wait_for_job(client, job["id"], until={"running"})
    assert running["status"] == "running"
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    done = wait_for_job(client, job["id"], timeout=10)
    assert done["status"] == "cancelled"
    assert done["progress"]["iteration"] < 10000
    assert client.get(f"/v1/models/{model_id}").json()["version"] == 0


def test_cancelling_a_finished_job_is_409(client):
    job = wait_for_job(client, _queue_fit(client)["id"])
    assert job["status"] == "succeeded"
    assert_problem(client.post(f"/v1/jobs/{job['id']}/cancel"), 409)


def test_unknown_job_is_404(idle_client):
    assert_problem(idle_client.get("/v1/jobs/job_nope"), 404)
    assert_problem(idle_client.post("/v1/jobs/job_nope/cancel"), 404)


def test_a_succeeded_job_keeps_its_lower_bound_history(client):
    job = wait_for_job(client, _queue_fit(client)["id"])
    history = job["lower_bound_history"]
    assert len(history) == job["result"]["n_iter"]
    assert history[-1] == job["result"]["lower_bound"]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(history))


def test_events_stream_progress_then_the_final_state(client):
    data = np.random.default_rng(0).normal(size=(5000, 3))
    model_id = create_model(client, n_components=4, max_iter=60, tol=0.0)
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist()}).json()
    events = []
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
    names = [n for n, _ in events]
    assert names[-1] == "succeeded" and set(names[:-1]) <= {"progress"}
    assert events[-1][1]["result"]["n_iter"] == 60
    iterations = [payload["iteration"] for n, payload in events if n == "progress"]
    assert iterations == sorted(iterations)


def test_events_of_an_unknown_job_are_404(idle_client):
    assert_problem(idle_client.get("/v1/jobs/job_nope/events"), 404)


def test_a_running_job_shows_its_history_so_far(client):
    data = np.random.default_rng(0).normal(size=(20000, 4))
    model_id = create_model(client, n_components=8, max_iter=10000, tol=0.0)
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist()}).json()
    running = wait_for_job(client, job["id"], until={"running"})
    for _ in range(200):
        if len(running["lower_bound_history"]) >= 3:
            break
        time.sleep(0.02)
        running = client.get(f"/v1/jobs/{job['id']}").json()
    assert running["status"] == "running"
    assert len(running["lower_bound_history"]) >= 3
    assert running["lower_bound_history"][-1] == running["progress"]["lower_bound"]
    client.post(f"/v1/jobs/{job['id']}/cancel")


def test_a_fit_past_the_wall_clock_limit_fails_with_a_timeout(settings, database):
    from fastapi.testclient import TestClient

    from service.api import create_app

    limited = settings.model_copy(update={"job_timeout_seconds": 0.3})
    with TestClient(create_app(limited, database=database)) as client:
        data = np.random.default_rng(0).normal(size=(20000, 4))
        model_id = create_model(client, n_components=8, max_iter=10000, tol=0.0)
        job = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist()}).json()
        done = wait_for_job(client, job["id"], timeout=30)
    assert done["status"] == "failed"
    assert done["error"]["type"] == "timeout" and "job_timeout_seconds" in done["error"]["detail"]
