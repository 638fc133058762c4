"""The Python client against a live server (uvicorn on a loopback port, started by the test)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.client import AsyncClient, Client, ProblemError

from .api.helpers import TRUE_MEANS, three_blobs


def test_sync_client_fits_and_answers_with_numpy_arrays(live_url):
    X = three_blobs()
    with Client(live_url) as gmm:
        dataset = gmm.create_dataset(X, name="blobs")
        assert (dataset["n_samples"], dataset["n_features"]) == X.shape
        model = gmm.create_model(n_components=3, random_state=0)
        fitted = gmm.fit(model["id"], dataset_id=dataset["id"], wait=True)
        assert (fitted["status"], fitted["version"]) == ("ready", 1)

        parameters = gmm.parameters(model["id"])
        assert isinstance(parameters["means"], np.ndarray) and parameters["means"].shape == (3, 2)
        labels, probabilities = gmm.predict(model["id"], TRUE_MEANS, return_probabilities=True)
        assert labels.dtype.kind == "i" and len(set(labels.tolist())) == 3
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
        log_likelihood = gmm.score(model["id"], X[:5])
        assert log_likelihood.shape == (5,)
        flagged = gmm.anomalies(model["id"], [[0.0, 0.0], [50.0, 50.0]])
        assert flagged["is_anomaly"].tolist() == [False, True]
        samples, components = gmm.sample(model["id"], 10, random_state=1)
        assert samples.shape == (10, 2) and components.shape == (10,)


def test_fit_with_wait_reports_progress_on_stderr(live_url, capsys):
    with Client(live_url) as gmm:
        model = gmm.create_model(n_components=3, random_state=0, tol=0.0, max_iter=30)
        gmm.fit(model["id"], three_blobs(), wait=True, progress=True)
    assert "iteration" in capsys.readouterr().err


def test_errors_are_raised_with_their_problem(live_url):
    with Client(live_url) as gmm:
        model = gmm.create_model(n_components=2)
        with pytest.raises(ProblemError) as unfitted:
            gmm.predict(model["id"], [[0.0, 0.0]])
        assert unfitted.value.status == 409 and "not fitted" in unfitted.value.detail
        with pytest.raises(ProblemError) as invalid:
            gmm.create_model(n_components=0)
        assert invalid.value.errors[0]["pointer"] == "#/n_components"


def test_fit_takes_the_matrix_once_or_a_dataset_id(live_url):
    with Client(live_url) as gmm:
        model = gmm.create_model(n_components=2)
        with pytest.raises(TypeError, match="exactly one"):
            gmm.start_fit(model["id"])
        with pytest.raises(TypeError, match="exactly one"):
            gmm.start_fit(model["id"], three_blobs(), dataset_id="ds_x")
        with pytest.raises(TypeError, match="not both"):
            gmm.start_fit(model["id"], three_blobs(), data=three_blobs())
        assert gmm.start_fit(model["id"], three_blobs())["status"] in ("queued", "running")


def test_a_failed_fit_raises_when_waited_for(live_url):
    with Client(live_url) as gmm:
        model = gmm.create_model(n_components=2, reg_covar=0.0)
        with pytest.raises(ProblemError) as failed:
            gmm.fit(model["id"], data=[[1.0, 1.0]] * 5, wait=True)
        assert "collapsed" in failed.value.detail


def test_async_client_does_the_same(live_url):
    async def scenario():
        async with AsyncClient(live_url) as gmm:
            model = await gmm.create_model(n_components=3, random_state=0)
            fitted = await gmm.fit(model["id"], three_blobs(), wait=True)
            labels = await gmm.predict(model["id"], TRUE_MEANS)
            return fitted, labels

    fitted, labels = asyncio.run(scenario())
    assert fitted["status"] == "ready"
    assert sorted(labels.tolist()) == [0, 1, 2]


def test_the_client_stages_activates_and_rolls_back_versions(live_url):
    with Client(live_url) as gmm:
        model = gmm.create_model(n_components=3, random_state=0)
        gmm.fit(model["id"], three_blobs(), wait=True)
        gmm.fit(model["id"], three_blobs(seed=1) * 2.0, activate=False, wait=True)
        listed = gmm.versions(model["id"])["items"]
        assert [(v["version"], v["active"]) for v in listed] == [(2, False), (1, True)]
        staged = gmm.score(model["id"], TRUE_MEANS, version=2)
        assert gmm.activate(model["id"], 2)["active_version"] == 2
        np.testing.assert_array_equal(gmm.score(model["id"], TRUE_MEANS), staged)
        gmm.activate(model["id"], 1)
        gmm.delete_version(model["id"], 2)
        with pytest.raises(ProblemError) as gone:
            gmm.get_version(model["id"], 2)
        assert gone.value.status == 404


def test_a_sklearn_mixture_goes_in_and_comes_back_out_through_the_client(live_url):
    from sklearn.mixture import GaussianMixture

    X = three_blobs()
    estimator = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    with Client(live_url) as gmm:
        model = gmm.create_model(n_components=3)
        version = gmm.import_sklearn(model["id"], estimator)
        assert (version["version"], version["source"]) == (1, "import")
        np.testing.assert_allclose(
            gmm.score(model["id"], X), estimator.score_samples(X), rtol=1e-10
        )
        back = gmm.to_sklearn(model["id"])
    assert isinstance(back, GaussianMixture) and back.covariance_type == "tied"
    np.testing.assert_allclose(back.score_samples(X), estimator.score_samples(X), rtol=1e-10)
    np.testing.assert_array_equal(back.predict(X), estimator.predict(X))


def test_select_with_wait_returns_the_table(live_url):
    with Client(live_url) as gmm:
        model = gmm.create_model(random_state=0)
        job = gmm.select(
            model["id"],
            three_blobs(),
            n_components=range(2, 5),
            covariance_types=["full"],
            wait=True,
            progress=True,
        )
        assert job["result"]["best"] == {"n_components": 3, "covariance_type": "full"}
        assert [c["n_components"] for c in job["result"]["candidates"]] == [2, 3, 4]
        assert gmm.get_model(model["id"])["n_components"] == 3


def test_the_progress_bar_names_the_candidate_of_a_selection(capsys):
    from service.client import _ProgressBar

    candidate = {"n_components": 4, "covariance_type": "tied", "total": 8, "completed": 3}
    _ProgressBar(True).update(
        {
            "init": 0,
            "n_init": 1,
            "iteration": 5,
            "max_iter": 100,
            "lower_bound": -1.5,
            "candidate": candidate,
        }
    )
    assert "candidate 3/8 done, now k=4 tied" in capsys.readouterr().err


def test_the_client_sends_nan_as_a_missing_feature_and_gets_conditionals(live_url):
    with Client(live_url) as gmm:
        model = gmm.create_model(n_components=3, random_state=0)
        gmm.fit(model["id"], data=three_blobs(), wait=True)
        rows = np.array([[0.0, np.nan], [6.0, 0.0]])
        scores = gmm.score(model["id"], rows)
        assert np.isfinite(scores).all()
        (first, second) = gmm.condition(model["id"], rows)
        assert first["missing"].tolist() == [1] and second["missing"].tolist() == []
        filled, std = gmm.impute(model["id"], rows)
        assert np.isfinite(filled).all() and np.isnan(std[0, 0]) and std[0, 1] > 0
        flagged = gmm.anomalies(model["id"], [[0.0, 0.0], [30.0, 30.0]], explain=True)
        assert flagged["p_values"][1] < flagged["p_values"][0]
        assert len(flagged["explanations"][1]) == 2
        assert gmm.monitoring(model["id"])["n_scored"] == 4


def test_the_client_updates_a_fitted_model_with_new_rows(live_url):
    with Client(live_url) as gmm:
        model = gmm.create_model(n_components=3, random_state=0)
        gmm.fit(model["id"], three_blobs(), wait=True)
        updated = gmm.update(
            model["id"], three_blobs(50, seed=4) + 1.0, learning_rate=0.5, wait=True
        )
        assert (updated["version"], updated["active_version"]) == (2, 2)
        assert updated["fit_summary"]["update"] == {
            "from_version": 1,
            "learning_rate": 0.5,
            "n_effective": 300.0,
        }
        staged = gmm.start_update(model["id"], three_blobs(50, seed=5), activate=False)
        assert staged["kind"] == "update"
        with pytest.raises(TypeError, match="exactly one"):
            gmm.start_update(model["id"])
        with pytest.raises(ProblemError) as invalid:
            gmm.start_update(model["id"], [[1.0, 2.0]], learning_rate=2.0)
        assert invalid.value.errors[0]["pointer"] == "#/learning_rate"


def test_the_async_client_updates_too(live_url):
    async def run() -> dict:
        async with AsyncClient(live_url) as gmm:
            model = await gmm.create_model(n_components=3, random_state=0)
            await gmm.fit(model["id"], three_blobs(), wait=True)
            return await gmm.update(model["id"], three_blobs(50, seed=4), wait=True)

    updated = asyncio.run(run())
    assert updated["fit_summary"]["update"]["n_effective"] == 750.0


def test_a_file_is_streamed_to_the_service_as_a_dataset_by_either_client(live_url, tmp_path):
    X = three_blobs()
    np.save(tmp_path / "blobs.npy", X)
    (tmp_path / "blobs.csv").write_text("x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in X.tolist()))
    with Client(live_url) as gmm:
        stored = gmm.upload_dataset_file(tmp_path / "blobs.npy", name="npy")
        from_csv = gmm.upload_dataset_file(tmp_path / "blobs.csv")

    async def scenario():
        async with AsyncClient(live_url) as gmm:
            return await gmm.upload_dataset_file(tmp_path / "blobs.npy")

    streamed_async = asyncio.run(scenario())
    assert (stored["n_samples"], stored["name"], stored["status"]) == (len(X), "npy", "ready")
    assert from_csv["sha256"] == stored["sha256"] == streamed_async["sha256"]
