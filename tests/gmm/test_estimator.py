"""service.gmm.GaussianMixture is a scikit-learn estimator, a drop-in for sklearn.mixture's."""

import io
import subprocess
import sys
import textwrap
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SklearnMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from service.gmm import COVARIANCE_TYPES, GaussianMixture

from .conftest import make_blobs, precisions_of, random_start

RTOL = 1e-6


@pytest.fixture(scope="module")
def labelled_blobs():
    """Three blobs, and labels that are not the clusters (0/1 alternating)."""
    X = make_blobs(0, 300, 2, 3, spread=6.0)
    return X, np.arange(len(X)) % 2


def _fixed_start(X, covariance_type="full", n_components=3):
    start = random_start(X, n_components, covariance_type)
    return dict(
        weights_init=start.weights, means_init=start.means, precisions_init=precisions_of(start)
    )


def _fitted_attributes(model):
    names = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
    return {name: getattr(model, name) for name in names}


# --- y is ignored, sample_weight is keyword-only (the Pipeline defect) ------------


def test_pipeline_fit_with_labels_equals_the_fit_without_them(labelled_blobs):
    X, y = labelled_blobs

    def pipeline():
        return Pipeline([("scale", StandardScaler()), ("gmm", GaussianMixture(3, random_state=0))])

    with_y, without_y = pipeline().fit(X, y), pipeline().fit(X)
    for name, value in _fitted_attributes(without_y["gmm"]).items():
        np.testing.assert_array_equal(getattr(with_y["gmm"], name), value, err_msg=name)
    assert with_y.score(X, y) == without_y.score(X)


def test_score_ignores_labels(labelled_blobs):
    X, y = labelled_blobs
    model = GaussianMixture(3, random_state=0).fit(X)
    assert model.score(X, y) == model.score(X)


def test_sample_weight_cannot_be_passed_by_position(labelled_blobs):
    X, y = labelled_blobs
    with pytest.raises(TypeError):
        GaussianMixture(3).fit(X, y, np.ones(len(X)))


def test_sample_weight_by_keyword_weights_the_fit(labelled_blobs):
    X, _ = labelled_blobs
    start = _fixed_start(X)
    counts = np.random.default_rng(1).integers(0, 3, size=len(X))
    weighted = GaussianMixture(3, tol=0.0, max_iter=5, **start)
    repeated = clone(weighted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted.fit(X, sample_weight=counts)
        repeated.fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-10)
    assert weighted.score(X, sample_weight=counts) == pytest.approx(
        repeated.score(np.repeat(X, counts, axis=0)), rel=1e-12
    )


# --- scikit-learn's machinery -----------------------------------------------------------


@pytest.mark.parametrize(
    "estimator",
    [GaussianMixture(), GaussianMixture(dtype="float32")],
    ids=["default", "float32"],
)
def test_check_estimator_passes_every_check(estimator):
    results = check_estimator(estimator, on_fail=None)
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    assert failed == {}
    assert sum(r["status"] == "passed" for r in results) >= 40


def test_grid_search_over_n_components_with_the_default_score_finds_the_three_blobs(
    labelled_blobs,
):
    X, _ = labelled_blobs
    search = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 2, 3]}, cv=3)
    search.fit(X)
    assert search.best_params_ == {"n_components": 3}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.means_.shape == (3, 2)


def test_parameters_are_stored_unvalidated_and_checked_in_fit(labelled_blobs):
    X, _ = labelled_blobs
    model = GaussianMixture(n_components=0, covariance_type="round")
    assert model.get_params()["covariance_type"] == "round"
    with pytest.raises(ValueError, match="'n_components' parameter of GaussianMixture"):
        model.fit(X)
    model.set_params(n_components=2, covariance_type="diag").fit(X)
    assert model.covariances_.shape == (2, 2)


def test_clone_copies_parameters_and_not_the_fit(labelled_blobs):
    X, _ = labelled_blobs
    model = GaussianMixture(3, covariance_type="tied", random_state=4).fit(X)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "means_")


def test_unfitted_use_raises_sklearns_not_fitted_error(labelled_blobs):
    X, _ = labelled_blobs
    with pytest.raises(NotFittedError, match="not fitted yet") as caught:
        GaussianMixture(2).predict(X)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, AttributeError)


def test_fit_predict_equals_fit_then_predict(labelled_blobs):
    X, _ = labelled_blobs
    labels = GaussianMixture(3, random_state=0, n_init=3).fit_predict(X)
    np.testing.assert_array_equal(
        labels, GaussianMixture(3, random_state=0, n_init=3).fit(X).predict(X)
    )


def test_assigned_fitted_attributes_are_used(labelled_blobs):
    X, _ = labelled_blobs
    model = GaussianMixture(3, random_state=0).fit(X)
    model.means_ = model.means_[::-1].copy()
    model.weights_ = model.weights_[::-1].copy()
    model.precisions_cholesky_ = model.precisions_cholesky_[::-1].copy()
    model.covariances_ = model.covariances_[::-1].copy()
    reference = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_array_equal(model.predict(X), 2 - reference.predict(X))


def test_n_features_in_is_set_and_checked(labelled_blobs):
    X, _ = labelled_blobs
    model = GaussianMixture(2).fit(X)
    assert model.n_features_in_ == 2
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        model.score_samples(np.ones((4, 3)))


# --- what a fit reports -----------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_from_the_same_start_matches_sklearn(labelled_blobs, covariance_type):
    X, _ = labelled_blobs
    params = dict(n_components=3, covariance_type=covariance_type, max_iter=8, tol=0.0)
    params.update(_fixed_start(X, covariance_type))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(**params).fit(X)
        reference = SklearnMixture(**params).fit(X)
    for name, value in _fitted_attributes(reference).items():
        np.testing.assert_allclose(getattr(ours, name), value, rtol=RTOL, atol=RTOL, err_msg=name)
    assert ours.n_iter_ == reference.n_iter_
    assert ours.lower_bound_ == pytest.approx(reference.lower_bound_, rel=RTOL)
    np.testing.assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=RTOL)


def test_warm_start_carries_the_lower_bound_across_fits_as_sklearn_does(labelled_blobs):
    X, _ = labelled_blobs
    params = dict(n_components=3, max_iter=1, warm_start=True, tol=1e-4, **_fixed_start(X))
    ours, reference = GaussianMixture(**params), SklearnMixture(**params)
    reports = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(60):
            ours.fit(X)
            reference.fit(X)
            reports.append((ours.converged_, reference.converged_))
            assert ours.lower_bound_ == pytest.approx(reference.lower_bound_, rel=RTOL)
            if reference.converged_:
                break
    assert reports[-1] == (True, True)
    assert all(mine == theirs for mine, theirs in reports)


def test_a_fit_that_does_not_converge_warns(labelled_blobs):
    X, _ = labelled_blobs
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = GaussianMixture(3, max_iter=1, random_state=0).fit(X)
    assert not model.converged_


def test_max_iter_zero_keeps_the_initial_parameters_without_warning(labelled_blobs):
    X, _ = labelled_blobs
    means_init = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = GaussianMixture(3, max_iter=0, means_init=means_init, random_state=0).fit(X)
    np.testing.assert_array_equal(model.means_, means_init)
    assert (model.n_iter_, model.converged_, model.lower_bound_) == (0, False, -np.inf)


def test_max_iter_zero_after_a_warm_start_keeps_the_fitted_parameters(labelled_blobs):
    X, _ = labelled_blobs
    model = GaussianMixture(3, warm_start=True, random_state=0).fit(X)
    means = model.means_.copy()
    model.set_params(max_iter=0).fit(X)
    np.testing.assert_array_equal(model.means_, means)
    assert (model.n_iter_, model.lower_bound_) == (0, -np.inf)


def test_a_collapsed_component_is_a_value_error():
    X = np.vstack([np.zeros((5, 2)), np.ones((5, 2))])
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(4, reg_covar=0.0, random_state=0).fit(X)


def test_verbose_prints_sklearns_lines(labelled_blobs):
    X, _ = labelled_blobs
    params = dict(n_components=3, verbose=1, verbose_interval=2, **_fixed_start(X))

    def printed(model):
        out = io.StringIO()
        with redirect_stdout(out):
            model.fit(X)
        return out.getvalue()

    assert printed(GaussianMixture(**params)) == printed(SklearnMixture(**params))


# --- dtypes and input -------------------------------------------------------------------


def test_float32_data_give_float32_fitted_attributes(labelled_blobs):
    X, _ = labelled_blobs
    model = GaussianMixture(3, random_state=0).fit(X.astype(np.float32))
    for name, value in _fitted_attributes(model).items():
        assert value.dtype == np.float32, name
    assert model.score_samples(X.astype(np.float32)).dtype == np.float32


def test_dtype_float32_gives_float32_fitted_attributes_from_float64_data(labelled_blobs):
    X, _ = labelled_blobs
    model = GaussianMixture(3, random_state=0, dtype="float32").fit(X)
    assert model.means_.dtype == np.float32


def test_object_arrays_of_numbers_are_accepted(labelled_blobs):
    X, _ = labelled_blobs
    as_objects = GaussianMixture(3, random_state=0).fit(X.astype(object))
    np.testing.assert_array_equal(
        as_objects.means_, GaussianMixture(3, random_state=0).fit(X).means_
    )


def test_complex_data_are_rejected_with_sklearns_message(labelled_blobs):
    X, _ = labelled_blobs
    with pytest.raises(ValueError, match="Complex data not supported"):
        GaussianMixture(2).fit(X + 1j)


def test_sparse_data_are_rejected_with_sklearns_message(labelled_blobs):
    X, _ = labelled_blobs
    with pytest.raises(TypeError, match="Sparse data was passed"):
        GaussianMixture(2).fit(sparse.csr_array(X))


# --- scikit-learn stays optional --------------------------------------------------------

_WITHOUT_SKLEARN = textwrap.dedent(
    """
    import sys


    class BlockSklearn:
        def find_spec(self, name, path=None, target=None):
            if name == "sklearn" or name.startswith("sklearn."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, BlockSklearn())

    import numpy as np

    import service.gmm
    from service.gmm import FitConfig, MixtureParameters, fit_mixture

    X = np.random.default_rng(0).normal(size=(200, 2))
    result = fit_mixture(X, FitConfig(2, random_state=0))
    assert isinstance(result.parameters, MixtureParameters)
    assert result.parameters.predict(X).shape == (200,)

    import service.api.app
    import service.cli
    import service.worker

    service.api.app.create_app
    try:
        service.gmm.GaussianMixture
    except ImportError as exc:
        assert "gmm-service[sklearn]" in str(exc), exc
    else:
        raise AssertionError("GaussianMixture imported without scikit-learn")
    assert not any(name.split(".")[0] == "sklearn" for name in sys.modules)
    print("ok")
    """
)


def test_the_core_and_the_service_work_without_sklearn(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SKLEARN],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
