"""A user's own pieces, as a user would write them, for tests/test_doors.py: a Dataset benchmark
built from real digits (scikit-learn's UCI optical digits), a task kind with a metric that is not
a per-sample mean, and model builders through each door."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor, nn
from torch.utils.data import Dataset

from scalarize.data import Benchmark, Task, TaskKind
from scalarize.models import MultiTaskModel


class DigitsDataset(Dataset):
    """Item i: (an 8x8 digit as [64] floats, {"digit": class, "large": digit >= 5}), read lazily."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        label = self.labels[i]
        return self.images[i], {"digit": label, "large": (label >= 5).long()}


class BalancedAccuracy:
    """Mean per-class recall over a split: a metric that is not a mean over samples."""

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.reset()

    def reset(self) -> None:
        self.hits = torch.zeros(self.classes, dtype=torch.float64)
        self.counts = torch.zeros(self.classes, dtype=torch.float64)

    def update(self, output: Tensor, target: Tensor) -> None:
        predicted = output.argmax(-1).cpu()
        target = target.cpu()
        self.counts += torch.bincount(target, minlength=self.classes).double()
        self.hits += torch.bincount(target[predicted == target], minlength=self.classes).double()

    def compute(self) -> dict[str, float]:
        seen = self.counts > 0
        return {"balanced_accuracy": float((self.hits[seen] / self.counts[seen]).mean())}


class FocalKind(TaskKind):
    """Focal loss (Lin et al. 2017) on two classes, scored by balanced accuracy."""

    name = "focal"
    metric_names = ("balanced_accuracy",)
    primary_metric = "balanced_accuracy"

    def __init__(self, gamma: float = 2.0) -> None:
        self.gamma = gamma

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        log_p = F.log_softmax(output, -1).gather(1, target[:, None]).squeeze(1)
        per_sample = -((1 - log_p.exp()) ** self.gamma) * log_p
        return per_sample if reduction == "none" else per_sample.sum() if reduction == "sum" else per_sample.mean()

    def accumulator(self):
        return BalancedAccuracy(2)

    def check(self, output: Tensor, target: Tensor) -> str | None:
        return None if output.shape[-1] == 2 and target.dim() == 1 else "needs [N, 2] logits and [N] labels"


def digits_benchmark(size: int = 600) -> Benchmark:
    """Two tasks on UCI digits, as map-style Datasets (train/val/test)."""
    digits = load_digits()
    images = torch.tensor(digits.data[:size], dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target[:size], dtype=torch.long)
    cut = [int(0.6 * size), int(0.8 * size)]
    parts = torch.tensor_split(torch.arange(size), cut)
    splits = {name: DigitsDataset(images[i], labels[i]) for name, i in zip(("train", "val", "test"), parts)}
    tasks = [Task("digit", "multiclass", 10), Task("large", "doors_plugins:FocalKind", 2)]
    return Benchmark.from_datasets("user-digits", tasks, splits)


def trunk_and_heads(input_shape, tasks, hidden: int = 32):
    """A builder returning a (trunk, {task: head}) pair, with two-layer heads."""
    trunk = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], hidden), nn.Tanh())
    heads = {t.name: nn.Sequential(nn.Linear(hidden, 16), nn.ReLU(), nn.Linear(16, t.num_outputs)) for t in tasks}
    return trunk, heads


class TwoHeaded(nn.Module):
    """A module whose forward returns (features, {task: output}), with no trunk/heads attributes."""

    def __init__(self, inputs: int, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU())
        self.digit = nn.Linear(hidden, 10)
        self.large = nn.Linear(hidden, 2)

    def forward(self, x: Tensor):
        features = self.body(x)
        return features, {"digit": self.digit(features), "large": self.large(features)}


def plain_module(input_shape, hidden: int = 32) -> nn.Module:
    return TwoHeaded(input_shape[0], hidden)


def multitask_model(input_shape, tasks) -> MultiTaskModel:
    return MultiTaskModel(nn.Linear(input_shape[0], 8), {t.name: nn.Linear(8, t.num_outputs) for t in tasks})
