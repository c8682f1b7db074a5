"""Benchmarks of kubenas itself; see each module."""
