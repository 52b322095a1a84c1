"""Rendering of the ``daily-factors`` report from its results database.

Used by the ``report`` task and by ``python -m examples.quant report`` (both in
:mod:`examples.quant`); reads the ``factor_values`` table that
:func:`examples.quant.write_results` fills, and never writes to it.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import Sequence
from pathlib import Path

from tideflow.errors import PermanentError


def render_report(db_path: str, date: str | None = None, top: int = 10) -> str:
    """Render the report of ``date`` (default: the latest date) from a results database.

    Raises:
        PermanentError: the database, its table or the date is missing.
    """
    if not Path(db_path).is_file():
        raise PermanentError(f"no results database at {db_path}: run the pipeline first (make run)")
    # Read-only, so that a mistyped --db path can never create or alter a file.
    conn = sqlite3.connect(Path(db_path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        if date is None:
            (date,) = conn.execute("SELECT MAX(date) FROM factor_values").fetchone()
            if date is None:
                raise PermanentError(f"{db_path} holds no factor values yet")
        found = conn.execute(
            "SELECT symbol, factor, value FROM factor_values WHERE date = ?", (date,)
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise PermanentError(f"{db_path} is not a factor results database ({exc})") from exc
    finally:
        conn.close()
    if not found:
        raise PermanentError(f"no factor values for {date} in {db_path}")
    table: dict[str, dict[str, float]] = {}
    for symbol, factor, value in found:
        table.setdefault(symbol, {})[factor] = value
    return _format_report(db_path, date, table, top)


# (header, factor, format): returns and volatility as percentages, ADV in dollars.
_COLUMNS = (
    ("composite", "composite", "{:+.2f}"),
    ("ret 1d", "ret_1d", "{:+.2%}"),
    ("ret 5d", "ret_5d", "{:+.2%}"),
    ("ret 20d", "ret_20d", "{:+.2%}"),
    ("vol 20d", "vol_20d", "{:.1%}"),
    ("mom 60-5", "mom_60_5", "{:+.1%}"),
    ("ADV 20d", "adv_20d", None),
)


def _dollars(value: float) -> str:
    for unit, scale in (("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"${value / scale:.1f}{unit}"
    return f"${value:.0f}"


def _format_report(db_path: str, date: str, table: dict[str, dict[str, float]], top: int) -> str:
    ranked = sorted(table, key=lambda s: (-table[s]["composite"], s))
    n = len(ranked)
    top = max(1, min(top, n))
    ret_1d = [table[s]["ret_1d"] for s in ranked]
    up, down = sum(r > 0 for r in ret_1d), sum(r < 0 for r in ret_1d)
    vol = statistics.median(table[s]["vol_20d"] for s in ranked)
    lines = [
        f"Daily factors for {date}  ({n} symbols, {db_path})",
        "",
        "Universe",
        f"  advancers / decliners       {up} / {down}",
        f"  median 1d return            {statistics.median(ret_1d):+.2%}",
        f"  1d return dispersion        {statistics.pstdev(ret_1d):.2%}",
        f"  median 20d volatility       {vol:.1%}",
        f"  total 20d ADV               {_dollars(sum(table[s]['adv_20d'] for s in ranked))}",
    ]

    def block(title: str, ranks: Sequence[int]) -> None:
        lines.extend(["", title])
        lines.append(f"  {'#':>3}  {'symbol':<7}" + "".join(f"{h:>10}" for h, _, _ in _COLUMNS))
        for rank in ranks:
            values = table[ranked[rank]]
            cells = [
                _dollars(values[k]) if fmt is None else fmt.format(values[k])
                for _, k, fmt in _COLUMNS
            ]
            lines.append(f"  {rank + 1:>3}  {ranked[rank]:<7}" + "".join(f"{c:>10}" for c in cells))

    what = "composite = mean z-score of 60-5 momentum, 5d reversal and low volatility"
    block(f"Top {top} by composite  ({what})", range(top))
    block(f"Bottom {top} by composite", range(n - 1, n - 1 - top, -1))
    return "\n".join(lines)
