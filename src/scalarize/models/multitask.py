"""A shared trunk and one head per task: the architecture of hard parameter sharing."""

from __future__ import annotations

from torch import Tensor, nn


class MultiTaskModel(nn.Module):
    """``trunk(x)`` is the shared representation; ``heads[name]`` maps it to task ``name``.

    ``forward`` returns ``(features, outputs)`` so that methods working on the shared
    representation (e.g. MGDA-UB) can reach it without hooks.
    """

    def __init__(self, trunk: nn.Module, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleDict(heads)

    def forward(self, inputs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        features = self.trunk(inputs)
        return features, {name: head(features) for name, head in self.heads.items()}

    def forward_with_head_inputs(self, inputs: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """As :meth:`forward`, but head i reads row i of ``head_inputs``, a ``[T, *features.shape]``
        expanded view of the features, returned between the features and the outputs.

        The gradient of the summed losses on ``head_inputs`` is then ``[T, *features.shape]``:
        row i is task i's gradient on the shared representation alone, all from one backward pass
        through the heads (:class:`~scalarize.methods.StepContext` uses it). Two view operations
        more than :meth:`forward`, whatever T.
        """
        features = self.trunk(inputs)
        head_inputs = features.unsqueeze(0).expand(len(self.heads), *features.shape)
        outputs = {name: head(x) for (name, head), x in zip(self.heads.items(), head_inputs.unbind(0))}
        return features, head_inputs, outputs

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.trunk.parameters() if p.requires_grad]

    def task_parameters(self) -> list[list[nn.Parameter]]:
        return [[p for p in head.parameters() if p.requires_grad] for head in self.heads.values()]
