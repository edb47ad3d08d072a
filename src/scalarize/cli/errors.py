"""What the command says when it stops early: one line for bad input and for the environment
(a corrupt file, a full disk, a read-only directory), and the signals that end it.

Bad input and broken files exit with code 2; an interrupt (Ctrl-C, SIGTERM) with 130 / 143 after
one line, and rerunning the same command resumes. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import signal

from scalarize.errors import ScalarizeError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UsageError(ScalarizeError):
    """Raised by commands for bad input that is not a config problem."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def describe(error: BaseException) -> str | None:
    """The one line to print for ``error``, or ``None`` when it is a bug (keep the traceback)."""
    if isinstance(error, FileNotFoundError) and error.filename is None:
        return _first_line(error)
    if isinstance(error, OSError):
        return _describe_os_error(error)
    import sqlite3

    if isinstance(error, sqlite3.DatabaseError):
        return _describe_database_error(error)
    if isinstance(error, ScalarizeError):
        return _first_line(error)
    if isinstance(error, RuntimeError) and str(error).startswith("DataLoader worker ("):
        from scalarize.data.workers import worker_death  # torch's SIGCHLD handler: raised anywhere

        return worker_death(error)
    return None


def _describe_os_error(error: OSError) -> str:
    where = error.filename or "a file"
    if error.errno == errno.ENOSPC:
        return f"{where}: the disk is full; free some space and run the same command again to resume (nothing written before is lost)"
    if error.errno == errno.EROFS:
        return f"{where}: read-only file system; choose a writable output directory (output=...)"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"{where}: permission denied; choose a directory you can write to (output=...)"
    if error.errno == errno.ENOENT:
        return f"{where}: no such file or directory"
    return f"{where}: {error.strerror or _first_line(error)}"


def _describe_database_error(error) -> str:
    text = _first_line(error)
    if "full" in text:
        return "the disk is full while writing the experiment database; free some space and run the same command again"
    if "readonly" in text or "read-only" in text:
        return "the experiment database is on a read-only file system; choose a writable output directory"
    return f"the experiment database is unreadable ({text}); move scalarize.db away to start the experiment over"


#: The signal that interrupted the command, if one did (read by :func:`was_interrupted`).
_received: list[int] = []


def interrupted_code() -> int | None:
    """The exit code of the signal that reached the command (130 Ctrl-C, 143 SIGTERM), if any."""
    if not _received:
        return None
    return EXIT_TERMINATED if _received[0] == signal.SIGTERM else EXIT_INTERRUPTED  # the first one decided


def was_interrupted() -> bool:
    """Whether Ctrl-C or SIGTERM reached the command: an error raised after one (e.g. a library
    that swallowed the ``KeyboardInterrupt`` mid-import and failed on its next import) is the
    interrupt's doing, and is reported as the interrupt."""
    return bool(_received)


def ignore_further_signals() -> None:
    """After an interrupt, the shutdown must not be cut short: a second Ctrl-C or SIGTERM is
    ignored from here to the exit (the interpreter's own finalization restores the default
    handlers, under which a second Ctrl-C killed the process with exit −2)."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def install_signal_handlers() -> None:
    """SIGTERM interrupts the command as Ctrl-C does (one line, the work done so far is kept);
    both are remembered (:func:`was_interrupted`), from this call on."""
    _received.clear()

    def terminate(signum, frame):  # noqa: ARG001 - the signal handler's signature
        _received.append(signum)
        if len(_received) == 1:  # a second signal while the first unwinds: the shutdown goes on
            raise Terminated()

    def interrupt(signum, frame):  # noqa: ARG001
        _received.append(signum)
        if len(_received) == 1:
            raise KeyboardInterrupt()

    try:
        signal.signal(signal.SIGTERM, terminate)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, interrupt)
    except ValueError:  # not the main thread (e.g. called from a test runner's thread)
        pass
