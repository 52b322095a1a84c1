"""``python -m tideflow``: the command line."""

from tideflow.cli import entry

entry()
