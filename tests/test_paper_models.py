"""The paper's architectures: bottleneck ResNets and ViTs (sizes, options, and the library's
machinery: multi-task forward, stacked populations under vmap, batched per-task gradients)."""

import copy
import warnings

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from scalarize.data import Task
from scalarize.methods import StepContext
from scalarize.models import ModelError, MultiTaskModel, build_model
from scalarize.models.bottleneck_resnet import resnet_bottleneck_trunk
from scalarize.models.vit import vit_trunk

#: The trunk builders of the families here.
TRUNKS = {"resnet_bottleneck": resnet_bottleneck_trunk, "vit": vit_trunk}
TASKS = [Task("a", "multiclass", 5), Task("b", "regression", 2), Task("c", "multiclass", 3)]
#: Tiny members of each family: (family, input shape, width, depth, options).
TINY = {
    "resnet_bottleneck": ((3, 16, 16), 0.125, 14, {}),
    "resnet_bottleneck-imagenet-stem": ((3, 32, 32), 0.125, 14, {"stem": "imagenet"}),
    "vit": ((3, 16, 16), 0.1, 2, {"patch_size": 4}),
    "vit-avg-pool": ((3, 16, 16), 0.1, 2, {"patch_size": 4, "pool": "avg"}),
}


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_model(name: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> MultiTaskModel:
    """A tiny model whose parameters are all perturbed (the last batch norm of each residual
    branch starts at zero, which would leave most gradients zero)."""
    shape, width, depth, options = TINY[name]
    torch.manual_seed(seed)
    trunk, size = TRUNKS[name.split("-")[0]](shape, width, depth, **options)
    model = MultiTaskModel(trunk, {t.name: torch.nn.Linear(size, t.num_outputs) for t in TASKS}).to(dtype)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model


@pytest.fixture(autouse=True)
def _quiet_vmap_fallback():
    """On a CPU, vmap runs torch's flash-attention kernel member by member, with a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        yield


# -- sizes -------------------------------------------------------------------------------------
# Published totals (torchvision's ResNet-50/101, timm's resnet26 and vit_*_patch16_224) minus
# their 1000-class classifier (in_features x 1000 + 1000).
@pytest.mark.parametrize(("depth", "published_total"), [(26, 15_995_176), (50, 25_557_032), (101, 44_549_160)])
def test_resnet_trunks_at_width_1_have_the_published_sizes(depth, published_total):
    with torch.device("meta"):
        trunk, size = resnet_bottleneck_trunk((3, 224, 224), width=1.0, depth=depth)
    assert size == 2048
    assert parameter_count(trunk) == published_total - (2048 * 1000 + 1000)


@pytest.mark.parametrize(
    ("size_name", "embed_dim", "published_total"),
    [("ti", 192, 5_717_416), ("s", 384, 22_050_664), ("b", 768, 86_567_656)],
)
def test_vit_trunks_at_patch_16_have_the_published_sizes(size_name, embed_dim, published_total):
    with torch.device("meta"):
        trunk, size = vit_trunk((3, 224, 224), width=1.0, depth=12, size=size_name, patch_size=16)
    assert size == embed_dim
    assert parameter_count(trunk) == published_total - (embed_dim * 1000 + 1000)


def test_vit_width_scales_the_heads_of_vit_s():
    with torch.device("meta"):
        counts = {w: parameter_count(vit_trunk((3, 224, 224), w, 12, patch_size=16)[0]) for w in (0.5, 1.0, 2.0)}
        named = {s: parameter_count(vit_trunk((3, 224, 224), 1.0, 12, size=s, patch_size=16)[0]) for s in ("ti", "b")}
    assert counts[0.5] == named["ti"] and counts[2.0] == named["b"]
    assert vit_trunk((3, 16, 16), 0.25, 1, patch_size=4)[1] == 128  # 1.5 heads round up to 2


def test_resnet_width_scales_every_channel_and_depth_the_blocks():
    with torch.device("meta"):
        quarter, size = resnet_bottleneck_trunk((3, 64, 64), 0.25, 50)
        half, _ = resnet_bottleneck_trunk((3, 64, 64), 0.5, 50)
        deeper, _ = resnet_bottleneck_trunk((3, 64, 64), 0.25, 101)
        uniform, _ = resnet_bottleneck_trunk((3, 64, 64), 0.25, 38)
    assert size == 512 and quarter.conv1.out_channels == 16 and quarter.layer4[0].conv1.out_channels == 128
    assert 3.5 < parameter_count(half) / parameter_count(quarter) < 4.1  # ~ width squared
    assert [len(layer) for layer in (deeper.layer1, deeper.layer2, deeper.layer3, deeper.layer4)] == [3, 4, 23, 3]
    assert [len(layer) for layer in (uniform.layer1, uniform.layer2, uniform.layer3, uniform.layer4)] == [3, 3, 3, 3]


@pytest.mark.parametrize(
    ("side", "stem", "kernel"), [(32, "auto", 3), (64, "auto", 3), (96, "auto", 7), (64, "imagenet", 7)]
)
def test_the_resnet_stem_follows_the_image_size(side, stem, kernel):
    with torch.device("meta"):
        trunk, _ = resnet_bottleneck_trunk((3, side, side), 0.25, 26, stem=stem)
    assert trunk.conv1.kernel_size == (kernel, kernel)
    assert isinstance(trunk.maxpool, torch.nn.MaxPool2d) == (kernel == 7)


@pytest.mark.parametrize(("side", "patch"), [(224, 16), (64, 4), (32, 2), (28, 2), (12, 1)])
def test_automatic_patch_size_leaves_at_least_14_patches_per_side(side, patch):
    with torch.device("meta"):
        trunk, _ = vit_trunk((3, side, side), 0.5, 1)
    assert trunk.patch_embed.proj.kernel_size == (patch, patch)


# -- the library's machinery -------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TINY))
def test_multitask_forward_and_head_inputs(name):
    model = tiny_model(name)
    shape = TINY[name][0]
    features, outputs = model(torch.randn(4, *shape))
    assert features.shape == (4, model.heads["a"].in_features)
    assert {k: v.shape for k, v in outputs.items()} == {"a": (4, 5), "b": (4, 2), "c": (4, 3)}
    features, head_inputs, _ = model.forward_with_head_inputs(torch.randn(4, *shape))
    assert head_inputs.shape == (3, *features.shape)


@pytest.mark.parametrize("name", list(TINY))
def test_stacked_population_equals_its_members(name):
    """P members stacked as the population does: same outputs, same batch-norm statistics."""
    members = [tiny_model(name, seed, torch.float64) for seed in range(3)]
    template = copy.deepcopy(members[0]).to("meta")
    params, buffers = stack_module_state(members)
    inputs = torch.randn(3, 4, *TINY[name][0], dtype=torch.float64)
    features, outputs = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)))(params, buffers, inputs)
    for index, member in enumerate(members):
        own_features, own_outputs = member(inputs[index])
        torch.testing.assert_close(features[index], own_features)
        torch.testing.assert_close(outputs["c"][index], own_outputs["c"])
        for key, value in member.named_buffers():
            torch.testing.assert_close(buffers[key][index], value)


@pytest.mark.parametrize("name", ["resnet_bottleneck", "vit"])
def test_batched_per_task_gradients_equal_the_loop(name):
    model = tiny_model(name)
    inputs = torch.randn(4, *TINY[name][0])
    jacobians = []
    for engine in ("loop", "batched"):
        features, head_inputs, outputs = model.forward_with_head_inputs(inputs)
        losses = torch.stack([outputs[t.name].square().mean() for t in TASKS])
        context = StepContext(
            losses,
            features=features,
            head_inputs=head_inputs,
            shared_params=model.shared_parameters(),
            task_params=model.task_parameters(),
            gradient_engine=engine,
        )
        jacobians.append(context.shared_jacobian())
    assert jacobians[0].abs().sum(1).min() > 0
    torch.testing.assert_close(jacobians[1], jacobians[0])


@pytest.mark.parametrize("name", ["resnet_bottleneck", "vit"])
def test_channels_last_and_bf16_autocast_run(name):
    model = tiny_model(name).to(memory_format=torch.channels_last)
    inputs = torch.randn(4, *TINY[name][0]).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, outputs = model(inputs)
    sum(o.float().square().mean() for o in outputs.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_drop_path_is_random_in_training_only_and_needs_vmap_randomness():
    trunk, _ = vit_trunk((3, 8, 8), 0.1, 2, patch_size=4, drop_path=0.5)
    inputs = torch.randn(16, 3, 8, 8)
    assert not torch.equal(trunk(inputs), trunk(inputs))
    trunk.eval()
    assert torch.equal(trunk(inputs), trunk(inputs))
    trunk.train()
    params, buffers = stack_module_state([trunk, copy.deepcopy(trunk)])
    template = copy.deepcopy(trunk).to("meta")
    forward = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)), randomness="different")
    assert forward(params, buffers, torch.stack([inputs, inputs])).shape == (2, 16, 64)


def test_same_seed_same_model():
    def build(seed):
        torch.manual_seed(seed)
        return build_model("vit", (3, 8, 8), TASKS, width=0.1, depth=1).state_dict()

    first, second = build(3), build(3)
    assert all(torch.equal(first[key], second[key]) for key in first)


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("builder", "kwargs", "message"),
    [
        (
            resnet_bottleneck_trunk,
            {"depth": 2},
            r"resnet_bottleneck: depth must be 26, 50, 101, 152 or 12n\+2 \(14, 38, 62, ...\), got 2",
        ),
        (
            resnet_bottleneck_trunk,
            {"stem": "deep"},
            "resnet_bottleneck: option stem must be one of auto, imagenet, cifar, got 'deep'",
        ),
        (resnet_bottleneck_trunk, {"patch_size": 4}, "resnet_bottleneck: unknown option 'patch_size'; allowed: stem"),
        (vit_trunk, {"size": "l"}, "vit: option size must be one of ti, s, b, got 'l'"),
        (vit_trunk, {"patch_size": 5}, "vit: option patch_size 5 must divide the image size 16x16"),
        (vit_trunk, {"patch_size": "big"}, "vit: option patch_size must be 'auto' or a positive integer"),
        (vit_trunk, {"pool": "max"}, "vit: option pool must be one of token, avg, got 'max'"),
        (vit_trunk, {"drop_path": 1.0}, r"vit: option drop_path must be in \[0, 1\)"),
        (vit_trunk, {"stem": "cifar"}, "vit: unknown option 'stem'; allowed: drop_path, patch_size, pool, size"),
        (vit_trunk, {"depth": 0}, r"vit: depth \(the number of blocks\) must be >= 1"),
    ],
)
def test_bad_sizes_and_options_are_one_line_errors(builder, kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        builder((3, 16, 16), **{"width": 0.1, "depth": 14 if builder is resnet_bottleneck_trunk else 1, **kwargs})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("family", ["resnet_bottleneck", "vit"])
def test_build_model_reports_the_family_in_one_line(family):
    with pytest.raises(ModelError, match=f"the {family} family needs image inputs") as error:
        build_model(family, (64,), TASKS, depth=26)
    assert "\n" not in str(error.value)
    with pytest.raises(ModelError, match="resnet_bottleneck: depth must be"):
        build_model("resnet_bottleneck", (3, 16, 16), TASKS, depth=2)


# -- against timm, where it imports ------------------------------------------------------------
def import_timm():
    try:
        import timm
    except Exception as error:  # absent, or a torchvision built for another torch
        pytest.skip(f"timm does not import here: {type(error).__name__}: {error}")
    return timm


@pytest.mark.parametrize(
    ("ours", "timm_name", "timm_options"),
    [
        (lambda: resnet_bottleneck_trunk((3, 64, 64), 1.0, 26, stem="imagenet")[0], "resnet26", {}),
        (
            lambda: vit_trunk((3, 32, 32), 0.5, 2, patch_size=8)[0],
            "vit_tiny_patch16_224",
            {"depth": 2, "img_size": 32, "patch_size": 8},
        ),
        (
            lambda: vit_trunk((3, 32, 32), 0.5, 2, patch_size=8, pool="avg")[0],
            "vit_tiny_patch16_224",
            {"depth": 2, "img_size": 32, "patch_size": 8, "global_pool": "avg"},
        ),
    ],
)
def test_timm_weights_load_and_give_the_same_features(ours, timm_name, timm_options):
    timm = import_timm()
    torch.manual_seed(0)
    reference = timm.create_model(timm_name, pretrained=False, num_classes=0, **timm_options).eval()
    trunk = ours().eval()
    trunk.load_state_dict(reference.state_dict())
    inputs = torch.randn(2, *trunk_input_shape(trunk))
    with torch.no_grad():
        torch.testing.assert_close(trunk(inputs), reference(inputs))


def trunk_input_shape(trunk: torch.nn.Module) -> tuple[int, int, int]:
    return (3, 32, 32) if hasattr(trunk, "patch_embed") else (3, 64, 64)
