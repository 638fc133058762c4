"""What a served version answers: clusters, likelihoods, anomalies, conditionals, samples.

These functions know nothing of HTTP. Rows may miss features (NaN): the
answers then use the mixture's exact marginal over the features a row has.
Anomaly scores answered here also feed the version's live-score sample, which
:func:`monitoring` compares with the training scores.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .cache import ServedVersion
from .config import Settings
from .errors import Conflict, FieldError, Invalid
from .gmm import drift

__all__ = ["anomalies", "condition", "impute", "monitoring", "predict", "sample", "score"]


def predict(
    served: ServedVersion, data: np.ndarray, *, return_probabilities: bool
) -> dict[str, np.ndarray]:
    parameters = served.parameters
    if not return_probabilities:
        return {"labels": parameters.predict(data)}
    labels, probabilities = parameters.predict_with_proba(data)
    return {"labels": labels, "probabilities": probabilities}


def score(served: ServedVersion, data: np.ndarray) -> dict[str, Any]:
    log_likelihood = served.parameters.score_samples(data)
    served.live.add(-log_likelihood)
    mean = float(log_likelihood.sum()) / len(log_likelihood)  # np.mean costs more for a few
    return {"log_likelihood": log_likelihood, "mean_log_likelihood": mean}


def _threshold(
    served: ServedVersion, threshold: float | None, contamination: float | None
) -> float:
    if threshold is not None:
        return threshold
    if contamination is None:
        return served.anomaly_threshold  # type: ignore[return-value]
    if served.training_scores is None:
        raise Conflict(
            f"version {served.version} keeps no training scores (it predates p-values); "
            "give a threshold, or refit"
        )
    return served.training_scores.threshold(contamination)


def anomalies(
    served: ServedVersion,
    data: np.ndarray,
    *,
    threshold: float | None = None,
    contamination: float | None = None,
    explain: bool = False,
) -> dict[str, Any]:
    """Anomaly score = negative log-likelihood; above the threshold is an anomaly.

    The threshold is the request's, else the ``1 - contamination`` quantile of
    the training scores when ``contamination`` is given, else the version's.
    ``p_values``: the share of training points scoring at least as high.
    ``explanations``: each row's features, the one that makes it least likely first.
    """
    parameters = served.parameters
    if explain and parameters.n_features < 2:
        raise Invalid(
            "explanations rank a row's features against each other",
            [FieldError("#/explain", "needs a model with at least two features")],
        )
    chosen = _threshold(served, threshold, contamination)
    scores = -parameters.score_samples(data)
    served.live.add(scores)
    distribution = served.training_scores
    answer: dict[str, Any] = {
        "scores": scores,
        "is_anomaly": scores > chosen,
        "threshold": chosen,
        "p_values": None if distribution is None else distribution.p_values(scores),
    }
    if explain:
        explained = parameters.explain(data)
        answer["explanations"] = [
            [
                {"feature": int(j), "contribution": None if math.isnan(c) else float(c)}
                for j, c in zip(features, contributions, strict=True)
            ]
            for features, contributions in zip(
                explained.features, explained.contributions, strict=True
            )
        ]
    return answer


def condition(served: ServedVersion, data: np.ndarray) -> dict[str, Any]:
    """Per row, the mixture of its missing features given the ones it has."""
    return {
        "results": [
            {
                "missing": c.missing,
                "weights": c.weights,
                "means": c.means,
                "covariances": c.covariances,
            }
            for c in served.parameters.condition(data)
        ]
    }


def impute(served: ServedVersion, data: np.ndarray) -> dict[str, Any]:
    """Each missing value replaced by its conditional mean, with its conditional deviation."""
    filled, std = served.parameters.impute(data)
    return {"data": filled, "std": std}  # NaN (a given value's std) is null in JSON


def sample(
    served: ServedVersion, *, n_samples: int, random_state: int | None, settings: Settings
) -> dict[str, np.ndarray]:
    if n_samples > settings.max_sample_size:
        raise Invalid(
            f"n_samples={n_samples} exceeds this service's limit",
            [FieldError("#/n_samples", f"must be at most {settings.max_sample_size}")],
        )
    samples, components = served.parameters.sample(n_samples, random_state)
    return {"samples": samples, "components": components}


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def monitoring(served: ServedVersion) -> dict[str, Any]:
    """Live traffic against the training data, as this process has seen it."""
    if served.training_scores is None:
        raise Conflict(
            f"version {served.version} keeps no training scores (it predates monitoring); refit"
        )
    report = drift(served.training_scores, served.live)
    return {
        "model_id": served.model_id,
        "version": served.version,
        "n_scored": report.n_scored,
        "n_sample": report.n_sample,
        "mean_log_likelihood": _number(report.mean_log_likelihood),
        "training_mean_log_likelihood": _number(report.training_mean_log_likelihood),
        "flagged_fraction": _number(report.flagged_fraction),
        "contamination": served.contamination,
        "ks_statistic": _number(report.ks_statistic),
        "ks_pvalue": _number(report.ks_pvalue),
    }
