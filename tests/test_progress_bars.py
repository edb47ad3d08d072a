"""``progress`` is a behaviour, not a display detail: a trainer or a stacked population shows a
bar on stderr when asked to, and writes nothing there when not (``-q``, or a data-parallel rank
other than 0). The bar's other arguments are display only (``# pragma: no mutate`` in the code)."""

from __future__ import annotations

import pytest
import torch

from scalarize.data import load_benchmark
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.population import Member, StackedPopulation
from scalarize.train import TrainConfig, Trainer

OPTIONS = {"train_size": 60, "test_size": 30}
SETTINGS = {
    "benchmark": {"name": "multimnist", "options": OPTIONS},
    "model": {"width": 0.05, "depth": 1},
    "steps": 4,
    "eval_every": 2,
    "batch_size": 30,
    "stl": False,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("multimnist", **OPTIONS)


def _trainer(bench, progress):
    torch.manual_seed(0)
    model = build_model("mlp", bench.input_shape, bench.tasks, 0.05, 1)
    return Trainer(TrainConfig(**SETTINGS), bench, model, Scalarization(), run_name="barred", progress=progress)


@pytest.mark.parametrize("progress", [True, False])
def test_a_trainer_shows_its_bar_only_when_asked(bench, capsys, progress):
    _trainer(bench, progress).fit()
    err = capsys.readouterr().err
    assert ("barred" in err and "/4 [" in err) if progress else err == "", err


def test_a_rank_other_than_0_shows_no_bar(bench, capsys, monkeypatch):
    monkeypatch.setattr(Trainer, "is_writer", property(lambda self: False))
    _trainer(bench, True).fit()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("progress", [True, False])
def test_a_stacked_population_shows_its_bar_only_when_asked(bench, capsys, progress):
    base = TrainConfig(**SETTINGS)
    members = [Member(f"m{i}", base.model_copy(update={"seed": i})) for i in range(2)]
    StackedPopulation(members, bench, progress=progress).fit()
    err = capsys.readouterr().err
    assert "/4 [" in err if progress else err == "", err


class Bars:
    """Records every tqdm bar a module makes (the bars themselves draw as usual)."""

    def __init__(self, monkeypatch, module) -> None:
        import tqdm as tqdm_module

        self.made: list = []
        made = self.made

        class Recorded(tqdm_module.tqdm):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                made.append(self)

        monkeypatch.setattr(module, "tqdm", Recorded)


def test_each_bar_counts_every_step(bench, monkeypatch):
    """The bar follows the training: at the end it has counted every step, once (both engines
    draw it through the run loop's ``progress_bar``)."""
    from scalarize.train import loop

    bars = Bars(monkeypatch, loop)
    _trainer(bench, True).fit()
    base = TrainConfig(**SETTINGS)
    StackedPopulation(
        [Member(f"m{i}", base.model_copy(update={"seed": i})) for i in range(2)], bench, progress=True, label="stacked"
    ).fit()
    assert [(bar.desc, bar.n, bar.total) for bar in bars.made] == [("barred", 4, 4), ("stacked", 4, 4)]
