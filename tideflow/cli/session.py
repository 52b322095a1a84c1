"""What every command shares: global options, settings, the store, name checks.

Global options (``--db``, ``--config``, ``-n/--namespace``, and ``-o`` on
listings) are accepted before or after the subcommand, as in kubectl:
``tideflow -n quant get runs`` and ``tideflow get runs -n quant`` mean the
same. Each command carries its own copy of the options; a value given after
the subcommand wins over one given before it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tideflow.config import Settings, load_settings
from tideflow.engine.ports import Store
from tideflow.model import check_name

if TYPE_CHECKING:
    from tideflow.service import Services

F = TypeVar("F", bound=Callable[..., Any])


class Output(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    NAME = "name"
    JSON = "json"
    YAML = "yaml"


@dataclass
class Session:
    """The state of one command line: options as parsed, settings and services opened lazily.

    It lives in click's context object (one per command line), never in a
    module global; the wiring behind it is :class:`tideflow.service.Services`.
    """

    config: str | None = None
    database_url: str | None = None
    namespace: str = "default"
    output: Output | None = None
    _settings: Settings | None = field(default=None, repr=False)
    _services: Services | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config, database_url=self.database_url)
            configure_logging(self._settings.log_level)  # the command line is an entry point
        return self._settings

    def services(self) -> Services:
        """The store (opened, and migrated if configured) and the verbs on it."""
        if self._services is None:
            from tideflow.service import Services  # SQLAlchemy only when a command needs it

            self._services = Services.open(self.settings())
        return self._services

    def store(self) -> Store:
        return self.services().store

    def close(self) -> None:
        if self._services is not None:
            self._services.close()
            self._services = None


def configure_logging(level: str) -> None:
    """The engine's own log lines go to stderr at ``level`` (``TIDEFLOW_LOG_LEVEL``).

    Records that task code emits while an attempt runs belong to that attempt:
    they are stored with its logs and kept off the terminal (``-v`` on
    ``run --wait`` streams them on purpose).
    """
    from tideflow.executors.capture import OutsideAttempts

    root = logging.getLogger()
    if any(getattr(h, "_tideflow_terminal", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OutsideAttempts())
    handler.setLevel(level)
    handler._tideflow_terminal = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    logging.getLogger("tideflow").setLevel(level)


def session() -> Session:
    """The current command line's session (created by the root group)."""
    return click.get_current_context().ensure_object(Session)


def checked_name(value: str | None, what: str) -> str | None:
    """``value`` if it is a valid object name; a usage error naming ``what`` otherwise."""
    if value is None:
        return None
    try:
        return check_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


def _setter(attribute: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            if attribute == "namespace":
                value = checked_name(value, "'-n' / '--namespace'")
            setattr(ctx.ensure_object(Session), attribute, value)
        return value

    return store


def _global_options() -> list[click.Option]:
    return [
        click.Option(
            ["--db"],
            metavar="URL",
            expose_value=False,
            callback=_setter("database_url"),
            help="Database URL (overrides TIDEFLOW_DATABASE_URL and the config file).",
        ),
        click.Option(
            ["--config"],
            metavar="FILE",
            expose_value=False,
            callback=_setter("config"),
            help="Settings file (default: ./tideflow.yaml).",
        ),
        click.Option(
            ["-n", "--namespace"],
            metavar="NS",
            expose_value=False,
            callback=_setter("namespace"),
            help="Namespace (default: default).",
        ),
    ]


def output_option(*choices: Output) -> click.Option:
    return click.Option(
        ["-o", "--output"],
        type=click.Choice([c.value for c in choices]),
        default=None,
        help=f"Output format: {', '.join(c.value for c in choices)}.",
    )


def _attach(target: Any, options: list[click.Option]) -> None:
    if isinstance(target, click.Command):
        target.params.extend(options)
    else:  # a function not yet made a command: click reverses what decorators collected
        target.__dict__.setdefault("__click_params__", []).extend(reversed(options))


def global_options(command: F) -> F:
    """Give a command (or the root group) the global options."""
    _attach(command, _global_options())
    return command


def root_options(group: F) -> F:
    """The root group's global options, including ``-o`` for the listing that follows."""
    option = output_option(*Output)
    option.expose_value = False
    option.callback = _setter("output")
    _attach(group, [*_global_options(), option])
    return group


def resolve_output(
    value: str | None, allowed: tuple[Output, ...] = tuple(Output), default: Output = Output.TABLE
) -> Output:
    """The command's ``-o`` if given, else the one before the subcommand, else ``default``."""
    if value is not None:
        return Output(value)
    given = session().output
    if given is None:
        return default
    chosen = Output(given)  # the root option stores click's plain string
    if chosen not in allowed:
        raise click.BadParameter(
            f"{chosen.value!r} is not one of {', '.join(repr(a.value) for a in allowed)} "
            "for this command",
            param_hint="'-o' / '--output'",
        )
    return chosen


class KindType(click.ParamType[str, Any]):
    """A kind of object (``runs``, ``run``, ``workflowruns``…) given by any of its spellings."""

    name = "kind"

    def __init__(self, spellings: dict[str, str], shown: str) -> None:
        self.spellings = spellings
        self.shown = shown

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        kind = self.spellings.get(str(value).lower())
        if kind is None:
            self.fail(f'unknown kind "{value}"; use {self.shown}', param, ctx)
        return kind

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[Any]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(k) for k in sorted(self.spellings) if k.startswith(incomplete)]
