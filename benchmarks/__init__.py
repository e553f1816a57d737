"""Benchmarks of sktransfer against its peers; see ``python -m benchmarks --help``."""
