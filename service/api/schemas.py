"""Request and response bodies of the REST contract (see DESIGN.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ..errors import FieldError, Invalid

__all__ = [
    "AnomalyRequest",
    "AnomalyResponse",
    "DatasetCreate",
    "DatasetList",
    "DatasetImport",
    "DatasetRead",
    "ImportResult",
    "FitRequest",
    "FitSummary",
    "ActivateRequest",
    "JobList",
    "JobRead",
    "ModelCreate",
    "ModelList",
    "ModelRead",
    "ModelVersionList",
    "ModelVersionRead",
    "ParametersImport",
    "ParametersRead",
    "SklearnParametersRead",
    "PredictRequest",
    "PredictResponse",
    "Problem",
    "SampleRequest",
    "SelectRequest",
    "SelectionResult",
    "SampleResponse",
    "UpdateRequest",
    "UpdateSummary",
    "ScoreRequest",
    "ScoreResponse",
    "exactly_one_of",
    "limit",
    "rules",
]

# --- shared types and the document's extensions --------------------------------------
#
# Two OpenAPI extensions keep the document true to what the server enforces
# (the app fills them in when it builds the document, see ``document.py``):
# ``x-setting`` names the GMM_* setting that bounds a value (its ``maximum``,
# or ``maxItems`` for an array, comes from the live settings), and ``x-rules``
# lists what the server also checks that JSON Schema cannot say (422 when broken).


def limit(setting: str) -> dict[str, Any]:
    """``json_schema_extra`` of a value bounded by the ``GMM_*`` setting ``setting``."""
    return {"x-setting": setting}


def rules(*texts: str, **extra: Any) -> dict[str, Any]:
    """``json_schema_extra`` listing rules beyond the schema (answered 422 when broken)."""
    return {"x-rules": list(texts), **extra}


def exactly_one_of(*fields: str) -> dict[str, Any]:
    """``json_schema_extra`` of a body that takes exactly one of ``fields`` (not null).

    Each alternative requires one field with a non-null value and lets the
    others be absent or null, so a body with none, or with two, fits no alternative.
    """
    return {
        "oneOf": [
            {
                "required": [chosen],
                "properties": {
                    name: ({"not": {"type": "null"}} if name == chosen else {"type": "null"})
                    for name in fields
                },
            }
            for chosen in fields
        ]
    }


def _json_number(value: Any) -> Any:
    """JSON true/false and strings are not numbers (Pydantic's lax int would take them)."""
    if isinstance(value, bool | str):
        raise ValueError("must be a number")
    return value


def _integer(**constraints: Any) -> Any:
    # Request models are strict; an integer may still be written 3.0, as JSON Schema's is.
    return Annotated[int, Field(strict=False, **constraints), BeforeValidator(_json_number)]


PositiveInt = _integer(ge=1)
RandomState = _integer(ge=0, le=2**31 - 1)
SampleRandomState = _integer(ge=0, le=2**32 - 1)
VersionBody = _integer(ge=1, le=2**31 - 1)

# Strict: JSON true/false and numeric strings are not numbers.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
Row = Annotated[list[FiniteFloat], Field(min_length=1, json_schema_extra=limit("GMM_MAX_FEATURES"))]
RECTANGULAR = "the rows of a matrix all have the same number of values"
Matrix = Annotated[
    list[Row],
    Field(
        min_length=1,
        description="A non-empty rectangular matrix of finite numbers, row by row.",
        json_schema_extra={**limit("GMM_MAX_ROWS"), **rules(RECTANGULAR)},
    ),
]
MissingRow = Annotated[list[FiniteFloat | None], Field(min_length=1)]
MatrixWithMissing = Annotated[
    list[MissingRow],
    Field(
        min_length=1,
        description="A non-empty rectangular matrix, row by row; null marks a feature the "
        "row does not have (the answer uses the mixture's exact marginal over the others).",
    ),
]
Name = Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]
Id = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
MAX_VERSION = 2**31 - 1
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION)]


class _Request(BaseModel):
    """A request body: no unknown fields, and JSON types as the schema states them
    (strict: true is not 1, "1" is not a number, 1 is not true)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class JobError(BaseModel):
    type: str
    detail: str


# --- problems -----------------------------------------------------------------------


class ProblemField(BaseModel):
    pointer: str = Field(description="JSON Pointer to the field at fault, e.g. #/data/3/1.")
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ProblemField] | None = None


# --- datasets -----------------------------------------------------------------------


class DatasetCreate(_Request):
    name: Name | None = None
    data: Matrix


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None
    n_samples: int
    n_features: int
    sha256: str
    size_bytes: int
    status: Literal["importing", "ready", "failed"] = Field(
        description="Whether its rows are all stored: an import sets it ready (or failed) "
        "when it ends; until then n_samples, n_features and size_bytes are 0 and sha256 empty. "
        "Only a ready dataset can be fitted (409 otherwise)."
    )
    created_at: datetime


class DatasetImport(_Request):
    source: str = Field(
        min_length=6,
        max_length=2000,
        pattern=r"^(s3|file)://[^\x00]+$",
        description="s3://bucket/key, s3://bucket/prefix/*.parquet (a glob), or file:///path "
        "(only under GMM_IMPORT_ROOTS); a folder or prefix means every object under it.",
        examples=["s3://bucket/tables/*.parquet"],
    )
    format: Literal["parquet", "csv", "npy"] = Field(
        description="Parquet (numeric columns), CSV (a header line, then numbers) or .npy "
        "(2-D, C order)."
    )
    columns: (
        list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]] | None
    ) = Field(
        None,
        min_length=1,
        max_length=1024,
        description="Parquet and CSV: the columns to read, in this order; default all.",
    )
    name: Name | None = None


class DatasetList(BaseModel):
    items: list[DatasetRead]
    next_cursor: str | None


# --- models -------------------------------------------------------------------------


class FitConfig(BaseModel):
    """How a model is fitted; defaults are scikit-learn's GaussianMixture's."""

    n_components: PositiveInt = 1
    covariance_type: Literal["full", "tied", "diag", "spherical"] = "full"
    tol: float = Field(1e-3, ge=0, allow_inf_nan=False)
    reg_covar: float = Field(1e-6, ge=0, allow_inf_nan=False)
    max_iter: PositiveInt = 100
    n_init: PositiveInt = 1
    init_params: Literal["kmeans", "k-means++", "random", "random_from_data"] = "kmeans"
    random_state: RandomState | None = None
    dtype: Literal["float64", "float32"] = "float64"
    contamination: float = Field(
        0.01, ge=0, le=0.5, description="Share of training points flagged as anomalies."
    )


class ModelConfig(FitConfig):
    """A model's configuration: its name and how it is fitted."""

    name: Name | None = None


class ModelCreate(ModelConfig, _Request):
    n_components: PositiveInt = Field(1, json_schema_extra=limit("GMM_MAX_COMPONENTS"))
    max_iter: PositiveInt = Field(100, json_schema_extra=limit("GMM_MAX_ITER_LIMIT"))
    n_init: PositiveInt = Field(1, json_schema_extra=limit("GMM_MAX_N_INIT"))


class UpdateSummary(BaseModel):
    """What an incremental update started from and how much it forgot."""

    from_version: int = Field(description="The version the update started from.")
    learning_rate: float = Field(
        description="rho: the weight of the new rows' statistics (the old ones' is 1 - rho)."
    )
    n_effective: float = Field(
        description="How many rows this version stands for: n_new / rho (the old version's "
        "plus the new rows when pooled). The next update's default rate is "
        "n_new / (n_effective + n_new)."
    )


class FitSummary(BaseModel):
    converged: bool
    n_iter: int
    lower_bound: float
    bic: float
    aic: float
    n_samples: int
    dataset_id: str | None
    engine: Literal["in_memory", "out_of_core", "dask"] = Field(
        "in_memory",
        description="Where EM ran: in the worker's memory, streaming row chunks in the "
        "worker, or on the Dask cluster.",
    )
    update: UpdateSummary | None = Field(
        None, description="A version made by an incremental update: how it was made."
    )


class ModelRead(ModelConfig):
    model_config = ConfigDict(from_attributes=True)

    id: str
    status: Literal["new", "fitting", "ready", "failed"]
    version: int = Field(description="The newest version (0 before the first).")
    active_version: int | None = Field(
        description="The version inference uses unless a request names another."
    )
    n_features: int | None
    fit_summary: FitSummary | None
    anomaly_threshold: float | None
    created_at: datetime
    updated_at: datetime


class ModelList(BaseModel):
    items: list[ModelRead]
    next_cursor: str | None


class FitRequest(_Request):
    """Exactly one of ``dataset_id`` (stored data) or ``data`` (the matrix itself)."""

    model_config = ConfigDict(
        json_schema_extra={
            **exactly_one_of("dataset_id", "data"),
            **rules(
                "the data has at least n_components rows",
                "sample_weight has one weight per row of the data, "
                "at least n_components of them positive",
                "with warm_start, the data has the fitted model's n_features columns",
            ),
        }
    )

    dataset_id: Id | None = None
    data: Matrix | None = None
    sample_weight: (
        Annotated[
            list[Annotated[float, Field(ge=0, allow_inf_nan=False)]],
            Field(json_schema_extra=limit("GMM_MAX_ROWS")),
        ]
        | None
    ) = None
    warm_start: bool = False
    activate: bool = Field(
        True, description="Serve the version this fit makes at once (false: stage it)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> FitRequest:
        if (self.dataset_id is None) == (self.data is None):
            raise ValueError("give exactly one of dataset_id or data")
        return self


class UpdateRequest(_Request):
    """New rows for an incremental update: exactly one of ``dataset_id`` or ``data``."""

    model_config = ConfigDict(
        json_schema_extra={
            **exactly_one_of("dataset_id", "data"),
            **rules(
                "the data has the n_features columns of the model's active version",
                "the model has a fitted active version (409 otherwise)",
                "learning_rate is required when the active version was imported",
            ),
        }
    )

    dataset_id: Id | None = None
    data: Matrix | None = None
    learning_rate: float | None = Field(
        None,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="rho, the weight of the new rows' sufficient statistics; the old "
        "statistics' weight decays by (1 - rho) per update (a memory of about 1/rho "
        "batches). Default n_new / (n_effective + n_new): old and new rows pooled, "
        "nothing forgotten. 1: one EM step on the new rows alone.",
    )
    activate: bool = Field(
        True, description="Serve the version this update makes at once (false: stage it)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> UpdateRequest:
        if (self.dataset_id is None) == (self.data is None):
            raise ValueError("give exactly one of dataset_id or data")
        return self


CovarianceType = Literal["full", "tied", "diag", "spherical"]


class ComponentRange(_Request):
    min: int = Field(ge=1, json_schema_extra=limit("GMM_MAX_COMPONENTS"))
    max: int = Field(ge=1, json_schema_extra=limit("GMM_MAX_COMPONENTS"))

    @model_validator(mode="after")
    def _ordered(self) -> ComponentRange:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class SelectRequest(_Request):
    """Fit a grid of (n_components, covariance_type) candidates and keep the best."""

    dataset_id: Id | None = None
    data: Matrix | None = None
    sample_weight: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = None
    n_components: (
        Annotated[
            list[Annotated[int, Field(ge=1, json_schema_extra=limit("GMM_MAX_COMPONENTS"))]],
            Field(min_length=1),
        ]
        | ComponentRange
    ) = Field(description="The numbers of components to try: a list, or {min, max}.")
    covariance_types: list[CovarianceType] = Field(
        default_factory=lambda: ["full", "tied", "diag", "spherical"], min_length=1
    )
    criterion: Literal["bic", "aic", "icl"] = Field(
        "bic", description="Lower is better: bic and aic as scikit-learn's, icl as mclust's."
    )
    n_init: int | None = Field(
        None,
        ge=1,
        description="EM starts per candidate; default the model's.",
        json_schema_extra=limit("GMM_MAX_N_INIT"),
    )
    random_state: int | None = Field(None, ge=0, le=2**31 - 1)
    activate: bool = Field(True, description="Serve the winner at once (false: stage it).")

    @model_validator(mode="after")
    def _one_source(self) -> SelectRequest:
        if (self.dataset_id is None) == (self.data is None):
            raise ValueError("give exactly one of dataset_id or data")
        return self

    def grid(self, max_components: int) -> list[int]:
        """The numbers of components, in order, without repeats (422 past the limit)."""
        grid = self.n_components
        if isinstance(grid, ComponentRange):
            if grid.max > max_components:  # before a range of that length is built
                raise Invalid(
                    f"n_components.max is {grid.max}; the limit is {max_components}",
                    [FieldError("#/n_components/max", f"must be at most {max_components}")],
                )
            return list(range(grid.min, grid.max + 1))
        return list(dict.fromkeys(grid))


class CandidateRead(BaseModel):
    n_components: int
    covariance_type: CovarianceType
    converged: bool
    n_iter: int
    log_likelihood: float | None = Field(description="Total (weighted) over the data.")
    n_parameters: int
    bic: float | None
    aic: float | None
    icl: float | None
    seconds: float
    error: JobError | None = None
    spurious: bool = Field(
        False, description="A component collapsed onto a handful of points: it cannot win."
    )
    spurious_reason: str | None = None
    start: str | None = Field(None, description="The EM start that gave this fit.")


class SelectionBest(BaseModel):
    n_components: int
    covariance_type: CovarianceType


class SelectionResult(BaseModel):
    criterion: Literal["bic", "aic", "icl"]
    best: SelectionBest
    candidates: list[CandidateRead]


class ParametersRead(BaseModel):
    covariance_type: Literal["full", "tied", "diag", "spherical"]
    version: int
    weights: list[float]
    means: list[list[float]]
    covariances: list[float] | list[list[float]] | list[list[list[float]]] = Field(
        description="(K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical."
    )


class SklearnParametersRead(BaseModel):
    """What a sklearn.mixture.GaussianMixture needs to predict and score as this version does."""

    covariance_type: Literal["full", "tied", "diag", "spherical"]
    version: int
    n_components: int
    n_features_in_: int
    weights_: list[float]
    means_: list[list[float]]
    covariances_: list[float] | list[list[float]] | list[list[list[float]]]
    precisions_: list[float] | list[list[float]] | list[list[list[float]]]
    precisions_cholesky_: list[float] | list[list[float]] | list[list[list[float]]]
    converged_: bool
    n_iter_: int
    lower_bound_: float | None = Field(description="null for an imported version.")


NumberArray = list[FiniteFloat] | list[list[FiniteFloat]] | list[list[list[FiniteFloat]]]


class ParametersImport(_Request):
    """A mixture fitted elsewhere, in scikit-learn's shapes; exactly one precision form."""

    model_config = ConfigDict(
        json_schema_extra={
            **exactly_one_of("covariances", "precisions", "precisions_cholesky"),
            **rules(
                "weights has n_components values, non-negative, summing to 1 (within 1e-8)",
                "means is (n_components, n_features); the covariance form has the shape "
                "its covariance_type gives it",
                "covariance and precision matrices are symmetric positive definite",
            ),
        }
    )

    covariance_type: Literal["full", "tied", "diag", "spherical"]
    weights: list[FiniteFloat] = Field(description="(K,), non-negative, summing to 1.")
    means: list[list[FiniteFloat]] = Field(description="(K, D).")
    covariances: NumberArray | None = Field(
        None, description="(K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical."
    )
    precisions: NumberArray | None = Field(None, description="Inverses of the covariances.")
    precisions_cholesky: NumberArray | None = Field(
        None, description="Triangular U with U U^T = the precision matrix (scikit-learn's)."
    )
    anomaly_threshold: FiniteFloat | None = Field(
        None,
        description="Default: the (1 - contamination) quantile of the anomaly scores "
        "of 100,000 points drawn from the mixture.",
    )
    activate: bool = Field(True, description="Serve this version at once (false: stage it).")


class ModelVersionRead(BaseModel):
    version: int
    active: bool
    source: Literal["fit", "select", "import", "update"]
    created_at: datetime
    job_id: str | None
    dataset_id: str | None
    dataset_sha256: str | None
    n_features: int
    config: FitConfig
    fit_summary: FitSummary | None
    anomaly_threshold: float | None


class ModelVersionList(BaseModel):
    items: list[ModelVersionRead]
    next_cursor: str | None


class ActivateRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra=rules("version names a version the model has (GET .../versions)")
    )

    version: VersionBody = Field(description="The version to serve from now on.")


_FITTED_WIDTH = rules("the rows of data have the fitted model's n_features values")


class PredictRequest(_Request):
    model_config = ConfigDict(json_schema_extra=_FITTED_WIDTH)

    data: MatrixWithMissing
    return_probabilities: bool = False


class PredictResponse(BaseModel):
    labels: list[int]
    probabilities: list[list[float]] | None = None


class ScoreRequest(_Request):
    model_config = ConfigDict(json_schema_extra=_FITTED_WIDTH)

    data: MatrixWithMissing


class ScoreResponse(BaseModel):
    log_likelihood: list[float]
    mean_log_likelihood: float


class AnomalyRequest(_Request):
    model_config = ConfigDict(json_schema_extra=_FITTED_WIDTH)

    data: MatrixWithMissing
    threshold: FiniteFloat | None = Field(
        None, description="Flag scores above this; default the version's stored threshold."
    )
    contamination: float | None = Field(
        None,
        gt=0,
        le=0.5,
        allow_inf_nan=False,
        description="Flag this share of the training distribution instead: the threshold is "
        "the (1 - contamination) quantile of the training points' scores.",
    )
    explain: bool = Field(False, description="Rank each row's features by how odd each is.")


class FeatureContribution(BaseModel):
    feature: int
    contribution: float | None = Field(
        description="-log p(x_j | the row's other features) minus what the responsible "
        "components expect of it; null for a missing feature."
    )


class AnomalyResponse(BaseModel):
    scores: list[float]
    is_anomaly: list[bool]
    threshold: float
    p_values: list[float] | None = Field(
        description="Share of training points scoring at least as high, (k+1)/(n+1); null "
        "for a version that keeps no training scores."
    )
    explanations: list[list[FeatureContribution]] | None = None


class ConditionRequest(_Request):
    data: MatrixWithMissing


class ConditionalMixtureRead(BaseModel):
    missing: list[int]
    weights: list[float]
    means: list[list[float]]
    covariances: list[list[list[float]]]


class ConditionResponse(BaseModel):
    results: list[ConditionalMixtureRead]


class ImputeResponse(BaseModel):
    data: list[list[float]] = Field(description="Each null replaced by its conditional mean.")
    std: list[list[float | None]] = Field(
        description="The conditional standard deviation of each filled value; null where "
        "the value was given."
    )


class MonitoringRead(BaseModel):
    model_id: str
    version: int
    n_scored: int = Field(description="Rows scored by this API process since the version loaded.")
    n_sample: int = Field(description="Live scores kept (a bounded uniform sample).")
    mean_log_likelihood: float | None
    training_mean_log_likelihood: float | None
    flagged_fraction: float | None
    contamination: float
    ks_statistic: float | None = Field(
        description="Two-sample Kolmogorov-Smirnov distance between live and training scores."
    )
    ks_pvalue: float | None


class SampleRequest(_Request):
    n_samples: PositiveInt = Field(json_schema_extra=limit("GMM_MAX_SAMPLE_SIZE"))
    random_state: SampleRandomState | None = None


class SampleResponse(BaseModel):
    samples: list[list[float]]
    components: list[int]


# --- jobs ---------------------------------------------------------------------------


class CandidateProgress(BaseModel):
    n_components: int
    covariance_type: CovarianceType
    index: int = Field(description="Its place in the grid, from 0.")
    total: int
    completed: int = Field(description="Candidates finished so far.")


class JobProgress(BaseModel):
    init: int
    n_init: int
    iteration: int = Field(description="EM iterations done; for an import, files read.")
    max_iter: int = Field(description="For an import, the number of files.")
    lower_bound: float | None
    rows_read: int | None = Field(None, description="An import: rows stored so far.")
    candidate: CandidateProgress | None = Field(
        None, description="A selection job: the candidate being fitted."
    )


class ImportResult(BaseModel):
    dataset_id: str
    n_samples: int
    n_features: int
    files: int = Field(description="Files (objects) read.")


JobKind = Literal["fit", "select", "update", "import"]


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    model_id: str | None = Field(description="Null for an import (it makes no model version).")
    dataset_id: str | None
    kind: JobKind
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: JobProgress
    result: FitSummary | SelectionResult | ImportResult | None
    lower_bound_history: list[float] = Field(
        description="Mean log-likelihood after each EM iteration (of the best initialisation)."
    )
    error: JobError | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobList(BaseModel):
    items: list[JobRead]
    next_cursor: str | None
