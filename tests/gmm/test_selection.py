"""Model selection: a grid of (n_components, covariance_type), scored and ranked.

The references are scikit-learn (``bic()``, ``aic()``, ``predict_proba``) and R's
mclust (``mclustBIC`` on R's ``faithful`` data: live through ``Rscript``, and as
the table mclust 6.0.0 printed, kept in ``tests/fixtures/faithful_mclust_bic.csv``).
"""

from __future__ import annotations

import csv
import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.special import xlogy
from sklearn.mixture import GaussianMixture as SklearnMixture

from service.gmm import (
    COVARIANCE_TYPES,
    FitCancelled,
    FitConfig,
    InvalidDataError,
    InvalidParameterError,
    MixtureParameters,
    select_mixture,
)
from service.gmm.selection import spurious_reason

from ..external import require, require_program
from .conftest import make_blobs, precisions_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MCLUST_MODELS = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
# BIC no worse than mclust's by more than this counts as a match.
BIC_SLACK = 0.5

MCLUST_BIC_SCRIPT = """
suppressMessages(library(mclust))
X <- read.csv(commandArgs(trailingOnly = TRUE)[1])
models <- c("VVV", "EEE", "VVI", "VII")
b <- mclustBIC(X, G = 1:9, modelNames = models)
for (model in models) for (k in 1:9) cat(k, model, -b[k, model], "\\n")
"""


def _faithful() -> np.ndarray:
    return np.loadtxt(FIXTURES / "faithful.csv", delimiter=",", skiprows=1)


def _sklearn_mixture(parameters: MixtureParameters) -> SklearnMixture:
    """A scikit-learn mixture holding exactly these parameters."""
    model = SklearnMixture(parameters.n_components, covariance_type=parameters.covariance_type)
    model.weights_ = parameters.weights
    model.means_ = parameters.means
    model.covariances_ = parameters.covariances
    model.precisions_cholesky_ = parameters.precisions_cholesky
    model.precisions_ = precisions_of(parameters)
    model.converged_ = True
    model.n_features_in_ = parameters.n_features
    return model


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    return make_blobs(0, 600, 3, 3, spread=10.0)


@pytest.fixture(scope="module")
def faithful_selection():
    return select_mixture(
        _faithful(), n_components=range(1, 10), base=FitConfig(tol=1e-5, random_state=0)
    )


# --- criteria -----------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bic_and_aic_equal_sklearns_for_the_same_parameters(blobs, covariance_type):
    result = select_mixture(blobs, n_components=[2], covariance_types=[covariance_type])
    reference = _sklearn_mixture(result.parameters)
    assert result.best.bic == pytest.approx(reference.bic(blobs), rel=1e-10)
    assert result.best.aic == pytest.approx(reference.aic(blobs), rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_icl_is_bic_plus_twice_the_entropy_of_the_responsibilities(blobs, covariance_type):
    result = select_mixture(blobs, n_components=[4], covariance_types=[covariance_type])
    responsibilities = _sklearn_mixture(result.parameters).predict_proba(blobs)
    entropy = -xlogy(responsibilities, responsibilities).sum()
    assert result.best.icl == pytest.approx(result.best.bic + 2.0 * entropy, rel=1e-9)


def test_log_likelihood_is_the_weighted_total_over_the_data(blobs):
    weights = np.random.default_rng(0).integers(1, 4, size=len(blobs)).astype(float)
    result = select_mixture(
        blobs, n_components=[3], covariance_types=["full"], sample_weight=weights
    )
    per_sample = _sklearn_mixture(result.parameters).score_samples(blobs)
    assert result.best.log_likelihood == pytest.approx(weights @ per_sample, rel=1e-10)
    p = result.best.n_parameters
    expected_bic = -2.0 * weights @ per_sample + p * np.log(weights.sum())
    assert result.best.bic == pytest.approx(expected_bic, rel=1e-10)


@pytest.mark.parametrize("criterion", ["bic", "aic", "icl"])
def test_the_winner_has_the_lowest_criterion_among_eligible_candidates(blobs, criterion):
    result = select_mixture(blobs, n_components=range(1, 6), criterion=criterion)
    eligible = [c for c in result.candidates if c.eligible]
    assert result.best == min(eligible, key=lambda c: getattr(c, criterion))
    assert result.criterion == criterion


# --- choosing -----------------------------------------------------------------------


def test_well_separated_blobs_select_their_number_of_components(blobs):
    result = select_mixture(blobs, n_components=range(1, 7), base=FitConfig(random_state=0))
    assert result.best.n_components == 3
    assert result.parameters.n_components == 3
    assert result.fit.converged


def test_the_table_has_one_candidate_per_cell_in_grid_order(blobs):
    result = select_mixture(blobs, n_components=[3, 1, 2], covariance_types=["diag", "full"])
    cells = [(c.n_components, c.covariance_type) for c in result.candidates]
    assert cells == [(3, "diag"), (3, "full"), (1, "diag"), (1, "full"), (2, "diag"), (2, "full")]
    assert all(c.seconds > 0 and c.n_iter >= 1 for c in result.candidates)


def test_threads_give_the_same_table_as_one_thread(blobs):
    grid = dict(n_components=range(1, 6), base=FitConfig(random_state=3))
    serial = select_mixture(blobs, n_jobs=1, **grid)
    parallel = select_mixture(blobs, n_jobs=2, **grid)
    for one, other in zip(serial.candidates, parallel.candidates, strict=True):
        assert (one.bic, one.icl, one.n_iter, one.start) == (
            other.bic,
            other.icl,
            other.n_iter,
            other.start,
        )


def test_result_is_json_in_the_contracts_shape(blobs):
    result = select_mixture(blobs, n_components=[1, 2], covariance_types=["tied"])
    table = json.loads(json.dumps(result.to_dict()))
    assert table["criterion"] == "bic"
    assert table["best"] == {
        "n_components": result.best.n_components,
        "covariance_type": "tied",
    }
    required = {
        "n_components",
        "covariance_type",
        "converged",
        "n_iter",
        "log_likelihood",
        "n_parameters",
        "bic",
        "aic",
        "icl",
        "seconds",
        "error",
    }
    assert all(required <= set(row) for row in table["candidates"])


# --- spurious and failed candidates -------------------------------------------------


def test_a_variance_at_the_reg_covar_floor_is_spurious():
    parameters = MixtureParameters.from_covariances(
        np.array([0.5, 0.5]), np.zeros((2, 2)), np.array([[1.0, 1.0], [1.0, 2e-6]]), "diag"
    )
    reason = spurious_reason(parameters, total_weight=100.0, reg_covar=1e-6, data_scale=1.0)
    assert reason is not None and "component 1" in reason and "reg_covar" in reason


def test_a_component_on_fewer_than_d_plus_one_points_is_spurious():
    parameters = MixtureParameters.from_covariances(
        np.array([0.98, 0.02]), np.zeros((2, 2)), np.ones((2, 2)), "diag"
    )
    reason = spurious_reason(parameters, total_weight=100.0, reg_covar=1e-6, data_scale=1.0)
    assert reason is not None and "component 1" in reason and "2 effective points" in reason


def test_a_healthy_mixture_is_not_spurious():
    parameters = MixtureParameters.from_covariances(
        np.array([0.5, 0.5]), np.zeros((2, 2)), np.ones((2, 2)), "diag"
    )
    assert spurious_reason(parameters, total_weight=100.0, reg_covar=1e-6, data_scale=1.0) is None


def test_a_component_collapsed_onto_repeated_points_is_flagged_and_cannot_win():
    # Three copies of one far point: every start gives them a component of
    # their own, whose variance is reg_covar alone.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 2)), np.tile([[0.0, 8.0]], (3, 1))])
    result = select_mixture(X, n_components=[1, 2], covariance_types=["diag"])
    collapsed = result.candidates[1]
    assert collapsed.spurious and "reg_covar floor" in collapsed.spurious_reason
    assert collapsed.bic < result.candidates[0].bic  # the better BIC that means nothing
    assert result.best.n_components == 1


def test_a_candidate_whose_fit_collapses_is_reported_and_the_others_go_on():
    # Three distinct points, ten copies each: three components cover them with
    # zero variance, which reg_covar=0 cannot rescue.
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), 10, axis=0)
    result = select_mixture(
        X, n_components=[1, 3], covariance_types=["full"], base=FitConfig(reg_covar=0.0)
    )
    failed = result.candidates[1]
    assert failed.error["type"] == "collapsed_component"
    assert "reg_covar" in failed.error["detail"] and failed.bic is None
    assert result.best.n_components == 1


# --- progress and cancellation ------------------------------------------------------


def test_progress_names_every_candidate_once_as_it_starts(blobs):
    heard = []
    select_mixture(
        blobs, n_components=[1, 2], covariance_types=["full", "diag"], callback=heard.append
    )
    starts = sorted(
        (p.index, p.n_components, p.covariance_type, p.total) for p in heard if p.iteration == 0
    )
    assert starts == [(0, 1, "full", 4), (1, 1, "diag", 4), (2, 2, "full", 4), (3, 2, "diag", 4)]
    iterations = [p for p in heard if p.iteration > 0]
    assert iterations and all(np.isfinite(p.lower_bound) for p in iterations)


def test_callback_calls_never_overlap_across_threads(blobs):
    inside = threading.Lock()
    overlaps = []

    def callback(progress):
        if not inside.acquire(blocking=False):
            overlaps.append(progress)
            return False
        try:
            threading.Event().wait(0.0005)
        finally:
            inside.release()
        return False

    select_mixture(blobs, n_components=range(1, 5), callback=callback, n_jobs=2)
    assert overlaps == []


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_true_callback_return_cancels_the_selection(blobs, n_jobs):
    heard = []

    def callback(progress):
        heard.append(progress)
        return progress.iteration >= 2

    with pytest.raises(FitCancelled):
        select_mixture(blobs, n_components=range(1, 8), callback=callback, n_jobs=n_jobs)
    assert len({(p.n_components, p.covariance_type) for p in heard}) < 28


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"n_components": []}, "n_components"),
        ({"n_components": [0, 2]}, "n_components"),
        ({"n_components": [2, 700]}, "exceed the number of samples"),
        ({"n_components": [2], "covariance_types": []}, "covariance_types"),
        ({"n_components": [2], "covariance_types": ["full", "round"]}, "'round'"),
        ({"n_components": [2], "criterion": "mdl"}, "criterion"),
    ],
)
def test_bad_grids_raise_a_parameter_error_naming_the_field(blobs, arguments, named):
    with pytest.raises(InvalidParameterError, match=named):
        select_mixture(blobs, **arguments)


def test_bad_data_raise_a_data_error():
    with pytest.raises(InvalidDataError):
        select_mixture([[1.0, np.nan]], n_components=[1])


# --- R's faithful data against mclust ---------------------------------------------------


def _matches(result, mclust_bic: dict[tuple[int, str], float]) -> list[tuple[int, str]]:
    return [
        (c.n_components, c.covariance_type)
        for c in result.candidates
        if c.bic is not None
        and c.bic <= mclust_bic[(c.n_components, c.covariance_type)] + BIC_SLACK
    ]


def test_faithful_bic_is_as_good_as_mclusts_table_on_32_of_36_cells(faithful_selection):
    with open(FIXTURES / "faithful_mclust_bic.csv") as table:
        mclust_bic = {
            (int(row["n_components"]), row["covariance_type"]): float(row["bic"])
            for row in csv.DictReader(table)
        }
    assert len(mclust_bic) == 36
    assert len(_matches(faithful_selection, mclust_bic)) >= 32


def test_faithful_winner_is_mclusts_tied_three_not_a_spurious_one(faithful_selection):
    best = faithful_selection.best
    assert (best.n_components, best.covariance_type) == (3, "tied")
    assert not best.spurious
    assert best.bic == pytest.approx(2314.316, abs=BIC_SLACK)


def test_faithful_bic_is_as_good_as_live_mclusts_on_32_of_36_cells(faithful_selection, tmp_path):
    rscript = require_program("Rscript", "apt-get install r-base-core r-cran-mclust")
    has_mclust = subprocess.run(
        [rscript, "-e", "library(mclust)"], capture_output=True, check=False
    )
    require(has_mclust.returncode == 0, "R's mclust package (apt-get install r-cran-mclust)")
    script = tmp_path / "bic.R"
    script.write_text(MCLUST_BIC_SCRIPT)
    done = subprocess.run(
        [rscript, str(script), str(FIXTURES / "faithful.csv")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    types = {model: name for name, model in MCLUST_MODELS.items()}
    mclust_bic = {
        (int(k), types[model]): float(bic)
        for k, model, bic in (line.split() for line in done.stdout.splitlines())
    }
    assert len(mclust_bic) == 36
    assert len(_matches(faithful_selection, mclust_bic)) >= 32
    winner = min(mclust_bic, key=mclust_bic.get)
    assert winner == (faithful_selection.best.n_components, faithful_selection.best.covariance_type)
