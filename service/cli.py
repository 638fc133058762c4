"""The ``gmm-service`` command: serve, worker, migrate, openapi."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import click

from .config import get_settings
from .db import Database
from .db.migrate import upgrade
from .logs import configure_logging

__all__ = ["main"]

DEFAULT_OPENAPI = Path("openapi/openapi.json")


def _logging(settings) -> None:
    configure_logging(settings.log_level, settings.log_json)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Gaussian mixture models as a REST service. Settings come from GMM_* variables."""


@main.command()
def migrate() -> None:
    """Upgrade the database (GMM_DATABASE_URL) to the newest schema."""
    settings = get_settings()
    _logging(settings)
    database = Database(settings.resolved_database_url)
    upgrade(database.engine)
    click.echo(f"database at head: {database.engine.url.render_as_string()}")


@main.command()
@click.option("--host", default=None, help="Bind address (default GMM_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default GMM_PORT, 8000).")
@click.option(
    "--embedded-worker/--no-embedded-worker",
    default=None,
    help="Run a fit worker in this process (default GMM_EMBEDDED_WORKER, on).",
)
def serve(host: str | None, port: int | None, embedded_worker: bool | None) -> None:
    """Migrate, then serve the API (with the embedded worker unless told not to)."""
    import uvicorn

    from .api import create_app

    settings = get_settings()
    _logging(settings)
    database = Database(settings.resolved_database_url)
    upgrade(database.engine)
    app = create_app(settings, database=database, embedded_worker=embedded_worker)
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep our handlers (JSON lines or console)
        timeout_graceful_shutdown=30,
    )


@main.command()
def worker() -> None:
    """Run a fit worker: claim queued jobs until SIGTERM or SIGINT (which drain)."""
    from .worker import Worker

    settings = get_settings()
    _logging(settings)
    runner = Worker(Database(settings.resolved_database_url), settings)

    def drain(signum, _frame) -> None:
        logging.getLogger("service.worker").info("signal %s: finishing the current job", signum)
        runner.stop_event.set()

    signal.signal(signal.SIGTERM, drain)
    signal.signal(signal.SIGINT, drain)
    runner.run_forever()


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


if __name__ == "__main__":
    main()
