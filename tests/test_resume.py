"""Resuming at any evaluation equals the uninterrupted run, for every method's state (learned
weights, moments, running averages, generators), both samplers (MTL epochs, MDL mixtures) and
both engines; the restore is checked parameter by parameter, bit for bit."""

import pytest
import torch

from scalarize.data import load_benchmark
from scalarize.methods import available_methods, build_method
from scalarize.methods.registry import method_class
from scalarize.models import build_model
from scalarize.population import StackedPopulation
from scalarize.train import RunSpec, TrainConfig, Trainer

SKIP = {"frozen", "scheduled_scalarization", "cosmos"}  # need another run's trajectory / a PBT schedule
MTL = ("multimnist", {"train_size": 90, "test_size": 30})
MDL = ("digits", {})


@pytest.fixture(scope="module")
def benches():
    return {name: load_benchmark(name, **options) for name, options in (MTL, MDL)}


def _trainer(bench, name, path, setting_seed=0):
    torch.manual_seed(setting_seed)
    method = build_method(name)
    torch.manual_seed(setting_seed)
    model = build_model("mlp", bench.input_shape, bench.tasks, width=0.05, depth=1)
    config = TrainConfig(
        steps=7, eval_every=2, batch_size=30, device="cpu", schedule={"name": "cosine"}, optimizer={"lr": 0.01}
    )
    return Trainer(config, bench, model, method, checkpoint_path=path, progress=False)


def _state(trainer):
    return (
        [p.detach().clone() for p in trainer.model.parameters()],
        {k: v for k, v in trainer.method.state_dict().items()},
        trainer.sampler.state_dict(),
    )


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


MDL_METHODS = ["scalarization", "uw", "famo", "pcgrad", "mgda", "nash_mtl", "rlw"]


def _own_setting(name: str) -> str:
    """``mtl``, or ``mdl`` for a method whose class runs in MDL only (its ``settings``: the mixtures)."""
    return "mtl" if "mtl" in getattr(method_class(name), "settings", ("mtl",)) else "mdl"


@pytest.mark.parametrize(
    "name, setting",
    [(n, _own_setting(n)) for n in sorted(set(available_methods()) - SKIP)] + [(n, "mdl") for n in MDL_METHODS],
)
def test_resuming_equals_the_uninterrupted_run(benches, tmp_path, one_thread, interrupt_at_checkpoint, name, setting):
    """Interrupted after its second evaluation (step 4: mid-epoch, after the first epoch's end
    hooks), resumed from the checkpoint: the same parameters, method state, sampler state and
    history as the run that was never interrupted."""
    bench = benches["multimnist" if setting == "mtl" else "digits"]
    reference = _trainer(bench, name, None)
    reference.fit()
    interrupt_at_checkpoint(Trainer, 2)
    with pytest.raises(KeyboardInterrupt):
        _trainer(bench, name, tmp_path / "ck.pt").fit()
    resumed = _trainer(bench, name, tmp_path / "ck.pt")
    resumed.fit()
    assert _equal(_state(resumed), _state(reference)), name
    assert resumed.history == reference.history


def test_a_stacked_population_resumed_at_any_evaluation_equals_the_uninterrupted_one(
    benches, tmp_path, one_thread, interrupt_at_checkpoint
):
    bench = benches["digits"]  # MDL: the mixture samplers' positions and generators are restored too
    base = TrainConfig(steps=7, eval_every=2, batch_size=30, device="cpu", model={"width": 0.05, "depth": 1})
    members = [
        RunSpec(
            f"m{i}",
            base.model_copy(
                update={"seed": i, "method": base.method.model_copy(update={"weights": [0.2 + 0.3 * i, 0.8 - 0.3 * i]})}
            ),
        )
        for i in range(3)
    ]
    reference = StackedPopulation(members, bench, progress=False)
    reference.fit()
    for stop in (1, 2, 3):
        path = tmp_path / f"p{stop}.pt"
        interrupt_at_checkpoint(StackedPopulation, stop)
        with pytest.raises(KeyboardInterrupt):
            StackedPopulation(members, bench, checkpoint_path=path, progress=False).fit()
        resumed = StackedPopulation(members, bench, checkpoint_path=path, progress=False)
        resumed.lr_scale.fill_(1.0)
        resumed.fit()
        for key, value in reference.params.items():
            assert torch.equal(resumed.params[key], value), (stop, key)
        assert _equal([s.state_dict() for s in resumed.samplers], [s.state_dict() for s in reference.samplers])
        assert resumed.histories == reference.histories


def test_a_members_learning_rate_scale_is_restored(benches, tmp_path, one_thread):
    bench = benches["multimnist"]
    base = TrainConfig(steps=4, eval_every=2, batch_size=30, device="cpu", model={"width": 0.05, "depth": 1})
    members = [RunSpec(f"m{i}", base.model_copy(update={"seed": i})) for i in range(2)]
    population = StackedPopulation(members, bench, checkpoint_path=tmp_path / "p.pt", progress=False)
    population.lr_scale[1] = 0.25
    population.run_until(2)
    again = StackedPopulation(members, bench, checkpoint_path=tmp_path / "p.pt", progress=False)
    assert again.try_resume() and again.lr_scale.tolist() == [1.0, 0.25]
