"""Scoring rows with missing features against scoring complete rows, in the same run.

The model: K=8 full-covariance components in D=16 (means and covariances drawn
at random). The workloads, each timed by ``MixtureParameters.score_samples``:

* complete: 100,000 complete rows (the chunked ScoringKernel: the reference);
* 25% missing: the same rows with each value hidden with probability 0.25, so
  nearly every row misses something and the patterns are many and mostly rare;
* own pattern: 65,535 rows, each with a different pattern (every non-empty
  subset of the 16 features observed once: 8 missing on average);
* one pattern: the 100,000 rows with the same 4 features missing in all.

Each repeat times every workload once, one after the other, and divides each
time per row by the complete rows' time per row *of the same repeat*, so that
a busy moment on a shared machine hits a workload and its reference alike. Printed per
workload: the median of those ratios over ``--repeats`` (at least 7), their
spread (lowest and highest) and the best rates. BLAS is held to one thread
for the whole run (threadpoolctl), the same for every workload; the core
spreads chunks over its own thread pool for all of them alike. The load
average is printed before and after. The bar is a median of 5x or less for
25% missing.

    python bench/bench_missing.py            # 100,000 rows
    python bench/bench_missing.py --quick    # 20,000 rows
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

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


def timed_repeats(workloads: dict, function, repeats: int) -> dict[str, np.ndarray]:
    """Seconds of ``function(data)`` per workload and repeat, the workloads interleaved."""
    seconds = {name: np.empty(repeats) for name in workloads}
    for repeat in range(repeats):
        for name, data in workloads.items():
            start = time.perf_counter()
            function(data)
            seconds[name][repeat] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--repeats", type=int, default=9, help="at least 7")
    args = parser.parse_args()
    if args.repeats < 7:
        parser.error("--repeats must be at least 7: the ratio reported is a median")
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

    print(
        f"score_samples, K={N_COMPONENTS} full, D={N_FEATURES}, {args.repeats} interleaved "
        f"repeats, BLAS at 1 thread; load average before: {os.getloadavg()[0]:.2f}"
    )
    with threadpool_limits(limits=1, user_api="blas"):
        seconds = timed_repeats(workloads, parameters.score_samples, args.repeats)
    for name, data in workloads.items():
        # time per row over the same repeat's time per complete row
        ratios = (seconds[name] / len(data)) / (seconds["complete"] / len(X))
        missing = np.isnan(data)
        print(
            f"  {name:>12}: {len(data):>7} rows, {missing.mean():5.1%} missing, "
            f"{len(np.unique(missing, axis=0)):>6} patterns | best {len(data) / seconds[name].min() / 1e6:5.2f}"
            f" M rows/s | median {np.median(ratios):4.2f}x the time of complete rows "
            f"(spread {ratios.min():4.2f}-{ratios.max():4.2f}x)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
