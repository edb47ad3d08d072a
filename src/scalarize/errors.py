"""The base of every error that is the user's input or environment, not a bug: the command prints
its first line and exits with code 2 (``scalarize.cli.errors``). Each layer has its own subclass
(``ConfigError``, ``BenchmarkError``, ``ModelError``, ``MethodError``, ``CheckpointError``,
``StoreError``), all also ``ValueError``s."""


class ScalarizeError(ValueError):
    """Bad input, said in one line that names the key or file and what is allowed."""
