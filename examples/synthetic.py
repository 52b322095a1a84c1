"""A fake market-data vendor: made-up tickers and daily OHLCV bars, generated locally.

The demo pipeline (:mod:`examples.quant`) must run anywhere, offline, and give
the same answer every time, so instead of downloading bars it asks this module.
Everything here is pure (no I/O) and deterministic:

* the universe is a fixed, seeded list of made-up tickers;
* a symbol's price history depends only on the symbol, so two "downloads" for
  different dates agree on the days they share, as a real vendor's would;
* the data problems a vendor download suffers (a missing day, a zero or
  negative price, a duplicated row) are seeded from symbol *and* date, so each
  download is broken in its own reproducible way.

The calendar is simplified to Monday-Friday sessions without holidays.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import cache
from itertools import pairwise

#: The first session of every simulated price path. Paths start here so that the
#: bars for any later date are a prefix-consistent continuation of the same path.
EPOCH = date(2015, 1, 5)

TRADING_DAYS_PER_YEAR = 252

# The market factor every symbol loads on: ~17% annualised volatility, ~7.5% drift.
_MARKET_DAILY_MEAN = 0.0003
_MARKET_DAILY_VOL = 0.011

# Made-up tickers are a curated stem plus a curated ending ("NOVX", "SOLA",
# "TORIX"): they look like listed companies, and curating both halves keeps
# unfortunate words out of a demo that every new user sees.
_STEMS = (
    "AL",
    "BRI",
    "CAL",
    "DOR",
    "EV",
    "FEN",
    "GAL",
    "HAR",
    "IV",
    "JOR",
    "KEL",
    "LUM",
    "MER",
    "NOV",
    "OR",
    "PAL",
    "QUA",
    "RIV",
    "SOL",
    "TOR",
    "UL",
    "VAL",
    "WES",
    "XEN",
    "YOR",
    "ZEN",
)
_ENDINGS = ("A", "X", "N", "T", "IS", "ON", "EX", "CO", "RA", "IX", "EL", "UM")

#: Upper bound of ``universe(n)``: every stem with every ending.
MAX_UNIVERSE = len(_STEMS) * len(_ENDINGS)


@dataclass(frozen=True)
class Bar:
    """One daily bar as a vendor delivers it (prices may be broken)."""

    session: date
    open: float
    high: float
    low: float
    close: float
    volume: int


@dataclass(frozen=True)
class _Profile:
    """The per-symbol parameters of the simulated price process."""

    start_price: float
    beta: float
    idio_vol: float  # annualised idiosyncratic volatility
    drift: float  # annualised
    base_volume: float  # median shares traded per day


class SessionError(ValueError):
    """A date is not a session of the synthetic calendar (or is outside its range)."""


def parse_session(value: str) -> date:
    """Parse an ISO date and check it is a weekday on or after :data:`EPOCH`."""
    try:
        day = date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise SessionError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from exc
    if day.weekday() >= 5:
        raise SessionError(f"{value} is a {day:%A}: not a session of the Monday-Friday calendar")
    if day < EPOCH:
        raise SessionError(f"{value} is before the first simulated session {EPOCH}")
    return day


def sessions(first: date, last: date) -> list[date]:
    """Every Monday-Friday session from ``first`` to ``last``, both included."""
    days = []
    day = first
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


@cache
def _ticker_pool() -> tuple[str, ...]:
    names = [stem + ending for stem in _STEMS for ending in _ENDINGS]
    # A fixed shuffle, so universe(n) samples every stem rather than "AL..." first.
    random.Random("tideflow-universe").shuffle(names)
    return tuple(names)


def universe(size: int) -> list[str]:
    """The first ``size`` made-up tickers, sorted; ``universe(n)`` is within ``universe(n+1)``."""
    if not 1 <= size <= MAX_UNIVERSE:
        raise ValueError(f"universe size must be between 1 and {MAX_UNIVERSE}, not {size}")
    return sorted(_ticker_pool()[:size])


def _profile(symbol: str) -> _Profile:
    rng = random.Random(f"profile|{symbol}")
    return _Profile(
        start_price=math.exp(rng.uniform(math.log(8), math.log(400))),
        beta=rng.uniform(0.6, 1.4),
        idio_vol=rng.uniform(0.15, 0.50),
        drift=rng.uniform(-0.03, 0.12),
        base_volume=math.exp(rng.uniform(math.log(3e5), math.log(2e7))),
    )


def _closes(symbol: str, days: list[date], keep: int) -> list[tuple[float, float]]:
    """(close, daily log return) for the last ``keep`` of ``days``, walking from EPOCH."""
    profile = _profile(symbol)
    market = random.Random("market")  # shared by every symbol: returns are correlated
    idio = random.Random(f"path|{symbol}")
    daily_idio = profile.idio_vol / math.sqrt(TRADING_DAYS_PER_YEAR)
    daily_drift = profile.drift / TRADING_DAYS_PER_YEAR
    log_start = math.log(profile.start_price)
    log_price = log_start
    out: list[tuple[float, float]] = []
    for i, _day in enumerate(days):
        # Draw the same number of variates every day, used or not, so the path
        # up to a date never depends on how far the walk continues.
        m = market.gauss(_MARKET_DAILY_MEAN, _MARKET_DAILY_VOL)
        e = idio.gauss(0.0, daily_idio)
        jump_roll, jump = idio.random(), idio.gauss(0.0, 4 * daily_idio)
        r = daily_drift + profile.beta * m + e + (jump if jump_roll < 0.01 else 0.0)
        # Gentle mean reversion of the level keeps a decade of walk in a plausible price range.
        r -= 0.002 * (log_price - log_start)
        log_price += r
        if i >= len(days) - keep:
            out.append((math.exp(log_price), r))
    return out


def bars(symbol: str, last: date, lookback_days: int) -> list[Bar]:
    """The clean truth: ``lookback_days`` daily bars of ``symbol`` ending at session ``last``."""
    days = sessions(EPOCH, last)
    if lookback_days < 1 or lookback_days >= len(days):
        raise ValueError(f"lookback_days must be between 1 and {len(days) - 1} for {last}")
    profile = _profile(symbol)
    daily_vol = math.hypot(
        profile.idio_vol / math.sqrt(TRADING_DAYS_PER_YEAR), profile.beta * _MARKET_DAILY_VOL
    )
    path = _closes(symbol, days, lookback_days + 1)  # one extra day: the first bar's open needs it
    out = []
    for day, ((prev, _), (close, ret)) in zip(days[-lookback_days:], pairwise(path), strict=True):
        # Intraday detail is seeded per day, so it is stable whatever the lookback.
        rng = random.Random(f"bar|{symbol}|{day}")
        open_ = prev * math.exp(rng.gauss(0.0, 0.3 * daily_vol))
        high = max(open_, close) * math.exp(abs(rng.gauss(0.0, 0.5 * daily_vol)))
        low = min(open_, close) * math.exp(-abs(rng.gauss(0.0, 0.5 * daily_vol)))
        # Volume is lognormal around the symbol's median and spikes on big moves.
        volume = profile.base_volume * math.exp(rng.gauss(0.0, 0.35)) * (1 + 12 * abs(ret))
        out.append(
            Bar(
                day,
                round(open_, 2),
                round(high, 2),
                max(0.01, round(low, 2)),
                round(close, 2),
                int(volume // 100 * 100),
            )
        )
    return out


def vendor_download(symbol: str, last: date, lookback_days: int) -> tuple[list[Bar], list[str]]:
    """The bars as the vendor delivers them, with a few realistic problems injected.

    Returns the (possibly broken) bars and a human-readable description of each
    injected problem. The first and last bar are never touched, so the window
    still spans exactly the requested sessions.
    """
    truth = bars(symbol, last, lookback_days)
    rng = random.Random(f"vendor|{symbol}|{last}")
    if len(truth) < 5:
        return truth, []
    # Each problem hits a different session, so each one is visible on its own.
    bad_at, duplicate_at, missing_at = rng.sample(range(1, len(truth) - 1), 3)
    # A corrupted print (zero or sign-flipped close), a page delivered twice, and
    # a session the vendor silently skipped: the three classics of daily feeds.
    has_bad, has_duplicate, has_missing = (rng.random() < p for p in (0.35, 0.35, 0.5))
    bad_close = 0.0 if rng.random() < 0.5 else -truth[bad_at].close
    delivered: list[Bar] = []
    injected: list[str] = []
    for i, bar in enumerate(truth):
        if has_missing and i == missing_at:
            injected.append(f"missing day {bar.session}")
            continue
        if has_bad and i == bad_at:
            bar = replace(bar, close=bad_close)
            injected.append(f"bad price {bad_close} on {bar.session}")
        delivered.append(bar)
        if has_duplicate and i == duplicate_at:
            delivered.append(bar)
            injected.append(f"duplicate row {bar.session}")
    return delivered, injected
