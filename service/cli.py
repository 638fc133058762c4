"""The ``gmm-service`` command: serve, worker, migrate, openapi."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

# The heavy imports (NumPy, SQLAlchemy, Alembic, pydantic) wait for the command that
# needs them: `gmm-service worker --check`, a container's healthcheck, runs in ~0.3 s.
if TYPE_CHECKING:
    import numpy as np

    from .db import Database

__all__ = ["main"]

DEFAULT_OPENAPI = Path("openapi/openapi.json")


def get_settings():
    from .config import get_settings

    return get_settings()


def _logging(settings) -> None:
    from .logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)


def _database_at_head(settings) -> Database:
    from .db import Database
    from .db.migrate import upgrade

    database = Database.from_settings(settings)
    upgrade(database.engine, blob_store=database.blob_store)
    return database


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Gaussian mixture models as a REST service. Settings come from GMM_* variables."""


@main.command()
def migrate() -> None:
    """Upgrade the database (GMM_DATABASE_URL) to the newest schema."""
    settings = get_settings()
    _logging(settings)
    database = _database_at_head(settings)
    click.echo(f"database at head: {database.engine.url.render_as_string()}")


@main.command()
@click.option("--host", default=None, help="Bind address (default GMM_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default GMM_PORT, 8000).")
@click.option(
    "--embedded-worker/--no-embedded-worker",
    default=None,
    help="Run a fit worker in this process (default GMM_EMBEDDED_WORKER, on).",
)
@click.option(
    "--workers",
    "web_concurrency",
    default=None,
    type=click.IntRange(min=1),
    help="API processes, one per core (default GMM_WEB_CONCURRENCY, 1).",
)
def serve(
    host: str | None, port: int | None, embedded_worker: bool | None, web_concurrency: int | None
) -> None:
    """Migrate, then serve the API (with the embedded worker unless told not to).

    With --workers N > 1, N API processes share the port and this process,
    their supervisor, runs the one embedded fit worker.
    """
    import uvicorn

    settings = get_settings()
    _logging(settings)
    database = _database_at_head(settings)
    run_worker = settings.embedded_worker if embedded_worker is None else embedded_worker
    processes = web_concurrency or settings.web_concurrency
    options = dict(
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep our handlers (JSON lines or console)
        # Requests in flight get half the shutdown time; the worker's hand-back the rest.
        timeout_graceful_shutdown=max(1, int(settings.shutdown_seconds / 2)),
        **http_timeouts(settings),
    )
    if processes == 1:
        app = api_process_app(embedded_worker=run_worker, database=database)
        server = DrainingServer(uvicorn.Config(app, **options), app.state.shutdown)
        server.run()
        return
    from .worker import Worker

    os.environ["GMM_EMBEDDED_WORKER"] = "false"  # read by each API process's settings
    from .config import get_settings as cached_settings

    cached_settings.cache_clear()
    fit_worker = Worker(database, settings) if run_worker else None
    if fit_worker is not None:
        fit_worker.start_in_thread()
    try:
        uvicorn.run("service.cli:api_process_app", factory=True, workers=processes, **options)
    finally:
        if fit_worker is not None:
            fit_worker.stop(timeout=settings.shutdown_seconds)


def http_timeouts(settings) -> dict:
    """uvicorn options that bound slow clients: headers and body chunks must keep coming
    (``GMM_HTTP_*_TIMEOUT_SECONDS``, read by the protocol in each API process)."""
    return dict(
        # httptools: uvicorn's C parser (h11, pure Python, costs ~3x per request);
        # it refuses a request line and headers past its own 80 KiB bound
        http="service.api.protocols:ServiceHttpToolsProtocol",
        h11_max_incomplete_event_size=64 * 1024,  # request line and headers, under h11
        timeout_keep_alive=5,
    )


def _draining_server_class():
    import uvicorn

    class _DrainingServer(uvicorn.Server):
        """uvicorn's server, shutting down in the service's order (see service.api.shutdown).

        On SIGTERM or SIGINT it first tells the app to drain (the worker stops
        claiming, event streams end), then does uvicorn's graceful shutdown; and
        a shutdown that went to plan exits 0 (uvicorn re-raises the signal, 143).
        """

        def __init__(self, config, shutdown) -> None:
            super().__init__(config)
            self.shutdown_plan = shutdown

        def handle_exit(self, sig, frame) -> None:
            self.shutdown_plan.begin()
            super().handle_exit(sig, frame)

        @contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return _DrainingServer


def DrainingServer(config, shutdown):
    return _draining_server_class()(config, shutdown)


def api_process_app(*, embedded_worker: bool | None = None, database: Database | None = None):
    """The app of one API process: requests run side by side, so BLAS keeps to one thread
    (fits split over the cores themselves)."""
    from .api import create_app
    from .gmm.kernels import pin_blas_to_one_thread

    settings = get_settings()
    _logging(settings)
    pin_blas_to_one_thread()
    app = create_app(settings, database=database, embedded_worker=embedded_worker)
    _drain_before_uvicorn(app.state.shutdown)
    return app


def _drain_before_uvicorn(shutdown) -> None:
    """In each API process of ``--workers N``, uvicorn's own server holds the signal
    handlers while it loads the app: chain the drain (end event streams) before them."""
    import uvicorn

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not isinstance(getattr(previous, "__self__", None), uvicorn.Server):
            continue  # not loaded by a uvicorn server (serve's single process has its own)

        def drain_then(signum, frame, previous=previous) -> None:
            shutdown.begin()
            previous(signum, frame)

        signal.signal(sig, drain_then)


@main.command()
@click.option(
    "--check",
    is_flag=True,
    help="Run no worker: exit 0 if the worker's heartbeat file (GMM_WORKER_HEARTBEAT_FILE) "
    "is fresh, else 1 with the reason (a container healthcheck).",
)
def worker(check: bool) -> None:
    """Run a fit worker: claim queued jobs until SIGTERM or SIGINT (which drain)."""
    if check:
        _check_worker_heartbeat()
        return
    from .db import Database
    from .worker import Worker

    settings = get_settings()
    _logging(settings)
    runner = Worker(Database.from_settings(settings), settings)

    def drain(signum, _frame) -> None:
        logging.getLogger("service.worker").info("signal %s: finishing the current job", signum)
        runner.request_stop()

    signal.signal(signal.SIGTERM, drain)
    signal.signal(signal.SIGINT, drain)
    runner.run_forever()


def _check_worker_heartbeat() -> None:
    from .worker.heartbeat import check, stale_after

    settings = get_settings()
    fresh, reason = check(
        settings.worker_heartbeat_file,
        stale_after(settings.lease_seconds, settings.worker_poll_seconds),
    )
    if not fresh:
        click.echo(f"unhealthy: {reason}", err=True)
        sys.exit(1)
    click.echo(f"healthy: {reason}")


@main.command()
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OPENAPI,
    show_default=True,
    help="Where to write the document; '-' for standard output.",
)
def openapi(output: Path) -> None:
    """Write the OpenAPI document of the app."""
    from .api import create_app
    from .config import Settings

    app = create_app(Settings(database_url="sqlite://"), embedded_worker=False)
    text = json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
    if str(output) == "-":
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    click.echo(f"wrote {output}")


@main.command("hash-key")
@click.argument("key")
def hash_key_command(key: str) -> None:
    """Print the sha256 digest of an API key, for GMM_API_KEYS=tenant:sha256:<digest>."""
    from .auth import hash_key

    click.echo(f"sha256:{hash_key(key)}")


# --- talking to a running service ------------------------------------------------

_url_option = click.option(
    "--url", default="http://127.0.0.1:8000", show_default=True, help="The service's base URL."
)
_api_key_option = click.option(
    "--api-key", default=None, help="Bearer key, if the service needs one."
)


def _read_matrix(path: Path, *, allow_missing: bool = False) -> np.ndarray:
    """A matrix from a .npy file or a CSV file (with or without a header row).

    With ``allow_missing``, empty CSV cells are missing features (NaN).
    """
    import numpy as np

    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    from .matrices import matrix_from_csv

    return matrix_from_csv(path.read_bytes(), allow_missing=allow_missing)


def _client(url: str, api_key: str | None):
    from .client import Client

    return Client(url, api_key=api_key)


def _fail(exc: Exception) -> None:
    """Report a problem (from the service, or from reading the file) and exit non-zero."""
    from .errors import ServiceError

    errors = getattr(exc, "errors", [])
    if isinstance(exc, ServiceError):
        errors = [error.as_dict() for error in errors]
    details = "".join(f"\n  {e['pointer']}: {e['detail']}" for e in errors)
    raise click.ClickException(f"{exc}{details}") from None


@main.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-k", "--n-components", type=int, default=1, show_default=True)
@click.option(
    "--covariance-type",
    type=click.Choice(["full", "tied", "diag", "spherical"]),
    default="full",
    show_default=True,
)
@click.option("--random-state", type=int, default=None)
@click.option("--max-iter", type=int, default=100, show_default=True)
@click.option("--n-init", type=int, default=1, show_default=True)
@click.option("--name", default=None, help="Name of the dataset and the model.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_url_option
@_api_key_option
def fit(
    data,
    n_components,
    covariance_type,
    random_state,
    max_iter,
    n_init,
    name,
    progress,
    url,
    api_key,
):
    """Fit a model to a CSV or .npy file; prints the fitted model as JSON."""
    try:
        with _client(url, api_key) as gmm:
            dataset = gmm.create_dataset(_read_matrix(data), name=name or data.name)
            model = gmm.create_model(
                name=name,
                n_components=n_components,
                covariance_type=covariance_type,
                random_state=random_state,
                max_iter=max_iter,
                n_init=n_init,
            )
            fitted = gmm.fit(model["id"], dataset_id=dataset["id"], wait=True, progress=progress)
    except Exception as exc:
        _fail(exc)
    click.echo(json.dumps(fitted, indent=2))


@main.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Name of the dataset (default: the file's name).")
@_url_option
@_api_key_option
def upload(data, name, url, api_key):
    """Stream a .npy or CSV file (by its suffix) to the service as a dataset; prints it as JSON.

    The file is sent a block at a time and stored as it arrives: its size is bounded by
    the server's GMM_MAX_DATASET_BYTES, not by memory.
    """
    try:
        with _client(url, api_key) as gmm:
            dataset = gmm.upload_dataset_file(data, name=name or data.name)
    except Exception as exc:
        _fail(exc)
    click.echo(json.dumps(dataset, indent=2))


@main.command("import")
@click.argument("source")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["parquet", "csv", "npy"]),
    required=True,
    help="How the files are written.",
)
@click.option("--columns", default=None, help="Comma-separated columns to read (Parquet, CSV).")
@click.option("--name", default=None, help="Name of the dataset.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the import.")
@_url_option
@_api_key_option
def import_(source, format_, columns, name, wait, url, api_key):
    """Import a dataset from SOURCE (s3://bucket/prefix/*.parquet, or file:///... under the
    server's GMM_IMPORT_ROOTS); prints the import job (and waits for it) as JSON."""
    try:
        with _client(url, api_key) as gmm:
            job = gmm.import_dataset(
                source,
                format=format_,
                columns=[c.strip() for c in columns.split(",")] if columns else None,
                name=name,
            )
            if wait:
                job = gmm.wait_for_job(job["id"])
    except Exception as exc:
        _fail(exc)
    click.echo(json.dumps(job, indent=2))
    if job["status"] == "failed":
        raise SystemExit(1)


def _component_grid(text: str) -> list[int]:
    """``1..9`` or ``2,3,5``."""
    try:
        if ".." in text:
            low, high = (int(part) for part in text.split("..", 1))
            return list(range(low, high + 1))
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise click.BadParameter("use a range like 1..9 or a list like 2,3,5") from None


def _selection_table(result: dict) -> list[str]:
    best = result["best"]
    lines = [
        f"{'k':>3} {'covariance':<10} {'conv':<5} {'iter':>5} {'log-lik':>12} {'params':>6} "
        f"{'bic':>12} {'aic':>12} {'icl':>12} {'s':>6}  note"
    ]
    for c in result["candidates"]:
        mark = (
            "*"
            if (c["n_components"], c["covariance_type"])
            == (best["n_components"], best["covariance_type"])
            else " "
        )
        note = (c["error"] or {}).get("type") or (c["spurious_reason"] if c["spurious"] else "")

        def number(value):
            return f"{value:12.3f}" if value is not None else f"{'-':>12}"

        lines.append(
            f"{c['n_components']:>3} {c['covariance_type']:<10} {c['converged']!s:<5} "
            f"{c['n_iter']:>5} {number(c['log_likelihood'])} {c['n_parameters']:>6} "
            f"{number(c['bic'])} {number(c['aic'])} {number(c['icl'])} {c['seconds']:6.2f} "
            f"{mark}{note}"
        )
    return lines


@main.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-k",
    "--n-components",
    "grid",
    default="1..9",
    show_default=True,
    help="Numbers of components to try: a range 1..9 or a list 2,3,5.",
)
@click.option(
    "--covariance-types",
    default="full,tied,diag,spherical",
    show_default=True,
    help="Comma-separated covariance types to try.",
)
@click.option("--criterion", type=click.Choice(["bic", "aic", "icl"]), default="bic")
@click.option("--random-state", type=int, default=None)
@click.option("--n-init", type=int, default=None, help="EM starts per candidate.")
@click.option("--name", default=None, help="Name of the dataset and the model.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_url_option
@_api_key_option
def select(
    data, grid, covariance_types, criterion, random_state, n_init, name, progress, url, api_key
):
    """Choose n_components and the covariance type for a CSV or .npy file.

    Prints the table of candidates (* marks the winner) and the model that now serves it.
    """
    try:
        with _client(url, api_key) as gmm:
            dataset = gmm.create_dataset(_read_matrix(data), name=name or data.name)
            model = gmm.create_model(name=name, random_state=random_state)
            job = gmm.select(
                model["id"],
                dataset_id=dataset["id"],
                n_components=_component_grid(grid),
                covariance_types=[t.strip() for t in covariance_types.split(",")],
                criterion=criterion,
                n_init=n_init,
                random_state=random_state,
                wait=True,
                progress=progress,
            )
    except Exception as exc:
        _fail(exc)
    result = job["result"]
    for line in _selection_table(result):
        click.echo(line)
    best = result["best"]
    click.echo(
        f"best by {result['criterion']}: k={best['n_components']} {best['covariance_type']}; "
        f"model {model['id']} serves it"
    )


@main.command()
@click.option("--limit", type=int, default=50, show_default=True)
@_url_option
@_api_key_option
def models(limit, url, api_key):
    """List models: id, status, version, components, name."""
    try:
        with _client(url, api_key) as gmm:
            listing = gmm.list_models(limit=limit)
    except Exception as exc:
        _fail(exc)
    for model in listing["items"]:
        click.echo(
            f"{model['id']}\t{model['status']}\tv{model['version']}\t"
            f"k={model['n_components']}\t{model['covariance_type']}\t{model['name'] or ''}"
        )


@main.command()
@click.argument("model_id")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--learning-rate",
    type=float,
    default=None,
    help="In (0, 1]: the new rows' weight; the past's decays by 1 - rate per update "
    "(a memory of about 1/rate batches). Default: old and new rows pooled.",
)
@click.option("--stage", is_flag=True, help="Keep serving the current version.")
@click.option("--progress/--no-progress", default=False, show_default=True)
@_url_option
@_api_key_option
def update(model_id, data, learning_rate, stage, progress, url, api_key):
    """Update a fitted model with the new rows of a CSV or .npy file (stepwise EM).

    Prints the model as JSON; its fit_summary.update says where the update started
    (from_version), the learning_rate used and n_effective, the rows it stands for.
    """
    try:
        rows = _read_matrix(data)
        with _client(url, api_key) as gmm:
            model = gmm.update(
                model_id,
                rows,
                learning_rate=learning_rate,
                activate=not stage,
                wait=True,
                progress=progress,
            )
    except Exception as exc:
        _fail(exc)
    click.echo(json.dumps(model, indent=2))


@main.command()
@click.argument("model_id")
@click.option("--limit", type=int, default=50, show_default=True)
@_url_option
@_api_key_option
def versions(model_id, limit, url, api_key):
    """List a model's versions, newest first: version, active mark, source, when, summary."""
    try:
        with _client(url, api_key) as gmm:
            listing = gmm.versions(model_id, limit=limit)
    except Exception as exc:
        _fail(exc)
    for version in listing["items"]:
        summary = version["fit_summary"] or {}
        bic = f"bic={summary['bic']:.6g}" if summary.get("bic") is not None else ""
        click.echo(
            f"v{version['version']}\t{'*' if version['active'] else ' '}\t{version['source']}\t"
            f"{version['created_at']}\tk={version['config']['n_components']}\t"
            f"{version['config']['covariance_type']}\t{bic}"
        )


@main.command()
@click.argument("model_id")
@click.argument("version", type=int)
@_url_option
@_api_key_option
def activate(model_id, version, url, api_key):
    """Serve VERSION of the model from the next request on (roll back or promote)."""
    try:
        with _client(url, api_key) as gmm:
            model = gmm.activate(model_id, version)
    except Exception as exc:
        _fail(exc)
    click.echo(f"{model['id']} now serves version {model['active_version']}")


def _answer_to_csv(header: list[str], columns: list[np.ndarray]) -> None:
    click.echo(",".join(header))
    for row in zip(*columns, strict=True):
        click.echo(",".join(str(value) for value in row))


@main.command()
@click.argument("model_id")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--probabilities", is_flag=True, help="Add one probability column per component.")
@_url_option
@_api_key_option
def predict(model_id, data, probabilities, url, api_key):
    """Labels for each row of a CSV or .npy file, as CSV on standard output."""
    try:
        with _client(url, api_key) as gmm:
            answer = gmm.predict(
                model_id, _read_matrix(data, allow_missing=True), return_probabilities=probabilities
            )
    except Exception as exc:
        _fail(exc)
    if probabilities:
        labels, proba = answer
        header = ["label"] + [f"p{k}" for k in range(proba.shape[1])]
        _answer_to_csv(header, [labels, *proba.T.tolist()])
    else:
        _answer_to_csv(["label"], [answer.tolist()])


@main.command()
@click.argument("model_id")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_url_option
@_api_key_option
def score(model_id, data, url, api_key):
    """Log-likelihood of each row of a CSV or .npy file, as CSV on standard output."""
    try:
        with _client(url, api_key) as gmm:
            log_likelihood = gmm.score(model_id, _read_matrix(data, allow_missing=True))
    except Exception as exc:
        _fail(exc)
    _answer_to_csv(["log_likelihood"], [log_likelihood.tolist()])


@main.command()
@click.argument("model_id")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--explain", is_flag=True, help="Add the features ranked by how odd each is.")
@click.option("--contamination", type=float, default=None, help="Flag this share of training.")
@click.option("--threshold", type=float, default=None, help="Flag scores above this.")
@_url_option
@_api_key_option
def anomalies(model_id, data, explain, contamination, threshold, url, api_key):
    """Anomaly score, p-value and flag of each row of a CSV or .npy file, as CSV.

    Empty cells (NaN) are missing features. With --explain, a last column lists the
    features, oddest first, as feature:contribution.
    """
    try:
        with _client(url, api_key) as gmm:
            answer = gmm.anomalies(
                model_id,
                _read_matrix(data, allow_missing=True),
                threshold=threshold,
                contamination=contamination,
                explain=explain,
            )
    except Exception as exc:
        _fail(exc)
    header = ["score", "p_value", "is_anomaly"]
    columns = [
        answer["scores"].tolist(),
        [""] * len(answer["scores"]) if answer["p_values"] is None else answer["p_values"].tolist(),
        answer["is_anomaly"].tolist(),
    ]
    if explain:
        header.append("explanation")
        columns.append(
            [
                " ".join(
                    f"{item['feature']}:{item['contribution']:.3f}"
                    for item in row
                    if item["contribution"] is not None
                )
                for row in answer["explanations"]
            ]
        )
    _answer_to_csv(header, columns)


if __name__ == "__main__":
    main()
