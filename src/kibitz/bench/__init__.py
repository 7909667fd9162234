"""Benchmarks that print figures: the core loop's latency and event detection against RAM truth."""
