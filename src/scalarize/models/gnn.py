"""A message-passing network for molecules (Gilmer et al., "Neural Message Passing for Quantum
Chemistry", ICML 2017), the QM9 model of Nash-MTL (Navon et al., ICML 2022) and FAMO (Liu et
al., NeurIPS 2023), built with PyTorch Geometric.

Family ``mpnn`` (a trunk; one linear head ``dim → 1`` per target, as theirs):

* ``lin0``: node features (11) → ``dim``, ReLU;
* ``depth`` rounds (3 in the papers) of an edge-conditioned convolution (``NNConv``, mean
  aggregation) whose ``dim x dim`` matrix per edge comes from the edge features (5) through
  ``Linear(5, 128) → ReLU → Linear(128, dim²)``, followed by a ``GRU`` cell; the convolution and
  the GRU are shared by the rounds. The edge network's output depends on the edge features
  alone, so it is computed once per forward pass and used by every round (PyTorch Geometric's
  ``NNConv`` recomputes it in each: the same function, and its parameter names, at a third of
  the cost, which the edge network dominates);
* ``Set2Set`` readout (3 processing steps) → ``2·dim``, then ``lin1`` → ``dim``, ReLU: the shared
  representation that MGDA-UB and GradNorm act on.

``dim = 64·width`` (64 in the papers). The input is a ``torch_geometric.data.Batch`` with ``x``,
``edge_index``, ``edge_attr`` and ``batch`` (:func:`scalarize.data.loaders.qm9.collate_molecules`).
Options: ``node_features`` (11), ``edge_features`` (5), ``edge_hidden`` (128), ``set2set_steps`` (3).
Its parameters are all vectors and matrices, but a population of these models cannot be stacked
(its inputs are graphs, not tensors): sweeps train its members one after another.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from scalarize.models.options import reject_unknown_options

FAMILY = "mpnn"
BASE_DIM = 64


def _shared_edge_conv(dim: int, edge_network: nn.Module):
    """An ``NNConv`` (same parameters, same function, mean aggregation) whose per-edge matrices
    are computed by :meth:`edge_matrices` and passed to ``forward``."""
    from torch_geometric.nn import NNConv
    from torch_geometric.utils import scatter

    class SharedEdgeNNConv(NNConv):
        def edge_matrices(self, edge_attr: Tensor) -> Tensor:
            return self.nn(edge_attr).view(-1, self.in_channels_l, self.out_channels)

        def forward(self, x: Tensor, edge_index: Tensor, matrices: Tensor) -> Tensor:  # type: ignore[override]
            source, target = edge_index  # messages flow from source to target, as in PyG
            messages = torch.bmm(x[source].unsqueeze(1), matrices).squeeze(1)
            out = scatter(messages, target, dim=0, dim_size=x.size(0), reduce="mean")
            if self.lin is not None:
                out = out + self.lin(x)
            if self.bias is not None:
                out = out + self.bias
            return out

    return SharedEdgeNNConv(dim, dim, edge_network, aggr="mean")


class MPNNEncoder(nn.Module):
    """The trunk: ``lin0``, ``rounds`` x (NNConv + GRU), Set2Set, ``lin1`` (module docstring)."""

    def __init__(
        self, dim: int, rounds: int, node_features: int, edge_features: int, edge_hidden: int, set2set_steps: int
    ) -> None:
        super().__init__()
        from torch_geometric.nn import Set2Set

        self.rounds = rounds
        self.lin0 = nn.Linear(node_features, dim)
        edge_network = nn.Sequential(
            nn.Linear(edge_features, edge_hidden), nn.ReLU(), nn.Linear(edge_hidden, dim * dim)
        )
        self.conv = _shared_edge_conv(dim, edge_network)
        self.gru = nn.GRU(dim, dim)
        self.set2set = Set2Set(dim, processing_steps=set2set_steps)
        self.lin1 = nn.Linear(2 * dim, dim)

    def forward(self, data) -> Tensor:
        out = F.relu(self.lin0(data.x))
        hidden = out.unsqueeze(0)
        matrices = self.conv.edge_matrices(data.edge_attr)
        for _ in range(self.rounds):
            message = F.relu(self.conv(out, data.edge_index, matrices))
            out, hidden = self.gru(message.unsqueeze(0), hidden)
            out = out.squeeze(0)
        pooled = self.set2set(out, data.batch, dim_size=int(data.num_graphs))
        return F.relu(self.lin1(pooled))


def mpnn_trunk(
    input_shape: tuple[int, ...] = (),
    width: float = 1.0,
    depth: int = 3,
    *,
    node_features: int = 11,
    edge_features: int = 5,
    edge_hidden: int = 128,
    set2set_steps: int = 3,
    **unknown: object,
) -> tuple[nn.Module, int]:
    """The MPNN trunk and its feature size ``64·width`` (see the module docstring)."""
    reject_unknown_options(FAMILY, unknown, ["node_features", "edge_features", "edge_hidden", "set2set_steps"])
    for name, value in (
        ("node_features", node_features),
        ("edge_features", edge_features),
        ("edge_hidden", edge_hidden),
        ("set2set_steps", set2set_steps),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{FAMILY}: option {name} must be a positive integer, got {value!r}")
    dim = max(1, round(BASE_DIM * width))
    return MPNNEncoder(dim, depth, node_features, edge_features, edge_hidden, set2set_steps), dim
