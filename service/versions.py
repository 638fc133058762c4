"""Model versions: the immutable fitted states of a model, and which one serves.

Every successful fit, selection, update or import adds a version ``1, 2, 3, ...``
(numbers are never reused, even after a version is deleted). The model's
``active_version`` is the one inference uses unless a request names another;
activating a version (a rollback or a promotion) copies its summary onto the
model row, so that a model still reads in one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session, undefer

from .cache import ServedVersion
from .db.tables import ModelRow, ModelStatus, ModelVersionRow, VersionSource, utcnow
from .errors import Conflict, FieldError, Invalid, NotFound
from .gmm import MixtureParameters, ScoreDistribution, ScoreReservoir
from .gmm.exchange import InvalidParametersError, parameters_from_arrays, sklearn_attributes
from .models import CONFIG_FIELDS
from .pagination import Page, paginate_descending

__all__ = [
    "FIT_CONFIG_FIELDS",
    "NewVersion",
    "activate",
    "add_version",
    "delete_version",
    "forget_old_versions",
    "get_version",
    "import_parameters",
    "list_versions",
    "load_parameters",
    "load_served",
    "own_scores",
    "sklearn_export",
    "version_config",
]

# The model settings a version records (everything but the name).
FIT_CONFIG_FIELDS = tuple(name for name in CONFIG_FIELDS if name != "name")
# An imported mixture without a threshold gets one from this many of its own samples.
_THRESHOLD_SAMPLES = 100_000


def version_config(model: ModelRow, **changes: Any) -> dict[str, Any]:
    """The model's fit configuration as a version records it."""
    return {**{name: getattr(model, name) for name in FIT_CONFIG_FIELDS}, **changes}


def _owned_model(session: Session, tenant: str, model_id: str, *, lock: bool) -> ModelRow:
    statement = select(ModelRow).where(ModelRow.id == model_id, ModelRow.tenant == tenant)
    if lock:  # activate and delete must not interleave (SQLite: the writer lock does it)
        statement = statement.with_for_update()
    model = session.scalars(statement).one_or_none()
    if model is None:
        raise NotFound(f"model {model_id!r} does not exist")
    return model


def get_version(*, session: Session, tenant: str, model_id: str, version: int) -> ModelVersionRow:
    """One version of the tenant's model; 404 for an unknown model or version."""
    _owned_model(session, tenant, model_id, lock=False)
    row = session.get(ModelVersionRow, (model_id, version))
    if row is None:
        raise NotFound(f"model {model_id!r} has no version {version}")
    return row


def list_versions(
    *, session: Session, tenant: str, model_id: str, limit: int, cursor: str | None
) -> Page:
    """The model's versions, newest first."""
    _owned_model(session, tenant, model_id, lock=False)
    statement = select(ModelVersionRow).where(ModelVersionRow.model_id == model_id)
    return paginate_descending(
        session, statement, ModelVersionRow.version, limit=limit, cursor=cursor
    )


def load_parameters(*, session: Session, model_id: str, version: int) -> MixtureParameters | None:
    """The parameters of one version, or None if it is gone."""
    blob = session.scalar(
        select(ModelVersionRow.parameters).where(
            ModelVersionRow.model_id == model_id, ModelVersionRow.version == version
        )
    )
    return None if blob is None else MixtureParameters.from_bytes(blob)


def load_served(*, session: Session, model_id: str, version: int) -> ServedVersion | None:
    """One version, ready to answer, or None if it is gone."""
    row = session.scalars(
        select(ModelVersionRow)
        .where(ModelVersionRow.model_id == model_id, ModelVersionRow.version == version)
        .options(undefer(ModelVersionRow.parameters), undefer(ModelVersionRow.training_scores))
    ).one_or_none()
    if row is None:
        return None
    threshold = row.anomaly_threshold
    return ServedVersion(
        model_id,
        version,
        MixtureParameters.from_bytes(row.parameters),
        threshold,
        contamination=row.config["contamination"],
        training_scores=(
            None
            if row.training_scores is None
            else ScoreDistribution.from_bytes(row.training_scores)
        ),
        live=ScoreReservoir(threshold=threshold),
    )


def _active_values(row: ModelVersionRow) -> dict[str, Any]:
    """What the model row mirrors of its active version."""
    return dict(
        active_version=row.version,
        n_features=row.n_features,
        fit_summary=row.fit_summary,
        anomaly_threshold=row.anomaly_threshold,
        n_components=row.config["n_components"],
        covariance_type=row.config["covariance_type"],
    )


def activate(*, session: Session, tenant: str, model_id: str, version: int) -> ModelRow:
    """Serve ``version`` from the next request on (a rollback or a promotion)."""
    model = _owned_model(session, tenant, model_id, lock=True)
    row = session.get(ModelVersionRow, (model_id, version))
    if row is None:  # the model exists; the body names a version it does not have
        raise Invalid(
            f"model {model_id!r} has no version {version}",
            [FieldError("#/version", f"no such version; see GET /v1/models/{model_id}/versions")],
        )
    for name, value in _active_values(row).items():
        setattr(model, name, value)
    if model.status != ModelStatus.fitting:
        model.status = ModelStatus.ready
    model.updated_at = utcnow()
    session.flush()
    return model


def delete_version(*, session: Session, tenant: str, model_id: str, version: int) -> None:
    """Forget a version; the active one cannot be (409: activate another first)."""
    model = _owned_model(session, tenant, model_id, lock=True)
    if session.get(ModelVersionRow, (model_id, version)) is None:
        raise NotFound(f"model {model_id!r} has no version {version}")
    if model.active_version == version:
        raise Conflict(
            f"version {version} is the active version of model {model_id!r}; "
            "activate another version before deleting it"
        )
    session.execute(
        delete(ModelVersionRow).where(
            ModelVersionRow.model_id == model_id, ModelVersionRow.version == version
        )
    )


@dataclass(frozen=True)
class NewVersion:
    """What a fit, a selection or an import produced."""

    source: VersionSource
    parameters: MixtureParameters
    config: dict[str, Any]
    fit_summary: dict[str, Any] | None
    anomaly_threshold: float | None
    dataset_id: str | None = None
    dataset_sha256: str | None = None
    job_id: str | None = None
    training_scores: bytes | None = None


def add_version(
    *,
    session: Session,
    model_id: str,
    new: NewVersion,
    activate: bool,
    finishes_fit: bool = False,
) -> ModelVersionRow | None:
    """Store ``new`` as the model's next version, in the caller's transaction.

    The number comes from one ``UPDATE ... RETURNING`` on the model row, so
    concurrent writers (a fit finishing while an import lands) never share one.
    ``finishes_fit``: the job that made it has ended, so the model is ready
    (otherwise a model being fitted stays ``fitting``). None if the model is gone.
    """
    values: dict[str, Any] = dict(version=ModelRow.version + 1, updated_at=utcnow())
    if finishes_fit:
        values["status"] = ModelStatus.ready
    else:
        values["status"] = case(
            (ModelRow.status == ModelStatus.fitting, ModelRow.status), else_=ModelStatus.ready
        )
    row = ModelVersionRow(
        model_id=model_id,
        source=new.source,
        config=new.config,
        n_features=new.parameters.n_features,
        fit_summary=new.fit_summary,
        anomaly_threshold=new.anomaly_threshold,
        dataset_id=new.dataset_id,
        dataset_sha256=new.dataset_sha256,
        job_id=new.job_id,
        parameters=new.parameters.to_bytes(),
        training_scores=new.training_scores,
        created_at=utcnow(),
    )
    if activate:
        values.update(_active_values(row) | {"active_version": ModelRow.version + 1})
    number = session.scalar(
        update(ModelRow).where(ModelRow.id == model_id).values(**values).returning(ModelRow.version)
    )
    if number is None:
        return None
    row.version = number
    session.add(row)
    session.flush()
    return row


def forget_old_versions(*, session: Session, keep: int) -> int:
    """Delete every model's versions older than its ``keep`` newest, never the active one."""
    crowded = session.scalars(
        select(ModelVersionRow.model_id)
        .group_by(ModelVersionRow.model_id)
        .having(func.count() > keep)
    ).all()
    forgotten = 0
    for model_id in crowded:
        cutoff = session.scalar(
            select(ModelVersionRow.version)
            .where(ModelVersionRow.model_id == model_id)
            .order_by(ModelVersionRow.version.desc())
            .offset(keep - 1)
            .limit(1)
        )
        active = session.scalar(select(ModelRow.active_version).where(ModelRow.id == model_id))
        statement = delete(ModelVersionRow).where(
            ModelVersionRow.model_id == model_id, ModelVersionRow.version < cutoff
        )
        if active is not None:
            statement = statement.where(ModelVersionRow.version != active)
        forgotten += session.execute(statement).rowcount
    return forgotten


# --- import and export -------------------------------------------------------------


def own_scores(parameters: MixtureParameters) -> ScoreDistribution:
    """The anomaly scores of points drawn from the mixture itself.

    With no training data, they stand in for the training points' (a fixed
    seed: the same mixture, the same threshold and p-values).
    """
    drawn, _ = parameters.sample(_THRESHOLD_SAMPLES, random_state=0)
    return ScoreDistribution.from_scores(-parameters.score_samples(drawn))


def import_parameters(
    *,
    session: Session,
    tenant: str,
    model_id: str,
    arrays: dict[str, Any],
    anomaly_threshold: float | None,
    activate: bool,
) -> ModelVersionRow:
    """A version from parameters fitted elsewhere (422 naming the array at fault)."""
    model = _owned_model(session, tenant, model_id, lock=False)
    try:
        parameters = parameters_from_arrays(**arrays, n_components=model.n_components)
    except InvalidParametersError as exc:
        raise Invalid(
            "these parameters do not describe a Gaussian mixture",
            [FieldError(f"#/{name}", detail) for name, detail in exc.problems],
        ) from None
    scores = own_scores(parameters)
    if anomaly_threshold is None:
        anomaly_threshold = scores.stored_threshold(model.contamination)
    new = NewVersion(
        source=VersionSource.import_,
        parameters=parameters,
        config=version_config(model, covariance_type=parameters.covariance_type),
        fit_summary=None,
        anomaly_threshold=anomaly_threshold,
        training_scores=scores.to_bytes(),
    )
    row = add_version(session=session, model_id=model_id, new=new, activate=activate)
    assert row is not None  # the model row was read in this transaction
    return row


def sklearn_export(parameters: MixtureParameters, row: ModelVersionRow) -> dict[str, Any]:
    """scikit-learn's fitted attributes for one version, with its fit's outcome."""
    summary = row.fit_summary or {}
    return {
        **sklearn_attributes(parameters),
        "n_components": parameters.n_components,
        "converged_": summary.get("converged", True),
        "n_iter_": summary.get("n_iter", 0),
        "lower_bound_": summary.get("lower_bound"),
        "version": row.version,
    }
