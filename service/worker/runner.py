"""The worker loop and the run of one fit job.

A worker holds a job through a lease that a heartbeat thread renews while the
fit runs; the progress callback writes progress at a bounded rate and stops the
fit when the job was cancelled or lost. The fit's result is committed in one
transaction with the job's ``succeeded`` state.

The database may blink (a restart, a terminated backend, a lock held too
long). Every write the worker makes goes through :meth:`Worker.transaction`,
which waits out transient errors (:mod:`service.db.faults`) with backoff; a
progress write or heartbeat that fails does not stop the fit, which goes on in
memory while the heartbeat thread keeps trying. Only a lost lease (another
worker took the job, or it was cancelled) stops a fit.

A job of another kind gets all of this by running as a fit does: claimed by
:meth:`Worker.run_once`; run inside ``with _Lease(self, claim) as lease``, its
callback calling ``lease.touch(progress)`` and stopping when that is False;
its result committed by ``self.transaction("store ...", store)`` (the job's
transition and its version in one ``store(session)``); its failures through
:meth:`Worker._fail` and its stops through :meth:`Worker._stopped`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from .. import jobs, versions
from ..config import Settings
from ..datasets import remove_chunks, stored_matrix, sweep_chunks
from ..db import Database
from ..db.faults import is_transient, retry_transient
from ..db.tables import DatasetRow, JobRow, ModelRow, VersionSource, utcnow
from ..errors import NotFound, ServiceError
from ..gmm import (
    FitCancelled,
    FitProgress,
    FitResult,
    GMMError,
    MixtureParameters,
    ScoreDistribution,
    SelectionProgress,
    fit_mixture,
    select_mixture,
)
from ..gmm.chunked import ChunkedData, fit_chunked, score_chunked
from ..gmm.selection import DEFAULT_TOL as SELECTION_DEFAULT_TOL
from ..gmm.stepwise import update_mixture, update_mixture_chunked
from ..heap import settle
from ..idempotency import expire_keys
from ..imports import ImportCancelled, ImportFailed, read_source, storage_options_for
from ..matrices import array_from_blob
from ..metrics import Metrics
from ..models import fit_config
from .heartbeat import HeartbeatFile

__all__ = ["Worker"]

log = logging.getLogger("service.worker")
_HOUSEKEEPING_SECONDS = 300.0
_ORPHAN_GRACE = timedelta(hours=1)  # chunks without a dataset row this old are removed
_RETRY_FIRST, _RETRY_MAX = 0.1, 2.0  # backoff between tries while the database is away

T = TypeVar("T")


@dataclass
class _FitInputs:
    """What a job fits. ``data`` is the matrix in memory, or None when ``chunked``
    holds a stored dataset too big for memory (read chunk by chunk from the store)."""

    model: ModelRow
    data: np.ndarray | None
    sample_weight: np.ndarray | None
    warm_start: MixtureParameters | None
    dataset_id: str | None
    dataset_sha256: str | None
    activate: bool
    kind: str
    options: dict[str, Any]
    chunked: ChunkedData | None = None


class _Lease:
    """Renews the lease of one job; remembers if the job was lost or asked to stop."""

    def __init__(self, worker: Worker, claim: jobs.Claim) -> None:
        self.worker = worker
        self.claim = claim
        self.settings = worker.settings
        self.stopped = False
        self.deadline = time.monotonic() + self.settings.job_timeout_seconds
        self.timed_out = False
        self._lock = threading.Lock()
        self._last_write = 0.0
        self._failing = False  # the last write met a transient database error
        self._pending: dict[str, Any] | None = None  # progress not yet written
        self._pending_history: list[float] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{claim.job_id}", daemon=True
        )

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = max(0.05, self.settings.lease_seconds / 3)
        backoff = _RETRY_FIRST
        while not self._done.wait(backoff if self._failing else interval):
            self.touch(self._pending, self._pending_history, force=True)
            backoff = min(_RETRY_MAX, backoff * 2) if self._failing else _RETRY_FIRST

    def touch(
        self,
        progress: dict[str, Any] | None,
        history: list[float] | None = None,
        force: bool = False,
    ) -> bool:
        """Renew (rate-limited unless forced); False once the job must stop.

        Call it from a job's progress callback with the progress to record (any
        JSON object) and stop the job when it returns False. A transient
        database error does not stop the job: the progress is kept and the
        heartbeat thread writes it, with backoff, once the database is back;
        meanwhile the caller goes on (the fit runs in memory).
        """
        now = time.monotonic()
        if now > self.deadline:
            self.timed_out = self.stopped = True
        if self.worker.stop_event.is_set():  # draining: hand the job back
            self.stopped = True
        if self.stopped:
            return False
        if progress is not None:
            self._pending, self._pending_history = progress, history
        if not force and (
            self._failing or now - self._last_write < self.settings.progress_interval_seconds
        ):
            return True  # while the database is away, the heartbeat thread does the writing
        if not self._lock.acquire(blocking=force):
            return True  # the heartbeat thread is writing
        try:
            if self.stopped:
                return False
            self._last_write = now
            try:
                with self.worker.database.session() as session:
                    held = jobs.renew(
                        session=session,
                        job_id=self.claim.job_id,
                        worker_id=self.worker.worker_id,
                        lease_seconds=self.settings.lease_seconds,
                        progress=self._pending,
                        lower_bound_history=self._pending_history,
                    )
            except Exception as error:
                if not is_transient(error):
                    raise
                if not self._failing:
                    log.warning(
                        "lease renewal failed; the job goes on and the renewal is retried",
                        extra={"job_id": self.claim.job_id, "error": repr(error)[:300]},
                    )
                self._failing = True
                return True
            if self._failing:
                log.info(
                    "lease renewed after a database outage", extra={"job_id": self.claim.job_id}
                )
            self._failing = False
            self.worker.beat(now)
            self._pending = self._pending_history = None
            if not held:
                self.stopped = True
            return held
        finally:
            self._lock.release()


@dataclass
class _Outcome:
    """What a job produced: the fit to store as a version, and the job's result if
    it is not that fit's summary; ``summary``: what the version's summary adds to
    the fit's; ``training_scores``: the scores its threshold and p-values come from,
    when not the training rows' own."""

    fit: FitResult
    result: dict[str, Any] | None = None
    engine: str = "in_memory"
    summary: dict[str, Any] | None = None
    training_scores: ScoreDistribution | None = None


class _Reporter:
    """The running job's progress and lower-bound history, written through its lease."""

    def __init__(self, lease: _Lease) -> None:
        self.lease = lease
        self.progress: dict[str, Any] = {}
        self.history: list[float] = []

    def iteration(self, lower_bound: float | None, **progress: Any) -> bool:
        """Record one step; True when the job must stop."""
        if progress.get("iteration") == 1:  # a new start begins its own history
            self.history.clear()
        if lower_bound is not None:
            self.history.append(lower_bound)
        self.progress.update(lower_bound=lower_bound, **progress)
        return not self.lease.touch(dict(self.progress), list(self.history))


_CHUNK_BYTES = 64 << 20  # rows per chunk of a big matrix sent inline with the fit request


def _chunks(inputs: _FitInputs) -> ChunkedData:
    """The fit's rows as chunk readers: the stored dataset's chunks, read from the
    blob store by whoever runs the pass (this worker, or a Dask worker); for data
    sent inline with the request (bounded by the request size), slices of it."""
    if inputs.chunked is not None:
        return inputs.chunked
    assert inputs.data is not None
    rows = max(1, _CHUNK_BYTES // (8 * inputs.data.shape[1]))
    return ChunkedData.from_array(inputs.data, rows)


def _nbytes(inputs: _FitInputs) -> int:
    if inputs.chunked is not None:
        return 8 * inputs.chunked.n_samples * inputs.chunked.n_features
    assert inputs.data is not None
    return inputs.data.size * 8


def _training_statistics(
    inputs: _FitInputs, parameters: MixtureParameters
) -> tuple[float, float, ScoreDistribution] | None:
    """BIC, AIC and the training scores (chunk by chunk for a stored big dataset);
    None when they are not finite."""
    if inputs.chunked is not None:
        bic, aic, scores = score_chunked(parameters, inputs.chunked, inputs.sample_weight)
        finite = np.isfinite(scores.scores).all() and math.isfinite(scores.mean_score)
    else:
        bic, aic, log_likelihood = parameters.information_criteria(
            inputs.data, inputs.sample_weight
        )
        finite = bool(np.isfinite(log_likelihood).all())
        scores = (
            ScoreDistribution.from_scores(-log_likelihood, inputs.sample_weight) if finite else None
        )
    if not (finite and math.isfinite(bic) and math.isfinite(aic)):
        return None
    assert scores is not None
    return bic, aic, scores


def _fit(inputs: _FitInputs, report: _Reporter, settings: Settings) -> _Outcome:
    def on_iteration(p: FitProgress) -> bool:
        return report.iteration(
            p.lower_bound, init=p.init, n_init=p.n_init, iteration=p.iteration, max_iter=p.max_iter
        )

    config = fit_config(inputs.model)
    options = dict(
        sample_weight=inputs.sample_weight, warm_start=inputs.warm_start, callback=on_iteration
    )
    if inputs.chunked is None and _nbytes(inputs) <= settings.in_memory_max_bytes:
        return _Outcome(fit_mixture(inputs.data, config, **options))
    if settings.dask_scheduler is None:
        return _Outcome(fit_chunked(_chunks(inputs), config, **options), engine="out_of_core")
    from distributed import Client  # the dask extra, needed only with a scheduler

    from ..gmm.on_dask import fit_dask

    with Client(settings.dask_scheduler, set_as_default=False) as client:
        fit = fit_dask(_chunks(inputs), config, client=client, **options)
    return _Outcome(fit, engine="dask")


def _select(inputs: _FitInputs, report: _Reporter) -> _Outcome:
    options = inputs.options
    model = inputs.model
    base = replace(
        fit_config(model),
        # comparing candidates wants well-converged likelihoods
        tol=min(model.tol, SELECTION_DEFAULT_TOL),
        n_init=options.get("n_init") or model.n_init,
        random_state=options.get("random_state", model.random_state),
    )

    def on_progress(p: SelectionProgress) -> bool:
        candidate = {
            "n_components": p.n_components,
            "covariance_type": p.covariance_type,
            "index": p.index,
            "total": p.total,
            "completed": p.completed,
        }
        return report.iteration(
            p.lower_bound,
            init=p.start,
            n_init=p.n_starts,
            iteration=p.iteration,
            max_iter=p.max_iter,
            candidate=candidate,
        )

    selection = select_mixture(
        inputs.data,
        n_components=options["n_components"],
        covariance_types=options["covariance_types"],
        criterion=options["criterion"],
        base=base,
        sample_weight=inputs.sample_weight,
        callback=on_progress,
    )
    return _Outcome(selection.fit, selection.to_dict())


def _update(inputs: _FitInputs, report: _Reporter) -> _Outcome:
    """One stepwise-EM step from the version the update was asked on (``warm_start``).

    The threshold comes from the updated mixture's own draws (as for an imported
    one): the new rows alone are not the data the mixture now stands for.
    """
    options = inputs.options
    assert inputs.warm_start is not None
    arguments = dict(
        n_effective=options["n_effective"],
        learning_rate=options["learning_rate"],
        reg_covar=options["reg_covar"],
    )
    if inputs.chunked is not None:  # a stored dataset too big for memory
        step = update_mixture_chunked(inputs.warm_start, inputs.chunked, **arguments)
    else:
        step = update_mixture(inputs.warm_start, inputs.data, **arguments)
    report.iteration(step.log_likelihood, init=0, n_init=1, iteration=1, max_iter=1)
    fit = FitResult(
        step.parameters,
        converged=True,
        n_iter=1,
        lower_bound=step.log_likelihood,
        lower_bound_history=[step.log_likelihood],
        n_samples=step.n_samples,
    )
    update = {
        "from_version": options["from_version"],
        "learning_rate": step.learning_rate,
        "n_effective": step.n_effective,
    }
    return _Outcome(
        fit,
        engine="in_memory" if inputs.chunked is None else "out_of_core",
        summary={"update": update},
        training_scores=versions.own_scores(step.parameters),
    )


class Worker:
    """Claims and runs fit jobs until told to stop.

    Parameters
    ----------
    database : Database
    settings : Settings
    worker_id : str, optional
        Defaults to host, pid and a random suffix.
    """

    def __init__(
        self,
        database: Database,
        settings: Settings,
        worker_id: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.metrics = metrics
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_event = threading.Event()
        self._stopping_since: float | None = None
        self._current: jobs.Claim | None = None  # the job being run
        self.last_heartbeat = time.monotonic()
        self._heartbeat_file = (
            HeartbeatFile(settings.worker_heartbeat_file)
            if settings.worker_heartbeat_file
            else None
        )
        self._thread: threading.Thread | None = None

    # --- the database, through its blinks ----------------------------------------

    def transaction(
        self,
        what: str,
        operation: Callable[[Session], T],
        *,
        give_up: Callable[[], bool] | None = None,
    ) -> T:
        """``operation(session)`` in one transaction, run again after a transient error.

        Use it for every write a job makes outside the lease (its final commit,
        a failure, a hand-back): the operation must be a transition that checks
        the state it expects (as those of :mod:`service.jobs` do), so that running
        it again after a commit whose answer was lost changes nothing. Tries
        until it succeeds, a real error is raised, or ``give_up()`` (default:
        never while the worker runs; after ``shutdown_seconds`` once it is stopping).
        """

        def attempt() -> T:
            with self.database.session() as session:
                return operation(session)

        return retry_transient(
            attempt,
            what=what,
            give_up=give_up or self._stopping_too_long,
            first_delay=_RETRY_FIRST,
            max_delay=_RETRY_MAX,
        )

    def _stopping_too_long(self) -> bool:
        stopping = self._stopping_since
        return stopping is not None and time.monotonic() - stopping > self.settings.shutdown_seconds

    # --- running ------------------------------------------------------------------

    def housekeeping(self) -> None:
        """Chores between jobs: forget Idempotency-Key answers past their TTL, model
        versions beyond the newest ``keep_versions`` (never an active one), and
        dataset chunks no dataset stands for (:func:`~service.datasets.sweep_chunks`)."""
        now = utcnow()
        before = now - timedelta(hours=self.settings.idempotency_ttl_hours)
        with self.database.session() as session:
            expired = expire_keys(session=session, before=before)
            forgotten = versions.forget_old_versions(
                session=session, keep=self.settings.keep_versions
            )
            swept = sweep_chunks(
                session=session, store=self.database.blob_store, now=now, grace=_ORPHAN_GRACE
            )
        if swept:
            log.info("orphaned dataset chunks removed", extra={"dataset_ids": swept})
        if expired:
            log.info("idempotency keys expired", extra={"count": expired})
        if forgotten:
            log.info("old model versions forgotten", extra={"count": forgotten})

    def run_forever(self) -> None:
        log.info("worker started", extra={"worker_id": self.worker_id})
        next_chores = 0.0
        backoff = _RETRY_FIRST
        while not self.stop_event.is_set():
            self.beat(time.monotonic())
            if self.last_heartbeat >= next_chores:
                next_chores = self.last_heartbeat + _HOUSEKEEPING_SECONDS
                try:
                    self.housekeeping()
                except Exception as error:
                    if not is_transient(error):
                        log.exception("housekeeping failed")
                    next_chores = self.last_heartbeat + 10.0
            try:
                ran = self.run_once()
                backoff = _RETRY_FIRST
            except Exception as error:  # a database hiccup must not kill the worker
                if is_transient(error):  # the claim failed: try again, less and less often
                    log.warning("claim failed; retrying", extra={"error": repr(error)[:300]})
                    self.stop_event.wait(backoff)
                    backoff = min(_RETRY_MAX, backoff * 2)
                    continue
                log.exception("worker loop error")
                ran = False
            if ran:
                settle()  # what the job imported or cached joins the heap no collection scans
            else:
                self.stop_event.wait(self.settings.worker_poll_seconds)
        log.info("worker stopped", extra={"worker_id": self.worker_id})

    def beat(self, now: float) -> None:
        """A sign of life: between claims, and at each lease renewal of a running job."""
        self.last_heartbeat = now
        if self._heartbeat_file is not None:
            self._heartbeat_file.beat(now)

    def healthy(self) -> bool:
        """Its thread runs and it has beaten recently (between claims or while fitting)."""
        alive = self._thread is not None and self._thread.is_alive()
        limit = 2 * self.settings.lease_seconds + self.settings.worker_poll_seconds
        return alive and time.monotonic() - self.last_heartbeat < limit

    def start_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="gmm-worker", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Stop claiming; the running job is handed back at its next iteration."""
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
        self.stop_event.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop, waiting up to ``timeout`` for the running job to be handed back.

        A job still running after that (an iteration longer than the time left)
        is handed back from here, so that the process can exit without leaving
        it to wait out its lease.
        """
        self.request_stop()
        if self._thread is None:
            return
        self._thread.join(timeout)
        claim = self._current
        if self._thread.is_alive() and claim is not None:
            deadline = time.monotonic() + 1.0
            try:
                released = self.transaction(
                    "hand the job back",
                    lambda session: jobs.release(
                        session=session, job_id=claim.job_id, worker_id=self.worker_id
                    ),
                    give_up=lambda: time.monotonic() > deadline,
                )
            except Exception:
                log.exception("handing the job back failed", extra={"job_id": claim.job_id})
            else:
                if released:
                    log.info("job released to the queue", extra={"job_id": claim.job_id})

    def run_once(self) -> bool:
        """Claim one job and run it; False when the queue is empty."""
        claim = jobs.claim(
            database=self.database,
            worker_id=self.worker_id,
            lease_seconds=self.settings.lease_seconds,
            max_attempts=self.settings.max_attempts,
        )
        if claim is None:
            return False
        log.info("job claimed", extra={"job_id": claim.job_id, "attempt": claim.attempt})
        self._current = claim
        try:
            self._run(claim)
        finally:
            self._current = None
        return True

    # --- one job ------------------------------------------------------------------

    def _load(self, claim: jobs.Claim) -> _FitInputs:
        return self.transaction("load the job", lambda session: self._read_inputs(session, claim))

    def _read_inputs(self, session: Session, claim: jobs.Claim) -> _FitInputs:
        job = session.scalars(
            select(JobRow)
            .where(JobRow.id == claim.job_id)
            .options(undefer(JobRow.data), undefer(JobRow.sample_weight))
        ).one()
        model = session.scalars(select(ModelRow).where(ModelRow.id == claim.model_id)).one()
        dataset_sha256 = None
        chunked = None
        if job.dataset_id is not None:
            stored = stored_matrix(session=session, dataset_id=job.dataset_id)
            dataset_sha256 = session.scalar(
                select(DatasetRow.sha256).where(DatasetRow.id == job.dataset_id)
            )
            if job.kind in ("fit", "update") and stored.nbytes > self.settings.in_memory_max_bytes:
                data, chunked = None, stored.chunked()  # never loaded whole
            else:
                data = stored.read_all()
        else:
            data = array_from_blob(job.data)
        weights = None if job.sample_weight is None else array_from_blob(job.sample_weight)
        warm = None
        if job.kind == "update":  # from the version active when the update was asked
            from_version = job.options["from_version"]
            warm = versions.load_parameters(
                session=session, model_id=model.id, version=from_version
            )
            if warm is None:
                raise NotFound(f"version {from_version} was deleted before the update ran")
        elif job.warm_start and model.active_version is not None:
            warm = versions.load_parameters(
                session=session, model_id=model.id, version=model.active_version
            )
        session.expunge(model)
        return _FitInputs(
            model,
            data,
            weights,
            warm,
            job.dataset_id,
            dataset_sha256,
            job.activate,
            job.kind,
            job.options or {},
            chunked,
        )

    def _run(self, claim: jobs.Claim) -> None:
        if claim.model_id is None:  # an import: rows into a dataset, no model
            self._import(claim)
            return
        started = time.perf_counter()
        try:
            inputs = self._load(claim)
        except ServiceError as exc:  # the dataset was deleted after the job was queued
            self._fail(claim, "invalid_input", str(exc))
            return
        except Exception as exc:  # the model was deleted: its jobs went with it
            log.info(
                "job vanished before it ran", extra={"job_id": claim.job_id, "error": repr(exc)}
            )
            return
        runs = {"fit": partial(_fit, settings=self.settings), "select": _select, "update": _update}
        run = runs[inputs.kind]
        with _Lease(self, claim) as lease:
            report = _Reporter(lease)
            try:
                outcome = run(inputs, report)
            except FitCancelled:
                self._stopped(claim, lease)
                return
            except GMMError as exc:
                self._fail(claim, exc.kind, str(exc))
                return
            except Exception as exc:
                log.exception("fit crashed", extra={"job_id": claim.job_id})
                self._fail(claim, "internal_error", f"the fit failed unexpectedly: {exc!r}")
                return

        fit = outcome.fit
        parameters = fit.parameters
        statistics = _training_statistics(inputs, parameters)
        if statistics is None:
            # A summary of NaN or infinity would be stored as nothing a client can read.
            self._fail(
                claim,
                "numerical_error",
                "the fitted mixture's log-likelihood of the training data is not finite: "
                "the scale of the data (or of sample_weight) overflows float64; scale it",
            )
            return
        bic, aic, scores = statistics
        summary = {
            "converged": fit.converged,
            "n_iter": fit.n_iter,
            "lower_bound": fit.lower_bound,
            "bic": bic,
            "aic": aic,
            "n_samples": int(fit.n_samples),
            "dataset_id": inputs.dataset_id,
            "engine": outcome.engine,
            **(outcome.summary or {}),
        }
        model = inputs.model
        if outcome.training_scores is not None:  # an update: the mixture's own draws
            scores = outcome.training_scores
        threshold = scores.stored_threshold(model.contamination)
        new = versions.NewVersion(
            source=VersionSource(inputs.kind),
            parameters=parameters,
            config=versions.version_config(
                model,
                n_components=parameters.n_components,
                covariance_type=parameters.covariance_type,
            ),
            fit_summary=summary,
            anomaly_threshold=threshold,
            dataset_id=inputs.dataset_id,
            dataset_sha256=inputs.dataset_sha256,
            job_id=claim.job_id,
            training_scores=scores.to_bytes(),
        )

        def store(session: Session) -> bool:
            model_id = jobs.succeed(
                session=session,
                job_id=claim.job_id,
                worker_id=self.worker_id,
                result=outcome.result if outcome.result is not None else summary,
                progress=report.progress or None,
                lower_bound_history=fit.lower_bound_history,
            )
            return model_id is not None and (
                versions.add_version(
                    session=session,
                    model_id=model_id,
                    new=new,
                    activate=inputs.activate,
                    finishes_fit=True,
                )
                is not None
            )

        stored = self.transaction("store the fit", store)
        if stored and self.metrics is not None:
            self.metrics.fit_seconds.observe(time.perf_counter() - started)
            self.metrics.fit_iterations.observe(fit.n_iter)
        if not stored:  # cancelled at the last moment, lost, or the model was deleted
            self.transaction(
                "finish a cancelled job",
                lambda session: jobs.finish_cancelled(
                    session=session, job_id=claim.job_id, worker_id=self.worker_id
                ),
            )
        log.info(
            "job finished",
            extra={
                "job_id": claim.job_id,
                "kind": inputs.kind,
                "stored": stored,
                "n_iter": fit.n_iter,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    def _import(self, claim: jobs.Claim) -> None:
        """Read an import's source into its dataset's chunks; ready only in the last commit."""
        started = time.perf_counter()

        def load(session: Session) -> tuple[str, dict[str, Any]]:
            job = session.get(JobRow, claim.job_id)
            return job.dataset_id, dict(job.options or {})

        dataset_id, options = self.transaction("load the import", load)
        store = self.database.blob_store
        remove_chunks(store, dataset_id)  # what an earlier attempt wrote
        with _Lease(self, claim) as lease:

            def progress(done: int, total: int, rows: int) -> bool:
                return lease.touch(
                    {
                        "init": 0,
                        "n_init": 1,
                        "iteration": done,
                        "max_iter": total,
                        "lower_bound": None,
                        "rows_read": rows,
                    }
                )

            try:
                writer, files = read_source(
                    source=options["source"],
                    format=options["format"],
                    columns=options.get("columns"),
                    storage_options=storage_options_for(options["source"], self.settings),
                    make_writer=lambda n_features: store.writer(dataset_id, n_features),
                    progress=progress,
                    max_features=self.settings.max_features,
                )
                written = writer.close()
            except ImportCancelled:
                remove_chunks(store, dataset_id)
                self._import_stopped(claim, lease)
                return
            except ImportFailed as exc:
                remove_chunks(store, dataset_id)
                self._fail_import(claim, exc.kind, exc.detail)
                return
            except Exception as exc:
                log.exception("import crashed", extra={"job_id": claim.job_id})
                remove_chunks(store, dataset_id)
                self._fail_import(claim, "internal_error", f"the import failed: {exc!r}")
                return
        dataset = {
            "n_samples": written.n_samples,
            "n_features": written.n_features,
            "sha256": written.sha256,
            "size_bytes": written.size_bytes,
            "chunks": written.chunk_rows,
        }
        result = {
            "dataset_id": dataset_id,
            "n_samples": written.n_samples,
            "n_features": written.n_features,
            "files": files,
        }
        final = {
            "init": 0,
            "n_init": 1,
            "iteration": files,
            "max_iter": files,
            "lower_bound": None,
            "rows_read": written.n_samples,
        }
        stored = self.transaction(
            "store the import",
            lambda session: jobs.succeed_import(
                session=session,
                job_id=claim.job_id,
                worker_id=self.worker_id,
                dataset=dataset,
                result=result,
                progress=final,
            ),
        )
        if not stored:  # cancelled at the last moment, or lost
            remove_chunks(store, dataset_id)
            self.transaction(
                "finish a cancelled import",
                lambda session: jobs.cancel_import(
                    session=session, job_id=claim.job_id, worker_id=self.worker_id
                ),
            )
        log.info(
            "import finished",
            extra={
                "job_id": claim.job_id,
                "stored": stored,
                "rows": written.n_samples,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    def _import_stopped(self, claim: jobs.Claim, lease: _Lease) -> None:
        if self.stop_event.is_set() and not lease.timed_out:
            released = self.transaction(
                "hand the import back",
                lambda session: jobs.release(
                    session=session, job_id=claim.job_id, worker_id=self.worker_id
                ),
            )
            if released:
                return
        if lease.timed_out:
            self._fail_import(
                claim,
                "timeout",
                f"the import ran longer than {self.settings.job_timeout_seconds:g} s "
                "(job_timeout_seconds)",
            )
            return
        self.transaction(
            "finish a cancelled import",
            lambda session: jobs.cancel_import(
                session=session, job_id=claim.job_id, worker_id=self.worker_id
            ),
        )

    def _fail_import(self, claim: jobs.Claim, kind: str, detail: str) -> None:
        log.info("import failed", extra={"job_id": claim.job_id, "error_type": kind})
        self.transaction(
            "record the import's failure",
            lambda session: jobs.fail_import(
                session=session,
                job_id=claim.job_id,
                worker_id=self.worker_id,
                error={"type": kind, "detail": detail},
            ),
        )

    def _stopped(self, claim: jobs.Claim, lease: _Lease) -> None:
        if self.stop_event.is_set() and not lease.timed_out:
            released = self.transaction(
                "hand the job back",
                lambda session: jobs.release(
                    session=session, job_id=claim.job_id, worker_id=self.worker_id
                ),
            )
            if released:
                log.info("job released to the queue", extra={"job_id": claim.job_id})
                return
        if lease.timed_out:
            self._fail(
                claim,
                "timeout",
                f"the fit ran longer than {self.settings.job_timeout_seconds:g} s (job_timeout_seconds)",
            )
            return
        self.transaction(
            "finish a cancelled job",
            lambda session: jobs.finish_cancelled(
                session=session, job_id=claim.job_id, worker_id=self.worker_id
            ),
        )

    def _fail(self, claim: jobs.Claim, kind: str, detail: str) -> None:
        log.info("job failed", extra={"job_id": claim.job_id, "error_type": kind})
        self.transaction(
            "record the failure",
            lambda session: jobs.fail(
                session=session,
                job_id=claim.job_id,
                worker_id=self.worker_id,
                error={"type": kind, "detail": detail},
            ),
        )
