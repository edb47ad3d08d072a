"""The fault-injection matrix: kill -9 at random points, corrupt files, and malformed configs.

    python scripts/fault_matrix.py [--kills 5] [--seed 0] [--only kill,corrupt,config,...] [--out DIR]

* **kill**: for each of train, sweep, pbt, compare and study, an uninterrupted reference run, then
  ``--kills`` runs killed with SIGKILL at a random moment (seeded) and rerun with the same
  command: the rerun must end with exit 0, the database must pass SQLite's integrity check, no
  temporary file may be left, and the metrics and final tables must equal the reference's exactly.
* **corrupt**: truncated and zero-filled checkpoints (one line naming the file, exit 2, the
  database unchanged), a truncated and a garbage ``scalarize.db`` for every command and
  ``export`` (exit 2), the SQLite ``-wal`` file deleted mid-run (the command still finishes and
  its rerun equals the reference), a read-only and a full disk when a tmpfs can be mounted.
* **config**: at least 100 malformed configs and overrides: each must end with exactly one line
  ``scalarize: error: ...`` on stderr, exit 2, within 10 s, and create nothing.
* **symlink**: for every command (and ``pbt replay``, ``export``), every file a first run wrote is
  planted, in a second directory, as a symlink to a file outside: the command must succeed, replace
  the links with its files, and leave the outside untouched; a linked ``scalarize.db``, its
  ``-wal``, a linked ``runs/`` folder and a linked ``.scalarize.lock`` are one line, exit 2.
* **stored-import**: a finished directory's stored configs edited to ``model.target: os:system``
  (and ``benchmark.target``) with a ``touch`` command: ``scalarize.load``, ``pbt replay`` and the
  rerun of every command must never run it (load and replay refuse in one line naming the path).
* **size-bomb**: sizes that would exhaust the machine or the parser (a 10¹⁰-sample benchmark, a
  401-digit integer, 10⁸ Sobol' points, a 5,000-character name, YAML nested 3,000 deep, a zero
  width, booleans in number lists): one line, exit 2, nothing created, within 10 s.
* **contract**: a user's own model, data and task kind that break their contract (the broken
  pieces of ``tests/contract_plugins.py``: a head too narrow or too wide, a forward returning
  only its dict, a 3-tuple or the pair swapped, targets under a wrong task name, a task kind whose
  primary metric is never computed, whose ``compute`` returns a list, with no accumulator, or
  whose loss ignores ``reduction="none"``): one line, exit 2, nothing created.
* **ray** (needs Ray): the two Ray PBT scenarios of ``tests/test_ray_pbt_resume.py``: a driver
  killed after every member's last evaluation finishes on a rerun, and two runs and a killed and
  resumed one make the same decisions (lineage and weights).

Prints one line per case and a JSON summary ``{"tried", "passed", "failed"}``; exits 1 if any
case failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = (
    "name: fm\nbenchmark: {name: multimnist, options: {train_size: 600, test_size: 100}}\n"
    "model: {width: 0.1}\nepochs: 3\nbatch_size: 50\nstl: false\ndevice: cpu\n"
)
SECTIONS = {
    "train": "",
    "sweep": "sweep: {step: 0.5, chunk_size: 2}\n",
    "compare": "compare: {methods: [{name: uw}, {name: pcgrad}]}\n",
    "pbt": "pbt: {population: 3, compare_uniform: false}\n",
    "study": "study: {depths: [1], widths: [0.05, 0.1], sweep: {step: 1.0}}\n",
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


class Matrix:
    def __init__(self) -> None:
        self.tried = self.passed = 0
        self.failures: list[str] = []

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.tried += 1
        self.passed += ok
        if not ok:
            self.failures.append(f"{name}: {detail}")
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f"  ({detail})" if detail and not ok else ""), flush=True)


def command(kind: str, config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "scalarize.cli.main", kind, str(config), f"output={out}", "-q"]


def tables(directory: Path) -> tuple[list, list]:
    with contextlib.closing(sqlite3.connect(directory / "scalarize.db")) as db:
        metrics = sorted(
            db.execute(
                "SELECT run, evaluation, step, split, name, value FROM metrics WHERE split != 'conflict' OR 1"
            ).fetchall()
        )
        final = sorted(db.execute("SELECT run, split, name, value FROM final").fetchall())
    return metrics, final


def integrity(directory: Path) -> str:
    with contextlib.closing(sqlite3.connect(directory / "scalarize.db")) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def run(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)


# -- kill -9 ---------------------------------------------------------------------------------------
def kills(matrix: Matrix, root: Path, count: int, rng: random.Random) -> None:
    for kind, section in SECTIONS.items():
        config = root / f"{kind}.yaml"
        config.write_text(BASE + section)
        reference = root / f"{kind}-reference"
        started = time.perf_counter()
        done = run(command(kind, config, reference))
        duration = time.perf_counter() - started
        if done.returncode != 0:
            matrix.check(f"kill/{kind}/reference", False, done.stderr.strip()[-300:])
            continue
        expected = tables(reference)
        for attempt in range(count):
            out = root / f"{kind}-killed-{attempt}"
            delay = rng.uniform(0.3, duration)
            process = subprocess.Popen(
                command(kind, config, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV
            )
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            rerun = run(command(kind, config, out))
            name = f"kill/{kind}/{attempt} after {delay:.1f}s"
            if rerun.returncode != 0:
                matrix.check(name, False, f"rerun exit {rerun.returncode}: {rerun.stderr.strip()[-300:]}")
                continue
            leftovers = list((out / "runs").rglob("*.tmp")) if (out / "runs").is_dir() else []
            same = tables(out) == expected
            matrix.check(
                name,
                same and not leftovers and integrity(out) == "ok",
                f"same tables: {same}, leftovers: {leftovers}, integrity: {integrity(out)}",
            )


# -- corruption ------------------------------------------------------------------------------------
def one_line_error(done: subprocess.CompletedProcess, *needles: str) -> tuple[bool, str]:
    err = done.stderr
    ok = done.returncode == 2 and err.count("\n") == 1 and err.startswith("scalarize: error: ")
    ok = ok and all(n in err for n in needles)
    return ok, f"exit {done.returncode}: {err.strip()[-300:]}"


def corruption(matrix: Matrix, root: Path) -> None:
    config = root / "corrupt.yaml"
    config.write_text(BASE)
    for damage, transform in (("truncated", lambda b: b[: len(b) // 3]), ("zeroed", lambda b: b"\0" * len(b))):
        out = root / f"checkpoint-{damage}"
        run(command("train", config, out))
        with contextlib.closing(sqlite3.connect(out / "scalarize.db")) as db, db:
            db.execute("UPDATE runs SET status = 'running', finished = NULL")
        before = tables(out)
        checkpoint = out / "runs" / "fm" / "checkpoint.pt"
        checkpoint.write_bytes(transform(checkpoint.read_bytes()))
        ok, detail = one_line_error(run(command("train", config, out)), str(checkpoint), "delete it")
        matrix.check(f"corrupt/checkpoint {damage}", ok and tables(out) == before, detail)
    for kind, section in {**SECTIONS, "export": ""}.items():
        for damage, content in (("truncated", b"SQLite format 3\0" + b"\x17" * 200), ("garbage", os.urandom(4096))):
            out = root / f"db-{kind}-{damage}"
            out.mkdir()
            (out / "scalarize.db").write_bytes(content)
            cfg = root / f"db-{kind}.yaml"
            cfg.write_text(BASE + section)
            args = (
                [sys.executable, "-m", "scalarize.cli.main", "export", str(out), "--csv"]
                if kind == "export"
                else command(kind, cfg, out)
            )
            ok, detail = one_line_error(run(args), "scalarize.db")
            matrix.check(
                f"corrupt/database {damage} ({kind})", ok and (out / "scalarize.db").read_bytes() == content, detail
            )
    wal_deleted(matrix, root, config)
    disks(matrix, root, config)


def wal_deleted(matrix: Matrix, root: Path, config: Path) -> None:
    reference = root / "wal-reference"
    run(command("train", config, reference))
    out = root / "wal"
    process = subprocess.Popen(
        command("train", config, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV
    )
    wal = out / "scalarize.db-wal"
    deadline = time.time() + 120
    while not wal.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.5)
    wal.unlink(missing_ok=True)
    _, err = process.communicate(timeout=600)
    rerun = run(command("train", config, out))
    ok = (
        process.returncode == 0
        and rerun.returncode == 0
        and integrity(out) == "ok"
        and tables(out) == tables(reference)
    )
    matrix.check("corrupt/-wal deleted mid-run", ok, f"exit {process.returncode}/{rerun.returncode}: {err[-200:]}")


def disks(matrix: Matrix, root: Path, config: Path) -> None:
    for name, options, needle in (
        ("read-only", "ro,size=1m", "read-only file system"),
        ("full", "size=600k", "disk is full"),
    ):
        mount = root / f"mount-{name}"
        mount.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True).returncode:
            print(f"skip corrupt/{name} disk: no permission to mount a tmpfs")
            continue
        try:
            big = root / f"{name}.yaml"
            big.write_text(BASE.replace("width: 0.1", "width: 1.0"))
            ok, detail = one_line_error(run(command("train", big, mount / "out")), needle)
            matrix.check(f"corrupt/{name} disk", ok, detail)
        finally:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


# -- malformed configs -----------------------------------------------------------------------------
def malformed_cases() -> list[tuple[str, str, list[str]]]:
    """(label, config text, overrides) for at least 100 malformed inputs."""
    cases = []
    values = {
        "string": "'abc'",
        "negative": "-1",
        "zero": "0",
        "list": "[1, 2]",
        "mapping": "{a: 1}",
        "null": "null",
        "huge": "1e400",
        "bool": "true",
        "nan": ".nan",
    }
    keys = [
        "epochs",
        "batch_size",
        "optimizer.lr",
        "optimizer.momentum",
        "model.width",
        "model.depth",
        "schedule.gamma",
        "steps",
        "eval_every",
        "seed",
        "optimizer.weight_decay",
    ]
    for key in keys:
        for label, value in values.items():
            if (label, key) in {
                ("bool", "seed"),
                ("zero", "seed"),
                ("negative", "seed"),
                ("zero", "optimizer.weight_decay"),
                ("zero", "optimizer.momentum"),
                ("null", "steps"),
                ("null", "eval_every"),
            }:
                continue  # valid values for these keys
            cases.append((f"{key}={label}", BASE, [f"{key}={value}"]))
    for section in ("benchmark", "model", "method", "optimizer", "schedule", "sweep", "pbt", "compare", "study"):
        cases.append((f"unknown key in {section}", BASE, [f"{section}.colour=1"]))
    cases += [
        ("unknown top key", BASE + "colour: red\n", []),
        ("not yaml", "epochs: [1\n", []),
        ("a list", "- 1\n- 2\n", []),
        ("a scalar", "42\n", []),
        ("tab indentation", "model:\n\twidth: 1\n", []),
        ("override without =", BASE, ["epochs"]),
        ("override of a scalar as section", BASE, ["epochs.x=1"]),
        ("unknown benchmark", BASE, ["benchmark.name=imagenet"]),
        ("unknown benchmark option", BASE, ["benchmark.options.size=3"]),
        ("benchmark option of the wrong type", BASE, ["benchmark.options.train_size=abc"]),
        ("unknown family", BASE, ["model.family=transformer"]),
        ("unknown target module", BASE, ["model.target=no_such_module:build"]),
        ("target without colon", BASE, ["model.target=no_colon"]),
        ("unknown method", BASE, ["method.name=magic"]),
        ("unknown method option", BASE, ["method.name=cagrad", "method.options.x=1"]),
        ("cagrad c out of range", BASE, ["method.name=cagrad", "method.options.c=2"]),
        ("weights of the wrong length", BASE, ["method.weights=[1,2,3]"]),
        ("negative weights", BASE, ["method.weights=[-1,2]"]),
        ("zero weights", BASE, ["method.weights=[0,0]"]),
        ("infinite weights", BASE, ["method.weights=[.inf,1]"]),
        ("string weights", BASE, ["method.weights=[a,b]"]),
        ("weights for pcgrad", BASE, ["method.name=pcgrad", "method.weights=[1,1]"]),
        ("unknown objective", BASE, ["benchmark.objectives=[middle]"]),
        ("empty objectives", BASE, ["benchmark.objectives=[]"]),
        ("unknown device", BASE, ["device=tpu"]),
        ("cuda without a GPU", BASE, ["device=cuda"])
        if not _has_cuda()
        else ("bad engine", BASE, ["gradient_engine=x"]),
        ("bad gradient engine", BASE, ["gradient_engine=gramian"]),
        ("bad selection", BASE, ["selection=best"]),
        ("zero threads", BASE, ["threads=0"]),
        ("width 1000", BASE, ["model.width=1000"]),
        ("unknown head", BASE, ["model.head.name=transformer"]),
        ("head for a builder", BASE, ["model.family=linear", "model.head.name=mlp"]),
        ("unknown optimizer", BASE, ["optimizer.name=lamb"]),
        ("unknown schedule", BASE, ["schedule.name=exp"]),
        ("task override of an unknown task", BASE, ["benchmark.tasks.middle.kind=regression"]),
        ("unknown task kind", BASE, ["benchmark.tasks.left.kind=focal"]),
        ("alias bomb", _bomb(), []),
    ]
    return cases


def _has_cuda() -> bool:
    with contextlib.suppress(Exception):
        import torch

        return torch.cuda.is_available()
    return False


def _bomb() -> str:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def configs(matrix: Matrix, root: Path, cases: list[tuple[str, str, list[str]]] | None = None) -> None:
    from scalarize.cli.main import main

    cases = malformed_cases() if cases is None else cases
    root.mkdir(parents=True, exist_ok=True)
    for index, (label, text, overrides) in enumerate(cases):
        kind = next(
            (k for k in ("sweep", "pbt", "compare", "study") if any(o.startswith(k + ".") for o in overrides)), "train"
        )
        config = root / f"bad-{index}.yaml"
        config.write_text(text + SECTIONS[kind] if text == BASE else text)
        out = root / f"bad-{index}"
        err = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main([kind, str(config), f"output={out}", *overrides, "-q"])
            except SystemExit as exit_:
                code = exit_.code
        seconds = time.perf_counter() - started
        text_err = err.getvalue()
        one_line = text_err.count("\n") == 1 and text_err.startswith("scalarize: error: ")
        matrix.check(
            label if "/" in label else f"config/{label}",
            code == 2 and one_line and not out.exists() and seconds < 10,
            f"exit {code}, {seconds:.1f}s, created: {out.exists()}, stderr: {text_err.strip()[-200:]}",
        )
    print(f"{len(cases)} malformed configs and overrides")


# -- size bombs, and a user's pieces that break their contract ----------------------------------------
def size_bomb_cases() -> list[tuple[str, str, list[str]]]:
    deep = "name: fm\nmodel: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"
    return [
        ("size-bomb/train_size 1e10", BASE, ["benchmark.options.train_size=10000000000"]),
        ("size-bomb/epochs of 401 digits", BASE, ["epochs=" + "9" * 401]),
        ("size-bomb/1e8 sobol points", BASE, ["sweep.design=sobol", "sweep.points=100000000"]),
        ("size-bomb/a 5000-character name", BASE, ["name=" + "n" * 5000]),
        ("size-bomb/yaml nested 3000 deep", deep, []),
        ("size-bomb/a zero study width", BASE, ["study.widths=[0]"]),
        ("size-bomb/booleans as weights", BASE, ["method.weights=[true,false]"]),
        ("size-bomb/booleans as seeds", BASE, ["sweep.seeds=[true]"]),
    ]


CONTRACT_BASE = (
    'name: contract\nbenchmark: {target: "contract_plugins:benchmark"}\nmodel: {target: "contract_plugins:net"}\n'
    "epochs: 1\nbatch_size: 16\ndevice: cpu\nstl: false\n"
)
CONTRACT_CASES = [
    ("a head too narrow", ["model.options.a=2"]),
    ("a head too wide", ["model.options.a=6"]),
    (
        "a (trunk, heads) pair with a narrow head",
        ["model.target=contract_plugins:trunk_and_heads", "model.options.a=2"],
    ),
    ("forward returns only its dict", ["model.options.mode=dict"]),
    ("forward returns a 3-tuple", ["model.options.mode=three"]),
    ("forward returns the pair swapped", ["model.options.mode=swapped"]),
    ("targets under a wrong task name", ["benchmark.target=contract_plugins:wrong_names"]),
    *(
        (f"task kind {name}", ["benchmark.target=contract_plugins:kind", f"benchmark.options.name={name}"])
        for name in ("NeverComputed", "ListCompute", "NoAccumulator", "MeanOnly")
    ),
]


def contracts(matrix: Matrix, root: Path) -> None:
    """Each broken piece: one line, exit 2, nothing created (the plugins are found on the path)."""
    plugins = Path(__file__).resolve().parents[1] / "tests"
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(plugins), ENV.get("PYTHONPATH", "")])}
    config = root / "contract.yaml"
    config.write_text(CONTRACT_BASE)
    for index, (label, overrides) in enumerate(CONTRACT_CASES):
        out = root / f"out-{index}"
        done = subprocess.run(
            [sys.executable, "-m", "scalarize.cli.main", "train", str(config), f"output={out}", "-q", *overrides],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        one_line = done.stderr.count("\n") == 1 and done.stderr.startswith("scalarize: error: ")
        matrix.check(
            f"contract/{label}",
            done.returncode == 2 and one_line and not out.exists(),
            f"exit {done.returncode}, created: {out.exists()}, stderr: {done.stderr.strip()[-200:]}",
        )


def ray_scenarios(matrix: Matrix) -> None:
    """The late kill and the determinism of Ray PBT, as their tests run them."""
    try:
        import ray  # noqa: F401
    except ImportError:
        matrix.check("ray/installed", False, "Ray is not installed: pip install 'scalarize[ray]'")
        return
    tests = Path(__file__).resolve().parents[1] / "tests" / "test_ray_pbt_resume.py"
    for name, selector in (
        ("a late kill finishes on a rerun", "killed_after_its_last_evaluation"),
        ("the same decisions, resumed too", "function_of_its_seed"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests), "-k", selector],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=1200,
        )
        matrix.check(f"ray/{name}", done.returncode == 0, done.stdout.strip()[-300:])


# -- symlinks planted in an experiment directory ----------------------------------------------------
DATABASE_FILES = ("scalarize.db", "scalarize.db-wal", "scalarize.db-shm", "scalarize.db-journal", ".scalarize.lock")


def _argv(kind: str, root: Path, out: Path) -> list[str]:
    if kind == "replay":
        return [sys.executable, "-m", "scalarize.cli.main", "pbt", "replay", str(out), "--seeds", "0", "-q"]
    if kind == "export":
        return [sys.executable, "-m", "scalarize.cli.main", "export", str(out), "--csv"]
    config = root / f"{kind}.yaml"
    config.write_text(BASE + SECTIONS[kind])
    return command(kind, config, out)


def _before(kind: str, root: Path, out: Path) -> set[Path]:
    """Runs what ``kind`` reads first (a PBT search for replay and export); the files there."""
    if kind in ("replay", "export"):
        run(_argv("pbt", root, out))
    return {p.relative_to(out) for p in out.rglob("*") if p.is_file()} if out.exists() else set()


def symlinks(matrix: Matrix, root: Path) -> None:
    for kind in (*SECTIONS, "replay", "export"):
        first, second, outside = root / f"{kind}-a", root / f"{kind}-b", root / f"{kind}-outside"
        before = _before(kind, root, first)
        if run(_argv(kind, root, first)).returncode != 0:
            matrix.check(f"symlink/{kind}/reference", False, "the first run failed")
            continue
        written = [
            p.relative_to(first)
            for p in first.rglob("*")
            if p.is_file() and p.name not in DATABASE_FILES and p.relative_to(first) not in before
        ]
        _before(kind, root, second)
        outside.mkdir()
        (outside / "kept").write_text("kept")
        for index, relative in enumerate(written):
            link = second / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            report = relative.parent == Path(".") and relative.suffix in (".md", ".html", ".png", ".csv")
            link.symlink_to(outside / ("kept" if report and index % 2 else f"absent-{index}"))
        done = run(_argv(kind, root, second))
        untouched = sorted(p.name for p in outside.iterdir()) == ["kept"] and (outside / "kept").read_text() == "kept"
        replaced = all((second / r).is_file() and not (second / r).is_symlink() for r in written)
        matrix.check(
            f"symlink/{kind}: {len(written)} planted files",
            done.returncode == 0 and untouched and replaced,
            f"exit {done.returncode}, outside untouched: {untouched}, links replaced: {replaced}: "
            f"{done.stderr.strip()[-300:]}",
        )
    for name in ("scalarize.db", "scalarize.db-wal", ".scalarize.lock", "runs"):
        out, target = root / f"linked-{name.strip('.')}", root / f"target-{name.strip('.')}"
        out.mkdir()
        if name == "runs":
            target.mkdir()
        else:
            target.write_text("kept")
        (out / name).symlink_to(target)
        ok, detail = one_line_error(run(_argv("train", root, out)), "symlink")
        kept = not list(target.iterdir()) if name == "runs" else target.read_text() == "kept"
        matrix.check(f"symlink/linked {name} refused", ok and kept, detail)


# -- import paths stored in a shared directory --------------------------------------------------------
def _plant_command(directory: Path, marker: Path, key: str) -> None:
    with contextlib.closing(sqlite3.connect(directory / "scalarize.db")) as db, db:
        for name, text in db.execute("SELECT name, config FROM runs").fetchall():
            config = json.loads(text)
            config[key].update(target="os:system", options={"command": f"touch {marker}"})
            if key == "benchmark":
                config[key]["name"] = "custom"
            db.execute("UPDATE runs SET config = ?, status = 'running' WHERE name = ?", (json.dumps(config), name))


def stored_imports(matrix: Matrix, root: Path) -> None:
    for kind in SECTIONS:
        out = root / kind
        args = _argv(kind, root, out)
        if run(args).returncode != 0:
            matrix.check(f"stored-import/{kind}/reference", False, "the first run failed")
            continue
        for key in ("model", "benchmark"):
            copy, marker = root / f"{kind}-{key}", root / f"{kind}-{key}.ran"
            shutil.copytree(out, copy)
            _plant_command(copy, marker, key)
            if kind == "pbt":
                ok, detail = one_line_error(run(_argv("replay", root, copy)), "'os:system'", "--trust")
                matrix.check(f"stored-import/pbt replay ({key}.target)", ok and not marker.exists(), detail)
            if kind == "train":
                load = run([sys.executable, "-c", f"import scalarize; scalarize.load({str(copy)!r})"])
                ok = load.returncode != 0 and "'os:system'" in load.stderr and "trust=True" in load.stderr
                matrix.check(
                    f"stored-import/scalarize.load ({key}.target)",
                    ok and not marker.exists(),
                    load.stderr.strip()[-200:],
                )
            rerun = run(_argv(kind, root, copy)[:-2] + [f"output={copy}", "-q"])
            matrix.check(
                f"stored-import/{kind} resumed ({key}.target)",
                rerun.returncode == 0 and not marker.exists(),
                f"exit {rerun.returncode}, ran: {marker.exists()}: {rerun.stderr.strip()[-200:]}",
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="kill,corrupt,config,symlink,stored-import,size-bomb,contract,ray")
    parser.add_argument("--out", help="keep the experiment directories here (default: a temporary one)")
    args = parser.parse_args()
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fault-matrix-"))
    root.mkdir(parents=True, exist_ok=True)
    matrix = Matrix()
    parts = set(args.only.split(","))
    try:
        if "config" in parts:
            configs(matrix, root / "config")
        if "corrupt" in parts:
            (root / "corrupt").mkdir(exist_ok=True)
            corruption(matrix, root / "corrupt")
        if "symlink" in parts:
            (root / "symlink").mkdir(exist_ok=True)
            symlinks(matrix, root / "symlink")
        if "size-bomb" in parts:
            configs(matrix, root / "size-bomb", size_bomb_cases())
        if "contract" in parts:
            (root / "contract").mkdir(exist_ok=True)
            contracts(matrix, root / "contract")
        if "ray" in parts:
            ray_scenarios(matrix)
        if "stored-import" in parts:
            (root / "stored").mkdir(exist_ok=True)
            stored_imports(matrix, root / "stored")
        if "kill" in parts:
            (root / "kill").mkdir(exist_ok=True)
            kills(matrix, root / "kill", args.kills, random.Random(args.seed))
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    summary = {"tried": matrix.tried, "passed": matrix.passed, "failed": len(matrix.failures)}
    print(json.dumps(summary))
    for failure in matrix.failures:
        print("FAILED", failure)
    return 1 if matrix.failures else 0


if __name__ == "__main__":
    sys.exit(main())
