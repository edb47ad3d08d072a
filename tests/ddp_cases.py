"""The runs the data-parallel test trains on 2 gloo processes and in one process (tests/test_ddp.py).

Float64 tiny models on tiny data, 5 steps each. Batches of 15 over 62 training samples: the
shards are uneven (8 and 7 rows) and the fifth batch holds 2 samples (1 per rank), so the
losses' rescaling by the shard sizes is exercised; DWA's epoch hook runs at step 5.
"""

from __future__ import annotations

import torch
from torch import nn

from scalarize.data.benchmark import Benchmark, Split
from scalarize.data.task import Task
from scalarize.methods import build_method
from scalarize.models import build_model
from scalarize.train.config import TrainConfig
from scalarize.train.trainer import Trainer

STEPS = 5

#: name -> (method, options, setting, config overrides, model kind)
CASES: dict[str, tuple[str, dict, str, dict, str]] = {}
for _name in [
    "scalarization",
    "uw",
    "imtl_l",
    "dwa",
    "rlw",
    "gls",
    "stch",
    "pcgrad",
    "gradvac",
    "graddrop",
    "mgda",
    "mgda_ub",
    "cagrad",
    "imtl_g",
    "nash_mtl",
    "fairgrad",
    "aligned_mtl",
    "upgrad",
    "dualproj",
    "config",
    "db_mtl",
    "excess_mtl",
    "sdmgrad",
    "modo",
    "moco",
    "gradient_similarity",
    "metabalance",
    "mtadam",
]:
    CASES[_name] = (_name, {}, "mtl", {}, "mlp")
CASES["scalarization-weighted"] = ("scalarization", {"weights": [0.6, 0.3, 0.1]}, "mtl", {}, "mlp")
CASES["famo-clipped"] = ("famo", {"max_norm": 0.5}, "mtl", {}, "mlp")  # reads the global gradient's norm
CASES["gradnorm"] = ("gradnorm", {}, "mtl", {}, "mlp")
CASES["gradnorm-representation"] = ("gradnorm", {"layer": "representation"}, "mtl", {}, "mlp")
CASES["pcgrad-loop"] = ("pcgrad", {}, "mtl", {"gradient_engine": "loop"}, "mlp")
# a plain module (no head inputs): per-task gradients from each loss, representation row by row
CASES["mgda_ub-plain"] = ("mgda_ub", {"normalization": "l2"}, "mtl", {}, "plain")
CASES["gradnorm-plain"] = ("gradnorm", {}, "mtl", {}, "plain")
CASES["gradnorm-representation-plain"] = ("gradnorm", {"layer": "representation"}, "mtl", {}, "plain")
CASES["pcgrad-plain"] = ("pcgrad", {}, "mtl", {}, "plain")
# MDL: batches drawn from the mixture, per-domain losses (domains absent from a rank's shard)
CASES["mdl-scalarization"] = ("scalarization", {"weights": [0.7, 0.3]}, "mdl", {}, "mlp")
CASES["mdl-uw"] = ("uw", {}, "mdl", {}, "mlp")
CASES["mdl-mgda"] = ("mgda", {}, "mdl", {}, "mlp")
CASES["mdl-famo"] = ("famo", {}, "mdl", {}, "mlp")


def _split(generator: torch.Generator, n: int, setting: str) -> Split:
    x = torch.randn(n, 6, generator=generator, dtype=torch.float64)
    if setting == "mdl":
        return Split(x, {"y": torch.randint(0, 3, (n,), generator=generator)})
    w = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    return Split(
        x,
        {
            "a": torch.tanh(x @ w),
            "b": (x[:, :2] ** 2).sum(1, keepdim=True),
            "c": (x[:, 0] > 0).long() + (x[:, 1] > 0).long(),
        },
    )


def benchmark(setting: str) -> Benchmark:
    g = torch.Generator().manual_seed(7)
    if setting == "mtl":
        tasks = [Task("a", "regression", 2), Task("b", "regression", 1), Task("c", "multiclass", 3)]
        splits = {s: _split(g, n, "mtl") for s, n in (("train", 62), ("val", 20), ("test", 20))}
        return Benchmark("tiny", "mtl", tasks, {"all": splits})
    domains = {
        d: {s: _split(g, n, "mdl") for s, n in (("train", size), ("val", 12), ("test", 12))}
        for d, size in (("left", 40), ("right", 24))
    }
    return Benchmark("tiny-mdl", "mdl", [Task("y", "multiclass", 3)], domains)


class Plain(nn.Module):
    """A model of the contract without head inputs: forward returns (representation, outputs)."""

    def __init__(self, tasks) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 10), nn.Tanh())
        self.heads = nn.ModuleDict({t.name: nn.Linear(10, t.num_outputs) for t in tasks})

    def forward(self, x):
        z = self.trunk(x)
        return z, {name: head(z) for name, head in self.heads.items()}


def trainer(case: str, distributed=None) -> Trainer:
    """The case's trainer (float64: call under ``torch.set_default_dtype(torch.float64)``)."""
    method_name, options, setting, overrides, kind = CASES[case]
    bench = benchmark(setting)
    batch = 15 if setting == "mtl" else 16
    config = TrainConfig(
        name=case,
        steps=STEPS,
        batch_size=batch,
        device="cpu",
        seed=3,
        optimizer={"name": "adam", "lr": 0.01},
        **overrides,
    )
    torch.manual_seed(config.seed)
    method = build_method(method_name, **options)
    method.setup(bench.objectives, bench.setting)
    torch.manual_seed(config.seed)
    model = (
        Plain(bench.tasks)
        if kind == "plain"
        else build_model("mlp", bench.input_shape, bench.tasks, width=0.05, depth=2)
    )
    return Trainer(config, bench, model, method, run_name=case, progress=False, distributed=distributed)


def final_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The model's and the method's tensors after training, by name."""
    state = {f"model.{k}": v.detach().clone() for k, v in trainer.model.state_dict().items()}
    for key, value in trainer.method.state_dict().items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            state[f"method.{key}"] = value.detach().clone()
    return state


def train(case: str, distributed=None) -> dict[str, torch.Tensor]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        run = trainer(case, distributed)
        run.fit()
        return final_state(run)
    finally:
        torch.set_default_dtype(previous)
