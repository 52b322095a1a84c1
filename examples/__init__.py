"""Runnable example pipelines: YAML manifests and the Python task functions they call."""
