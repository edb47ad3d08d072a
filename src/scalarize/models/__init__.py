"""The model contract and the model families: a shared trunk and one head per task (MLP, small
ResNet, linear), the recommender families on tabular rows (shared-bottom, MMoE, CGC/PLE,
DSelect-k, ESMM, AITM), builders registered by name or named by import path."""

# The recommender families register themselves by name.
from scalarize.models import aitm, dselect_k, esmm, mmoe, ple, shared_bottom  # noqa: F401  (registration)
from scalarize.models.contract import ModuleModel, as_multitask, probe, supports_head_inputs
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.registry import (
    ModelError,
    available_models,
    build_model,
    make_heads,
    register_model,
    register_trunk,
)

__all__ = [
    "ModelError",
    "ModuleModel",
    "MultiTaskModel",
    "as_multitask",
    "available_models",
    "build_model",
    "make_heads",
    "probe",
    "register_model",
    "register_trunk",
    "supports_head_inputs",
]
