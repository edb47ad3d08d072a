"""How per-task losses become an update: scalarization and the MTO methods."""

from scalarize.methods.base import (
    AFTER_STEP,
    FEATURE_GRADIENTS,
    LOSSES,
    SHARED_GRADIENTS,
    GradientMethod,
    Method,
    MethodError,
    check_weights,
)
from scalarize.methods.context import StepContext
from scalarize.methods.registry import available_methods, build_method, register
from scalarize.methods.scalarization import Scalarization

register(Scalarization)

__all__ = [
    "AFTER_STEP",
    "FEATURE_GRADIENTS",
    "LOSSES",
    "SHARED_GRADIENTS",
    "GradientMethod",
    "Method",
    "MethodError",
    "Scalarization",
    "StepContext",
    "available_methods",
    "build_method",
    "check_weights",
    "register",
]
