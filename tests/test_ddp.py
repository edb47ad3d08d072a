"""Data-parallel training (train/distributed.py) on real gloo processes started by torchrun.

The core claim: N ranks at batch B/N make the update one process makes at batch B, for every kind
of method (loss space, per-task gradients, representation gradients, an own optimizer, MDL
mixtures). tests/ddp_worker.py trains the cases of tests/ddp_cases.py on 2 processes; this test
trains them in one process and compares the parameters after 5 steps (float64, to 1e-6).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scalarize.cli.main import main
from scalarize.data.sampling import EpochSampler, MixtureSampler
from scalarize.train import distributed
from scalarize.train.losses import objective_losses

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"
sys.path.insert(0, str(TESTS))
from ddp_cases import CASES, benchmark, train  # noqa: E402

#: The methods the issue names, and the ones that read reduced quantities in other ways.
FAST = [
    "scalarization",
    "uw",
    "famo-clipped",
    "pcgrad",
    "mgda",
    "cagrad",
    "nash_mtl",
    "gradnorm",
    "metabalance",
    "mgda_ub",
    "gradnorm-representation",
    "mdl-scalarization",
    "mdl-mgda",
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=distributed._loopback_interface() or "lo", TQDM_DISABLE="1")
    return env


def _torchrun(out: Path, cases: list[str]) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(TESTS / "ddp_worker.py"),
        str(out),
        *cases,
    ]
    return subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _check_equal_updates(tmp_path: Path, cases: list[str]) -> None:
    launch = _torchrun(tmp_path, cases)  # the references train meanwhile, on the other core
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        references = {case: train(case) for case in cases}
    finally:
        torch.set_num_threads(threads)
    output, _ = launch.communicate(timeout=600)
    assert launch.returncode == 0, output[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    initial = _initial_states(cases)
    for case in cases:
        reference = references[case]
        assert set(ranks[0][case]) == set(reference), case
        for key, expected in reference.items():
            torch.testing.assert_close(
                ranks[0][case][key], expected, rtol=0, atol=1e-6, msg=lambda m, c=case, k=key: f"{c}: {k}: {m}"
            )
            assert torch.equal(ranks[1][case][key], ranks[0][case][key]), f"{case}: rank 1 differs on {key}"
        moved = max((reference[k] - initial[case][k]).abs().max().item() for k in initial[case])
        assert moved > 1e-3, f"{case}: the model did not train"


def _initial_states(cases: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    from ddp_cases import trainer

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = {}
        for case in cases:
            model = trainer(case).model
            out[case] = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
        return out
    finally:
        torch.set_default_dtype(previous)


def test_two_gloo_processes_make_the_update_of_one_process_at_the_full_batch(tmp_path):
    _check_equal_updates(tmp_path, FAST)


@pytest.mark.slow
def test_every_method_makes_the_same_update_on_two_processes(tmp_path):
    _check_equal_updates(tmp_path, [c for c in CASES if c not in FAST])


def test_the_update_differs_from_one_process_at_the_shard_batch():
    """The equality above is not an accident of these tiny runs: training on what one rank sees
    (half the batch) ends elsewhere."""
    import ddp_cases

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        full = train("pcgrad")
        run = ddp_cases.trainer("pcgrad")
        run.config = run.config.model_copy(update={"batch_size": 8})
        run.sampler = EpochSampler(run.benchmark.split("train"), 8, run.config.seed + 1)
        run.fit()
        half = ddp_cases.final_state(run)
    finally:
        torch.set_default_dtype(previous)
    assert max((full[k] - half[k]).abs().max().item() for k in full) > 1e-3


# -- the shards of a batch ------------------------------------------------------------------------


def test_shards_of_an_epoch_batch_are_disjoint_and_cover_it():
    bench = benchmark("mtl")
    split = bench.split("train")
    plain = EpochSampler(split, 15, 4)
    shards = [distributed.ShardedSampler(EpochSampler(split, 15, 4), r, 2) for r in (0, 1)]
    for _ in range(9):  # across an epoch boundary (5 batches per epoch, the last of 2 samples)
        whole = plain.next_index()
        parts = [s.shard(s.sampler.next_draw()).groups[0][1] for s in shards]
        assert sorted(parts[0].tolist() + parts[1].tolist()) == sorted(whole.tolist())
        assert not set(parts[0].tolist()) & set(parts[1].tolist())
        assert abs(len(parts[0]) - len(parts[1])) <= 1
    state = shards[0].state_dict()
    batch = shards[0].next_batch()
    shards[0].load_state_dict(state)
    again = shards[0].next_batch()
    assert torch.equal(batch.inputs, again.inputs) and torch.equal(batch.total, again.total)


def test_mixture_shards_draw_disjoint_streams_with_the_same_ratios():
    bench = benchmark("mdl")
    splits = [d["train"] for d in bench.domains.values()]
    weights = torch.tensor([0.8, 0.2])
    samplers = []
    for rank in (0, 1):
        sampler = distributed.ShardedSampler(MixtureSampler(splits, 64, 5), rank, 2)
        sampler.set_weights(weights)
        samplers.append(sampler)
    plain = MixtureSampler(splits, 64, 5)
    plain.set_weights(weights)
    drawn = torch.zeros(2, 2)
    for _ in range(40):
        whole = plain.next_batch()
        batches = [s.next_batch() for s in samplers]
        assert torch.equal(batches[0].total, whole.counts) and torch.equal(batches[1].total, whole.counts)
        assert torch.equal(batches[0].counts + batches[1].counts, whole.counts)
        rows = sorted(torch.cat([b.inputs for b in batches]).sum(1).tolist())
        assert rows == pytest.approx(sorted(whole.inputs.sum(1).tolist()))  # the same samples, split
        for rank, batch in enumerate(batches):
            drawn[rank] += batch.counts
    ratios = drawn / drawn.sum(1, keepdim=True)
    assert ratios[0].tolist() == pytest.approx([0.8, 0.2], abs=0.03)
    assert ratios[1].tolist() == pytest.approx(ratios[0].tolist(), abs=0.01)  # the same mixture on each


def test_shards_keep_each_sample_s_augmentation():
    """With crops and flips, the shards' images are the whole batch's augmented images, split."""
    from scalarize.data.augment import Augmentation
    from scalarize.data.benchmark import Split

    images = torch.rand(30, 3, 8, 8, dtype=torch.float64)
    split = Split(images, {"t": torch.arange(30)})
    augment = Augmentation(crop=2, flip=True)
    plain = EpochSampler(split, 10, 3, augment)
    shards = [distributed.ShardedSampler(EpochSampler(split, 10, 3, augment), r, 2) for r in (0, 1)]
    for _ in range(4):
        whole = plain.next_batch()
        parts = [s.next_batch() for s in shards]
        by_label = {int(t): x for t, x in zip(whole.targets["t"], whole.inputs)}
        for part in parts:
            for t, x in zip(part.targets["t"], part.inputs):
                assert torch.equal(x, by_label.pop(int(t)))
        assert not by_label


@pytest.mark.parametrize("setting", ["mtl", "mdl"])
def test_the_mean_of_the_shard_losses_is_the_batch_loss(setting):
    bench = benchmark(setting)
    splits = [d["train"] for d in bench.domains.values()]
    make = (lambda: EpochSampler(splits[0], 15, 1)) if setting == "mtl" else (lambda: MixtureSampler(splits, 15, 1))
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 3, dtype=torch.float64)

    def outputs(x):
        return {t.name: head(x)[:, : t.num_outputs] for t in bench.tasks}

    whole = make().next_batch()
    expected = objective_losses(bench, outputs(whole.inputs), whole.targets, whole.counts)
    shards = [distributed.ShardedSampler(make(), r, 3).next_batch() for r in range(3)]
    losses = [distributed.shard_losses(bench, outputs(b.inputs), b.targets, b.counts, b.total, 3) for b in shards]
    torch.testing.assert_close(torch.stack(losses).mean(0), expected, rtol=1e-12, atol=1e-12)


# -- bad input -------------------------------------------------------------------------------------


CONFIG = """name: tiny
benchmark: {name: synthetic, options: {num_tasks: 2, input_dim: 8, output_dim: 2, train_size: 480, val_size: 60,
                                       test_size: 60}}
model: {family: mlp, width: 0.25, depth: 2}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
batch_size: 48
epochs: 2
device: cpu
"""


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(CONFIG + f"output: {tmp_path / 'out'}\n" + extra)
    return path


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--nproc", "0"], "--nproc: must be a positive integer, got 0"),
        (["--nproc", "2", "--dist-backend", "nccl"], "--dist-backend nccl: needs CUDA GPUs"),
        (["--nproc", "2", "batch_size=1"], "batch_size: 1 is smaller than the 2 processes"),
        (["--nproc", "5", "batch_size=68"], "batch_size: the last batch of each epoch holds 4 sample(s)"),
    ],
)
def test_bad_process_settings_end_in_one_line(tmp_path, capsys, arguments, message):
    if "nccl" in arguments and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code = main(["train", str(_config(tmp_path)), "-q", *arguments])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("scalarize: error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_other_commands_refuse_to_run_under_torchrun(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    config = _config(tmp_path, "sweep: {step: 0.5}\n")
    assert main(["sweep", str(config), "-q"]) == 2
    assert "only `scalarize train` runs on several processes" in capsys.readouterr().err


# -- the command, killed and resumed ---------------------------------------------------------------


def _workers(launcher: subprocess.Popen) -> dict[int, psutil.Process]:  # noqa: F821
    import psutil

    found = {}
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            rank = child.environ().get("RANK")
        except psutil.Error:
            continue
        if rank is not None and "scalarize" in " ".join(child.cmdline()):
            found[int(rank)] = child
    return found


def _launch(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scalarize", "train", str(config), "--nproc", "2", "-q"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill_rank_after_a_checkpoint(config: Path, checkpoint: Path, rank: int) -> str:
    before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
    launcher = _launch(config)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and launcher.poll() is None:
        if checkpoint.exists() and checkpoint.stat().st_mtime_ns != before:
            break
        time.sleep(0.02)
    assert launcher.poll() is None, "the run ended before it could be killed: " + launcher.communicate()[0][-2000:]
    workers = _workers(launcher)
    assert sorted(workers) == [0, 1]
    os.kill(workers[rank].pid, signal.SIGKILL)
    output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode != 0, output[-2000:]
    return output


@pytest.mark.slow
def test_killed_ranks_resume_and_end_as_one_process(tmp_path):
    """kill -9 of rank 1, then of rank 0 (each after a checkpoint), then the same command
    finishes: the run, its single-task baselines and the report are written once, with the
    numbers of one process trained on the full batches."""
    from scalarize.experiments.train import load_train_config, run_experiment
    from scalarize.store import Store

    config = _config(tmp_path, "steps: 300\neval_every: 50\nstl: true\n")
    checkpoint = tmp_path / "out" / "runs" / "tiny" / "checkpoint.pt"
    _kill_rank_after_a_checkpoint(config, checkpoint, rank=1)
    _kill_rank_after_a_checkpoint(config, checkpoint, rank=0)
    finished = subprocess.run(
        [sys.executable, "-m", "scalarize", "train", str(config), "--nproc", "2", "-q"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    assert finished.stdout.count("report: ") == 1  # rank 0 alone reports

    one = load_train_config(config, [f"output={tmp_path / 'one'}"])
    single = run_experiment(one, progress=False)
    with Store(tmp_path / "out") as store:
        runs = {r["name"]: r for r in store.runs()}
        assert {n: r["status"] for n, r in runs.items()} == {
            "tiny": "completed",
            "stl-task0": "completed",
            "stl-task1": "completed",
        }
        for name, result in [("tiny", single.main), *((f"stl-{k}", v) for k, v in single.stl.items())]:
            final = store.final(name)["test"]
            for metric, value in result.test.items():
                assert final[metric] == pytest.approx(value, rel=1e-4), (name, metric)
            assert all(len(points) == 6 for points in store.history(name, "val").values())  # no evaluation twice
    assert (tmp_path / "out" / "report.md").is_file()
