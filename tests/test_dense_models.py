"""Encoder–decoder models for dense tasks: shapes, output stride, parameter counts, and per-task
gradients on a feature-map representation (scalarize.models.encoder_decoder)."""

import pytest
import torch

from scalarize.data import Task
from scalarize.methods import StepContext, build_method
from scalarize.models import ModelError, build_model
from scalarize.models.bottleneck_resnet import resnet_bottleneck_trunk

TASKS = [Task("segmentation", "segmentation", 5), Task("depth", "depth", 1), Task("normals", "normals", 3)]
TINY = {"width": 0.0625, "depth": 14}


@pytest.mark.parametrize(("stages", "side"), [(2, 8), (1, 4), (0, 2)])
@pytest.mark.parametrize("decoder", ["aspp", "light"])
def test_resnet_dilated_output_stride_and_full_resolution_outputs(one_thread, stages, side, decoder):
    torch.manual_seed(0)
    model = build_model(
        "resnet_dilated", (3, 64, 64), TASKS, **TINY, stem="imagenet", dilated_stages=stages, decoder=decoder
    ).eval()
    features, outputs = model(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 128, side, side)  # stride 8 (DeepLab), 16 or 32
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "segmentation": (2, 5, 64, 64),
        "depth": (2, 1, 64, 64),
        "normals": (2, 3, 64, 64),
    }


def test_dilation_keeps_the_resnet_parameters():
    with torch.device("meta"):
        model = build_model("resnet_dilated", (3, 288, 384), TASKS, width=1.0, depth=50)
        plain, _ = resnet_bottleneck_trunk((3, 288, 384), width=1.0, depth=50)
    assert sum(p.numel() for p in model.shared_parameters()) == 23_508_032 == sum(p.numel() for p in plain.parameters())
    dilations = [
        m.dilation for m in model.trunk.layer4.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert dilations == [(2, 2), (4, 4), (4, 4)]  # the strided conv takes half (CSAIL/MTAN rule)


def test_segnet_shapes(one_thread):
    torch.manual_seed(0)
    model = build_model("segnet", (3, 32, 48), TASKS, width=0.125).eval()
    features, outputs = model(torch.randn(2, 3, 32, 48))
    assert features.shape == (2, 8, 32, 48)  # the decoder's full-resolution map is shared
    assert outputs["normals"].shape == (2, 3, 32, 48)
    with pytest.raises(ModelError, match="segnet pools 5 times: images need sides of at least 32 px"):
        build_model("segnet", (3, 16, 16), TASKS)


def test_bad_options_are_one_line():
    with pytest.raises(ModelError, match="option decoder must be one of aspp, light, got 'unet'"):
        build_model("resnet_dilated", (3, 32, 32), TASKS, **TINY, decoder="unet")
    with pytest.raises(ModelError, match="option dilated_stages must be 0, 1 or 2"):
        build_model("resnet_dilated", (3, 32, 32), TASKS, **TINY, dilated_stages=3)
    with pytest.raises(ModelError, match="needs image inputs"):
        build_model("resnet_dilated", (10,), TASKS, **TINY)


def test_per_task_gradients_on_a_feature_map(one_thread):
    """Row i of the gradient on the heads' expanded view is task i's gradient on the feature map,
    and MGDA-UB's one weighted backward equals backpropagating its weighted losses."""
    torch.manual_seed(0)
    model = build_model("resnet_dilated", (3, 32, 32), TASKS, **TINY, stem="imagenet", decoder="light")
    x = torch.randn(4, 3, 32, 32)
    targets = {
        "segmentation": torch.randint(-1, 5, (4, 32, 32)),
        "depth": torch.rand(4, 1, 32, 32),
        "normals": torch.randn(4, 3, 32, 32),
    }
    features, head_inputs, outputs = model.forward_with_head_inputs(x)
    losses = torch.stack([t.loss(outputs[t.name], targets[t.name]) for t in TASKS])
    rows = torch.autograd.grad(losses.sum(), head_inputs, retain_graph=True)[0]
    for i in range(len(TASKS)):
        (alone,) = torch.autograd.grad(losses[i], features, retain_graph=True)
        assert torch.allclose(rows[i], alone, atol=1e-6)

    method = build_method("mgda_ub")
    method.setup([t.name for t in TASKS])
    context = StepContext(
        losses,
        features=features,
        head_inputs=head_inputs,
        shared_params=model.shared_parameters(),
        task_params=model.task_parameters(),
        gradient_engine="loop",
    )
    method.backward(context)
    weights = method.current_weights()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    _, again = model(x)
    (weights * torch.stack([t.loss(again[t.name], targets[t.name]) for t in TASKS])).sum().backward()
    for a, p in zip(got, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-5)
