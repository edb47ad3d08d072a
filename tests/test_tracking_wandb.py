"""W&B copies of a run's records, in offline mode (nothing needs the network): the run's
``.wandb`` file is read back record by record and compared with the SQLite store."""

from __future__ import annotations

import json
import struct

import pytest

pytest.importorskip("wandb")

from wandb.proto import wandb_internal_pb2  # noqa: E402

from scalarize.experiments.train import run_experiment  # noqa: E402
from scalarize.store.database import Store  # noqa: E402
from scalarize.train.config import ConfigError, TrainConfig, build_config  # noqa: E402
from scalarize.train.trainer import Trainer  # noqa: E402

BENCH = {"name": "synthetic", "options": {"num_tasks": 2, "train_size": 120, "val_size": 40, "test_size": 40}}
HEADER, BLOCK, CHUNK = 7, 32768, 7  # wandb's log format: ':W&B' magic, version; 32 KiB blocks


def _config(tmp_path, **wandb):
    return TrainConfig(
        name="t",
        benchmark=BENCH,
        model={"width": 0.125, "depth": 1},
        epochs=3,
        batch_size=40,
        method={"weights": [0.7, 0.3]},
        stl=False,
        device="cpu",
        output=str(tmp_path / "out"),
        tracking={"wandb": {"project": "p", "mode": "offline", **wandb}},
    )


def _records(path):
    """The protobuf records of a ``.wandb`` file (LevelDB log chunks: crc, length, type, data)."""
    data, offset, pending, out = path.read_bytes(), HEADER, b"", []
    assert data[:4] == b":W&B"
    while offset + CHUNK <= len(data):
        room = BLOCK - offset % BLOCK
        if room < CHUNK:
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + CHUNK])
        pending += data[offset + CHUNK : offset + CHUNK + length]
        offset += CHUNK + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def _read(folder):
    """Per run id: its history rows, summary, config, run record and exit code."""
    runs = {}
    for path in sorted(folder.rglob("run-*.wandb")):
        found = runs.setdefault(path.stem.removeprefix("run-"), {"history": [], "summary": {}, "config": {}})
        for record in _records(path):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                found["history"].append(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                )
            elif kind == "summary":
                found["summary"].update(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.summary.update}
                )
            elif kind == "config":
                found["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
            elif kind == "run":
                found["run"] = record.run
                found["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "exit":
                found["exit"] = record.exit.exit_code
    return runs


def test_every_evaluation_reaches_wandb_as_in_the_store(tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    original, calls = Trainer.save_checkpoint, []

    def killed_before_the_second_checkpoint(self):
        calls.append(1)
        if len(calls) == 2:
            monkeypatch.setattr(Trainer, "save_checkpoint", original)
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(Trainer, "save_checkpoint", killed_before_the_second_checkpoint)
    config = _config(tmp_path, tags=["mine"])
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, progress=False)
    run_experiment(config, progress=False)  # resumes: the same W&B run id
    with Store(tmp_path / "out") as store:
        history, weights, final = store.history("t", "val"), store.weights("t"), store.final("t")
    runs = _read(tmp_path / "wandb")
    assert len(runs) == 1  # both processes wrote to the one run
    (run,) = runs.values()
    logged = {row["step"]: row["val/task0/mse"] for row in run["history"] if "val/task0/mse" in row}
    assert logged == {s: pytest.approx(v, rel=1e-6) for s, v in history["task0/mse"]}  # the last write per step
    assert {row["step"] for row in run["history"] if "weights/task0" in row} == {s for s, _ in weights["task0"]}
    assert run["summary"]["final/test/task1/mse"] == pytest.approx(final["test"]["task1/mse"])
    assert run["summary"]["scalarize.status"] == "completed" and run["exit"] == 0
    assert run["config"]["method"]["weights"] == [0.7, 0.3] and "tracking" not in run["config"]
    assert run["run"].display_name == "t" and run["run"].project == "p" and run["run"].job_type == "main"
    assert "mine" in run["run"].tags and run["run"].run_group == "out"


def test_wandb_keys_are_checked_like_every_other_key(tmp_path):
    with pytest.raises(ConfigError, match="tracking.wandb.mode: "):
        build_config({"tracking": {"wandb": {"mode": "sometimes"}}})
    with pytest.raises(ConfigError, match="tracking.wandb.projekt: unknown key; allowed: project, entity"):
        build_config({"tracking": {"wandb": {"projekt": "p"}}})


def test_wandb_needs_the_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"needs the wandb package: pip install 'scalarize\[wandb\]'"):
        build_config({"tracking": {"wandb": {}}})
