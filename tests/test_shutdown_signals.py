"""Signals at shutdown (issue 24, item 7): a second Ctrl-C while the first one unwinds ends in the
same one line and exit 130 (no traceback, no −2), and a rank killed under ``--nproc`` is reported as
killed, not as an interrupt nobody made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

from scalarize.train import distributed

CONFIG = (
    "name: sig\nbenchmark: {name: multimnist, options: {train_size: 600, test_size: 100}}\n"
    "model: {width: 0.1}\nepochs: 200\nbatch_size: 20\nstl: false\ndevice: cpu\n"
)


@pytest.mark.slow
def test_a_double_ctrl_c_ends_in_one_line_and_exit_130(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "scalarize.cli.main", "train", str(config), f"output={out}", "-q"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not (out / "runs").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # training, well past the imports
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.count("interrupted; run the same command again to resume") == 1, err


def _failure(rank: int, exitcode: int, at: int) -> ProcessFailure:
    failure = ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=exitcode, error_file="/nonexistent")
    failure.timestamp = at
    return failure


@pytest.mark.parametrize(
    ("failures", "code", "line"),
    [
        # rank 1 killed first (kill -9, the OOM killer); the launcher then ended rank 0 (143)
        ({0: _failure(0, 143, 2), 1: _failure(1, -9, 1)}, 1, "process 1 was killed (SIGKILL)"),
        # an interrupt every rank took: its code, and the ranks said it themselves (no line)
        ({0: _failure(0, 130, 1), 1: _failure(1, 130, 1)}, 130, None),
        # bad input on rank 0: its code (2), said in its own line
        ({0: _failure(0, 2, 1)}, 2, None),
    ],
)
def test_a_killed_rank_is_reported_as_killed(monkeypatch, failures, code, line):
    def launch(config, entrypoint):
        def run(*arguments):
            raise ChildFailedError("scalarize", failures)

        return run

    monkeypatch.setattr("torch.distributed.launcher.api.elastic_launch", launch)
    said: list[str] = []
    assert distributed.launch(["c.yaml"], 2, log=said.append) == code
    if line is None:
        assert said == []
    else:
        assert len(said) == 1 and line in said[0] and said[0].startswith("scalarize: error: training stopped")
