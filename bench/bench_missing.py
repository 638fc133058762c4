"""Scoring rows with missing features against scoring complete rows, in the same run.

The model: K=8 full-covariance components in D=16 (means and covariances drawn
at random). The workloads, each timed as the best of ``--repeats`` runs of
``MixtureParameters.score_samples`` (the runs interleaved, workload after
workload, so that a busy moment on a shared machine hits them alike):

* complete: 100,000 complete rows (the chunked ScoringKernel: the reference);
* 25% missing: the same rows with each value hidden with probability 0.25, so
  nearly every row misses something and the patterns are many and mostly rare;
* own pattern: 65,535 rows, each with a different pattern (every non-empty
  subset of the 16 features observed once: 8 missing on average);
* one pattern: the 100,000 rows with the same 4 features missing in all.

Printed: rows/s and how many times slower than complete rows; the bar is 5x
for 25% missing.

    python bench/bench_missing.py            # 100,000 rows
    python bench/bench_missing.py --quick    # 20,000 rows
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from service.gmm import MixtureParameters

N_FEATURES, N_COMPONENTS = 16, 8


def model(seed: int = 0) -> MixtureParameters:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(N_COMPONENTS, N_FEATURES, N_FEATURES))
    covariances = factors @ factors.transpose(0, 2, 1) / N_FEATURES + 0.5 * np.eye(N_FEATURES)
    means = rng.normal(scale=3.0, size=(N_COMPONENTS, N_FEATURES))
    weights = rng.dirichlet(np.full(N_COMPONENTS, 5.0))
    return MixtureParameters.from_covariances(weights, means, covariances, "full")


def every_pattern() -> np.ndarray:
    """Every missingness pattern with at least one feature observed, once: (2^D - 1, D)."""
    codes = np.arange(1, 2**N_FEATURES)
    observed = (codes[:, None] >> np.arange(N_FEATURES)) & 1
    return observed == 0


def best_seconds(workloads: dict, function, repeats: int) -> dict[str, float]:
    """The best time of ``function(data)`` per workload, the runs interleaved."""
    best = dict.fromkeys(workloads, float("inf"))
    for _ in range(repeats):
        for name, data in workloads.items():
            start = time.perf_counter()
            function(data)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    n_rows = 20_000 if args.quick else 100_000

    parameters = model()
    X, _ = parameters.sample(n_rows, random_state=1)
    rng = np.random.default_rng(2)
    hidden = rng.random(X.shape) < 0.25
    hidden[np.arange(n_rows), rng.integers(N_FEATURES, size=n_rows)] = False
    patterns = every_pattern()
    own = np.where(patterns, np.nan, X[np.arange(len(patterns)) % n_rows])
    one = X.copy()
    one[:, [1, 5, 9, 13]] = np.nan
    workloads = {
        "complete": X,
        "25% missing": np.where(hidden, np.nan, X),
        "own pattern": own,
        "one pattern": one,
    }
    parameters.score_samples(X[:1000])  # build the kernels and the thread pool
    parameters.score_samples(workloads["25% missing"][:1000])

    print(f"score_samples, K={N_COMPONENTS} full, D={N_FEATURES}, best of {args.repeats}")
    seconds = best_seconds(workloads, parameters.score_samples, args.repeats)
    reference = len(X) / seconds["complete"]
    for name, data in workloads.items():
        rate = len(data) / seconds[name]
        missing = np.isnan(data)
        print(
            f"  {name:>12}: {len(data):>7} rows, {missing.mean():5.1%} missing, "
            f"{len(np.unique(missing, axis=0)):>6} patterns | {rate / 1e6:6.2f} M rows/s, "
            f"{reference / rate:5.1f}x the time of complete rows"
        )


if __name__ == "__main__":
    main()
