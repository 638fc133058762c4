"""p-values against the training scores, thresholds, live-score reservoirs and drift."""

import threading

import numpy as np
import pytest
from scipy import stats

from service.gmm import (
    FitConfig,
    InvalidParameterError,
    ScoreDistribution,
    ScoreReservoir,
    drift,
    fit_mixture,
)

from .conftest import random_mixture


def test_p_value_counts_training_scores_at_least_as_large_plus_one_over_n_plus_one():
    training = np.random.default_rng(0).integers(0, 20, size=200).astype(float)  # many ties
    distribution = ScoreDistribution.from_scores(training)
    scores = np.array([-1.0, 0.0, 5.0, 5.5, 19.0, 25.0])
    expected = [(np.sum(training >= s) + 1) / (len(training) + 1) for s in scores]
    np.testing.assert_array_equal(distribution.p_values(scores), expected)


def test_p_values_of_held_out_rows_are_calibrated():
    """100,000 held-out rows: the fraction with p < alpha is alpha within 3 standard errors."""
    truth = random_mixture("full", n_features=4, n_components=3, seed=41)
    train, _ = truth.sample(500_000, random_state=42)
    fitted = fit_mixture(train, FitConfig(3, "full", random_state=0)).parameters
    distribution = ScoreDistribution.from_scores(-fitted.score_samples(train))
    held_out, _ = truth.sample(100_000, random_state=43)
    p_values = distribution.p_values(-fitted.score_samples(held_out))
    for alpha in (0.001, 0.01, 0.05, 0.1):
        standard_error = np.sqrt(alpha * (1 - alpha) / len(held_out))
        assert abs(np.mean(p_values < alpha) - alpha) <= 3 * standard_error, alpha


@pytest.mark.parametrize("contamination", [0.001, 0.01, 0.05, 0.5])
def test_threshold_is_the_stored_anomaly_threshold(contamination):
    rng = np.random.default_rng(1)
    log_likelihood = rng.normal(size=1001)
    weights = rng.integers(0, 3, size=1001).astype(float)
    distribution = ScoreDistribution.from_scores(-log_likelihood, weights)
    # the quantile of the scores of the rows that count, as the service always stored it
    expected = np.quantile(-log_likelihood[weights > 0], 1.0 - contamination)
    assert distribution.threshold(contamination) == expected


def test_rows_of_zero_weight_are_left_out():
    distribution = ScoreDistribution.from_scores([1.0, 2.0, 100.0], [1.0, 2.0, 0.0])
    assert distribution.n_training == 2
    assert distribution.mean_score == 1.5
    assert distribution.p_values([50.0])[0] == 1 / 3


@pytest.mark.parametrize("contamination", [0.0, -0.1, 0.51, 1.0, float("nan")])
def test_contamination_outside_zero_to_one_half_is_an_invalid_parameter(contamination):
    distribution = ScoreDistribution.from_scores(np.arange(10.0))
    with pytest.raises(InvalidParameterError, match="contamination"):
        distribution.threshold(contamination)


def test_bytes_round_trip_is_exact():
    distribution = ScoreDistribution.from_scores(np.random.default_rng(2).normal(size=500))
    restored = ScoreDistribution.from_bytes(distribution.to_bytes())
    np.testing.assert_array_equal(restored.scores, distribution.scores)
    assert (restored.n_training, restored.mean_score, restored.exact) == (
        distribution.n_training,
        distribution.mean_score,
        distribution.exact,
    )


def test_more_training_rows_than_kept_are_sampled_within_the_dkw_bound():
    scores = np.random.default_rng(3).standard_cauchy(size=200_000)
    exact = ScoreDistribution.from_scores(scores)
    sampled = ScoreDistribution.from_scores(scores, max_exact=20_000)
    assert exact.exact and not sampled.exact
    assert sampled.n_kept == 20_000 and sampled.n_training == 200_000
    assert sampled.mean_score == exact.mean_score
    bound = sampled.error_bound(delta=0.001)
    assert bound == pytest.approx(np.sqrt(np.log(2 / 0.001) / 40_000) + 1 / 20_001)
    grid = np.quantile(scores, np.linspace(0, 1, 2001))
    assert np.max(np.abs(sampled.p_values(grid) - exact.p_values(grid))) <= bound
    assert exact.error_bound() == 0.0


def test_reservoir_keeps_a_uniform_sample_of_fixed_size_and_exact_running_totals():
    reservoir = ScoreReservoir(capacity=5_000, threshold=89_999.5, random_state=0)
    stream = np.arange(100_000, dtype=float)
    for batch in np.array_split(stream, 137):
        reservoir.add(batch)
    sample = reservoir.sample()
    assert sample.shape == (5_000,) and len(np.unique(sample)) == 5_000
    assert reservoir.count == 100_000
    assert reservoir.mean == stream.mean()
    assert reservoir.flagged_fraction == 0.1
    # Each tenth of the stream holds a tenth of the sample (binomial, 5 standard errors).
    counts = np.bincount((sample // 10_000).astype(int), minlength=10)
    assert np.all(np.abs(counts - 500) <= 5 * np.sqrt(5_000 * 0.1 * 0.9))


def test_reservoir_counts_every_score_added_from_many_threads():
    reservoir = ScoreReservoir(capacity=100, random_state=1)

    def add_many():
        for _ in range(200):
            reservoir.add(np.ones(7))

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reservoir.count == 4 * 200 * 7
    assert reservoir.mean == 1.0
    assert reservoir.sample().shape == (100,)


def test_drift_is_the_two_sample_ks_statistic_and_the_live_and_training_means():
    rng = np.random.default_rng(4)
    training = ScoreDistribution.from_scores(rng.normal(size=5_000))
    live = ScoreReservoir(capacity=1_000, random_state=2)
    live.add(rng.normal(loc=0.5, size=3_000))
    report = drift(training, live)
    expected = stats.ks_2samp(live.sample(), training.scores)
    assert report.ks_statistic == expected.statistic
    assert report.ks_pvalue == expected.pvalue
    assert report.ks_pvalue < 1e-6
    assert report.n_scored == 3_000 and report.n_sample == 1_000
    assert report.mean_log_likelihood == -live.mean
    assert report.training_mean_log_likelihood == -training.mean_score


def test_drift_before_any_live_score_is_nan_not_an_error():
    report = drift(ScoreDistribution.from_scores([1.0, 2.0]), ScoreReservoir(capacity=10))
    assert report.n_scored == 0 and np.isnan(report.ks_statistic)


def test_a_model_with_no_contamination_stores_the_highest_training_score():
    distribution = ScoreDistribution.from_scores([1.0, 5.0, 3.0])
    assert distribution.stored_threshold(0.0) == 5.0
    assert distribution.stored_threshold(0.5) == distribution.threshold(0.5)
