"""Exact ranking metrics of binary tasks: AUC and GAUC, without binning.

AUC is the Mann-Whitney statistic: the probability that a positive sample scores above a negative
one, ties counting one half (Hanley & McNeil 1982), computed from average ranks in
``O(n log n)``; it equals ``sklearn.metrics.roc_auc_score``. GAUC (Zhou et al., "Deep Interest
Network", KDD 2018, eq. 9) is the AUC within each group (a user), averaged with the group's
impressions as weights: ``Σ_g n_g AUC_g / Σ_g n_g`` over the groups that hold both classes (a
group with one class has no AUC and is left out, as in DIN). Everything is vectorised numpy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def _group_aucs(
    scores: NDArray[np.float64], labels: NDArray[np.bool_], groups: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(AUC per group, impressions per group); NaN where a group lacks a class."""
    order = np.lexsort((scores, groups))
    s, y, g = scores[order], labels[order], groups[order]
    n = len(s)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    new_block = new_group.copy()  # a tie block: the same group and the same score
    new_block[1:] |= s[1:] != s[:-1]
    block = np.cumsum(new_block) - 1
    starts = np.flatnonzero(new_block)
    ends = np.append(starts[1:], n)  # exclusive
    group_index = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)
    # 1-based rank inside the group, averaged over the tie block
    rank = (starts[block] + 1 + ends[block]) / 2.0 - group_start[group_index]
    size = np.bincount(group_index).astype(np.float64)
    positives = np.bincount(group_index, weights=y.astype(np.float64), minlength=len(size))
    rank_sum = np.bincount(group_index, weights=np.where(y, rank, 0.0), minlength=len(size))
    negatives = size - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        aucs = (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
    aucs[(positives == 0) | (negatives == 0)] = np.nan
    return aucs, size


def auc(scores: NDArray[np.floating], labels: NDArray[np.generic]) -> float:
    """Exact ROC AUC of ``scores`` against 0/1 ``labels`` (ties: one half); NaN with one class."""
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(np.bool_)
    if not len(x):
        return float("nan")
    aucs, _ = _group_aucs(x, y, np.zeros(len(x), dtype=np.int64))
    return float(aucs[0])


def gauc(scores: NDArray[np.floating], labels: NDArray[np.generic], groups: NDArray[np.generic]) -> float:
    """Impression-weighted mean of the per-group AUCs (DIN's GAUC); NaN when no group has both
    classes."""
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(np.bool_)
    if not len(x):
        return float("nan")
    _, codes = np.unique(np.asarray(groups).reshape(-1), return_inverse=True)
    aucs, size = _group_aucs(x, y, codes.astype(np.int64).reshape(-1))
    valid = ~np.isnan(aucs)
    if not valid.any():
        return float("nan")
    return float(np.sum(aucs[valid] * size[valid]) / np.sum(size[valid]))


def logloss(logits: NDArray[np.floating], labels: NDArray[np.generic]) -> float:
    """Mean binary cross-entropy of ``logits`` (pre-sigmoid) against 0/1 ``labels``, computed
    stably as ``log(1 + e^x) - y x``."""
    x = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if not len(x):
        return float("nan")
    return float(np.mean(np.logaddexp(0.0, x) - y * x))
