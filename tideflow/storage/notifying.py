"""Change notification on PostgreSQL: LISTEN/NOTIFY instead of waiting for a poll.

Writes that an engine must react to — a new run, a control request — send
``NOTIFY tideflow`` in their own transaction, so the notification is delivered
exactly when they commit. An engine that subscribed is woken at once and
polls then; without PostgreSQL (SQLite, MySQL) engines simply poll every
``engine.poll_seconds``, and notifications are only ever an accelerator:
nothing depends on one being delivered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, text

logger = logging.getLogger(__name__)

CHANNEL = "tideflow"

#: How long the listener waits for a notification before checking whether it
#: should stop: the bound on how long closing it takes.
STOP_CHECK_SECONDS = 0.1


def supported(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def notify(connection: Connection) -> None:
    """Queue a notification, delivered when the caller's transaction commits."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Listener:
    """A thread holding one connection that LISTENs and calls ``wake`` per notification."""

    def __init__(self, engine: Engine, wake: Callable[[], None]) -> None:
        self._engine = engine
        self._wake = wake
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="tideflow-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                self._session()
            except Exception as exc:  # the listener only accelerates: never let it fail the engine
                logger.warning(
                    "change notifications unavailable, polling only: %s",
                    exc,
                    extra={"action": "listen"},
                )
                self._stopping.wait(5.0)

    def _session(self) -> None:
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"LISTEN {CHANNEL}"))
            driver: Any = connection.connection.driver_connection  # psycopg 3, for notifies()
            try:
                while not self._stopping.is_set():
                    for _ in driver.notifies(timeout=STOP_CHECK_SECONDS):
                        self._wake()
            finally:
                # It carries a LISTEN: never hand it back to the pool.
                connection.invalidate()
