"""Entry point of a task process (``isolation: process``).

Reads the request (function, args, context) as JSON on stdin, calls the
function, and writes the result as JSON to the file descriptor the parent
passed. The function's own stdout/stderr go to the parent's pipes.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from tideflow.definition.functions import accepts_context, resolve
from tideflow.engine.context import TaskContext
from tideflow.executors.local import checked_output, failure


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + "\n")


def main() -> None:
    request = json.load(sys.stdin)
    handler = _Lines()
    logging.getLogger().addHandler(handler)
    logging.getLogger("tideflow.task").setLevel(logging.DEBUG)
    context = TaskContext(**request["context"])
    try:
        fn = resolve(request["function"])
        args: dict[str, Any] = dict(request["args"])
        if accepts_context(fn):
            args["context"] = context
        outcome = checked_output(fn(**args))
    except Exception as exc:
        outcome = failure(exc)
        sys.stderr.write(outcome.logs.pop()[1])
    result = {
        "status": outcome.status,
        "output": outcome.output,
        "error": outcome.error,
        "retryable": outcome.retryable,
        "retry_delay": outcome.retry_delay,
        "spawned": [s.to_item() for s in context.spawned] if outcome.ok else [],
        "logs": handler.lines,
    }
    with open(request["result_path"], "w", encoding="utf-8") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
