"""Queueing fits and starting worker processes, for the worker tests."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np

from service.db import Database
from service.db.tables import PUBLIC_TENANT
from service.models import create_model, request_fit

DEFAULT_CONFIG: dict[str, Any] = dict(
    name=None,
    n_components=2,
    covariance_type="full",
    tol=1e-3,
    reg_covar=1e-6,
    max_iter=100,
    n_init=1,
    init_params="kmeans",
    random_state=0,
    dtype="float64",
    contamination=0.01,
)


def queue_fit(database: Database, settings, data: np.ndarray, **config: Any) -> tuple[str, str]:
    """Create a model and queue its fit on ``data``; returns (model id, job id)."""
    with database.session() as session:
        model = create_model(
            session=session,
            tenant=PUBLIC_TENANT,
            config={**DEFAULT_CONFIG, **config},
            settings=settings,
        )
        job = request_fit(
            session=session,
            tenant=PUBLIC_TENANT,
            model_id=model.id,
            dataset_id=None,
            data=data,
            sample_weight=None,
            warm_start=False,
        )
        return model.id, job.id


def worker_process(database_url: str, **settings: str) -> subprocess.Popen:
    """``gmm-service worker`` in a subprocess; ``settings`` become GMM_* variables."""
    env = {
        **os.environ,
        "GMM_DATABASE_URL": database_url,
        "GMM_WORKER_POLL_SECONDS": "0.02",
        **{f"GMM_{name.upper()}": value for name, value in settings.items()},
    }
    return subprocess.Popen(
        [sys.executable, "-m", "service", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
