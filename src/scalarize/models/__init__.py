"""Shared trunk + heads, in families (MLP, small ResNet, linear, the paper's bottleneck ResNets and
ViTs) with width and depth knobs."""

from scalarize.models.multitask import MultiTaskModel
from scalarize.models.registry import FAMILIES, ModelError, available_models, build_model

__all__ = ["FAMILIES", "ModelError", "MultiTaskModel", "available_models", "build_model"]
