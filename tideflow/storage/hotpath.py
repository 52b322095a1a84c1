"""The engine's group commit on a held DBAPI connection, with statements compiled once.

:meth:`SqlStore.commit <tideflow.storage.store.SqlStore.commit>` runs once per
engine tick. Through SQLAlchemy's ``Connection`` most of its cost was the
execution layer, not the database: rebuilding and cache-keying the fence
statement, ``construct_params``, pool checkout/check-in, pre-ping, events. Here:

* every statement of the commit is a SQLAlchemy construct compiled **once per
  dialect** (:class:`Statement`): the SQL text, the order (positional
  paramstyles: sqlite ``qmark``, pymysql ``format``) or names (psycopg
  ``pyformat``) of its binds, and the binds' type processors (``UtcDateTime``:
  aware to naive UTC, then the dialect's own, e.g. SQLite's datetime to text)
  are kept, and each parameter set is built from them directly;
* :class:`HeldConnection` keeps one DBAPI connection of the store's engine
  checked out for the engine's commits. It is **not thread-safe by itself**:
  the store serialises every use behind one lock (the engine calls it from its
  single DB thread anyway, so the lock is never contended). SQLite
  transactions start with ``BEGIN IMMEDIATE`` on it directly; the servers
  begin implicitly (the drivers are not in autocommit mode).

There is no pre-ping per transaction. A connection found broken (the
dialect's ``is_disconnect``) is dropped, and when that happened before
``COMMIT`` was sent — so the server rolled the transaction back and nothing was
applied — the transaction is run once more on a fresh connection, silently.
A connection lost *during* ``COMMIT`` raises :class:`StorageError` (the outcome
is unknown; the engine abandons its runs and re-claims them), and the next
call reconnects. Driver errors are wrapped exactly as the SQLAlchemy path wraps
them (:func:`~tideflow.storage.database.translating_errors`), and deadlocks are
retried likewise (:func:`~tideflow.storage.database.is_retryable`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ClauseElement,
    Dialect,
    Engine,
    bindparam,
    exc,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPICursor
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from tideflow.errors import StorageError
from tideflow.storage import committing, pooling
from tideflow.storage.database import (
    SQLITE_BUSY_TIMEOUT_MS,
    connecting_errors,
    is_retryable,
    safe_url,
    translating_errors,
)
from tideflow.storage.tables import UtcDateTime, runs, task_instances, task_logs

logger = logging.getLogger(__name__)

Processor = Callable[[Any], Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Statement:
    """One statement compiled for one dialect, and how to bind a parameter set to it."""

    sql: str
    #: The parameter names, in the driver's order (positional) or any order (named).
    keys: tuple[str, ...]
    #: For named paramstyles, the name each key has in ``sql``; None when positional.
    names: tuple[str, ...] | None
    processors: tuple[Processor | None, ...]

    def bind(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for ``values``: a tuple, or a dict for named paramstyles."""
        bound = [
            values[key] if process is None else process(values[key])
            for key, process in zip(self.keys, self.processors, strict=True)
        ]
        if self.names is None:
            return tuple(bound)
        return dict(zip(self.names, bound, strict=True))


def compile_statement(
    statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None
) -> Statement:
    """Compile ``statement`` for ``dialect``; every bind must be supplied per execution.

    ``column_keys`` names the columns an ``INSERT`` takes (its binds are named after them).
    """
    compiled = statement.compile(
        dialect=dialect, column_keys=None if column_keys is None else list(column_keys)
    )
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"not a SQL statement: {statement!r}")
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("statements with expanding (IN) parameters cannot be precompiled")
    binds = compiled.binds
    keys = tuple(compiled.positiontup or ()) if compiled.positional else tuple(binds)
    processors = tuple(_processor(binds[key].type, dialect) for key in keys)
    escaped = compiled.escaped_bind_names
    names = None if compiled.positional else tuple(escaped.get(key, key) for key in keys)
    return Statement(compiled.string, keys, names, processors)


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """The bind processor of ``type_``; a timestamp's remembers its last value.

    A batch's rows share their timestamps (every transition of a tick happens
    at the tick's ``now``, every fence renews to the same lease), and
    converting one (aware to naive UTC, then the dialect's own processing,
    text on SQLite) costs more than the rest of its row. Datetimes are
    immutable, so the same object always converts to the same value.
    """
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None or not isinstance(type_, UtcDateTime):
        return process
    convert = process
    last: list[Any] = [None, None]  # [value, converted]; None converts to None

    def remembered(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        converted = convert(value)
        last[0], last[1] = value, converted
        return converted

    return remembered


#: Columns of a task instance insert, as :func:`tideflow.storage.rows.task_values` gives them.
TASK_COLUMNS = (
    "run_id",
    "name",
    "seq",
    "task",
    "idx",
    "item",
    "phase",
    "attempt",
    "output",
    "error",
    "started_at",
    "finished_at",
    "not_before",
    "attempt_base",
)
#: Columns of a log line insert, as :func:`tideflow.storage.rows.log_values` gives them.
LOG_COLUMNS = ("run_id", "task", "attempt", "stream", "text", "created_at")

FENCE = (
    update(runs)
    .where(runs.c.id == bindparam("b_id"), runs.c.owner == bindparam("b_owner"))
    .values(lease_expires_at=bindparam("b_lease", type_=UtcDateTime()))
)
#: SQLite's ownership check (see :func:`apply`): a row if the engine owns the run,
#: saying whether its lease is due for renewal.
RENEWAL_DUE = select(
    or_(
        runs.c.lease_expires_at.is_(None),
        runs.c.lease_expires_at < bindparam("b_renew_below", type_=UtcDateTime()),
    )
).where(runs.c.id == bindparam("b_id"), runs.c.owner == bindparam("b_owner"))
RELEASE_RUN = (
    update(runs)
    .where(runs.c.id == bindparam("b_id"), runs.c.owner == bindparam("b_owner"))
    .values(owner=null(), lease_expires_at=null())
)
LAST_SEQ = select(func.max(task_instances.c.seq)).where(
    task_instances.c.run_id == bindparam("b_run_id")
)


@dataclass(frozen=True)
class Statements:
    """The commit's statements, compiled for one dialect."""

    fence: Statement
    renewal_due: Statement
    insert_task: Statement
    update_task: Statement
    update_run: Statement
    insert_log: Statement
    release_slot: Statement
    release_run: Statement
    last_seq: Statement

    @classmethod
    def compile(cls, dialect: Dialect) -> Statements:
        return cls(
            fence=compile_statement(FENCE, dialect),
            renewal_due=compile_statement(RENEWAL_DUE, dialect),
            insert_task=compile_statement(
                insert(task_instances).inline(), dialect, column_keys=TASK_COLUMNS
            ),
            update_task=compile_statement(committing.UPDATE_TASK, dialect),
            update_run=compile_statement(committing.UPDATE_RUN, dialect),
            insert_log=compile_statement(insert(task_logs).inline(), dialect, LOG_COLUMNS),
            release_slot=compile_statement(pooling.RELEASE, dialect),
            release_run=compile_statement(RELEASE_RUN, dialect),
            last_seq=compile_statement(LAST_SEQ, dialect),
        )


def apply(
    cursor: DBAPICursor,
    statements: Statements,
    prepared: committing.PreparedBatch,
    renew_below: datetime | None = None,
) -> set[int]:
    """:func:`committing.apply` on a DBAPI cursor inside the caller's transaction.

    With ``renew_below`` (SQLite), a run's lease is renewed only if it expires
    before then, and otherwise its ownership is only checked: SQLite rewrites a
    whole row to change one column, and a run's row carries its workflow
    snapshot (15 KB for the 200-task chain, 0.5 MB for the 1,000-task grid),
    so renewing at every commit wrote that much per tick. The ownership check
    is as strong as the ``UPDATE``: the transaction holds SQLite's write lock
    since its ``BEGIN IMMEDIATE``, so no claim can come in between.
    """
    batch = prepared.batch
    owner = batch.owner
    lost: set[int] = set()
    fence = statements.fence
    # One statement per run, in id order: see committing.fence.
    for run_id in sorted(batch.run_ids()):
        key = {"b_id": run_id, "b_owner": owner, "b_lease": batch.lease_until}
        if renew_below is None:
            cursor.execute(fence.sql, fence.bind(key))
            if cursor.rowcount != 1:
                lost.add(run_id)
            continue
        due = statements.renewal_due
        cursor.execute(due.sql, due.bind({**key, "b_renew_below": renew_below}))
        found = cursor.fetchone()
        if found is None:
            lost.add(run_id)
        elif found[0]:
            cursor.execute(fence.sql, fence.bind(key))

    def kept(pairs: list[tuple[int, committing.Params]]) -> list[committing.Params]:
        return [params for run_id, params in pairs if run_id not in lost]

    def write(statement: Statement, params: list[committing.Params]) -> None:
        if len(params) == 1:
            cursor.execute(statement.sql, statement.bind(params[0]))
        else:
            cursor.executemany(statement.sql, [statement.bind(p) for p in params])

    # Inserts before updates: a child expanded and started in the same tick is both.
    if params := kept(prepared.task_inserts):
        _number(cursor, statements.last_seq, params)
        write(statements.insert_task, params)
    if params := kept(prepared.task_updates):
        write(statements.update_task, params)
    if params := kept(prepared.run_updates):
        write(statements.update_run, params)
    if params := kept(prepared.logs):
        write(statements.insert_log, params)
    if batch.slot_releases:
        write(
            statements.release_slot,
            [{"b_run_id": r, "b_task": t, "b_owner": owner} for r, t in batch.slot_releases],
        )
    if released := sorted(set(batch.release) - lost):
        write(statements.release_run, [{"b_id": r, "b_owner": owner} for r in released])
    return lost


def _number(cursor: DBAPICursor, last_seq: Statement, task_rows: list[committing.Params]) -> None:
    """Like :func:`committing.number`: ``seq`` after those the runs already have."""
    following: dict[int, int] = {}
    for run_id in sorted({row["run_id"] for row in task_rows}):
        cursor.execute(last_seq.sql, last_seq.bind({"b_run_id": run_id}))
        found = cursor.fetchone()
        top = None if found is None else found[0]
        following[run_id] = 0 if top is None else int(top) + 1
    for row in task_rows:
        row["seq"] = following[row["run_id"]]
        following[row["run_id"]] += 1


#: Busy timeouts around an inline commit's ``BEGIN IMMEDIATE``: fail at once, then
#: back to the usual wait, the one ``create_engine_for`` sets on every connection.
_SQLITE_NO_WAIT = "PRAGMA busy_timeout=0"
_SQLITE_WAIT = f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"


class HeldConnection:
    """One DBAPI connection of ``engine``, kept checked out, for transactions on the hot path.

    Not thread-safe: the owner serialises calls (see :class:`~tideflow.storage.store.SqlStore`).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._sqlite = engine.dialect.name == "sqlite"
        self._proxy: PoolProxiedConnection | None = None
        #: SQLite: the held connection's busy timeout is zero (it was last used
        #: inline); it is set back only when a transaction that may wait begins.
        self._no_wait = False
        self.statements = Statements.compile(engine.dialect)
        dbapi = engine.dialect.loaded_dbapi
        #: The driver's base exception class (sqlite3.Error, psycopg.Error, pymysql.Error).
        self._driver_error: type[Exception] = dbapi.Error

    @property
    def connected(self) -> bool:
        return self._proxy is not None

    def _connection(self) -> DBAPIConnection:
        if self._proxy is None:
            with connecting_errors(self._engine.url):
                proxy = self._engine.raw_connection()
            try:
                connection = proxy.dbapi_connection
                if connection is None:
                    raise exc.InvalidRequestError("the pool gave a closed connection")
                if not self._sqlite:
                    connection.rollback()  # start from a clean state, whatever checkout did
            except BaseException:
                proxy.invalidate()
                raise
            self._proxy = proxy
            self._no_wait = False  # create_engine_for set the usual wait on it
        connection = self._proxy.dbapi_connection
        assert connection is not None
        return connection

    def invalidate(self) -> None:
        """Drop the connection (it is broken); the next transaction opens a new one."""
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            try:
                proxy.invalidate()
            except Exception:  # it is broken already; nothing more to release
                logger.debug("closing a broken connection failed", exc_info=True)

    def close(self) -> None:
        """Hand the connection back to the engine's pool (with its usual busy timeout)."""
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            try:
                if self._no_wait and proxy.dbapi_connection is not None:
                    self._no_wait = False
                    proxy.dbapi_connection.execute(_SQLITE_WAIT)
            except Exception:  # a pool checkout sets it again on a fresh connection anyway
                proxy.invalidate()
                return
            try:
                proxy.close()
            except Exception:
                logger.debug("returning the held connection failed", exc_info=True)

    def try_transaction(self, doing: str, work: Callable[[DBAPICursor], T]) -> T | None:
        """SQLite only: like :meth:`transaction`, but return None at once, having
        written nothing, when another connection holds the write lock.

        ``BEGIN IMMEDIATE`` runs with a zero busy timeout, so it either takes the
        write lock now or fails now; once it is taken nothing else can make this
        transaction wait for a lock. Any failure to begin declines (the caller's
        normal commit then reports a real error as usual).
        """
        if not self._sqlite:
            return None
        connection = self._connection()
        try:
            # Left at zero afterwards: an engine that commits inline does so tick
            # after tick, and the timeout is only set back for a commit that may wait.
            if not self._no_wait:
                connection.execute(_SQLITE_NO_WAIT)
                self._no_wait = True
            connection.execute("BEGIN IMMEDIATE")
        except self._driver_error:
            return None
        return self.transaction(doing, work, attempts=1, begun=True)

    def transaction(
        self,
        doing: str,
        work: Callable[[DBAPICursor], T],
        *,
        attempts: int = 3,
        begun: bool = False,
    ) -> T:
        """Run ``work`` in one transaction on the held connection, committed.

        Retried (up to ``attempts`` in all) after a deadlock or serialization
        failure, or after finding the connection broken before ``COMMIT``.
        Raises :class:`StorageError` for every driver error. ``begun``: the
        transaction is already open (see :meth:`try_transaction`).
        """
        url = self._engine.url
        for attempt in range(1, attempts + 1):
            connection = self._connection()
            committing_now = False
            cursor: DBAPICursor | None = None
            try:
                cursor = connection.cursor()
                if self._sqlite and not begun:
                    if self._no_wait:
                        cursor.execute(_SQLITE_WAIT)
                        self._no_wait = False
                    cursor.execute("BEGIN IMMEDIATE")
                result = work(cursor)
                committing_now = True
                connection.commit()
                cursor.close()
                return result
            except self._driver_error as error:
                disconnected = self._dialect.is_disconnect(
                    error,  # type: ignore[arg-type]  # a driver's error: what the dialect expects
                    connection,
                    cursor,
                )
                if disconnected:
                    self.invalidate()
                else:
                    self._rollback(connection)
                wrapped = exc.DBAPIError.instance(
                    None,
                    None,
                    error,
                    self._driver_error,
                    connection_invalidated=disconnected,
                    dialect=self._dialect,
                )
                again = (disconnected and not committing_now) or (
                    isinstance(wrapped, exc.DBAPIError) and is_retryable(wrapped)
                )
                if attempt < attempts and again:
                    logger.info(
                        "retrying after a lost connection or a lock conflict",
                        extra={"action": "retry-transaction", "doing": doing, "attempt": attempt},
                    )
                    continue
                with translating_errors(url, doing):
                    raise wrapped from error
            except (ValueError, TypeError) as error:
                # A value its column's type refuses (a naive datetime), as SQLAlchemy reports it.
                self._rollback(connection)
                raise StorageError(
                    f"database {safe_url(url)} failed to {doing}: {error}"
                ) from error
            except BaseException:
                self._rollback(connection)
                raise
        raise AssertionError("unreachable")

    def _rollback(self, connection: DBAPIConnection) -> None:
        try:
            connection.rollback()
        except Exception:  # the connection is unusable: start over with a new one
            self.invalidate()
