"""ESMM, the Entire Space Multi-task Model (Ma et al., SIGIR 2018, "Entire Space Multi-Task
Model: An Effective Approach for Estimating Post-Click Conversion Rate").

The rule (paper, eq. 1-3): a CTR tower and a CVR tower on the shared embedding ``x``; the model
outputs ``pCTR = σ(a)`` and ``pCTCVR = pCTR · pCVR = σ(a) σ(b)``, and both losses are taken over
**every impression** (the entire space): the CTR task on clicks, the CTCVR task on
click-and-convert. pCVR is never supervised directly; it is learned through ``pCTCVR``. The two
tasks must be binary, one logit each: the ``ctcvr`` head returns the exact logit of the product,
``log σ(a) + log σ(b) - log(σ(-a) + σ(a) σ(-b))`` (as ``1 - σ(a)σ(b) = σ(-a) + σ(a)σ(-b)``; in
log space, so no rounding of the product is taken to ``log``), so the binary kind's logistic loss
on it is the paper's cross-entropy on ``pCTR · pCVR``. Defaults (this library's, scaled by
``width``): ``tower`` (200, 80) for both towers, ``embedding_dim`` 8. Options ``ctr`` and
``ctcvr`` name the two tasks (default: the benchmark's first and second task).

Inspect pCVR with :meth:`ESMM.probabilities` (``{"ctr", "cvr", "ctcvr"}`` probabilities).

Representation: ``Z = [x ‖ a]``, the embedding and the CTR logit (both tasks read the CTR tower).
Shared parameters: the embedding tables and the CTR tower; task parameters: none for ``ctr``
(its head reads ``a`` from ``Z``), the CVR tower for ``ctcvr``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.functional import logsigmoid

from scalarize.data.features import FeatureSchema
from scalarize.data.task import Task
from scalarize.models.embedding import DEFAULT_DIM, FeatureEmbedding, hidden_sizes, mlp, schema_for
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.registry import ModelError, register_model


def ctcvr_logit(a: Tensor, b: Tensor) -> Tensor:
    """The logit of ``σ(a)·σ(b)``, computed in log space (see the module docstring)."""
    log_p = logsigmoid(a) + logsigmoid(b)
    log_q = torch.logaddexp(logsigmoid(-a), logsigmoid(a) + logsigmoid(-b))
    return log_p - log_q


class EmbeddingAndCTR(nn.Module):
    """``rows → Z = [x ‖ a]``: the embedded rows and the CTR tower's logit."""

    def __init__(self, embedding: FeatureEmbedding, ctr: nn.Module) -> None:
        super().__init__()
        self.embedding, self.ctr = embedding, ctr

    def forward(self, rows: Tensor) -> Tensor:
        x = self.embedding(rows)
        return torch.cat([x, self.ctr(x)], dim=-1)


class CTRHead(nn.Module):
    """The CTR logit ``a``, read from ``Z`` (no parameters of its own)."""

    def forward(self, z: Tensor) -> Tensor:
        return z[..., -1:]


class CTCVRHead(nn.Module):
    """The CVR tower ``b = cvr(x)`` and the logit of ``σ(a)·σ(b)``."""

    def __init__(self, cvr: nn.Module) -> None:
        super().__init__()
        self.cvr = cvr

    def cvr_logit(self, z: Tensor) -> Tensor:
        logit: Tensor = self.cvr(z[..., :-1])
        return logit

    def forward(self, z: Tensor) -> Tensor:
        return ctcvr_logit(z[..., -1:], self.cvr_logit(z))


class ESMM(MultiTaskModel):
    """The ESMM model: a :class:`MultiTaskModel` whose heads are the CTR and CTCVR tasks."""

    def __init__(self, trunk: EmbeddingAndCTR, ctr: str, ctcvr: str, cvr: nn.Module, order: Sequence[str]) -> None:
        heads: dict[str, nn.Module] = {ctr: CTRHead(), ctcvr: CTCVRHead(cvr)}
        super().__init__(trunk, {name: heads[name] for name in order})  # the tasks' order
        self.ctr_task, self.ctcvr_task = ctr, ctcvr

    def probabilities(self, rows: Tensor) -> dict[str, Tensor]:
        """``{"ctr": pCTR, "cvr": pCVR, "ctcvr": pCTR·pCVR}``, each ``[B, 1]``."""
        z = self.trunk(rows)
        head = self.heads[self.ctcvr_task]
        assert isinstance(head, CTCVRHead)
        ctr, cvr = torch.sigmoid(z[..., -1:]), torch.sigmoid(head.cvr_logit(z))
        return {"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}


def esmm(
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float = 1.0,
    features: FeatureSchema | None = None,
    embedding_dim: int | str = DEFAULT_DIM,
    tower: Sequence[int] = (200, 80),
    ctr: str | None = None,
    ctcvr: str | None = None,
) -> ESMM:
    """The ESMM model (see the module docstring)."""
    names = [t.name for t in tasks]
    if len(tasks) != 2 or any(t.num_outputs != 1 for t in tasks):
        raise ModelError(f"model: esmm needs two binary tasks of one logit (CTR, CTCVR), got {names}")
    ctr = ctr or (names[1] if ctcvr == names[0] else names[0])
    ctcvr = ctcvr or next(n for n in names if n != ctr)
    if {ctr, ctcvr} != set(names):
        raise ModelError(f"model.options: ctr and ctcvr must name the two tasks {names}, got {ctr!r} and {ctcvr!r}")
    embedding = FeatureEmbedding(schema_for(input_shape, features), embedding_dim)
    sizes = hidden_sizes("tower", tower, width)
    trunk = EmbeddingAndCTR(embedding, mlp(embedding.size, sizes, 1))
    return ESMM(trunk, ctr, ctcvr, mlp(embedding.size, sizes, 1), names)


register_model("esmm", esmm)
