"""The ``tideflow`` command line (typer + rich)."""

from tideflow.cli.app import app, entry, main

__all__ = ["app", "entry", "main"]
