"""Task functions of the ``daily-factors`` demo pipeline, and its report command.

The pipeline (wired in ``examples/daily-factors.yaml``)::

    list_symbols -> fetch_bars (one task per symbol) -> clean_bars
                 -> compute_factors -> write_results -> report

Every task is a plain, type-hinted function. The engine calls it as
``fn(**args)`` with the task's rendered ``args`` and stores its return value as
the task's output, which later tasks receive through templates such as
``{{ tasks['fetch-bars'].output }}`` - so every return value is plain JSON
(dicts, lists, strings, numbers). Nothing here depends on the engine except its
error types, so each function can also be called directly, from a test or a
notebook.

Market data is synthetic (:mod:`examples.synthetic`): deterministic, offline,
and broken in the ways real vendor files are, so the cleaning step has work
to do. Files written::

    {data_dir}/raw/{date}/{symbol}.csv     the vendor download, as delivered
    {data_dir}/clean/{date}/{symbol}.csv   validated, exactly one row per session
    {results_db}                           SQLite: factor_values(date, symbol, factor, value)

Command line (what ``make run`` shows after the pipeline has run)::

    python -m examples.quant report [--db PATH] [--date YYYY-MM-DD] [--top N]
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import random
import re
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import date as Date
from itertools import pairwise
from pathlib import Path
from typing import Any

from examples import synthetic
from examples.reporting import render_report
from tideflow.errors import PermanentError

logger = logging.getLogger(__name__)

#: Where the manifest's ``results_db`` parameter points by default (relative to the working dir).
DEFAULT_DB = ".tideflow/demo/factors.db"

RAW_FIELDS = ("date", "open", "high", "low", "close", "volume")
CLEAN_FIELDS = (*RAW_FIELDS, "filled")
#: The values stored per symbol and date, in report order.
FACTORS = ("composite", "ret_1d", "ret_5d", "ret_20d", "vol_20d", "mom_60_5", "adv_20d")
#: Sessions of history a symbol needs: ``mom_60_5`` looks 60 sessions back from today.
MIN_HISTORY = 61
#: Z-scores are clipped here so that one freak print cannot dominate the composite.
Z_CLIP = 3.0

# Tickers become file names, so anything else (``../x``) is refused before touching disk.
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,11}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS factor_values (
    date   TEXT NOT NULL,   -- ISO trade date, so text order is date order
    symbol TEXT NOT NULL,
    factor TEXT NOT NULL,
    value  REAL NOT NULL,
    PRIMARY KEY (date, symbol, factor)
)
"""


def _session(date: str) -> Date:
    # A bad date fails every attempt the same way: PermanentError tells the
    # engine not to spend the task's retries on it.
    try:
        return synthetic.parse_session(date)
    except synthetic.SessionError as exc:
        raise PermanentError(str(exc)) from exc


def list_symbols(date: str, universe_size: int = 60) -> list[str]:
    """The tradable universe on ``date``: ``universe_size`` made-up tickers, sorted.

    Args:
        date: Trade date, ISO format; must be a Monday-Friday session.
        universe_size: How many symbols (1-312); the workflow declares it
            ``type: integer``, so ``-p universe_size=30`` arrives as an int
            (the cast still accepts text from callers of this function).

    Returns:
        Ticker symbols; each becomes one ``fetch-bars`` task through ``forEach``.
    """
    _session(date)
    try:
        return synthetic.universe(int(universe_size))
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc


def fetch_bars(
    symbol: str, date: str, data_dir: str, lookback_days: int = 250, latency_ms: float = 15.0
) -> dict[str, Any]:
    """Download ``lookback_days`` daily OHLCV bars ending at ``date`` from the (fake) vendor.

    The file is written as delivered, problems included; :func:`clean_bars`
    deals with them. Writing goes through a temporary file and a rename, so a
    retried or killed attempt never leaves a half-written CSV behind.

    Args:
        symbol: Ticker, as returned by :func:`list_symbols`.
        date: Trade date (ISO); the last bar is this session.
        data_dir: Root of the pipeline's files.
        lookback_days: Sessions of history to download.
        latency_ms: Upper bound of the simulated network latency (0 to disable).

    Returns:
        ``{"symbol", "path", "rows", "injected"}``; ``injected`` lists the data
        problems the simulation put into this file, for the curious reader.
    """
    session = _session(date)
    if not _SYMBOL.fullmatch(symbol):
        raise PermanentError(f"refusing suspicious symbol {symbol!r}")
    # Seeded, so a replayed run waits the same; sleeping releases the GIL like real I/O.
    time.sleep(random.Random(f"latency|{symbol}|{date}").uniform(0.2, 1.0) * latency_ms / 1000)
    bars, injected = synthetic.vendor_download(symbol, session, int(lookback_days))
    path = Path(data_dir) / "raw" / date / f"{symbol}.csv"
    _write_csv(
        path,
        RAW_FIELDS,
        [(b.session.isoformat(), b.open, b.high, b.low, b.close, b.volume) for b in bars],
    )
    return {"symbol": symbol, "path": str(path), "rows": len(bars), "injected": injected}


def clean_bars(fetched: list[dict[str, Any]], data_dir: str, date: str) -> dict[str, Any]:
    """Validate every downloaded file and write one clean row per session.

    Rules, in order: rows that do not parse are dropped (``malformed``); rows
    with a non-positive price or a high/low that does not bracket open and close
    are dropped (``bad_price``); a session seen again keeps its first valid row
    (``duplicate``); sessions missing between the first bar and ``date`` are
    forward-filled from the previous close with zero volume and ``filled=1``,
    the usual convention: no trade was observed, the price did not move.

    Args:
        fetched: The outputs of all ``fetch-bars`` tasks.
        data_dir: Root of the pipeline's files.
        date: Trade date (ISO); every clean series ends at this session.

    Returns:
        ``{"date", "symbols", "rows_in", "rows_out", "dropped": {reason: n},
        "filled", "paths"}``.
    """
    session = _session(date)
    if not fetched:
        raise PermanentError("nothing to clean: the fetch step returned no files")
    totals: Counter[str] = Counter()
    paths = []
    for item in sorted(fetched, key=lambda item: str(item["symbol"])):
        with Path(item["path"]).open(newline="") as f:
            raw = list(csv.DictReader(f))
        rows, counts = _clean_series(raw, session)
        totals.update(counts)
        totals["rows_in"] += len(raw)
        if not rows:
            logger.warning("no usable bars for %s", item["symbol"], extra={"action": "skip"})
            continue
        path = Path(data_dir) / "clean" / date / f"{item['symbol']}.csv"
        _write_csv(path, CLEAN_FIELDS, rows)
        totals["rows_out"] += len(rows)
        paths.append(str(path))
    return {
        "date": date,
        "symbols": len(paths),
        "rows_in": totals["rows_in"],
        "rows_out": totals["rows_out"],
        "dropped": {k: totals[k] for k in ("malformed", "bad_price", "duplicate")},
        "filled": totals["filled"],
        "paths": paths,
    }


def _clean_series(
    raw: list[dict[str, str]], last: Date
) -> tuple[list[tuple[Any, ...]], Counter[str]]:
    counts: Counter[str] = Counter()
    valid: dict[Date, tuple[float, float, float, float, int]] = {}
    for row in raw:
        try:
            day = Date.fromisoformat(row["date"])
            o, h, lo, c = (float(row[k]) for k in ("open", "high", "low", "close"))
            volume = int(row["volume"])
        except (KeyError, TypeError, ValueError):
            counts["malformed"] += 1
            continue
        if day > last or day.weekday() >= 5 or volume < 0:
            counts["malformed"] += 1
        elif not 0 < lo <= min(o, c) <= max(o, c) <= h:
            counts["bad_price"] += 1
        elif day in valid:
            counts["duplicate"] += 1
        else:
            valid[day] = (o, h, lo, c, volume)
    rows: list[tuple[Any, ...]] = []
    if not valid:
        return rows, counts
    prev_close = 0.0
    for day in synthetic.sessions(min(valid), last):
        if day in valid:
            o, h, lo, c, volume = valid[day]
            rows.append((day.isoformat(), o, h, lo, c, volume, 0))
            prev_close = c
        else:
            rows.append((day.isoformat(), prev_close, prev_close, prev_close, prev_close, 0, 1))
            counts["filled"] += 1
    return rows, counts


def compute_factors(cleaned: dict[str, Any], date: str) -> list[dict[str, Any]]:
    """Per-symbol factors on ``date`` and a cross-sectional composite score.

    Per symbol, from the clean closes ``c`` (``c[-1]`` is ``date``):

    * ``ret_1d``, ``ret_5d``, ``ret_20d``: simple returns, ``c[-1] / c[-1-n] - 1``;
    * ``vol_20d``: sample stdev of the last 20 daily returns x sqrt(252);
    * ``mom_60_5``: ``c[-6] / c[-61] - 1``, momentum that skips the last five
      sessions, because very recent winners tend to give some of it back;
    * ``adv_20d``: mean of close x volume over 20 sessions (filled days count as 0).

    ``composite`` is the mean of three z-scores across the universe, each
    clipped to +/-3: momentum, short-term reversal (``-ret_5d``) and low
    volatility (``-vol_20d``). Symbols with fewer than 61 sessions are skipped.

    Args:
        cleaned: The output of :func:`clean_bars`.
        date: Trade date (ISO); each clean series must end on it.

    Returns:
        One dict per symbol, sorted by symbol: ``symbol``, ``date``, ``close`` and
        every name in :data:`FACTORS`.
    """
    _session(date)
    rows: list[dict[str, Any]] = []
    for path in cleaned["paths"]:
        symbol = Path(path).stem
        with Path(path).open(newline="") as f:
            series = list(csv.DictReader(f))
        if not series or series[-1]["date"] != date:
            # Stale input is an error, not a skip: factors computed on yesterday's
            # prices would be silently wrong.
            last = series[-1]["date"] if series else "nothing"
            raise PermanentError(f"{symbol}: clean bars end at {last}, expected {date}")
        if len(series) < MIN_HISTORY:
            logger.warning(
                "%s has %d sessions, %d needed: skipped",
                symbol,
                len(series),
                MIN_HISTORY,
                extra={"action": "skip"},
            )
            continue
        closes = [float(r["close"]) for r in series]
        volumes = [float(r["volume"]) for r in series]
        rows.append(
            {"symbol": symbol, "date": date, "close": closes[-1], **symbol_factors(closes, volumes)}
        )
    # Each part is oriented so that higher is better before averaging.
    parts = [
        _zscores([r[key] * sign for r in rows])
        for key, sign in (("mom_60_5", 1), ("ret_5d", -1), ("vol_20d", -1))
    ]
    for i, row in enumerate(rows):
        row["composite"] = statistics.fmean(part[i] for part in parts)
    return sorted(rows, key=lambda r: str(r["symbol"]))


def symbol_factors(closes: Sequence[float], volumes: Sequence[float]) -> dict[str, float]:
    """The per-symbol factors of :func:`compute_factors` (all but ``composite``).

    Args:
        closes: At least 61 daily closes, oldest first.
        volumes: Shares traded, aligned with ``closes``.
    """
    daily = [b / a - 1 for a, b in pairwise(closes[-21:])]
    dollar_volume = [c * v for c, v in zip(closes[-20:], volumes[-20:], strict=True)]
    return {
        "ret_1d": closes[-1] / closes[-2] - 1,
        "ret_5d": closes[-1] / closes[-6] - 1,
        "ret_20d": closes[-1] / closes[-21] - 1,
        "vol_20d": statistics.stdev(daily) * math.sqrt(synthetic.TRADING_DAYS_PER_YEAR),
        "mom_60_5": closes[-6] / closes[-61] - 1,
        "adv_20d": statistics.fmean(dollar_volume),
    }


def _zscores(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [0.0] * len(values)
    mean, sd = statistics.fmean(values), statistics.pstdev(values)
    if sd == 0:
        return [0.0] * len(values)
    return [max(-Z_CLIP, min(Z_CLIP, (v - mean) / sd)) for v in values]


def write_results(factors: list[dict[str, Any]], db_path: str, date: str) -> dict[str, Any]:
    """Store the factors of ``date`` in SQLite, replacing whatever that date had.

    Delete and insert happen in one transaction, so re-running a date (a retry,
    a backfill) never leaves it half old and half new, and readers see either.

    Args:
        factors: The output of :func:`compute_factors`.
        db_path: SQLite file; created, with its directory, if missing.
        date: Trade date (ISO); every row must belong to it.

    Returns:
        ``{"db", "date", "symbols", "rows"}``; ``rows`` counts (symbol, factor) values.
    """
    _session(date)
    wrong = sorted({str(row["date"]) for row in factors} - {date})
    if wrong:
        raise PermanentError(f"factor rows for {wrong} cannot be written as {date}")
    records = [(date, row["symbol"], name, float(row[name])) for row in factors for name in FACTORS]
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions, the BEGIN/COMMIT below are the only ones.
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute(_SCHEMA)
        conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlock
        try:
            conn.execute("DELETE FROM factor_values WHERE date = ?", (date,))
            conn.executemany("INSERT INTO factor_values VALUES (?, ?, ?, ?)", records)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return {"db": db_path, "date": date, "symbols": len(factors), "rows": len(records)}


def report(written: dict[str, Any], date: str, top: int = 10) -> str:
    """The day's report as text: best and worst ``top`` symbols and universe statistics.

    Args:
        written: The output of :func:`write_results` (it names the database).
        date: Trade date (ISO).
        top: How many symbols to show at each end.
    """
    return render_report(str(written["db"]), date, int(top))


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)  # atomic on POSIX and Windows: readers see old or new, never half


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m examples.quant report``: print the report; exit 1 if there is nothing to show."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.quant", description="The daily-factors demo pipeline's tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("report", help="print the factor report from the results database")
    cmd.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    cmd.add_argument("--date", help="trade date, YYYY-MM-DD (default: the latest in the database)")
    cmd.add_argument("--top", type=int, default=10, help="symbols shown at each end (default: 10)")
    args = parser.parse_args(argv)
    try:
        text = render_report(args.db, args.date, args.top)
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # `... report | head` closed the pipe early: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
