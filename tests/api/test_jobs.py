"""/v1/jobs over HTTP: reading, listing and cancelling fits."""

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
