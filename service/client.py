"""A typed Python client for gmm-service, sync (:class:`Client`) and async (:class:`AsyncClient`).

    from service.client import Client

    with Client("http://127.0.0.1:8000") as gmm:
        model = gmm.create_model(n_components=3, random_state=0)
        fitted = gmm.fit(model["id"], X, wait=True, progress=True)
        labels = gmm.predict(model["id"], X)

NumPy arrays go in and come out; matrices are sent as ``.npy`` where the API
takes them (datasets) and as JSON elsewhere. Every error answer is raised as
:class:`ProblemError`, which carries the problem+json body.

Each operation is described once (method, path, body, how to read the answer);
the two clients only differ in how they send it.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

__all__ = ["AsyncClient", "Client", "ProblemError"]

TERMINAL = ("succeeded", "failed", "cancelled")


class ProblemError(Exception):
    """An error answer of the service, with its RFC 9457 problem details."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = problem.get("type", "about:blank")
        self.title = problem.get("title", "")
        self.detail = problem.get("detail", "")
        self.errors = problem.get("errors", [])
        super().__init__(f"{status} {self.title}: {self.detail}")


@dataclass(frozen=True)
class _FileBody:
    """A file sent as the body a block at a time (never read whole)."""

    path: str
    block_bytes: int = 2**20

    def size(self) -> int:
        return os.path.getsize(self.path)

    def blocks(self) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            while block := handle.read(self.block_bytes):
                yield block

    async def ablocks(self) -> AsyncIterator[bytes]:
        for block in self.blocks():
            yield block


@dataclass
class _Call:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    json: Any = None
    content: bytes | _FileBody | None = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def request_kwargs(self, asynchronous: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": {k: v for k, v in self.params.items() if v is not None}}
        if self.json is not None:
            kwargs["json"] = self.json
        if isinstance(self.content, _FileBody):
            body = self.content
            kwargs["content"] = body.ablocks() if asynchronous else body.blocks()
            self.headers = {**self.headers, "Content-Length": str(body.size())}
        elif self.content is not None:
            kwargs["content"] = self.content
        if self.headers:
            kwargs["headers"] = self.headers
        return kwargs


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"title": response.reason_phrase, "detail": response.text[:500]}
        raise ProblemError(response.status_code, problem)
    return response


def _json(response: httpx.Response) -> Any:
    return response.json()


def _nothing(response: httpx.Response) -> None:
    return None


def _rows(X: Any) -> list[list[float | None]]:
    """Rows for a JSON body; NaN (a missing feature) goes as null."""
    matrix = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    rows = matrix.tolist()
    if np.isnan(matrix).any():
        rows = [[None if value != value else value for value in row] for row in rows]
    return rows


def _nan(rows: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def _npy(X: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(X, dtype=np.float64), allow_pickle=False)
    return buffer.getvalue()


def _parameters(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    for name in ("weights", "means", "covariances"):
        body[name] = np.asarray(body[name])
    return body


def _predict(response: httpx.Response) -> Any:
    body = response.json()
    labels = np.asarray(body["labels"], dtype=np.intp)
    if "probabilities" in body:
        return labels, np.asarray(body["probabilities"])
    return labels


def _score(response: httpx.Response) -> np.ndarray:
    return np.asarray(response.json()["log_likelihood"])


def _anomalies(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    answer = {
        "scores": np.asarray(body["scores"]),
        "is_anomaly": np.asarray(body["is_anomaly"], dtype=bool),
        "threshold": body["threshold"],
        "p_values": None if body.get("p_values") is None else np.asarray(body["p_values"]),
    }
    if body.get("explanations") is not None:
        answer["explanations"] = body["explanations"]
    return answer


def _conditionals(response: httpx.Response) -> list[dict[str, np.ndarray]]:
    return [
        {name: np.asarray(value) for name, value in result.items()}
        for result in response.json()["results"]
    ]


def _imputed(response: httpx.Response) -> tuple[np.ndarray, np.ndarray]:
    body = response.json()
    return np.asarray(body["data"], dtype=float), _nan(body["std"])


def _sample(response: httpx.Response) -> tuple[np.ndarray, np.ndarray]:
    body = response.json()
    return np.asarray(body["samples"]), np.asarray(body["components"], dtype=np.intp)


_SKLEARN_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def _sklearn_parameters(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    for name in _SKLEARN_ARRAYS:
        body[name] = np.asarray(body[name])
    return body


def _to_sklearn(response: httpx.Response) -> Any:
    """A fitted ``sklearn.mixture.GaussianMixture`` (scikit-learn is imported only here)."""
    from sklearn.mixture import GaussianMixture

    attributes = _sklearn_parameters(response)
    estimator = GaussianMixture(
        attributes["n_components"], covariance_type=attributes["covariance_type"]
    )
    for name, value in attributes.items():
        if name.endswith("_"):
            setattr(estimator, name, value)
    if estimator.lower_bound_ is None:  # an imported version has no fit of its own
        estimator.lower_bound_ = -np.inf
    return estimator


def _array(value: Any) -> Any:
    return None if value is None else np.asarray(value, dtype=np.float64).tolist()


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}


class _Operations:
    """Every operation of the REST contract, described once."""

    def _call(self, call: _Call) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # datasets
    def create_dataset(
        self, data: Any, *, name: str | None = None, idempotency_key: str | None = None
    ):
        """Store a matrix (sent as .npy, exactly); returns the Dataset."""
        headers = {"Content-Type": "application/x-npy", **_idempotency(idempotency_key)}
        return self._call(
            _Call(
                "POST",
                "/v1/datasets",
                _json,
                content=_npy(data),
                params={"name": name},
                headers=headers,
            )
        )

    def upload_dataset_file(
        self, path: str | Path, *, name: str | None = None, idempotency_key: str | None = None
    ):
        """Stream a ``.npy`` or CSV file (by its suffix) to the service, a block at a time;
        returns the Dataset. Bounded by the server's GMM_MAX_DATASET_BYTES, not its body limit."""
        path = Path(path)
        content_type = (
            "text/csv" if path.suffix.lower() in (".csv", ".txt") else "application/x-npy"
        )
        headers = {"Content-Type": content_type, **_idempotency(idempotency_key)}
        return self._call(
            _Call(
                "POST",
                "/v1/datasets",
                _json,
                content=_FileBody(str(path)),
                params={"name": name},
                headers=headers,
            )
        )

    def import_dataset(
        self,
        source: str,
        *,
        format: str,
        columns: list[str] | None = None,
        name: str | None = None,
        idempotency_key: str | None = None,
    ):
        """Queue an import of Parquet, CSV or .npy files (``s3://...`` or an allowed
        ``file://`` source); returns the Job (kind ``import``; its ``dataset_id`` is the
        dataset being filled). Follow it with ``wait_for_job``."""
        body: dict[str, Any] = {"source": source, "format": format}
        if columns is not None:
            body["columns"] = columns
        if name is not None:
            body["name"] = name
        return self._call(
            _Call(
                "POST",
                "/v1/datasets/import",
                _json,
                json=body,
                headers=_idempotency(idempotency_key),
            )
        )

    def get_dataset(self, dataset_id: str):
        return self._call(_Call("GET", f"/v1/datasets/{dataset_id}", _json))

    def list_datasets(self, *, limit: int = 50, cursor: str | None = None):
        return self._call(
            _Call("GET", "/v1/datasets", _json, params={"limit": limit, "cursor": cursor})
        )

    def delete_dataset(self, dataset_id: str):
        return self._call(_Call("DELETE", f"/v1/datasets/{dataset_id}", _nothing))

    # models
    def create_model(self, *, idempotency_key: str | None = None, **config: Any):
        """Create an unfitted model; ``config`` as scikit-learn's GaussianMixture."""
        return self._call(
            _Call("POST", "/v1/models", _json, json=config, headers=_idempotency(idempotency_key))
        )

    def get_model(self, model_id: str):
        return self._call(_Call("GET", f"/v1/models/{model_id}", _json))

    def list_models(self, *, limit: int = 50, cursor: str | None = None):
        return self._call(
            _Call("GET", "/v1/models", _json, params={"limit": limit, "cursor": cursor})
        )

    def delete_model(self, model_id: str, *, if_match: str | None = None):
        headers = {"If-Match": if_match} if if_match else {}
        return self._call(_Call("DELETE", f"/v1/models/{model_id}", _nothing, headers=headers))

    def start_fit(
        self,
        model_id: str,
        X: Any = None,
        /,
        *,
        dataset_id: str | None = None,
        data: Any = None,
        sample_weight: Any = None,
        warm_start: bool = False,
        activate: bool = True,
        idempotency_key: str | None = None,
    ):
        """Queue a fit of ``X`` (n_samples, n_features), or of the stored ``dataset_id``.

        Returns the Job (see ``fit(..., wait=True)`` to wait for it). ``data=``
        is the older spelling of ``X``. ``activate=False`` stages the version
        the fit makes instead of serving it.
        """
        if X is not None and data is not None:
            raise TypeError("give the matrix once: positionally (X) or as data=, not both")
        data = X if X is not None else data
        if (data is None) == (dataset_id is None):
            raise TypeError("give exactly one of X (the matrix) or dataset_id=")
        body: dict[str, Any] = {"warm_start": warm_start, "activate": activate}
        if data is not None:
            body["data"] = _rows(data)
        if dataset_id is not None:
            body["dataset_id"] = dataset_id
        if sample_weight is not None:
            body["sample_weight"] = np.asarray(sample_weight, dtype=np.float64).tolist()
        return self._call(
            _Call(
                "POST",
                f"/v1/models/{model_id}/fit",
                _json,
                json=body,
                headers=_idempotency(idempotency_key),
            )
        )

    def start_select(
        self,
        model_id: str,
        X: Any = None,
        *,
        n_components: Any,
        dataset_id: str | None = None,
        covariance_types: Any = None,
        criterion: str = "bic",
        n_init: int | None = None,
        random_state: int | None = None,
        sample_weight: Any = None,
        activate: bool = True,
        idempotency_key: str | None = None,
    ):
        """Queue a model selection; returns the Job (``select(..., wait=True)`` waits).

        ``n_components``: a list of ints, or a ``range`` (sent as ``{min, max}``).
        """
        if isinstance(n_components, range) and n_components.step == 1:
            grid: Any = {"min": n_components.start, "max": n_components.stop - 1}
        else:
            grid = [int(k) for k in n_components]
        body: dict[str, Any] = {
            "n_components": grid,
            "criterion": criterion,
            "activate": activate,
            "n_init": n_init,
            "random_state": random_state,
            "covariance_types": None if covariance_types is None else list(covariance_types),
            "dataset_id": dataset_id,
            "data": None if X is None else _rows(X),
            "sample_weight": _array(sample_weight),
        }
        body = {name: value for name, value in body.items() if value is not None}
        return self._call(
            _Call(
                "POST",
                f"/v1/models/{model_id}/select",
                _json,
                json=body,
                headers=_idempotency(idempotency_key),
            )
        )

    def start_update(
        self,
        model_id: str,
        X: Any = None,
        /,
        *,
        dataset_id: str | None = None,
        learning_rate: float | None = None,
        activate: bool = True,
        idempotency_key: str | None = None,
    ):
        """Queue an incremental update of the active version with new rows ``X`` (or the
        stored ``dataset_id``); returns the Job (``update(..., wait=True)`` waits).

        ``learning_rate`` in (0, 1] forgets: the old statistics' weight decays by
        ``1 - learning_rate`` per update. Default: old and new rows pooled.
        """
        if (X is None) == (dataset_id is None):
            raise TypeError("give exactly one of X (the new rows) or dataset_id=")
        body: dict[str, Any] = {
            "data": None if X is None else _rows(X),
            "dataset_id": dataset_id,
            "learning_rate": learning_rate,
            "activate": activate,
        }
        body = {name: value for name, value in body.items() if value is not None}
        return self._call(
            _Call(
                "POST",
                f"/v1/models/{model_id}/update",
                _json,
                json=body,
                headers=_idempotency(idempotency_key),
            )
        )

    def parameters(self, model_id: str, *, version: int | None = None):
        """weights, means, covariances (NumPy arrays), covariance_type and version."""
        return self._call(
            _Call(
                "GET",
                f"/v1/models/{model_id}/parameters",
                _parameters,
                params={"version": version},
            )
        )

    def predict(
        self,
        model_id: str,
        X: Any,
        *,
        return_probabilities: bool = False,
        version: int | None = None,
    ):
        """Labels, or (labels, probabilities) with ``return_probabilities``."""
        body = {"data": _rows(X), "return_probabilities": return_probabilities}
        return self._call(
            _Call(
                "POST",
                f"/v1/models/{model_id}/predict",
                _predict,
                json=body,
                params={"version": version},
            )
        )

    def score(self, model_id: str, X: Any, *, version: int | None = None):
        """Per-sample log-likelihood."""
        return self._call(
            _Call(
                "POST",
                f"/v1/models/{model_id}/score",
                _score,
                json={"data": _rows(X)},
                params={"version": version},
            )
        )

    def anomalies(
        self,
        model_id: str,
        X: Any,
        *,
        threshold: float | None = None,
        contamination: float | None = None,
        explain: bool = False,
        version: int | None = None,
    ):
        """scores, is_anomaly, threshold, p_values (and explanations with ``explain``)."""
        body: dict[str, Any] = {"data": _rows(X), "explain": explain}
        if threshold is not None:
            body["threshold"] = threshold
        if contamination is not None:
            body["contamination"] = contamination
        return self._call(
            _Call(
                "POST",
                f"/v1/models/{model_id}/anomalies",
                _anomalies,
                json=body,
                params={"version": version},
            )
        )

    def sample(
        self,
        model_id: str,
        n_samples: int,
        *,
        random_state: int | None = None,
        version: int | None = None,
    ):
        """(samples, components)."""
        body = {"n_samples": n_samples, "random_state": random_state}
        return self._call(
            _Call(
                "POST",
                f"/v1/models/{model_id}/sample",
                _sample,
                json=body,
                params={"version": version},
            )
        )

    def condition(self, model_id: str, X: Any, *, version: int | None = None):
        """Per row, the conditional mixture of its NaN features given the others:
        dicts of ``missing``, ``weights``, ``means``, ``covariances`` (NumPy arrays)."""
        return self._call(
            _Call(
                "POST",
                f"/v1/models/{model_id}/condition",
                _conditionals,
                json={"data": _rows(X)},
                params={"version": version},
            )
        )

    def impute(self, model_id: str, X: Any, *, version: int | None = None):
        """(X with each NaN replaced by its conditional mean, the conditional std; NaN where given)."""
        return self._call(
            _Call(
                "POST",
                f"/v1/models/{model_id}/impute",
                _imputed,
                json={"data": _rows(X)},
                params={"version": version},
            )
        )

    def monitoring(self, model_id: str):
        """Live scores of the active version against its training scores."""
        return self._call(_Call("GET", f"/v1/models/{model_id}/monitoring", _json))

    # versions
    def versions(self, model_id: str, *, limit: int = 50, cursor: str | None = None):
        """The model's versions, newest first: ``{"items": [...], "next_cursor"}``."""
        return self._call(
            _Call(
                "GET",
                f"/v1/models/{model_id}/versions",
                _json,
                params={"limit": limit, "cursor": cursor},
            )
        )

    def get_version(self, model_id: str, version: int):
        return self._call(_Call("GET", f"/v1/models/{model_id}/versions/{version}", _json))

    def activate(self, model_id: str, version: int):
        """Serve ``version`` from the next request on; returns the Model."""
        return self._call(
            _Call("POST", f"/v1/models/{model_id}/activate", _json, json={"version": version})
        )

    def delete_version(self, model_id: str, version: int):
        return self._call(_Call("DELETE", f"/v1/models/{model_id}/versions/{version}", _nothing))

    def import_parameters(
        self,
        model_id: str,
        *,
        covariance_type: str,
        weights: Any,
        means: Any,
        covariances: Any = None,
        precisions: Any = None,
        precisions_cholesky: Any = None,
        anomaly_threshold: float | None = None,
        activate: bool = True,
    ):
        """A new version from parameters in scikit-learn's shapes; returns the ModelVersion."""
        body = {
            "covariance_type": covariance_type,
            "weights": _array(weights),
            "means": _array(means),
            "covariances": _array(covariances),
            "precisions": _array(precisions),
            "precisions_cholesky": _array(precisions_cholesky),
            "anomaly_threshold": anomaly_threshold,
            "activate": activate,
        }
        body = {name: value for name, value in body.items() if value is not None}
        return self._call(_Call("POST", f"/v1/models/{model_id}/parameters", _json, json=body))

    def import_sklearn(
        self,
        model_id: str,
        estimator: Any,
        *,
        anomaly_threshold: float | None = None,
        activate: bool = True,
    ):
        """A new version from a fitted ``sklearn.mixture.GaussianMixture``."""
        return self.import_parameters(
            model_id,
            covariance_type=estimator.covariance_type,
            weights=estimator.weights_,
            means=estimator.means_,
            precisions_cholesky=estimator.precisions_cholesky_,
            anomaly_threshold=anomaly_threshold,
            activate=activate,
        )

    def sklearn_parameters(self, model_id: str, *, version: int | None = None):
        """scikit-learn's fitted attributes of a version (NumPy arrays)."""
        return self._call(
            _Call(
                "GET",
                f"/v1/models/{model_id}/parameters",
                _sklearn_parameters,
                params={"format": "sklearn", "version": version},
            )
        )

    def to_sklearn(self, model_id: str, *, version: int | None = None):
        """A ready ``sklearn.mixture.GaussianMixture`` that scores as the model's version does."""
        return self._call(
            _Call(
                "GET",
                f"/v1/models/{model_id}/parameters",
                _to_sklearn,
                params={"format": "sklearn", "version": version},
            )
        )

    # jobs
    def get_job(self, job_id: str):
        return self._call(_Call("GET", f"/v1/jobs/{job_id}", _json))

    def list_jobs(self, *, model_id: str | None = None, status: str | None = None, limit: int = 50):
        params = {"model_id": model_id, "status": status, "limit": limit}
        return self._call(_Call("GET", "/v1/jobs", _json, params=params))

    def cancel_job(self, job_id: str):
        return self._call(_Call("POST", f"/v1/jobs/{job_id}/cancel", _json))


class _EventStream:
    """Reads Server-Sent Events line by line; returns the final Job when one arrives."""

    def __init__(self, progress: bool) -> None:
        self.name = "message"
        self.bar = _ProgressBar(progress)

    def feed(self, line: str) -> dict[str, Any] | None:
        if line.startswith("event:"):
            self.name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            payload = json.loads(line.split(":", 1)[1])
            if self.name == "progress":
                self.bar.update(payload)
            elif self.name in TERMINAL:
                return payload
        elif not line:
            self.name = "message"
        return None


class _ProgressBar:
    """A one-line progress display on stderr (no dependency)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def update(self, progress: dict[str, Any]) -> None:
        if not self.enabled:
            return
        done = progress["iteration"] / max(1, progress["max_iter"])
        bar = "#" * int(30 * done)
        bound = progress.get("lower_bound")
        bound_text = "" if bound is None else f" lower bound {bound:.6f}"
        candidate = progress.get("candidate")
        candidate_text = (
            ""
            if not candidate
            else f"candidate {candidate['completed']}/{candidate['total']} done, now "
            f"k={candidate['n_components']} {candidate['covariance_type']}: "
        )
        sys.stderr.write(
            f"\r{candidate_text}init {progress['init'] + 1}/{progress['n_init']} [{bar:<30}] "
            f"iteration {progress['iteration']}/{progress['max_iter']}{bound_text}\x1b[K"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _finished(job: dict[str, Any]) -> dict[str, Any]:
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        raise ProblemError(
            409,
            {
                "type": f"/problems/job-{job['status']}",
                "title": f"{job.get('kind', 'fit').capitalize()} {job['status']}",
                "detail": error.get("detail", f"the fit ended {job['status']}"),
                "job": job,
            },
        )
    return job


class Client(_Operations):
    """Synchronous client.

    Parameters
    ----------
    base_url : str
    api_key : str, optional
        Sent as ``Authorization: Bearer``.
    transport : httpx transport, optional
        For tests (e.g. an ASGI transport).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, headers=headers, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, call: _Call) -> Any:
        response = self._http.request(call.method, call.path, **call.request_kwargs())
        return call.parse(_checked(response))

    def wait_for_job(self, job_id: str, *, progress: bool = False) -> dict[str, Any]:
        """Follow the job's live events until it ends; returns the final Job."""
        events = _EventStream(progress)
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    _checked(response)
                for line in response.iter_lines():
                    if (job := events.feed(line)) is not None:
                        return job
        finally:
            events.bar.close()
        return self.get_job(job_id)

    def fit(
        self,
        model_id: str,
        X: Any = None,
        /,
        *,
        wait: bool = False,
        progress: bool = False,
        **fit: Any,
    ):
        """Queue a fit of ``X`` (or ``dataset_id=``); with ``wait``, return the fitted Model.

        ``gmm.fit(model_id, X, wait=True)``, as scikit-learn's ``fit(X)``; the
        other keywords are :meth:`start_fit`'s.
        """
        job = self.start_fit(model_id, X, **fit)
        if not wait:
            return job
        _finished(self.wait_for_job(job["id"], progress=progress))
        return self.get_model(model_id)

    def select(
        self,
        model_id: str,
        X: Any = None,
        *,
        wait: bool = False,
        progress: bool = False,
        **select: Any,
    ):
        """Queue a model selection; with ``wait``, follow it and return the finished Job,
        whose ``result`` is the table of candidates and the best."""
        job = self.start_select(model_id, X, **select)
        if not wait:
            return job
        return _finished(self.wait_for_job(job["id"], progress=progress))

    def update(
        self,
        model_id: str,
        X: Any = None,
        /,
        *,
        wait: bool = False,
        progress: bool = False,
        **update: Any,
    ):
        """Queue an incremental update with the new rows ``X`` (or ``dataset_id=``); with
        ``wait``, return the updated Model. The other keywords are :meth:`start_update`'s."""
        job = self.start_update(model_id, X, **update)
        if not wait:
            return job
        _finished(self.wait_for_job(job["id"], progress=progress))
        return self.get_model(model_id)


class AsyncClient(_Operations):
    """Asynchronous client; the same operations, awaited."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=headers, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, call: _Call) -> Any:
        response = await self._http.request(
            call.method, call.path, **call.request_kwargs(asynchronous=True)
        )
        return call.parse(_checked(response))

    async def wait_for_job(self, job_id: str, *, progress: bool = False) -> dict[str, Any]:
        events = _EventStream(progress)
        try:
            async with self._http.stream(
                "GET", f"/v1/jobs/{job_id}/events", timeout=None
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _checked(response)
                async for line in response.aiter_lines():
                    if (job := events.feed(line)) is not None:
                        return job
        finally:
            events.bar.close()
        return await self.get_job(job_id)

    async def fit(
        self,
        model_id: str,
        X: Any = None,
        /,
        *,
        wait: bool = False,
        progress: bool = False,
        **fit: Any,
    ):
        job = await self.start_fit(model_id, X, **fit)
        if not wait:
            return job
        _finished(await self.wait_for_job(job["id"], progress=progress))
        return await self.get_model(model_id)

    async def select(
        self,
        model_id: str,
        X: Any = None,
        *,
        wait: bool = False,
        progress: bool = False,
        **select: Any,
    ):
        job = await self.start_select(model_id, X, **select)
        if not wait:
            return job
        return _finished(await self.wait_for_job(job["id"], progress=progress))

    async def update(
        self,
        model_id: str,
        X: Any = None,
        /,
        *,
        wait: bool = False,
        progress: bool = False,
        **update: Any,
    ):
        job = await self.start_update(model_id, X, **update)
        if not wait:
            return job
        _finished(await self.wait_for_job(job["id"], progress=progress))
        return await self.get_model(model_id)
