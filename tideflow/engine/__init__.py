"""The engine: run state machine, reconcile loop, dispatch, retries, timeouts, leases."""
