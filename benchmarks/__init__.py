"""Reference workloads (W1 fan-out, W2 chain, W3 grid) and the plain-asyncio baselines
the engine's throughput is reported against. See DESIGN.md, "Performance"."""
