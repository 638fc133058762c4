"""Models: their configuration, fits, and the questions a fitted model answers."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .config import Settings
from .datasets import get_dataset, require_ready
from .db.queries import get_owned
from .db.tables import JobRow, ModelRow, ModelStatus, ModelVersionRow, new_id
from .errors import FieldError, Invalid, PreconditionFailed
from .gmm import FitConfig
from .jobs import enqueue_job
from .matrices import array_to_blob
from .pagination import Page, paginate

__all__ = [
    "CONFIG_FIELDS",
    "check_fit_data",
    "create_model",
    "delete_model",
    "fit_config",
    "get_model",
    "list_models",
    "model_etag",
    "request_fit",
    "request_select",
]

CONFIG_FIELDS = (
    "name",
    "n_components",
    "covariance_type",
    "tol",
    "reg_covar",
    "max_iter",
    "n_init",
    "init_params",
    "random_state",
    "dtype",
    "contamination",
)


def _check_limits(config: dict[str, Any], settings: Settings) -> None:
    limits = {
        "n_components": settings.max_components,
        "max_iter": settings.max_iter_limit,
        "n_init": settings.max_n_init,
    }
    problems = [
        FieldError(f"#/{name}", f"must be at most {limit} (a limit of this service)")
        for name, limit in limits.items()
        if config[name] > limit
    ]
    if problems:
        raise Invalid("the model configuration exceeds this service's limits", problems)


def create_model(
    *, session: Session, tenant: str, config: dict[str, Any], settings: Settings
) -> ModelRow:
    _check_limits(config, settings)
    row = ModelRow(id=new_id("mdl"), tenant=tenant, status=ModelStatus.new, version=0, **config)
    session.add(row)
    session.flush()
    return row


def get_model(*, session: Session, tenant: str, model_id: str) -> ModelRow:
    return get_owned(session, ModelRow, model_id, tenant=tenant, noun="model")


def list_models(*, session: Session, tenant: str, limit: int, cursor: str | None) -> Page:
    statement = select(ModelRow).where(ModelRow.tenant == tenant)
    return paginate(session, statement, ModelRow, limit=limit, cursor=cursor)


def model_etag(model: ModelRow) -> str:
    """A strong validator that changes whenever the model does."""
    return f'"{model.version}-{int(model.updated_at.timestamp() * 1_000_000)}"'


def delete_model(
    *, session: Session, tenant: str, model_id: str, if_match: str | None = None
) -> None:
    """Delete the model with its parameters and jobs (a running fit then stores nothing).

    With ``if_match``, only if the model's ETag is still that one (412 otherwise).
    """
    model = get_model(session=session, tenant=tenant, model_id=model_id)
    accepted = None if if_match is None else [tag.strip() for tag in if_match.split(",")]
    if accepted is not None and "*" not in accepted and model_etag(model) not in accepted:
        raise PreconditionFailed(
            f"model {model_id!r} changed since that ETag was read; read it again"
        )
    session.execute(delete(JobRow).where(JobRow.model_id == model.id))
    session.execute(delete(ModelVersionRow).where(ModelVersionRow.model_id == model.id))
    session.execute(delete(ModelRow).where(ModelRow.id == model.id))


def fit_config(model: ModelRow) -> FitConfig:
    return FitConfig(
        n_components=model.n_components,
        covariance_type=model.covariance_type,
        tol=model.tol,
        reg_covar=model.reg_covar,
        max_iter=model.max_iter,
        n_init=model.n_init,
        init_params=model.init_params,
        random_state=model.random_state,
        dtype=model.dtype,
    )


# --- fitting -------------------------------------------------------------------


def check_fit_data(
    session: Session,
    tenant: str,
    model: ModelRow,
    dataset_id: str | None,
    data: np.ndarray | None,
    sample_weight: list[float] | None,
    min_samples: int,
    problems: list[FieldError],
) -> tuple[int, np.ndarray | None, str]:
    """The data's width, the sample weights, and where a problem with the data points."""
    if dataset_id is not None:
        dataset = get_dataset(session=session, tenant=tenant, dataset_id=dataset_id)
        require_ready(dataset)  # 409 while it imports, or if its import failed
        n_samples, n_features, where = dataset.n_samples, dataset.n_features, "#/dataset_id"
    else:
        assert data is not None
        (n_samples, n_features), where = data.shape, "#/data"
    if n_samples < min_samples:
        problems.append(
            FieldError(
                where,
                f"has {n_samples} samples; n_components={min_samples} needs at least as many",
            )
        )
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=np.float64)
        if len(weights) != n_samples:
            problems.append(
                FieldError(
                    "#/sample_weight", f"has {len(weights)} values; the data has {n_samples} rows"
                )
            )
        elif np.count_nonzero(weights) < min_samples:
            problems.append(
                FieldError("#/sample_weight", "needs at least n_components positive weights")
            )
    return n_features, weights, where


def request_fit(
    *,
    session: Session,
    tenant: str,
    model_id: str,
    dataset_id: str | None,
    data: np.ndarray | None,
    sample_weight: list[float] | None,
    warm_start: bool,
    activate: bool = True,
) -> JobRow:
    """Check the request against the model and its data, then queue the fit."""
    model = get_model(session=session, tenant=tenant, model_id=model_id)
    problems: list[FieldError] = []
    n_features, weights, where = check_fit_data(
        session, tenant, model, dataset_id, data, sample_weight, model.n_components, problems
    )
    if warm_start and model.active_version is not None and model.n_features != n_features:
        problems.append(
            FieldError(
                where,
                f"has {n_features} features; warm_start continues a fit with {model.n_features}",
            )
        )
    if problems:
        raise Invalid("this fit cannot run on this data", problems)
    return enqueue_job(
        session=session,
        model=model,
        dataset_id=dataset_id,
        data=None if data is None else array_to_blob(data),
        sample_weight=None if weights is None else array_to_blob(weights),
        warm_start=warm_start,
        activate=activate,
    )


def request_select(
    *,
    session: Session,
    tenant: str,
    model_id: str,
    dataset_id: str | None,
    data: np.ndarray | None,
    sample_weight: list[float] | None,
    n_components: list[int],
    covariance_types: list[str],
    criterion: str,
    n_init: int | None,
    random_state: int | None,
    activate: bool,
    settings: Settings,
) -> JobRow:
    """Check a model selection against the model, its data and the limits, then queue it."""
    model = get_model(session=session, tenant=tenant, model_id=model_id)
    problems: list[FieldError] = []
    types = list(dict.fromkeys(covariance_types))
    n_candidates = len(n_components) * len(types)
    if n_candidates > settings.max_candidates:
        problems.append(
            FieldError(
                "#/n_components",
                f"{len(n_components)} values x {len(types)} covariance types make "
                f"{n_candidates} candidates; the limit is {settings.max_candidates} "
                "(GMM_MAX_CANDIDATES)",
            )
        )
    if max(n_components) > settings.max_components:
        problems.append(
            FieldError("#/n_components", f"must be at most {settings.max_components} (a limit)")
        )
    if n_init is not None and n_init > settings.max_n_init:
        problems.append(FieldError("#/n_init", f"must be at most {settings.max_n_init}"))
    _, weights, where = check_fit_data(
        session, tenant, model, dataset_id, data, sample_weight, max(n_components), problems
    )
    for problem in problems:
        if problem.pointer == where and "n_components=" in problem.detail:
            problem.pointer = "#/n_components"
            problem.detail = (
                f"asks for up to {max(n_components)} components; the data {problem.detail}"
            )
    if problems:
        raise Invalid("this selection cannot run on this data", problems)
    options = {
        "n_components": n_components,
        "covariance_types": types,
        "criterion": criterion,
        "n_init": n_init,
        "random_state": random_state,
    }
    return enqueue_job(
        session=session,
        model=model,
        dataset_id=dataset_id,
        data=None if data is None else array_to_blob(data),
        sample_weight=None if weights is None else array_to_blob(weights),
        activate=activate,
        kind="select",
        options=options,
    )
