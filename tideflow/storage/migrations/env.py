"""Alembic environment for Tideflow's schema.

Run through :func:`tideflow.storage.migrating.upgrade`, which passes an open
connection in ``config.attributes["connection"]``. Offline mode (``--sql``)
renders the migration for the URL in the ``sqlalchemy.url`` option. This file
leaves logging alone: the application configures it.
"""

from __future__ import annotations

from alembic import context

from tideflow.storage.tables import metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through tideflow.storage.migrating.upgrade()")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
