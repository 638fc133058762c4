"""Incremental update against EM on the same rows, measured in the same run.

A model fitted to 100k rows (D=16, K=8) takes a batch of 10k new rows. Timed,
each as the best of several runs (update and iteration taking turns):

* ``update``: one stepwise-EM update (``service.gmm.stepwise.update_mixture``);
* ``EM iteration``: one EM iteration on the same 10k rows from the same
  parameters (``fit_mixture(..., max_iter=1, warm_start=...)``), the reference:
  an update is one E-step and one M-step, so it should cost about one iteration;
* ``refit``: what the update replaces, EM to convergence on all 110k rows from
  the same starting parameters.

Printed per covariance type: milliseconds of each, and the ratios
update / EM iteration and refit / update.

    python bench/bench_update.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from service.gmm import FitConfig, fit_mixture
from service.gmm.stepwise import update_mixture

N_FITTED, N_NEW, N_FEATURES, N_COMPONENTS = 100_000, 10_000, 16, 8


def synthetic(n_samples: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Points from a fixed mixture of well-spread Gaussians (``shift`` moves every centre)."""
    centers = np.random.default_rng(0).normal(scale=4.0, size=(N_COMPONENTS, N_FEATURES))
    rng = np.random.default_rng(seed)
    labels = rng.integers(N_COMPONENTS, size=n_samples)
    return centers[labels] + shift + rng.standard_normal((n_samples, N_FEATURES))


def best_of(repeats: int, *runs: Callable[[], object]) -> list[float]:
    """The best time of each run; the runs take turns, so that a busy machine's
    load falls on all of them alike."""
    for run in runs:
        run()  # warm: thread pool, BLAS, caches
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    fitted_rows = synthetic(N_FITTED, seed=1)
    new_rows = synthetic(N_NEW, seed=2, shift=0.3)
    all_rows = np.vstack([fitted_rows, new_rows])
    print(
        f"fitted on {N_FITTED:,} x {N_FEATURES}, K={N_COMPONENTS}; update with {N_NEW:,} new rows"
    )
    print(
        f"{'covariance':<10} {'update ms':>10} {'EM iter ms':>11} {'update/iter':>12} "
        f"{'refit ms':>10} {'refit iters':>11} {'refit/update':>13}"
    )
    for covariance_type in ("full", "tied", "diag", "spherical"):
        config = FitConfig(N_COMPONENTS, covariance_type, random_state=0)
        params = fit_mixture(fitted_rows, config).parameters
        one_iteration = FitConfig(N_COMPONENTS, covariance_type, max_iter=1)

        def update(params=params) -> object:
            return update_mixture(params, new_rows, n_effective=N_FITTED)

        def em_iteration(params=params, one_iteration=one_iteration) -> object:
            return fit_mixture(new_rows, one_iteration, warm_start=params)

        def refit(params=params, config=config) -> object:
            return fit_mixture(all_rows, config, warm_start=params)

        t_update, t_iteration = best_of(args.repeats, update, em_iteration)
        (t_refit,) = best_of(3, refit)
        refit_iterations = refit().n_iter
        print(
            f"{covariance_type:<10} {1e3 * t_update:>10.2f} {1e3 * t_iteration:>11.2f} "
            f"{t_update / t_iteration:>12.2f} {1e3 * t_refit:>10.1f} {refit_iterations:>11d} "
            f"{t_refit / t_update:>13.1f}"
        )


if __name__ == "__main__":
    main()
