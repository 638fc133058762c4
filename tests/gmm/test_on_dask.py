"""EM on Dask (service.gmm.on_dask) on a LocalCluster of two worker processes."""

import os
import signal
import threading

import distributed
import numpy as np
import pytest

from service.gmm import COVARIANCE_TYPES, FitCancelled, FitConfig, fit_mixture
from service.gmm.chunked import ChunkedData, fit_chunked
from service.gmm.on_dask import fit_dask

from .conftest import assert_same_fit, make_blobs, precisions_of, random_start

# The module's LocalCluster starts once, on one worker (pytest-xdist), not once on each.
pytestmark = pytest.mark.xdist_group("dask-on-dask")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def npy_chunks(X, folder, rows):
    paths = []
    for i, start in enumerate(range(0, len(X), rows)):
        paths.append(folder / f"{i:04d}.npy")
        np.save(paths[-1], X[start : start + rows])
    return ChunkedData.from_npy(paths)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(31, 3001, 4, 3, spread=5.0)


@pytest.fixture(scope="module")
def chunks(blobs, tmp_path_factory):
    return npy_chunks(blobs, tmp_path_factory.mktemp("chunks"), 700)


def given_start(X, covariance_type, n_components=3):
    start = random_start(X, n_components, covariance_type)
    return dict(
        weights_init=start.weights, means_init=start.means, precisions_init=precisions_of(start)
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_fit_equals_the_in_memory_fit_from_the_same_start(
    client, blobs, chunks, covariance_type
):
    config = FitConfig(3, covariance_type, tol=1e-8, max_iter=40)
    init = given_start(blobs, covariance_type)
    expected = fit_mixture(blobs, config, **init)
    assert_same_fit(fit_dask(chunks, config, client=client, **init), expected)


def test_every_chunk_is_read_and_reduced_on_the_dask_workers(client, blobs, chunks):
    config = FitConfig(3, "diag", tol=0.0, max_iter=3)
    with distributed.get_task_stream(client) as stream:
        fit_dask(chunks, config, client=client, **given_start(blobs, "diag"))
    tasks = [task for task in stream.data if task["key"].startswith("apply_to_chunk")]
    assert len(tasks) == len(chunks.readers) * (1 + config.max_iter)
    assert len({task["worker"] for task in tasks}) == 2
    assert any(task["key"].startswith("_add") for task in stream.data)


def test_dask_fit_initialises_from_the_same_sample_as_the_local_fit(client, chunks):
    config = FitConfig(3, "full", random_state=4)
    expected = fit_chunked(chunks, config, init_sample_size=800)
    assert_same_fit(fit_dask(chunks, config, client=client, init_sample_size=800), expected)


def test_dask_fit_with_sample_weights_equals_the_in_memory_fit(client, blobs, chunks):
    weights = np.random.default_rng(2).uniform(0.0, 2.0, size=len(blobs))
    config = FitConfig(3, "tied", tol=0.0, max_iter=15)
    init = given_start(blobs, "tied")
    expected = fit_mixture(blobs, config, sample_weight=weights, **init)
    actual = fit_dask(chunks, config, client=client, sample_weight=weights, **init)
    assert_same_fit(actual, expected)


def test_callback_stops_a_dask_fit_between_iterations(client, blobs, chunks):
    heard = []

    def stop_at_second(progress):
        heard.append(progress.iteration)
        return progress.iteration == 2

    with pytest.raises(FitCancelled):
        fit_dask(
            chunks,
            FitConfig(3, "full", tol=0.0, max_iter=50),
            client=client,
            callback=stop_at_second,
            **given_start(blobs, "full"),
        )
    assert heard == [1, 2]


def test_killing_a_dask_worker_mid_fit_still_gives_the_in_memory_answer(client, tmp_path):
    X = make_blobs(32, 200_000, 8, 4, spread=4.0)
    chunks = npy_chunks(X, tmp_path, 12_500)
    config = FitConfig(4, "full", tol=0.0, max_iter=12)
    init = given_start(X, "full", n_components=4)
    expected = fit_mixture(X, config, **init)
    pids = set(client.run(os.getpid).values())
    victim = min(pids)
    killed = threading.Event()

    def kill_during_the_next_iteration(progress):
        if progress.iteration == 4:
            timer = threading.Timer(0.02, lambda: (os.kill(victim, signal.SIGKILL), killed.set()))
            timer.start()

    actual = fit_dask(
        chunks, config, client=client, callback=kill_during_the_next_iteration, **init
    )
    assert killed.is_set()
    client.wait_for_workers(2, timeout=60)
    assert victim not in set(client.run(os.getpid).values())  # the nanny started a new one
    assert_same_fit(actual, expected)
