"""Synthetic regression tasks with a shared latent structure (after GradNorm, Chen et al. 2018).

Task i maps ``x ~ N(0, I_d)`` to ``y_i = s_i * tanh(A_i x) + s_i * noise * e`` with
``A_i = (sqrt(r) B + sqrt(1 - r) E_i) / sqrt(d)``: ``B`` is shared by all tasks, ``E_i`` is the
task's own, and the relatedness ``r`` in [0, 1] sets how much they share (r = 1: one task in
several copies; r = 0: unrelated tasks). ``s_i`` scales task i's loss: log-spaced from 1 to
``scale_spread``, so tasks with large losses dominate an unweighted sum, as in GradNorm.

``synthetic_linear`` drops the tanh. With the ``linear`` model family (one shared matrix, no
heads) every weighted sum has an exact minimiser, so the Pareto front and the best fixed weights
are known in closed form: see :class:`LinearProblem`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scalarize.data.benchmark import Benchmark, Split
from scalarize.data.sizes import check_build_size
from scalarize.data.task import Task


def _check(num_tasks: int, relatedness: float, noise: float, scale_spread: float) -> None:
    if not 2 <= num_tasks <= 1000:
        raise ValueError(f"num_tasks must be in [2, 1000], got {num_tasks}")
    if not 0.0 <= relatedness <= 1.0:
        raise ValueError(f"relatedness must be in [0, 1], got {relatedness}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if scale_spread <= 0:
        raise ValueError(f"scale_spread must be > 0, got {scale_spread}")


def _maps(rng, num_tasks, input_dim, output_dim, relatedness):
    shared = rng.standard_normal((output_dim, input_dim))
    own = rng.standard_normal((num_tasks, output_dim, input_dim))
    return (np.sqrt(relatedness) * shared + np.sqrt(1 - relatedness) * own) / np.sqrt(input_dim)


def _generate(*, num_tasks, input_dim, output_dim, relatedness, noise, scale_spread, sizes, seed, nonlinear):
    _check(num_tasks, relatedness, noise, scale_spread)
    width = input_dim + num_tasks * output_dim  # per sample: the input and every task's target
    # kept in float32 for every split; the largest split is generated in float64, ~4 arrays of its targets
    check_build_size(
        "the synthetic benchmark",
        dict(zip(("train_size", "val_size", "test_size"), sizes)),
        4 * width,
        8 * max(sizes) * (input_dim + 4 * num_tasks * output_dim),
        f"input_dim={input_dim:,}, {num_tasks:,} tasks of output_dim={output_dim:,}",
    )
    rng = np.random.default_rng(seed)
    maps = _maps(rng, num_tasks, input_dim, output_dim, relatedness)
    scales = np.logspace(0.0, np.log10(scale_spread), num_tasks)
    splits = {}
    for name, size in zip(("train", "val", "test"), sizes):
        x = rng.standard_normal((size, input_dim))
        signal = np.einsum("tod,nd->tno", maps, x)
        if nonlinear:
            signal = np.tanh(signal)
        y = scales[:, None, None] * (signal + noise * rng.standard_normal(signal.shape))
        targets = {f"task{i}": torch.as_tensor(y[i], dtype=torch.float32) for i in range(num_tasks)}
        splits[name] = Split(torch.as_tensor(x, dtype=torch.float32), targets)
    return splits, maps, scales


def _benchmark(name, splits, num_tasks, output_dim, description, extras) -> Benchmark:
    tasks = [Task(f"task{i}", "regression", output_dim) for i in range(num_tasks)]
    return Benchmark(name, "mtl", tasks, {name: splits}, description=description, extras=extras)


def synthetic(
    num_tasks: int = 4,
    input_dim: int = 64,
    output_dim: int = 16,
    relatedness: float = 0.8,
    noise: float = 0.1,
    scale_spread: float = 1.0,
    train_size: int = 4000,
    val_size: int = 1000,
    test_size: int = 1000,
    seed: int = 0,
) -> Benchmark:
    """K non-linear regression tasks (GradNorm's synthetic benchmark, normalised)."""
    splits, _, scales = _generate(
        num_tasks=num_tasks,
        input_dim=input_dim,
        output_dim=output_dim,
        relatedness=relatedness,
        noise=noise,
        scale_spread=scale_spread,
        sizes=(train_size, val_size, test_size),
        seed=seed,
        nonlinear=True,
    )
    description = f"{num_tasks} tanh regression tasks, relatedness {relatedness}"
    return _benchmark("synthetic", splits, num_tasks, output_dim, description, {"scales": scales})


@dataclass
class LinearProblem:
    """Exact solutions of weighted least squares on the linear synthetic benchmark.

    With a shared linear map ``W`` (the ``linear`` model family) task i's loss on a split is
    ``L_i(W) = mean_n mean_o ((W x_n)_o - (y_i,n)_o)^2``. For weights ``w`` on the simplex the
    minimiser of ``sum_i w_i L_i`` on the training split is ``W(w) = sum_i w_i W_i`` with ``W_i``
    task i's own least-squares solution (least squares is linear in the target), so every
    ``L_i(W(w))`` is a quadratic in ``w`` and the Pareto front is exact.
    """

    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]  # split -> [T, N, O]

    @classmethod
    def from_benchmark(cls, benchmark: Benchmark) -> LinearProblem:
        names = benchmark.objectives
        inputs, targets = {}, {}
        for split in ("train", "val", "test"):
            data = benchmark.split(split)
            inputs[split] = data.inputs.double().numpy()
            targets[split] = np.stack([data.targets[n].double().numpy() for n in names])
        return cls(inputs, targets)

    @property
    def num_tasks(self) -> int:
        return self.targets["train"].shape[0]

    def task_solutions(self) -> np.ndarray:
        """``[T, D, O]``: each task's own least-squares map (``y ≈ x @ W_i``)."""
        x = self.inputs["train"]
        return np.stack([np.linalg.lstsq(x, y, rcond=None)[0] for y in self.targets["train"]])

    def solution(self, weights) -> np.ndarray:
        """The exact minimiser ``[D, O]`` of the weighted training loss (weights normalised)."""
        w = _normalise(weights, self.num_tasks)
        return np.einsum("t,tdo->do", w, self.task_solutions())

    def losses(self, weights, split: str = "train") -> np.ndarray:
        """``[T]`` task losses on ``split`` at the exact minimiser for ``weights``."""
        prediction = self.inputs[split] @ self.solution(weights)
        return ((prediction[None] - self.targets[split]) ** 2).mean(axis=(1, 2))

    def quadratic(self, split: str = "val") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Q [T,T,T], b [T,T], c [T])`` with ``L_i(w) = w'Q_i w - 2 b_i'w + c_i``."""
        x, y = self.inputs[split], self.targets[split]
        predictions = np.einsum("nd,tdo->tno", x, self.task_solutions())  # P_j
        n_o = y.shape[1] * y.shape[2]
        gram = np.einsum("jno,kno->jk", predictions, predictions) / n_o
        cross = np.einsum("ino,jno->ij", y, predictions) / n_o
        const = (y**2).sum(axis=(1, 2)) / n_o
        return np.broadcast_to(gram, (self.num_tasks, *gram.shape)), cross, const

    def optimal_weights(self, split: str = "val", preference=None) -> tuple[np.ndarray, float]:
        """Fixed weights minimising ``sum_i p_i L_i(W(w))`` on ``split`` (p uniform by default).

        A convex quadratic over the simplex, solved to 1e-12 by an active-set method (scipy's
        SLSQP from the uniform point). Returns ``(weights, objective)``.
        """
        from scipy.optimize import minimize

        p = (
            np.full(self.num_tasks, 1.0 / self.num_tasks)
            if preference is None
            else _normalise(preference, self.num_tasks)
        )
        q, b, c = self.quadratic(split)
        big_q, big_b, big_c = np.einsum("i,ijk->jk", p, q), p @ b, p @ c

        def objective(w):
            return w @ big_q @ w - 2 * big_b @ w + big_c

        def gradient(w):
            return 2 * big_q @ w - 2 * big_b

        start = np.full(self.num_tasks, 1.0 / self.num_tasks)
        result = minimize(
            objective,
            start,
            jac=gradient,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * self.num_tasks,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
            options={"ftol": 1e-14, "maxiter": 1000},
        )
        weights = np.clip(result.x, 0.0, None)
        weights /= weights.sum()
        return weights, float(objective(weights))

    def pareto_front(self, num_points: int = 101, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Two tasks: ``(weights [n, 2], losses [n, 2])`` along a fine lattice of the simplex."""
        if self.num_tasks != 2:
            raise ValueError("pareto_front enumerates the simplex for two tasks only")
        a = np.linspace(0.0, 1.0, num_points)
        weights = np.stack([a, 1 - a], axis=1)
        return weights, np.stack([self.losses(w, split) for w in weights])


def _normalise(weights, num_tasks: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != num_tasks or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {num_tasks} non-negative numbers with a positive sum")
    return w / w.sum()


def synthetic_linear(
    num_tasks: int = 2,
    input_dim: int = 16,
    output_dim: int = 4,
    relatedness: float = 0.5,
    noise: float = 0.5,
    scale_spread: float = 1.0,
    train_size: int = 2000,
    val_size: int = 500,
    test_size: int = 500,
    seed: int = 0,
) -> Benchmark:
    """K linear regression tasks whose weighted least squares is solvable in closed form.

    ``benchmark.extras["problem"]`` is the :class:`LinearProblem` with the exact solutions.
    """
    splits, _, scales = _generate(
        num_tasks=num_tasks,
        input_dim=input_dim,
        output_dim=output_dim,
        relatedness=relatedness,
        noise=noise,
        scale_spread=scale_spread,
        sizes=(train_size, val_size, test_size),
        seed=seed,
        nonlinear=False,
    )
    description = f"{num_tasks} linear regression tasks with an exact Pareto front"
    bench = _benchmark("synthetic_linear", splits, num_tasks, output_dim, description, {"scales": scales})
    bench.extras["problem"] = LinearProblem.from_benchmark(bench)
    return bench
