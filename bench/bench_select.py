"""Model selection speed: service.gmm's select_mixture against a scikit-learn loop and mclust.

One sweep of K = 1..9 x the four covariance types on 20,000 x 16 synthetic data,
timed in the same run for

* ours: ``select_mixture`` (hierarchical + k-means starts, candidates in parallel);
  the bar;
* ours with k-means starts only (``hierarchical=False``): exactly the fits the
  scikit-learn loop makes, for a like-for-like figure;
* scikit-learn: the loop users write by hand, one ``GaussianMixture(...).fit``
  and ``bic()`` per cell, with the same ``tol``, ``reg_covar``, ``max_iter``,
  ``n_init`` and k-means init;
* mclust: ``mclustBIC(X, G = 1:9, modelNames = c("VVV", "EEE", "VVI", "VII"))``
  through ``Rscript``, timed inside R (R's start-up and reading the data are not
  counted), when Rscript and mclust are installed; skipped, and said so, otherwise.

Printed: wall-clock seconds for each and the ratios (the bar), CPU seconds beside
them (steadier than wall-clock time when other work shares the machine), and
each one's winner with its BIC.

    python bench/bench_select.py            # 20,000 x 16
    python bench/bench_select.py --quick    # 5,000 x 16
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnMixture

from service.gmm import COVARIANCE_TYPES, FitConfig, select_mixture

N_COMPONENTS = range(1, 10)
MCLUST_MODELS = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}

MCLUST_SCRIPT = """
suppressMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
X <- as.matrix(read.csv(args[1], header = FALSE))
models <- c("VVV", "EEE", "VVI", "VII")
took <- system.time(b <- mclustBIC(X, G = 1:9, modelNames = models))
best <- which(b == max(b, na.rm = TRUE), arr.ind = TRUE)[1, ]
cpu <- took[["user.self"]] + took[["sys.self"]]
cat(took[["elapsed"]], cpu, rownames(b)[best[1]], colnames(b)[best[2]], -max(b, na.rm = TRUE), "\\n")
"""


def synthetic(n_samples: int, n_features: int, n_components: int, seed: int = 0) -> np.ndarray:
    """Points from a known mixture of Gaussians with different shapes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    scales = rng.uniform(0.5, 1.5, size=(n_components, n_features))
    return centers[labels] + rng.standard_normal((n_samples, n_features)) * scales[labels]


def run_ours(X: np.ndarray, base: FitConfig, hierarchical: bool = True) -> tuple[float, float, str]:
    start, cpu = time.perf_counter(), time.process_time()
    result = select_mixture(X, n_components=N_COMPONENTS, base=base, hierarchical=hierarchical)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    best = result.best
    return seconds, cpu, f"{best.covariance_type} K={best.n_components} BIC {best.bic:.1f}"


def run_sklearn(X: np.ndarray, base: FitConfig) -> tuple[float, float, str]:
    start, cpu = time.perf_counter(), time.process_time()
    table = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in N_COMPONENTS:
            for covariance_type in COVARIANCE_TYPES:
                model = SklearnMixture(
                    n_components=k,
                    covariance_type=covariance_type,
                    tol=base.tol,
                    reg_covar=base.reg_covar,
                    max_iter=base.max_iter,
                    n_init=base.n_init,
                    init_params="kmeans",
                    random_state=base.random_state,
                ).fit(X)
                table[(k, covariance_type)] = model.bic(X)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    (k, covariance_type), bic = min(table.items(), key=lambda item: item[1])
    return seconds, cpu, f"{covariance_type} K={k} BIC {bic:.1f}"


def run_mclust(X: np.ndarray) -> tuple[float, float, str] | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp) / "X.csv", Path(tmp) / "sweep.R"
        np.savetxt(data, X, delimiter=",", fmt="%.17g")
        script.write_text(MCLUST_SCRIPT)
        done = subprocess.run(
            [rscript, str(script), str(data)], capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        print(f"mclust: Rscript failed ({done.stderr.strip().splitlines()[-1:]}); skipped")
        return None
    seconds, cpu, k, model, bic = done.stdout.split()
    types = {v: t for t, v in MCLUST_MODELS.items()}
    return float(seconds), float(cpu), f"{types[model]} K={k} BIC {float(bic):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 rows instead of 20,000")
    parser.add_argument("--tol", type=float, default=1e-3, help="EM tolerance for both (1e-3)")
    parser.add_argument("--n-init", type=int, default=1, help="k-means starts per cell (1)")
    args = parser.parse_args()

    n_samples = 5_000 if args.quick else 20_000
    X = synthetic(n_samples, 16, 5)
    base = FitConfig(tol=args.tol, n_init=args.n_init, random_state=0)
    print(
        f"model selection, K = 1..9 x {len(COVARIANCE_TYPES)} covariance types on "
        f"{n_samples} x 16; tol={base.tol:g}, reg_covar={base.reg_covar:g}, "
        f"n_init={base.n_init} (k-means)"
    )
    ours = run_ours(X, base)
    like_for_like = run_ours(X, base, hierarchical=False)
    sklearn = run_sklearn(X, base)
    mclust = run_mclust(X)
    print(f" {'':15} {'wall s':>8} {'ratio':>6} {'cpu s':>8} {'ratio':>6}   best")
    rows = [
        ("ours", ours, None),
        ("ours, k-means", like_for_like, None),
        ("scikit-learn", sklearn, ours),
        ("mclust", mclust, ours),
    ]
    for name, row, against in rows:
        if row is None:
            print(f" {name:15} skipped: Rscript with r-cran-mclust is not installed")
            continue
        seconds, cpu, best = row
        wall_ratio = cpu_ratio = ""
        if against is not None:
            wall_ratio, cpu_ratio = f"{seconds / against[0]:5.1f}x", f"{cpu / against[1]:5.1f}x"
        print(f" {name:15} {seconds:8.2f} {wall_ratio:>6} {cpu:8.2f} {cpu_ratio:>6}   {best}")
    print(
        f" like for like (k-means starts only, the loop's fits): scikit-learn is "
        f"{sklearn[0] / like_for_like[0]:.1f}x ours in wall time, "
        f"{sklearn[1] / like_for_like[1]:.1f}x in CPU time"
    )


if __name__ == "__main__":
    main()
