"""Benchmarks that ship with the package's dependencies and work offline."""
