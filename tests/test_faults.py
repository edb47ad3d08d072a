"""Faults a command survives: corrupt checkpoints and databases, a read-only or full disk, a second
command on the same directory, signals, leftovers of a kill, and runs that all diverge. Each ends
with one line, exit code 2 (130/143 for signals), and nothing already written is lost."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalarize.cli.main import main

TINY = (
    "name: f\nbenchmark: {name: multimnist, options: {train_size: 300, test_size: 100}}\n"
    "model: {width: 0.05}\nepochs: 2\nbatch_size: 50\nstl: false\ndevice: cpu\n"
)
SECTIONS = {
    "train": "",
    "sweep": "sweep: {step: 0.5}\n",
    "compare": "compare: {methods: [{name: uw}]}\n",
    "pbt": "pbt: {population: 2, compare_uniform: false}\n",
    "study": "study: {depths: [1], widths: [0.05], sweep: {step: 1.0}}\n",
}


def _config(tmp_path, command="train", extra=""):
    path = tmp_path / f"{command}.yaml"
    path.write_text(TINY + SECTIONS[command] + extra)
    return str(path)


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scalarize: error: "), err
    return err


def _rows(database):
    with sqlite3.connect(database) as db:
        return sorted(db.execute("SELECT run, evaluation, split, name, value FROM metrics").fetchall())


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 3], lambda b: b"\0" * len(b)], ids=["truncated", "zeroed"])
def test_a_corrupt_checkpoint_is_named_and_the_rest_is_kept(tmp_path, capsys, damage):
    out = tmp_path / "out"
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 0
    checkpoint = out / "runs" / "f" / "checkpoint.pt"
    with sqlite3.connect(out / "scalarize.db") as db:  # as if killed before the end
        db.execute("UPDATE runs SET status = 'running', finished = NULL")
    before = _rows(out / "scalarize.db")
    checkpoint.write_bytes(damage(checkpoint.read_bytes()))
    capsys.readouterr()
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 2
    err = _error(capsys)
    assert str(checkpoint) in err and "delete it to retrain that run" in err
    assert _rows(out / "scalarize.db") == before and (out / "runs" / "f" / "model.pt").is_file()
    checkpoint.unlink()
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 0


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    import torch

    out = tmp_path / "out"
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 0
    with sqlite3.connect(out / "scalarize.db") as db:
        db.execute("UPDATE runs SET status = 'running', finished = NULL")
    marker = tmp_path / "pwned"
    torch.save({"payload": _Evil(str(marker))}, out / "runs" / "f" / "checkpoint.pt")
    capsys.readouterr()
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 2
    assert "refused" in _error(capsys) and not marker.exists()


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("command", [*SECTIONS, "export"])
@pytest.mark.parametrize(
    "content", [b"", b"SQLite format 3\0" + b"\x17" * 300, b"garbage" * 100], ids=["empty", "truncated", "garbage"]
)
def test_a_broken_database_is_one_line_for_every_command(tmp_path, capsys, command, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / "scalarize.db").write_bytes(content)
    if command == "export":
        code = main(["export", str(out), "--csv"])
    else:
        code = main([command, _config(tmp_path, command), f"output={out}", "-q"])
    if content == b"":  # an empty file is a new SQLite database: the command just runs
        assert code == 0
        return
    assert code == 2
    err = _error(capsys)
    assert "scalarize.db" in err and ("not a readable scalarize database" in err or "unreadable" in err), err
    assert (out / "scalarize.db").read_bytes() == content


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def mounted(tmp_path):
    mounts = []

    def mount(name: str, options: str) -> Path:
        path = tmp_path / name
        if not _mount_tmpfs(path, options):
            pytest.skip("no permission to mount a tmpfs here")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)  # lazily: a test may still hold a file


def test_a_read_only_output_directory(tmp_path, capsys, mounted):
    out = mounted("readonly", "ro,size=1m") / "out"
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 2
    assert "read-only file system" in _error(capsys)


def test_a_full_disk_keeps_what_was_written(tmp_path, capsys, mounted):
    disk = mounted("small", "size=1200k")
    out = disk / "out"
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 0
    before = _rows(out / "scalarize.db")
    capsys.readouterr()
    big = _config(tmp_path, extra="model: {width: 1.0}\n").replace("train.yaml", "train.yaml")
    assert main(["train", big, f"output={out}", "name=g", "-q"]) == 2
    assert "disk is full" in _error(capsys)
    assert _rows(out / "scalarize.db")[: len(before)] == before or set(before) <= set(_rows(out / "scalarize.db"))
    assert (out / "runs" / "f" / "checkpoint.pt").is_file() and not list((out / "runs").rglob("*.tmp"))


def test_a_second_command_on_the_same_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from scalarize.store.database import "
            "hold_directory; hold_directory(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 2
        assert f"in use by another scalarize command (pid {holder.pid})" in _error(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 0  # the lock died with its process


def test_leftovers_of_a_killed_checkpoint_write_are_removed(tmp_path):
    out = tmp_path / "out"
    leftover = out / "runs" / "f" / "checkpoint.12345.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a checkpoint")
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 0
    assert not leftover.exists()


def test_a_pbt_whose_members_all_diverge_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    config = _config(tmp_path, "pbt", "optimizer: {name: sgd, lr: 1.0e+30}\n")
    assert main(["pbt", config, f"output={out}", "-q"]) == 2
    assert "every member of the population diverged" in _error(capsys)


def _spawn(tmp_path, out, extra=""):
    config = tmp_path / "slow.yaml"
    config.write_text(TINY.replace("train_size: 300", "train_size: 3000").replace("epochs: 2", "epochs: 8") + extra)
    return subprocess.Popen(
        [sys.executable, "-m", "scalarize.cli.main", "train", str(config), f"output={out}", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigterm_is_an_interrupt_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "out"
    process = _spawn(tmp_path, out)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
        try:
            with sqlite3.connect(f"file:{out / 'scalarize.db'}?mode=ro", uri=True) as db:
                if db.execute("SELECT COUNT(DISTINCT evaluation) FROM metrics").fetchone()[0] >= 2:
                    break
        except sqlite3.OperationalError:
            continue
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143 and "interrupted; run the same command again to resume" in err
    assert "Traceback" not in err
    rerun = _spawn(tmp_path, out)
    rerun.communicate(timeout=600)
    assert rerun.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.2, 0.6, 1.5])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, delay):
    process = _spawn(tmp_path, tmp_path / "out")
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    if "Traceback" in err:  # only while the interpreter itself starts (its site module, runpy),
        # before any scalarize code runs, as on a loaded machine: Python's own, outside our reach
        assert not re.search(r'File "[^"]*(/src/scalarize/|site-packages/scalarize/)', err), err
        assert err.rstrip().endswith("KeyboardInterrupt"), err
        return
    assert process.returncode in (130, 0) or process.returncode == -signal.SIGINT, (process.returncode, err)


class _Panic(BaseException):
    """As pyo3's PanicException: not an Exception."""


@pytest.mark.parametrize("failure", [ImportError("cannot load module more than once per process"), _Panic("panicked")])
def test_an_error_caused_by_a_swallowed_ctrl_c_is_reported_as_the_interrupt(tmp_path, monkeypatch, capsys, failure):
    """A library that swallows the KeyboardInterrupt mid-import fails on its next import (numpy's
    "cannot load module more than once", a Rust extension's panic): the command still says
    "interrupted" in one line with exit 130, not the library's traceback."""
    import scalarize.cli.main as cli

    def swallowing(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass
        raise failure

    monkeypatch.setattr(cli, "cmd_train", swallowing)
    assert main(["train", _config(tmp_path), f"output={tmp_path / 'out'}", "-q"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "scalarize: interrupted; run the same command again to resume", err


def test_an_error_without_an_interrupt_keeps_its_traceback(tmp_path, monkeypatch):
    import scalarize.cli.main as cli

    def failing(args):
        raise ImportError("a bug")

    monkeypatch.setattr(cli, "cmd_train", failing)
    with pytest.raises(ImportError, match="a bug"):
        main(["train", _config(tmp_path), f"output={tmp_path / 'out'}", "-q"])


@pytest.mark.parametrize("module", ["scalarize", "scalarize.cli.main"])
def test_ctrl_c_while_the_command_is_imported_is_one_line(tmp_path, module):
    """Ctrl-C while the command's own modules import (simulated: the first import of argparse
    raises it) ends in the one line and 130, through ``python -m scalarize`` (as the ``scalarize``
    script, :func:`scalarize.cli.run`) and ``python -m scalarize.cli.main``."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import builtins\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'argparse':\n"
        "        builtins.__import__ = real\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim), *sys.path]))
    done = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert done.stderr.strip() == "scalarize: interrupted; run the same command again to resume", done.stderr


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optimizer.lr=.inf"], "optimizer.lr: Input should be a finite number"),
        (["model.width=1000"], "billion parameters"),
    ],
)
def test_values_out_of_range_are_refused_before_training(tmp_path, capsys, overrides, message):
    out = tmp_path / "out"
    assert main(["train", _config(tmp_path), f"output={out}", *overrides, "-q"]) == 2
    assert message in _error(capsys)
    assert not out.exists()


def test_huge_but_finite_weights_are_a_direction(tmp_path):
    out = tmp_path / "out"
    assert main(["train", _config(tmp_path), f"output={out}", "method.weights=[1e308, 1e308]", "-q"]) == 0


def test_an_alias_bomb_is_refused_at_once(tmp_path, capsys):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    config = tmp_path / "bomb.yaml"
    config.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    assert main(["train", str(config), f"output={tmp_path / 'out'}"]) == 2
    assert time.perf_counter() - started < 5
    assert "once its aliases are expanded" in _error(capsys)


def test_the_lock_dies_with_its_process_even_when_forked_children_live_on(tmp_path, capsys):
    """Loader workers are forked children that outlive a killed parent by a few seconds: they
    must not keep the directory locked (a rerun right after kill -9 resumes)."""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time; from pathlib import Path; from scalarize.store.database import "
            "hold_directory; hold_directory(Path(sys.argv[1])); child = os.fork()\n"
            "if child == 0:\n    time.sleep(60); os._exit(0)\n"
            "print(child, flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(holder.stdout.readline())
    holder.kill()
    holder.wait()
    try:
        os.kill(child, 0)  # the child still runs
        assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 0
    finally:
        os.kill(child, signal.SIGKILL)
