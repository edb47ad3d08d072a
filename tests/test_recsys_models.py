"""The recommender families (models/embedding.py, shared_bottom, mmoe, ple, dselect_k, esmm, aitm):
shapes, parameter splits, hand-computed gates, training through the trainer (parameter and
representation gradients) and a stacked population."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from scalarize.data import Task
from scalarize.data.benchmark import Benchmark, Split
from scalarize.data.features import FeatureSchema, SequenceFeature
from scalarize.methods import build_method
from scalarize.models import ModelError, MultiTaskModel, build_model, supports_head_inputs
from scalarize.models.dselect_k import DSelectKGate, binary_codes, selector_outputs, smooth_step
from scalarize.models.embedding import FeatureEmbedding, mean_pool, table_dim
from scalarize.models.esmm import ctcvr_logit
from scalarize.population import Member, StackedPopulation
from scalarize.train import TrainConfig, Trainer

SCHEMA = FeatureSchema(
    dense=("age", "income"),
    categorical=("city", "device"),
    vocabularies=(6, 4),
    sequences=(SequenceFeature("history", 9, 3),),
)
TASKS = [Task("click", "binary", 1), Task("buy", "binary", 1), Task("like", "binary", 1)]
FAMILIES = {  # family: (tasks, small options)
    "shared_bottom": (TASKS, {"bottom": [16], "tower": [8]}),
    "mmoe": (TASKS, {"experts": 3, "expert": [8], "tower": [4]}),
    "cgc": (TASKS, {"expert": [8], "tower": [4]}),
    "ple": (TASKS, {"levels": 3, "expert": [8], "tower": [4]}),
    "dselect_k": (TASKS, {"experts": 4, "expert": [8], "tower": [4]}),
    "esmm": (TASKS[:2], {"tower": [8, 4]}),
    "aitm": (TASKS, {"tower": [8, 4]}),
}
EXACT = {"shared_bottom", "mmoe", "cgc", "dselect_k", "esmm"}  # every shared parameter reaches every task


def _rows(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(n, 2, generator=g)
    city, device = torch.randint(0, 6, (n, 1), generator=g), torch.randint(0, 4, (n, 1), generator=g)
    history = torch.randint(0, 9, (n, 3), generator=g)
    return torch.cat([dense, city.float(), device.float(), history.float()], dim=1)


def _benchmark(tasks: list[Task], n: int = 96) -> Benchmark:
    splits = {}
    for i, name in enumerate(("train", "val", "test")):
        rows = _rows(n, i)
        click = (rows[:, 0] + 0.5 * (rows[:, 2] > 2).float() > 0.3).float()
        targets = {"click": click, "buy": click * (rows[:, 1] > 0).float(), "like": (rows[:, 3] > 1).float()}
        splits[name] = Split(rows, {t.name: targets[t.name] for t in tasks})
    return Benchmark("tabular", "mtl", list(tasks), {"all": splits}, extras={"features": SCHEMA})


def _build(family: str, **extra: object) -> nn.Module:
    tasks, options = FAMILIES[family]
    return build_model(family, (SCHEMA.width,), tasks, features=SCHEMA, **{**options, **extra})


# --- the embedding front ------------------------------------------------------------------------------


def test_the_front_embeds_each_categorical_and_mean_pools_sequences_without_padding():
    front = FeatureEmbedding(SCHEMA, 3)
    rows = torch.tensor([[0.5, -1.0, 2.0, 3.0, 4.0, 7.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    out = front(rows)
    assert front.size == out.shape[1] == 2 + 3 * 3
    history = front.sequences[0].weight
    torch.testing.assert_close(out[0, :2], rows[0, :2])
    torch.testing.assert_close(out[0, 2:5], front.categorical[0].weight[2])
    torch.testing.assert_close(out[0, 8:], (history[4] + history[7]) / 2)  # id 0 is padding
    torch.testing.assert_close(out[1, 8:], torch.zeros(3))  # all padding: zeros
    assert mean_pool(torch.ones(1, 2, 1), torch.tensor([[0, 5]])).item() == 1.0


def test_the_auto_dimension_rule_and_bad_options_are_one_line():
    assert table_dim(10_000, "auto") == 60 and table_dim(2, "auto") == 7 and table_dim(5, 8) == 8
    with pytest.raises(ModelError, match="^model.options.embedding_dim: an integer >= 1 or 'auto', got 0$"):
        _build("mmoe", embedding_dim=0)
    with pytest.raises(ModelError, match="^model.options.expert: a list of integers >= 1"):
        _build("mmoe", expert=[0])
    with pytest.raises(ModelError, match="^model.options.experts: dselect_k needs a power of 2"):
        _build("dselect_k", experts=6)
    with pytest.raises(ModelError, match="^model.options.nope: unknown option"):
        _build("ple", nope=1)
    with pytest.raises(ModelError, match="^model: esmm needs two binary tasks"):
        build_model("esmm", (SCHEMA.width,), TASKS, features=SCHEMA)


def test_without_a_schema_every_column_is_dense():
    model = build_model("mmoe", (5,), TASKS[:2], experts=2, expert=[4], tower=[2])
    _, outputs = model(torch.randn(3, 5))
    assert outputs["click"].shape == (3, 1)


# --- shapes and parameter splits -------------------------------------------------------------------------


def _reached(model: nn.Module, output: torch.Tensor) -> set[int]:
    params = list(model.parameters())
    grads = torch.autograd.grad(output.sum(), params, retain_graph=True, allow_unused=True)
    return {id(p) for p, g in zip(params, grads, strict=True) if g is not None and g.abs().sum() > 0}


@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_and_the_split_into_shared_and_task_parameters(family):
    torch.manual_seed(0)
    tasks, _ = FAMILIES[family]
    model = _build(family)
    assert isinstance(model, MultiTaskModel) and supports_head_inputs(model, tasks)
    rows = _rows(16)
    features, outputs = model(rows)
    assert features.ndim == 2 and features.shape[0] == 16
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {t.name: (16, 1) for t in tasks}
    shared = {id(p) for p in model.shared_parameters()}
    own = [{id(p) for p in group} for group in model.task_parameters()]
    everything = {id(p) for p in model.parameters()}
    assert shared.isdisjoint(set().union(*own)) and shared | set().union(*own) == everything
    reached = [_reached(model, outputs[t.name]) for t in tasks]
    for i, group in enumerate(own):  # a task's own parameters: only its loss reaches them
        assert group <= reached[i] and all(group.isdisjoint(r) for j, r in enumerate(reached) if j != i)
    assert shared <= set().union(*reached)  # every shared parameter is reached by some task
    if family in EXACT:
        assert all(shared <= r for r in reached)
    # every path from a shared parameter to an output goes through the representation
    through = _reached(model, features)
    assert shared <= through and all(through.isdisjoint(group) for group in own)


# --- the gates by hand -------------------------------------------------------------------------------------


def test_an_mmoe_gate_mixes_the_experts_it_is_given_exactly():
    model = build_model("mmoe", (2,), TASKS[:2], experts=2, expert=[1], tower=[1])
    experts = model.trunk.experts.experts
    with torch.no_grad():
        for i, expert in enumerate(experts):  # f_0(x) = relu(x_0), f_1(x) = relu(x_1)
            expert[0].weight.copy_(torch.eye(2)[i : i + 1])
            expert[0].bias.zero_()
        head = model.heads["click"]
        head.gate[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))  # logits (x_0, 0)
    z = model.trunk(torch.tensor([[math.log(3.0), 2.0]]))
    torch.testing.assert_close(z, torch.tensor([[math.log(3.0), 2.0, math.log(3.0), 2.0]]))
    # softmax(ln 3, 0) = (3/4, 1/4)
    torch.testing.assert_close(head.mixture(z), torch.tensor([[0.75 * math.log(3.0) + 0.25 * 2.0]]))
    torch.testing.assert_close(head(z), head.tower(head.mixture(z)))


def test_the_smooth_step_and_a_dselect_k_selector_at_known_points():
    t = torch.tensor([-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.0, 0.15625, 0.5, 0.84375, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(smooth_step(t, 1.0), expected)  # -2t³ + 3t/2 + 1/2 inside [-1/2, 1/2]
    torch.testing.assert_close(smooth_step(2 * t, 2.0), expected)  # scales with gamma
    assert binary_codes(4).int().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    # z = (0.25, -0.5): S = (0.84375, 0): expert 0b10 gets 0.84375, 0b00 gets 0.15625
    r = selector_outputs(torch.tensor([[0.25, -0.5]], dtype=torch.float64), binary_codes(4), 1.0)
    torch.testing.assert_close(r, torch.tensor([[0.15625, 0.0, 0.84375, 0.0]], dtype=torch.float64))
    gate = DSelectKGate(3, 4, k=2, gamma=1.0, routing="static").double()
    with torch.no_grad():
        gate.logits.z.copy_(torch.tensor([[0.25, -0.5], [1.0, 1.0]]))  # selector 2 picks expert 3 alone
        gate.logits.alpha.copy_(torch.tensor([math.log(3.0), 0.0]))  # selectors weighted 3/4, 1/4
    weights = gate(torch.zeros(5, 3, dtype=torch.float64))
    torch.testing.assert_close(
        weights, torch.tensor([[0.75 * 0.15625, 0.0, 0.75 * 0.84375, 0.25]] * 5, dtype=torch.float64)
    )


def test_a_per_example_dselect_k_gate_sums_to_one_per_sample():
    gate = DSelectKGate(3, 8, k=3)
    weights = gate(torch.randn(6, 3) * 50)
    torch.testing.assert_close(weights.sum(-1), torch.ones(6))
    assert (weights >= 0).all()


def test_esmm_ctcvr_is_ctr_times_cvr():
    a = torch.tensor([-30.0, -3.0, 0.0, 0.7, 5.0, 30.0], dtype=torch.float64).repeat_interleave(6)
    b = torch.tensor([-30.0, -3.0, 0.0, 0.7, 5.0, 30.0], dtype=torch.float64).repeat(6)
    torch.testing.assert_close(
        torch.sigmoid(ctcvr_logit(a, b)), torch.sigmoid(a) * torch.sigmoid(b), rtol=1e-13, atol=0
    )
    model = _build("esmm").double()
    rows = _rows(8).double()
    _, outputs = model(rows)
    p = model.probabilities(rows)
    torch.testing.assert_close(p["ctcvr"], p["ctr"] * p["cvr"], rtol=0, atol=0)
    torch.testing.assert_close(torch.sigmoid(outputs["click"]), p["ctr"])
    torch.testing.assert_close(torch.sigmoid(outputs["buy"]), p["ctcvr"], rtol=1e-12, atol=1e-15)
    assert model.task_parameters()[0] == []  # the CTR head reads the CTR logit from Z


# --- training -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gradients", ["parameters", "representation"])
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_through_the_trainer_with_pcgrad(family, gradients):
    torch.manual_seed(0)
    tasks, _ = FAMILIES[family]
    bench = _benchmark(tasks)
    model = _build(family)
    before = [p.detach().clone() for p in model.parameters()]
    config = TrainConfig(steps=6, eval_every=3, batch_size=32, device="cpu", stl=False)
    result = Trainer(config, bench, model, build_method("pcgrad", gradients=gradients), progress=False).fit()
    assert result.status == "completed"
    assert all(math.isfinite(v) for v in result.test.values())
    moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert all(moved[: len(list(model.trunk.parameters()))])  # the embedding tables and the trunk learn


def test_a_family_trains_in_a_stacked_population_as_alone():
    tasks, options = FAMILIES["mmoe"]
    bench = _benchmark(tasks)
    base = TrainConfig(
        model={"family": "mmoe", "options": options},
        steps=4,
        eval_every=2,
        batch_size=32,
        device="cpu",
        stl=False,
        optimizer={"lr": 0.01},
    )
    members = [
        Member(f"m{i}", base.model_copy(update={"method": base.method.model_copy(update={"weights": w}), "seed": i}))
        for i, w in enumerate(([0.2, 0.5, 0.3], [0.6, 0.2, 0.2]))
    ]
    stacked = StackedPopulation(members, bench, progress=False).fit()
    assert stacked[0].history[-1] != stacked[1].history[-1] and stacked[0].steps == 4
    for member, result in zip(members, stacked, strict=True):
        torch.manual_seed(member.seed)
        model = build_model("mmoe", bench.input_shape, tasks, features=SCHEMA, **options)
        method = build_method("scalarization", weights=member.config.method.weights)
        alone = Trainer(member.config, bench, model, method, progress=False).fit()
        for key, value in alone.history[-1].items():
            assert result.history[-1][key] == pytest.approx(value, abs=1e-5, rel=1e-5), key
