"""Pausing the cyclic garbage collector while a large workflow is built.

Parsing, validating and planning a 100,000-task workflow allocates millions of
objects, none of them garbage and none in a reference cycle, yet each
allocation burst triggers collections that traverse every live object: a
third of the time went there. Those steps pause the collector for their own
duration when the workflow is large; small workflows are left alone.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["LARGE", "paused_collection"]

#: From how many tasks a step pauses the collector.
LARGE = 1000


@contextlib.contextmanager
def paused_collection(size: int) -> Iterator[None]:
    """Pause the cyclic garbage collector for the block if ``size`` (tasks) is ``LARGE``.

    Reference counting still frees everything that is not in a cycle; cycles
    made meanwhile are collected after the block. If the collector is already
    disabled (by the application), it is left so.
    """
    if size < LARGE or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
