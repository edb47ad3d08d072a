"""The `scalarize` command line."""
