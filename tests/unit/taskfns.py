"""Module-level task functions that unit tests refer to as ``tests.unit.taskfns:…``."""

from __future__ import annotations

import functools
from typing import Any

NOT_CALLABLE = 42


def list_symbols(date: str) -> list[str]:
    return ["AAPL", "MSFT"]


def fetch_bars(symbol: str, date: str, context: Any = None) -> dict[str, str]:
    return {"symbol": symbol, "date": date}


def takes_anything(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def needs_context(context: Any) -> None:
    return None


async def fetch_async(symbol: str) -> str:
    return symbol


class Vendor:
    """A namespace of functions, for dotted references (``Vendor.download``)."""

    @staticmethod
    def download(symbol: str) -> str:
        return symbol


class AsyncCallable:
    async def __call__(self, symbol: str) -> str:
        return symbol


async_callable = AsyncCallable()
async_partial = functools.partial(fetch_async, "AAPL")
