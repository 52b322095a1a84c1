"""The ``tideflow`` command line (click + rich)."""

from tideflow.cli.app import cli, entry, main

__all__ = ["cli", "entry", "main"]
