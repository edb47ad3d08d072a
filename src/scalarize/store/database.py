"""The experiment database: one SQLite file per experiment directory.

Tables: ``runs`` (resolved config, status), ``metrics`` (every evaluation of every run),
``final`` (val and test metrics at the best validation evaluation), ``weights`` (the per-task
weights a method applied, per step). Every write is one transaction, and rows are keyed so that
writing the same evaluation twice (a run resumed after a kill) replaces it: a killed process
leaves a consistent database.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from scalarize.errors import ScalarizeError
from scalarize.files import replaced
from scalarize.store.tracking import Tracking

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    run TEXT NOT NULL, evaluation INTEGER NOT NULL, step INTEGER NOT NULL,
    split TEXT NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run, evaluation, split, name)
);
CREATE TABLE IF NOT EXISTS final (
    run TEXT NOT NULL, split TEXT NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run, split, name)
);
CREATE TABLE IF NOT EXISTS weights (
    run TEXT NOT NULL, step INTEGER NOT NULL, objective TEXT NOT NULL, value REAL,
    PRIMARY KEY (run, step, objective)
);
CREATE TABLE IF NOT EXISTS costs (
    run TEXT NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run, name)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY, value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lineage (
    search TEXT NOT NULL, time INTEGER NOT NULL, step INTEGER NOT NULL,
    member TEXT NOT NULL, source TEXT NOT NULL, weights TEXT NOT NULL, lr REAL,
    fitness REAL, resampled TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (search, time, member)
);
"""

DATABASE_NAME = "scalarize.db"
#: A run's ``status``: ``running``, then ``completed``, ``diverged`` (a non-finite loss) or
#: ``stopped`` (early stopping, ``scalarize.search.successive_halving``: a weak member stopped at
#: a rung, with the evaluations it had; finished, not retrained on a rerun of the same sweep).
STATUSES = ("running", "completed", "diverged", "stopped")
STOPPED = "stopped"
LOCK_NAME = ".scalarize.lock"


class StoreError(ScalarizeError):
    """An experiment directory that cannot be used (reported to users as one line)."""


class Store:
    """The SQLite store of an experiment directory (created on first use).

    With :attr:`exclusive` set (the ``scalarize`` command sets it), the first store a process
    opens on a directory takes an exclusive lock on it, held until the process ends: a second
    command on the same directory is refused with one line instead of racing the first.
    """

    #: Lock experiment directories against other processes (see the class docstring).
    exclusive = False

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DATABASE_NAME
        self.directory.mkdir(parents=True, exist_ok=True)
        if Store.exclusive:
            hold_directory(self.directory)
        refuse_linked_database(self.path)
        try:
            self._connection = sqlite3.connect(self.path, timeout=60)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.row_factory = sqlite3.Row
            self._depth = 0
            with self._connection:
                self._connection.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            if "locked" in str(error) or "full" in str(error):
                raise
            raise StoreError(
                f"{self.path}: not a readable scalarize database ({error}); move it away to start the experiment "
                "over (the checkpoints under runs/ are kept)"
            ) from None
        #: TensorBoard/MLflow copies of what this store writes (store/tracking.py)
        self.tracking = Tracking(self)

    @classmethod
    def open_existing(cls, directory: str | Path) -> Store:
        if not (Path(directory) / DATABASE_NAME).is_file():
            raise StoreError(f"{directory}: no {DATABASE_NAME} here (not an experiment directory)")
        return cls(directory)

    def close(self) -> None:
        self.tracking.close()
        self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """Groups every write inside into one transaction (nested: the outermost commits), so a
        killed process leaves all of them or none."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self._connection:
                yield self
        finally:
            self._depth = 0

    def _write(self):
        """The context of one write: its own transaction, or the enclosing :meth:`transaction`."""
        return contextlib.nullcontext() if self._depth else self._connection

    # -- settings --------------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        """A value the experiment decided once and keeps (e.g. the engine chosen for a group)."""
        row = self._connection.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def set_setting(self, key: str, value: str) -> None:
        with self._write():
            self._connection.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))

    # -- runs ----------------------------------------------------------------------------------
    def run(self, name: str) -> sqlite3.Row | None:
        return self._connection.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()

    def runs(self) -> list[sqlite3.Row]:
        return self._connection.execute("SELECT * FROM runs ORDER BY started, name").fetchall()

    def start_run(self, name: str, kind: str, config: Mapping, fingerprint: str) -> None:
        """Registers a run, or marks an existing one (same fingerprint) as running again."""
        with self._write():
            self._connection.execute(
                "INSERT INTO runs (name, kind, config, fingerprint, status, started) "
                "VALUES (?, ?, ?, ?, 'running', ?) "
                "ON CONFLICT(name) DO UPDATE SET status = 'running', message = ''",
                (name, kind, json.dumps(config, sort_keys=True), fingerprint, time.time()),
            )

    def finish_run(self, name: str, status: str, step: int, message: str = "") -> None:
        with self._write():
            self._connection.execute(
                "UPDATE runs SET status = ?, step = ?, message = ?, finished = ? WHERE name = ?",
                (status, step, message, time.time(), name),
            )
        self.tracking.finished(name, status, step, message)

    # -- results -------------------------------------------------------------------------------
    def record_evaluation(
        self,
        run: str,
        evaluation: int,
        step: int,
        metrics: Mapping[str, Mapping[str, float]],
        weights: Iterable[tuple[int, str, float]] = (),
    ) -> None:
        """One evaluation (``metrics[split][name]``) and the weights logged since the last one."""
        weights = list(weights)
        rows = [
            (run, evaluation, step, split, name, float(value))
            for split, values in metrics.items()
            for name, value in values.items()
        ]
        with self._write():
            self._connection.execute("UPDATE runs SET step = ? WHERE name = ?", (step, run))
            self._connection.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._connection.executemany(
                "INSERT OR REPLACE INTO weights VALUES (?, ?, ?, ?)", [(run, *w) for w in weights]
            )
        self.tracking.evaluation(run, evaluation, step, metrics, weights)

    def record_final(self, run: str, metrics: Mapping[str, Mapping[str, float]]) -> None:
        rows = [(run, s, n, float(v)) for s, values in metrics.items() for n, v in values.items()]
        with self._write():
            self._connection.execute("DELETE FROM final WHERE run = ?", (run,))
            self._connection.executemany("INSERT INTO final VALUES (?, ?, ?, ?)", rows)
        self.tracking.final(run, metrics)

    def record_costs(self, run: str, costs: Mapping[str, float]) -> None:
        """What a run has cost so far (seconds per step, step memory, skipped steps): measured,
        so not bitwise reproducible, hence kept apart from the metrics."""
        with self._write():
            self._connection.executemany(
                "INSERT OR REPLACE INTO costs VALUES (?, ?, ?)", [(run, n, float(v)) for n, v in costs.items()]
            )

    def costs(self, run: str) -> dict[str, float]:
        rows = self._connection.execute("SELECT name, value FROM costs WHERE run = ?", (run,))
        return {row["name"]: row["value"] for row in rows}

    def history(self, run: str, split: str = "val") -> dict[str, list[tuple[int, float]]]:
        """``name -> [(step, value), ...]`` in evaluation order."""
        out: dict[str, list[tuple[int, float]]] = {}
        for row in self._connection.execute(
            "SELECT step, name, value FROM metrics WHERE run = ? AND split = ? ORDER BY evaluation",
            (run, split),
        ):
            out.setdefault(row["name"], []).append((row["step"], row["value"]))
        return out

    def final(self, run: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for row in self._connection.execute("SELECT split, name, value FROM final WHERE run = ?", (run,)):
            out.setdefault(row["split"], {})[row["name"]] = row["value"]
        return out

    def evaluation_step(self, run: str, evaluation: int) -> int | None:
        """The step of the run's evaluation number ``evaluation``, or ``None`` when not recorded."""
        row = self._connection.execute(
            "SELECT step FROM metrics WHERE run = ? AND evaluation = ? LIMIT 1", (run, evaluation)
        ).fetchone()
        return None if row is None else row["step"]

    def evaluation_metrics(self, run: str, evaluation: int, split: str = "val") -> dict[str, float]:
        """``{name: value}`` of the run's evaluation number ``evaluation`` on ``split`` (empty when
        not recorded): what successive halving compares at a rung."""
        rows = self._connection.execute(
            "SELECT name, value FROM metrics WHERE run = ? AND evaluation = ? AND split = ?", (run, evaluation, split)
        )
        return {row["name"]: row["value"] for row in rows}

    def last_evaluation(self, run: str) -> dict[str, dict[str, float]]:
        """``{split: {name: value}}`` of the run's last evaluation."""
        out: dict[str, dict[str, float]] = {}
        for row in self._connection.execute(
            "SELECT split, name, value FROM metrics WHERE run = ? AND evaluation = "
            "(SELECT MAX(evaluation) FROM metrics WHERE run = ?)",
            (run, run),
        ):
            out.setdefault(row["split"], {})[row["name"]] = row["value"]
        return out

    def weights(self, run: str) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        for row in self._connection.execute(
            "SELECT step, objective, value FROM weights WHERE run = ? ORDER BY step", (run,)
        ):
            out.setdefault(row["objective"], []).append((row["step"], row["value"]))
        return out

    # -- population-based training ----------------------------------------------------------
    def record_lineage(self, search: str, rows: Iterable[Mapping]) -> None:
        """PBT's records: at sync ``time`` (after ``step`` steps) ``member`` continues from
        ``source``'s model with ``weights`` and ``lr``; ``fitness`` is the member's before it."""
        values = [
            (
                search,
                r["time"],
                r["step"],
                r["member"],
                r["source"],
                json.dumps(list(r["weights"])),
                r.get("lr"),
                r.get("fitness"),
                ",".join(r.get("resampled", ())),
            )
            for r in rows
        ]
        with self._write():
            self._connection.executemany("INSERT OR REPLACE INTO lineage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)

    def lineage(self, search: str) -> list[dict]:
        rows = self._connection.execute(
            "SELECT * FROM lineage WHERE search = ? ORDER BY time, member", (search,)
        ).fetchall()
        return [dict(r) | {"weights": json.loads(r["weights"])} for r in rows]

    # -- export --------------------------------------------------------------------------------
    def export_csv(self, destination: str | Path) -> list[Path]:
        """Writes one CSV per table into ``destination``; returns the paths."""
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        written = []
        for table in ("runs", "metrics", "final", "weights", "costs", "lineage", "settings"):
            cursor = self._connection.execute(f"SELECT * FROM {table}")
            path = destination / f"{table}.csv"
            with replaced(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow([c[0] for c in cursor.description])
                writer.writerows(cursor)
            written.append(path)
        return written


_HELD: dict[Path, int] = {}

#: The files SQLite keeps beside the database.
SIDECARS = ("-wal", "-shm", "-journal")


def refuse_linked_database(path: Path) -> None:
    """Raises :class:`StoreError` when the database or one of SQLite's files beside it is a
    symlink: SQLite would write through it, to wherever a shared directory's author pointed it."""
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SIDECARS)):
        if candidate.is_symlink():
            raise StoreError(
                f"{candidate}: a symlink; scalarize does not write its database through links "
                "(remove it, or move the experiment directory away)"
            )


def hold_directory(directory: Path) -> None:
    """Takes an exclusive lock on ``directory`` for the rest of this process (once per directory);
    raises :class:`StoreError` when another process holds it. The lock dies with the process,
    even with ``kill -9``: a POSIX record lock (``lockf``), which forked children (loader
    workers, which outlive a killed parent by a few seconds) do not inherit, unlike ``flock``."""
    import fcntl
    import os

    key = directory.resolve()
    if key in _HELD:
        return
    descriptor = _open_lock(key / LOCK_NAME)
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EAGAIN or EACCES: held by another process
        other = os.read(descriptor, 32).decode(errors="replace").strip() or "?"
        os.close(descriptor)
        raise StoreError(
            f"output: {directory} is in use by another scalarize command (pid {other}); wait for it to finish "
            "or choose another output"
        ) from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, str(os.getpid()).encode())
    _HELD[key] = descriptor
    for leftover in [*key.glob(".*.tmp"), *((key / "runs").rglob("*.tmp") if (key / "runs").is_dir() else ())]:
        leftover.unlink(missing_ok=True)  # half-written checkpoints and reports of a killed process


def _open_lock(path: Path) -> int:
    """The lock file's descriptor, never through a symlink (``O_NOFOLLOW``): a planted link would
    have it truncate any file the user can write. A link is refused in one line."""
    import errno
    import os

    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if error.errno != errno.ELOOP and not path.is_symlink():
            raise
        raise StoreError(
            f"{path}: a symlink; scalarize does not open its lock file through links "
            "(remove it and run the same command again)"
        ) from None


def release_directories() -> None:
    """Releases every directory this process holds (the end of a command)."""
    import os

    for descriptor in _HELD.values():
        os.close(descriptor)
    _HELD.clear()
