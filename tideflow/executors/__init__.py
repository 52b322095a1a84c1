"""Executors run task attempts: local slots (async, thread, process, subprocess)."""
