"""EM throughput: service.gmm against scikit-learn, measured in the same run.

For each workload (N, D, K, covariance type) both libraries start from the same
initial parameters and run the same number of EM iterations (tol=0, so neither
stops early). Each fit is timed as the best of two runs, for both libraries.
Printed per workload: seconds per iteration for each, the ratio
sklearn/ours, our achieved GFLOP/s (4*N*K*D^2 per iteration for full) as a
fraction of the DGEMM/SGEMM rate measured here, peak memory of each fit
(tracemalloc, in a separate one-iteration run), and both final lower bounds.
Then scoring throughput (score_samples and predict_proba) on 100k x 16, K=8.

    python bench/bench_em.py            # the full table (a few minutes)
    python bench/bench_em.py --quick    # N / 10, under a minute
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnMixture

from service.gmm import FitConfig, MixtureParameters, fit_mixture

WORKLOADS = [
    (100_000, 2, 5, "full"),
    (200_000, 16, 8, "full"),
    (200_000, 32, 16, "full"),
    (1_000_000, 8, 10, "full"),
    (100_000, 2, 5, "diag"),
    (200_000, 16, 8, "diag"),
    (200_000, 32, 16, "diag"),
    (1_000_000, 8, 10, "diag"),
    (200_000, 16, 8, "tied"),
    (200_000, 16, 8, "spherical"),
]


def gemm_rate(dtype: type, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a square matrix product on this machine, all cores."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def synthetic(n_samples: int, n_features: int, n_components: int, seed: int = 0) -> np.ndarray:
    """Points from a known mixture of well-spread Gaussians."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    X = centers[labels]
    X += rng.standard_normal((n_samples, n_features)) * rng.uniform(0.5, 1.5, n_features)
    return X


def initial_parameters(X: np.ndarray, n_components: int, covariance_type: str) -> dict:
    """Equal weights, means on random rows, unit-variance precisions."""
    rng = np.random.default_rng(1)
    n_features = X.shape[1]
    means = X[rng.choice(len(X), n_components, replace=False)]
    precisions = {
        "full": np.array([np.eye(n_features)] * n_components),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type]
    return dict(
        weights_init=np.full(n_components, 1.0 / n_components),
        means_init=means,
        precisions_init=precisions,
    )


def run_sklearn(X, k, covariance_type, n_iter, init):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SklearnMixture(
            k, covariance_type=covariance_type, max_iter=n_iter, tol=0.0, **init
        ).fit(X)


def run_ours(X, k, covariance_type, n_iter, init, dtype):
    config = FitConfig(k, covariance_type, max_iter=n_iter, tol=0.0, dtype=dtype)
    return fit_mixture(X, config, **init)


def timed(function, *args, repeats: int = 2):
    """Best wall-clock time of ``repeats`` runs (the same for both libraries)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_mib(function, *args) -> float:
    tracemalloc.start()
    function(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def bench_fits(scale: int, n_iter: int, rates: dict[str, float]) -> None:
    print(
        f"{'N':>9} {'D':>3} {'K':>3} {'cov':>9} {'dtype':>7} | {'sk s/it':>8} {'ours s/it':>9}"
        f" {'ratio':>6} | {'GFLOP/s':>7} {'%GEMM':>6} | {'sk MiB':>7} {'our MiB':>7}"
        f" | {'sk lower bound':>18} {'our lower bound':>18}"
    )
    for n, d, k, covariance_type in WORKLOADS:
        n //= scale
        X = synthetic(n, d, k)
        init = initial_parameters(X, k, covariance_type)
        sk_time, reference = timed(run_sklearn, X, k, covariance_type, n_iter, init)
        sk_mem = peak_mib(run_sklearn, X, k, covariance_type, 1, init)
        for dtype in ("float64", "float32"):
            data = X if dtype == "float64" else X.astype(np.float32)
            ours_time, ours = timed(run_ours, data, k, covariance_type, n_iter, init, dtype)
            ours_mem = peak_mib(run_ours, data, k, covariance_type, 1, init, dtype)
            flops = 4 * n * k * d * d * n_iter if covariance_type == "full" else 0
            gflops = flops / ours_time / 1e9
            share = f"{100 * gflops / rates[dtype]:5.1f}%" if flops else "     -"
            print(
                f"{n:>9} {d:>3} {k:>3} {covariance_type:>9} {dtype:>7} |"
                f" {sk_time / n_iter:8.4f} {ours_time / n_iter:9.4f}"
                f" {sk_time / ours_time:5.1f}x | {gflops:7.1f} {share} |"
                f" {sk_mem:7.1f} {ours_mem:7.1f} |"
                f" {reference.lower_bound_:18.12f} {ours.lower_bound:18.12f}",
                flush=True,
            )


def bench_scoring(scale: int, repeats: int = 5) -> None:
    n, d, k = 100_000 // scale, 16, 8
    X = synthetic(n, d, k)
    reference = run_sklearn(X, k, "full", 5, initial_parameters(X, k, "full"))
    ours = MixtureParameters(
        "full",
        reference.weights_,
        reference.means_,
        reference.covariances_,
        reference.precisions_cholesky_,
    )
    print(f"\nscoring {n} x {d}, K={k}, full ({repeats} repeats)")
    for name, sk_call, our_call in [
        ("score_samples", reference.score_samples, ours.score_samples),
        ("predict_proba", reference.predict_proba, ours.predict_proba),
    ]:
        our_call(X)
        sk_time, _ = timed(lambda sk_call=sk_call: [sk_call(X) for _ in range(repeats)])
        ours_time, _ = timed(lambda our_call=our_call: [our_call(X) for _ in range(repeats)])
        print(
            f"{name:>14}: sklearn {repeats * n / sk_time / 1e6:6.2f} M rows/s,"
            f" ours {repeats * n / ours_time / 1e6:6.2f} M rows/s,"
            f" ratio {sk_time / ours_time:4.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N / 10 and 5 iterations")
    args = parser.parse_args()
    scale, n_iter = (10, 5) if args.quick else (1, 10)
    rates = {"float64": gemm_rate(np.float64), "float32": gemm_rate(np.float32)}
    print(f"DGEMM {rates['float64']:.1f} GFLOP/s, SGEMM {rates['float32']:.1f} GFLOP/s")
    print(f"{n_iter} EM iterations per fit, tol=0, identical initial parameters\n")
    bench_fits(scale, n_iter, rates)
    bench_scoring(scale)


if __name__ == "__main__":
    main()
