"""Commands that run the engine or manage the database: ``server``, ``db``."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from tideflow.cli.render import console, errors
from tideflow.cli.session import global_options, session

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _safe_url(url: str) -> str:
    from tideflow.storage.database import parse_url, safe_url

    return safe_url(parse_url(url))


@click.command(context_settings=CONTEXT)
@global_options
def server() -> None:
    """Run the engine: claim runs from the database and execute them until stopped.

    On SIGTERM or SIGINT it starts nothing new, lets running attempts finish
    for engine.shutdown_grace_seconds, then hands its runs back.
    """
    from tideflow.cli.waiting import build_engine

    settings = session().settings()
    engine = build_engine(session().store(), settings)
    logging.getLogger("tideflow").setLevel(
        min(logging.INFO, logging.getLevelName(settings.log_level))
    )
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_tideflow_terminal", False):
            handler.setLevel(min(logging.INFO, logging.getLevelName(settings.log_level)))

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        errors.print(
            f"tideflow server {engine.owner} on {_safe_url(settings.database.url)}", markup=False
        )
        await engine.serve(stop)

    asyncio.run(serve())


@click.group(context_settings=CONTEXT)
@global_options
def db() -> None:
    """Database schema: migrations and DDL."""


@db.command("upgrade", context_settings=CONTEXT)
@global_options
def db_upgrade() -> None:
    """Apply all schema migrations to the configured database."""
    from tideflow.storage.migrating import upgrade

    url = session().settings().database.url
    upgrade(url)
    console.print(f"database {_safe_url(url)} is at the latest schema", markup=False)


@db.command("schema", context_settings=CONTEXT)
@click.option(
    "--dialect",
    required=True,
    type=click.Choice(["sqlite", "postgresql", "mysql", "mariadb"]),
    help="SQL dialect of the DDL.",
)
@global_options
def db_schema(dialect: str) -> None:
    """Print the DDL of the schema for one SQL dialect."""
    from tideflow.storage.migrating import schema_sql

    # Plain text, byte for byte what tideflow/storage/<dialect>.sql holds after its header.
    click.echo(schema_sql(dialect), nl=False)


COMMANDS = [server, db]
