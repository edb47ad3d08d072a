import pytest
import torch

from scalarize import run_experiment
from scalarize.data import load_benchmark
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.store import Store
from scalarize.train import TrainConfig, Trainer

SMALL = {"name": "multimnist", "options": {"train_size": 600, "test_size": 100}}


def _config(tmp_path, **kw):
    base = dict(
        name="t",
        benchmark=SMALL,
        model={"width": 0.25},
        epochs=3,
        batch_size=64,
        stl=False,
        output=str(tmp_path),
        schedule={"name": "cosine"},
        optimizer={"lr": 0.005},
    )
    base.update(kw)
    return TrainConfig(**base)


def _trainer(config, store=None, checkpoint=None):
    bench = load_benchmark(config.benchmark.name, **config.benchmark.options)
    torch.manual_seed(config.seed)
    model = build_model("mlp", bench.input_shape, bench.tasks, config.model.width, config.model.depth)
    return Trainer(
        config, bench, model, Scalarization(), run_name="t", store=store, checkpoint_path=checkpoint, progress=False
    )


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    a = run_experiment(_config(tmp_path / "a"), progress=False)
    b = run_experiment(_config(tmp_path / "b"), progress=False)
    assert a.main.history == b.main.history and a.main.test == b.main.test
    c = run_experiment(_config(tmp_path / "c", seed=1), progress=False)
    assert c.main.history != a.main.history


def test_training_lowers_the_loss_and_records_every_evaluation(tmp_path):
    result = run_experiment(_config(tmp_path), progress=False)
    with Store(tmp_path) as store:
        train = store.history("t", "train")["left/loss"]
        assert len(train) == 3 and train[-1][1] < train[0][1]
        assert store.run("t")["status"] == "completed"
        assert set(store.final("t")) == {"val", "test"}
        weights = store.weights("t")
        assert len(weights["left"]) == result.main.steps and weights["left"][0][1] == pytest.approx(0.5)
    assert result.main.test["left/accuracy"] > 0.25  # chance is 0.1


def test_resume_after_an_interruption_ends_with_the_same_numbers(tmp_path):
    config = _config(tmp_path, epochs=4)
    reference = _trainer(config).fit()

    interrupted = _trainer(config, checkpoint=tmp_path / "ck.pt")
    original_save, saves = interrupted.save_checkpoint, []

    def save_then_die():
        original_save()
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt

    interrupted.save_checkpoint = save_then_die
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert interrupted.step == 2 * interrupted.steps_per_epoch

    resumed = _trainer(config, checkpoint=tmp_path / "ck.pt").fit()
    assert resumed.history == reference.history
    assert resumed.test == reference.test and resumed.steps == reference.steps


def test_steps_and_eval_every_override_epochs(tmp_path):
    result = run_experiment(_config(tmp_path, steps=7, eval_every=3), progress=False)
    assert result.main.steps == 7 and [h["step"] for h in result.main.history] == [3, 6, 7]


def test_mdl_trains_on_the_mixture_and_evaluates_each_domain(tmp_path):
    config = _config(tmp_path, benchmark={"name": "digits"}, method={"weights": [0.9, 0.1]}, epochs=1)
    result = run_experiment(config, progress=False)
    assert set(result.main.test) >= {"mnist/accuracy", "uci/accuracy"}
    with Store(tmp_path) as store:
        assert store.weights("t")["mnist"][0][1] == pytest.approx(0.9)


def test_divergence_is_recorded(tmp_path):
    config = _config(tmp_path, optimizer={"name": "sgd", "lr": 1e6, "momentum": 0.0}, epochs=2)
    result = run_experiment(config, progress=False)
    assert result.main.status == "diverged" and "non-finite" in result.main.message
    with Store(tmp_path) as store:
        assert store.run("t")["status"] == "diverged"


def test_stl_baselines_and_delta_m(tmp_path):
    result = run_experiment(_config(tmp_path, stl=True, epochs=1), progress=False)
    assert set(result.stl) == {"left", "right"}
    left = result.stl["left"].test["left/accuracy"]
    right = result.stl["right"].test["right/accuracy"]
    by_hand = 50 * (
        (result.main.test["left/accuracy"] - left) / left + (result.main.test["right/accuracy"] - right) / right
    )
    assert result.delta_m == pytest.approx(by_hand)


def test_a_completed_run_is_not_trained_again(tmp_path):
    first = run_experiment(_config(tmp_path, epochs=1), progress=False)
    again = run_experiment(_config(tmp_path, epochs=1), progress=False)
    assert again.main.test == first.main.test and again.main.seconds == 0.0


def test_a_methods_own_randomness_follows_the_config_seed_not_the_process_history():
    """prepare() seeds torch before building the method (RLW, PCGrad and GradDrop draw their
    generator's seed from it), so the same config gives the same draws whatever ran before."""
    from scalarize.train.setup import prepare

    config = TrainConfig(
        name="x",
        benchmark={"name": "multimnist", "options": {"train_size": 200, "test_size": 50}},
        method={"name": "rlw"},
        seed=3,
    )
    torch.manual_seed(123)
    first = prepare(config)[1].generator.get_state()
    torch.manual_seed(456)
    assert torch.equal(prepare(config)[1].generator.get_state(), first)
    other = prepare(config.model_copy(update={"seed": 4}))[1].generator.get_state()
    assert not torch.equal(other, first)
