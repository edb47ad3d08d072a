import numpy as np

from scalarize.data import load_benchmark
from scalarize.search.designs import lattice


def _problem(**options):
    return load_benchmark("synthetic_linear", **options).extras["problem"]


def test_exact_solution_zeroes_the_weighted_gradient():
    problem = _problem(num_tasks=3)
    w = np.array([0.2, 0.5, 0.3])
    x, ys = problem.inputs["train"], problem.targets["train"]
    solution = problem.solution(w)
    gradient = sum(wi * x.T @ (x @ solution - y) for wi, y in zip(w, ys))
    assert np.abs(gradient).max() < 1e-8


def test_losses_match_the_quadratic_form():
    problem = _problem(num_tasks=3)
    q, b, c = problem.quadratic("val")
    w = np.array([0.6, 0.1, 0.3])
    direct = problem.losses(w, "val")
    quadratic = np.array([w @ q[i] @ w - 2 * b[i] @ w + c[i] for i in range(3)])
    assert np.allclose(direct, quadratic)


def test_optimal_weights_beat_every_lattice_point():
    problem = _problem(num_tasks=3, scale_spread=3.0)
    best, value = problem.optimal_weights("val")
    assert abs(best.sum() - 1) < 1e-9 and (best >= 0).all()
    grid = [problem.losses(w, "val").mean() for w in lattice(3, 0.05)]
    assert value <= min(grid) + 1e-10
    assert np.isclose(value, problem.losses(best, "val").mean())


def test_front_is_monotone_for_two_tasks():
    problem = _problem()
    weights, losses = problem.pareto_front(51)
    # more weight on task 0 never increases task 0's training loss
    assert np.all(np.diff(losses[:, 0]) <= 1e-12) and np.all(np.diff(losses[:, 1]) >= -1e-12)


def test_linear_model_trained_by_scalarization_reaches_the_exact_losses(tmp_path):
    from scalarize import TrainConfig, run_experiment

    config = TrainConfig(
        name="lin",
        benchmark={"name": "synthetic_linear"},
        model={"family": "linear", "depth": 0},
        method={"weights": [0.7, 0.3]},
        optimizer={"name": "adam", "lr": 0.05},
        schedule={"name": "cosine"},
        epochs=30,
        batch_size=200,
        stl=False,
        output=str(tmp_path),
    )
    result = run_experiment(config, progress=False)
    exact = load_benchmark("synthetic_linear").extras["problem"].losses([0.7, 0.3], "val")
    last = result.main.history[-1]  # the converged model, not the best-val selection
    trained = np.array([last["val/task0/mse"], last["val/task1/mse"]])
    assert np.allclose(trained, exact, rtol=0.01)
