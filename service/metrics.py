"""Prometheus metrics: requests, jobs, queue depth, fits and the model cache.

Each app gets its own registry (several apps can live in one test process).
Job counts and queue depth are read from the database at scrape time, so
every API replica reports the same, true numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from .cache import ModelCache
from .db import Database
from .db.tables import JobRow, JobStatus
from .gmm import drift

__all__ = ["Metrics"]


class _StateCollector(Collector):
    def __init__(self, database: Database, cache: ModelCache) -> None:
        self.database = database
        self.cache = cache

    def collect(self) -> Iterator:
        jobs = GaugeMetricFamily("gmm_jobs", "Jobs by state.", labels=["status"])
        queue = GaugeMetricFamily("gmm_queue_depth", "Fit jobs waiting for a worker.")
        try:
            with self.database.session() as session:
                counts = dict(
                    session.execute(
                        select(JobRow.status, func.count()).group_by(JobRow.status)
                    ).all()
                )
        except Exception:  # a scrape must not fail because the database is down
            counts = None
        if counts is not None:
            for status in JobStatus:
                jobs.add_metric([status.value], counts.get(status, 0))
            queue.add_metric([], counts.get(JobStatus.queued, 0))
            yield jobs
            yield queue
        hits = CounterMetricFamily("gmm_model_cache_hits", "Fitted-model cache hits.")
        hits.add_metric([], self.cache.hits)
        misses = CounterMetricFamily("gmm_model_cache_misses", "Fitted-model cache misses.")
        misses.add_metric([], self.cache.misses)
        yield hits
        yield misses
        yield from self._drift()

    def _drift(self) -> Iterator:
        """Per served version with live traffic: its scores against the training scores."""
        families = {
            name: GaugeMetricFamily(f"gmm_live_{name}", help_, labels=["model_id", "version"])
            for name, help_ in (
                ("rows_scored", "Rows scored by this process since the version loaded."),
                ("mean_log_likelihood", "Mean log-likelihood of the rows scored live."),
                ("training_mean_log_likelihood", "Mean log-likelihood of the training rows."),
                ("flagged_fraction", "Share of live rows above the anomaly threshold."),
                ("ks_statistic", "Kolmogorov-Smirnov distance, live against training scores."),
            )
        }
        for served in self.cache.entries():
            if served.training_scores is None or served.live.count == 0:
                continue
            report = drift(served.training_scores, served.live)
            labels = [served.model_id, str(served.version)]
            families["rows_scored"].add_metric(labels, report.n_scored)
            families["mean_log_likelihood"].add_metric(labels, report.mean_log_likelihood)
            families["training_mean_log_likelihood"].add_metric(
                labels, report.training_mean_log_likelihood
            )
            families["flagged_fraction"].add_metric(labels, report.flagged_fraction)
            families["ks_statistic"].add_metric(labels, report.ks_statistic)
        yield from families.values()


class Metrics:
    """The registry of one app, and the metrics its parts record into."""

    def __init__(self, database: Database, cache: ModelCache) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gmm_http_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "gmm_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.fit_seconds = Histogram(
            "gmm_fit_duration_seconds",
            "Wall-clock time of successful fits run by this process's worker.",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
            registry=self.registry,
        )
        self.fit_iterations = Histogram(
            "gmm_fit_iterations",
            "EM iterations of successful fits run by this process's worker.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000),
            registry=self.registry,
        )
        self.registry.register(_StateCollector(database, cache))
