import pytest
import torch

from scalarize.data import Task
from scalarize.models import ModelError, build_model

TASKS = [Task("a", "multiclass", 10), Task("b", "regression", 3)]


@pytest.mark.parametrize("family", ["mlp", "resnet"])
def test_forward_gives_features_and_one_output_per_task(family):
    model = build_model(family, (1, 28, 28), TASKS, width=0.5, depth=1)
    features, outputs = model(torch.randn(4, 1, 28, 28))
    assert features.shape[0] == 4 and outputs["a"].shape == (4, 10) and outputs["b"].shape == (4, 3)


@pytest.mark.parametrize("family", ["mlp", "resnet"])
def test_width_and_depth_scale_the_trunk(family):
    def size(**kw):
        return sum(p.numel() for p in build_model(family, (1, 28, 28), TASKS, **kw).shared_parameters())

    assert size(width=2.0, depth=1) > size(width=1.0, depth=1)
    assert size(width=1.0, depth=3) > size(width=1.0, depth=1)


def test_shared_and_task_parameters_partition_the_model():
    model = build_model("mlp", (1, 28, 28), TASKS, depth=2)
    shared = {id(p) for p in model.shared_parameters()}
    own = [{id(p) for p in group} for group in model.task_parameters()]
    assert not shared & own[0] and not own[0] & own[1]
    assert shared | own[0] | own[1] == {id(p) for p in model.parameters()}


def test_bad_model_requests_are_named():
    with pytest.raises(ModelError, match="unknown family 'swin'"):
        build_model("swin", (1, 28, 28), TASKS)
    with pytest.raises(ModelError, match="model.width"):
        build_model("mlp", (1, 28, 28), TASKS, width=0)
    with pytest.raises(ModelError, match="image inputs"):
        build_model("resnet", (64,), TASKS)
