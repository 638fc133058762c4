"""Incremental updates: a model's active version moved by new rows (stepwise EM).

``POST /v1/models/{id}/update`` queues a job of kind ``update``; the worker
runs one stepwise-EM step (:func:`service.gmm.stepwise.update_mixture`) from
the version that was active when the update was asked for, and stores the
result as a new version (source ``update``).

How many rows the active version stands for (``n_effective``, which sets the
default learning rate) comes from its summary: an updated version's
``update.n_effective``, a fitted one's ``n_samples``. An imported version stands
for no known number of rows: updating it needs an explicit ``learning_rate``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from .db.tables import JobRow, ModelVersionRow
from .errors import Conflict, FieldError, Invalid
from .jobs import enqueue_job
from .matrices import array_to_blob
from .models import check_fit_data, get_model

__all__ = ["n_effective_of", "request_update"]


def n_effective_of(fit_summary: dict[str, Any] | None) -> float | None:
    """How many rows a version with this summary stands for; None if unknown (an import)."""
    if not fit_summary:
        return None
    update = fit_summary.get("update")
    if update is not None:
        return float(update["n_effective"])
    return float(fit_summary["n_samples"])


def request_update(
    *,
    session: Session,
    tenant: str,
    model_id: str,
    dataset_id: str | None,
    data: np.ndarray | None,
    learning_rate: float | None,
    activate: bool = True,
) -> JobRow:
    """Check new rows against the model's active version, then queue the update.

    409 if the model has no fitted version; 422 naming the field when the rows
    have another width than the model, or when the active version was imported
    and no ``learning_rate`` was given.
    """
    model = get_model(session=session, tenant=tenant, model_id=model_id)
    if model.active_version is None:
        raise Conflict(f"model {model_id!r} has no fitted version to update; fit it first")
    problems: list[FieldError] = []
    n_features, _, where = check_fit_data(
        session, tenant, model, dataset_id, data, None, 1, problems
    )
    if n_features != model.n_features:
        problems.append(
            FieldError(
                where,
                f"has {n_features} features; the model's active version has {model.n_features}",
            )
        )
    active = session.get(ModelVersionRow, (model.id, model.active_version))
    assert active is not None  # the model row names it
    n_effective = n_effective_of(active.fit_summary)
    if n_effective is None and learning_rate is None:
        problems.append(
            FieldError(
                "#/learning_rate",
                f"is required: the active version {model.active_version} was imported, so "
                "how many rows it stands for is unknown",
            )
        )
    if problems:
        raise Invalid("this update cannot run on this data", problems)
    options = {
        "from_version": model.active_version,
        "learning_rate": learning_rate,
        "n_effective": n_effective,
        "reg_covar": active.config["reg_covar"],
    }
    job = enqueue_job(
        session=session,
        model=model,
        dataset_id=dataset_id,
        data=None if data is None else array_to_blob(data),
        sample_weight=None,
        activate=activate,
        kind="update",
        options=options,
    )
    job.progress = {**job.progress, "n_init": 1, "max_iter": 1}  # one E-step, one M-step
    return job
