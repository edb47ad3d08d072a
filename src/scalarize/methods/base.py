"""The method protocol: how per-task losses become one update of the model.

A method is a small :class:`torch.nn.Module` (so that its learnable parameters, e.g. Uncertainty
weighting's log-variances, and its buffers, e.g. running averages, land in ``state_dict``). It
declares what it needs in :attr:`Method.needs`; the trainer provides it through a
:class:`~scalarize.methods.context.StepContext` and never looks at the method's name.

Two families cover almost every method:

* loss-space methods implement :meth:`Method.combine`, which turns the vector of task losses
  into one scalar; the trainer backpropagates it once (one backward, O(1) in the number of tasks);
* gradient-space methods subclass :class:`GradientMethod` and implement
  :meth:`GradientMethod.aggregate`, which turns the per-task gradients on the shared parameters
  (a ``[T, n]`` matrix) into one update direction ``[n]``.

Anything else (gradients on the shared representation, several backward passes, a hook after the
optimizer step) overrides :meth:`Method.backward` or :meth:`Method.after_step` and uses what the
context offers. A method that is an optimizer in its own right (MTAdam) declares
:data:`OWN_OPTIMIZER`: its :meth:`Method.backward` writes the final update into ``.grad`` and the
trainer steps with the optimizer :meth:`Method.build_optimizer` returns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from torch import Tensor, nn

from scalarize.errors import ScalarizeError
from scalarize.methods.gradients.space import GRADIENT_SPACE_NAMES

if TYPE_CHECKING:
    from scalarize.methods.context import StepContext

Setting = Literal["mtl", "mdl"]

#: What a method may ask the trainer for.
LOSSES = "losses"
SHARED_GRADIENTS = "shared_gradients"
FEATURE_GRADIENTS = "feature_gradients"
AFTER_STEP = "after_step"
#: The method brings its optimizer: the trainer builds it with :meth:`Method.build_optimizer`
#: instead of the configured one (``.grad`` then already holds the method's update).
OWN_OPTIMIZER = "own_optimizer"
#: The method's estimates need the losses of other, independently drawn batches at the same
#: parameters (SDMGrad, MoDo): the trainer passes ``independent_losses`` to the context. Without
#: it those methods fall back to the step's own batch.
INDEPENDENT_BATCHES = "independent_batches"
#: The model takes a preference vector as an input (COSMOS): the trainer builds it conditioned
#: (:class:`~scalarize.models.conditioned.PreferenceConditioned`) and, before every step's forward
#: pass, gives it :meth:`Method.draw_preference`.
PREFERENCE_INPUT = "preference_input"
NEEDS = frozenset(
    {LOSSES, SHARED_GRADIENTS, FEATURE_GRADIENTS, AFTER_STEP, OWN_OPTIMIZER, INDEPENDENT_BATCHES, PREFERENCE_INPUT}
)

#: What a method may promise about its update (:attr:`Method.promises`; the shared property tests,
#: tests/methods/test_method_properties.py, hold every method to what it promises).
#: Relabelling the tasks permutes the method's weights and leaves its update unchanged (it treats
#: tasks symmetrically and draws no random numbers).
PERMUTATION_EQUIVARIANT = "permutation_equivariant"
#: The update conflicts with no task: ``g_i · d >= 0`` for linearly independent gradients.
NON_CONFLICTING = "non_conflicting"
#: Scaling a task's loss (so its gradient) by ``c > 0`` leaves the update unchanged.
SCALE_INVARIANT = "scale_invariant"
#: Scaling a task's loss by ``c > 0`` leaves the update's direction unchanged (not its length).
SCALE_INVARIANT_DIRECTION = "scale_invariant_direction"
PROMISES = frozenset({PERMUTATION_EQUIVARIANT, NON_CONFLICTING, SCALE_INVARIANT, SCALE_INVARIANT_DIRECTION})


class MethodError(ScalarizeError):
    """A method was configured with values it cannot accept (reported to users as one line)."""


class Method(nn.Module):
    """Base class of every way of turning T task losses into an update.

    Subclasses set :attr:`name` (the name used in configs) and :attr:`needs`, and implement
    :meth:`combine` (loss space) or :meth:`backward` (anything else).
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset({LOSSES})
    #: The properties of its update the method promises (:data:`PROMISES`), as its paper does.
    promises: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.task_names: list[str] = []
        self.setting: Setting = "mtl"
        #: The dtype of the last step's losses and gradients (``None`` before a step): what
        #: :meth:`current_weights` reports in, whatever the dtype of the method's own state.
        self.step_dtype: torch.dtype | None = None

    # -- set-up ------------------------------------------------------------------------------
    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        """Tells the method the names of the objectives (tasks in MTL, domains in MDL).

        Called once by the trainer before the first step; subclasses that size parameters or
        validate weights against the number of objectives extend it (and call ``super``).
        """
        self.task_names = list(task_names)
        self.setting = setting

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    # -- one step ----------------------------------------------------------------------------
    def combine(self, losses: Tensor) -> Tensor:
        """Loss-space rule: the scalar to backpropagate from the ``[T]`` vector of losses."""
        raise NotImplementedError(f"{type(self).__name__} implements neither combine nor backward")

    def backward(self, context: StepContext) -> None:
        """Fills ``.grad`` of every trainable parameter (model and method) for this step."""
        context.backward(self.combine(context.losses))

    def after_step(self, context: StepContext) -> None:
        """Hook run after the optimizer step (methods that declare :data:`AFTER_STEP`)."""

    def end_epoch(self, epoch: int, mean_train_losses: Tensor) -> None:
        """Hook run at the end of every epoch with the epoch's mean training losses ``[T]``."""

    def build_optimizer(self, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """The optimizer of a method that declares :data:`OWN_OPTIMIZER` (over ``params``).

        The trainer calls it instead of building its configured optimizer; ``lr`` is the
        configured learning rate.
        """
        raise NotImplementedError(f"{type(self).__name__} does not bring its own optimizer")

    # -- what the trainer reads --------------------------------------------------------------
    def sampling_weights(self) -> Tensor | None:
        """The domain mixture for the next batches (MDL); ``None`` means uniform over domains."""
        return None

    def current_weights(self) -> Tensor | None:
        """The per-task weights last applied, ``[T]``, for logging (``None`` if not defined, as
        before ``setup``; :func:`defined` turns a method's empty state into ``None``). After a
        step they have the dtype of that step's losses and gradients (:meth:`reported`)."""
        return None

    def reported(self, weights: Tensor) -> Tensor | None:
        """``weights`` as :meth:`current_weights` answers them: ``None`` while not defined, else
        in :attr:`step_dtype` (the weights' own dtype before a step)."""
        w = defined(weights)
        return w if w is None or self.step_dtype is None else w.to(self.step_dtype)

    def draw_preference(self) -> Tensor:
        """The preference the model takes as input for the next step (:data:`PREFERENCE_INPUT`)."""
        raise NotImplementedError(f"{type(self).__name__} takes no preference input")

    def objective_weights(self) -> Tensor | None:
        """The weights of the objective the run minimises, ``[T]``: its best evaluation is the one
        with the lowest validation loss weighted by them (``selection: objective``). ``None``:
        uniform, for methods that set their own weights along training."""
        return None


class GradientMethod(Method):
    """A method that aggregates per-task gradients on the shared parameters.

    The trainer's context computes the ``[T, n]`` Jacobian of the task losses with respect to
    the shared parameters and the task-specific gradients; :meth:`aggregate` returns the
    direction ``[n]`` written into the shared parameters' ``.grad``.

    Every gradient method takes ``method.options.gradients`` (:meth:`use_gradients`):
    ``parameters`` (default) or ``representation``, where the Jacobian is taken on the shared
    representation instead and the direction backpropagated through the trunk
    (:mod:`scalarize.methods.gradients.representation`). A subclass's own :meth:`backward` gets
    the context in that space (:meth:`StepContext.in_gradient_space`) with nothing to write.
    """

    needs: ClassVar[frozenset[str]] = frozenset({LOSSES, SHARED_GRADIENTS})
    #: Where the per-task gradients are taken (``method.options.gradients``).
    gradients: str = "parameters"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "backward" in cls.__dict__:
            cls.backward = _in_gradient_space(cls.__dict__["backward"])  # type: ignore[method-assign, assignment]

    @classmethod
    def gradient_spaces(cls) -> tuple[str, ...]:
        """The spaces ``method.options.gradients`` may name: every one, but only ``parameters``
        for methods that draw other batches (their Jacobians are on the parameters) or keep
        per-column state across steps (on the representation a column is a sample)."""
        if INDEPENDENT_BATCHES in cls.needs or getattr(cls, "_jacobian_state_keys", None):
            return ("parameters",)
        return tuple(GRADIENT_SPACE_NAMES)

    def use_gradients(self, space: str) -> None:
        """Takes the per-task gradients in ``space`` (one of :meth:`gradient_spaces`)."""
        if space not in GRADIENT_SPACE_NAMES:
            raise MethodError(
                f"method.options.gradients: must be one of {', '.join(GRADIENT_SPACE_NAMES)}, got {space!r}"
            )
        if space not in self.gradient_spaces():
            why = "draws other batches" if INDEPENDENT_BATCHES in self.needs else "keeps per-column state across steps"
            raise MethodError(
                f"method.options.gradients: method {self.name or type(self).__name__} {why}; "
                "it takes its gradients on the parameters only"
            )
        self.gradients = space

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, context: StepContext) -> None:
        context = context.in_gradient_space(self.gradients)
        gradients = context.shared_jacobian()
        context.backward_task_specific()
        context.set_shared_gradient(self.aggregate(gradients, context.losses.detach()))


def _in_gradient_space(
    backward: Callable[[GradientMethod, StepContext], None],
) -> Callable[[GradientMethod, StepContext], None]:
    """A gradient method's own ``backward``, handed the context in the method's gradient space."""

    @functools.wraps(backward)
    def in_space(self: GradientMethod, context: StepContext) -> None:
        backward(self, context.in_gradient_space(self.gradients))

    return in_space


def defined(weights: Tensor) -> Tensor | None:
    """``weights``, or ``None`` while they are not defined: empty, before ``setup`` (or before the
    first step, for weights a step computes)."""
    return weights if weights.numel() else None


def check_weights(weights: Sequence[float] | Tensor, num_tasks: int, key: str = "weights") -> Tensor:
    """Validates a weight vector: right length, finite, non-negative, positive sum."""
    w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if w.numel() != num_tasks:
        raise MethodError(f"{key}: expected {num_tasks} values (one per task), got {w.numel()}")
    if not torch.isfinite(w).all():
        raise MethodError(f"{key}: every weight must be a finite number, got {w.tolist()}")
    if (w < 0).any():
        raise MethodError(f"{key}: weights must be >= 0, got {w.tolist()}")
    if w.sum() <= 0:
        raise MethodError(f"{key}: weights must not all be zero")
    return w.to(torch.get_default_dtype())


def normalize_weights(weights: Sequence[float] | Tensor, num_tasks: int, key: str = "weights") -> Tensor:
    """:func:`check_weights`, then scaled to sum to one, in float64 before the default dtype (so
    that weights as large as 1e308 do not overflow float32)."""
    check_weights(weights, num_tasks, key)
    w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    w = w / w.max()
    return (w / w.sum()).to(torch.get_default_dtype())
