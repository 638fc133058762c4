"""Hierarchical agglomeration of the data, to start EM from (as mclust's ``hc``).

mclust starts EM from a model-based hierarchical agglomeration: every point
begins as its own cluster and the two clusters whose merge costs the least
likelihood are merged, until one is left; cutting the tree at ``K`` clusters
gives the partition that starts EM for ``K`` components. Under the spherical,
equal-volume model (mclust's ``EII``) that merge cost is exactly Ward's
criterion, so the tree is Ward's linkage (SciPy's, O(n^2)).

As mclust does by default, the agglomeration runs

* on a subset of at most ``max_samples`` rows (2000) when the data are larger
  (drawn with probability proportional to ``sample_weight``); the fit then takes
  the M-step of that subset's partition as its start, and EM runs on all rows;
* on the data standardised and rotated onto their principal axes, each scaled by
  the square root of its singular value (mclust's ``hcUse = "SVD"``, so that
  features of different units weigh alike: ``transform="svd"``), or on the data
  as they are (``transform="none"``). The two trees often cut into different
  partitions, and model selection starts EM from both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.cluster import hierarchy

__all__ = ["TRANSFORMS", "AgglomerativePartitions", "agglomerate", "svd_scaled"]

_MAX_SAMPLES = 2000


@dataclass(frozen=True)
class AgglomerativePartitions:
    """Cuts of one agglomeration tree.

    Attributes
    ----------
    rows : ndarray of shape (n_subset,)
        The rows of the data that were agglomerated.
    labels : dict of int to ndarray of shape (n_subset,)
        For each requested number of clusters ``K``, each subset row's cluster
        in ``0 .. K-1``.
    """

    rows: np.ndarray
    labels: dict[int, np.ndarray]

    def responsibilities(self, n_components: int) -> np.ndarray:
        """Hard responsibilities of the subset rows, shape (n_subset, n_components)."""
        labels = self.labels[n_components]
        resp = np.zeros((len(labels), n_components))
        resp[np.arange(len(labels)), labels] = 1.0
        return resp


def svd_scaled(X: np.ndarray) -> np.ndarray:
    """mclust's ``"SVD"`` transformation: standardise, rotate, scale by ``1/sqrt(d)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    Y : ndarray of shape (n_samples, rank)
    """
    centred = X - X.mean(axis=0)
    scale = centred.std(axis=0, ddof=1) if len(X) > 1 else np.ones(X.shape[1])
    scale[~(scale > 0)] = 1.0
    standardised = centred / scale
    _, singular, vt = np.linalg.svd(standardised, full_matrices=False)
    keep = singular > np.sqrt(np.finfo(np.float64).eps)
    if not keep.any():
        return standardised
    return standardised @ vt[keep].T / np.sqrt(singular[keep])


def _unchanged(X: np.ndarray) -> np.ndarray:
    return X


# What the agglomeration sees, by name.
TRANSFORMS = {"svd": svd_scaled, "none": _unchanged}


def agglomerate(
    X: np.ndarray,
    n_clusters: Sequence[int],
    *,
    sample_weight: np.ndarray | None = None,
    transform: str = "svd",
    max_samples: int = _MAX_SAMPLES,
    rng: np.random.Generator | None = None,
) -> AgglomerativePartitions:
    """Agglomerate (a subset of) ``X`` and cut the tree at each of ``n_clusters``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_clusters : sequence of int
        Each at most the number of agglomerated rows.
    sample_weight : ndarray of shape (n_samples,), optional
        Rows of zero weight are left out; the subset, when one is drawn, is drawn
        with probability proportional to the weights.
    transform : {'svd', 'none'}
        Agglomerate mclust's SVD-scaled data, or the data as they are.
    max_samples : int
        Agglomerate a random subset of this many rows when there are more.
    rng : numpy Generator, optional
        Draws the subset.

    Returns
    -------
    AgglomerativePartitions
    """
    rows = np.arange(len(X)) if sample_weight is None else np.flatnonzero(sample_weight > 0)
    if len(rows) > max_samples:
        rng = rng or np.random.default_rng()
        p = None if sample_weight is None else sample_weight[rows] / sample_weight[rows].sum()
        rows = np.sort(rng.choice(rows, size=max_samples, replace=False, p=p))
    wanted = sorted({int(k) for k in n_clusters})
    if len(rows) == 1:
        return AgglomerativePartitions(rows, {k: np.zeros(1, dtype=np.intp) for k in wanted})
    tree = hierarchy.ward(TRANSFORMS[transform](np.asarray(X[rows], dtype=np.float64)))
    return AgglomerativePartitions(rows, cut_tree(tree, wanted))


def cut_tree(tree: np.ndarray, n_clusters: Sequence[int]) -> dict[int, np.ndarray]:
    """The partitions a linkage's first merges make, for each number of clusters.

    Replays the merges in order with a union-find (SciPy's ``cut_tree`` does the
    same in a slower Python loop), taking a snapshot when ``K`` clusters remain.

    Parameters
    ----------
    tree : ndarray of shape (n_rows - 1, 4)
        A SciPy linkage matrix.
    n_clusters : sequence of int
        Each in ``1 .. n_rows``.

    Returns
    -------
    dict of int to ndarray of shape (n_rows,)
        Labels in ``0 .. K-1``, numbered in order of first appearance.
    """
    n_rows = len(tree) + 1
    parent = np.arange(2 * n_rows - 1)
    cuts = {}
    wanted = set(n_clusters)
    for merged in range(n_rows):
        remaining = n_rows - merged
        if remaining in wanted:
            roots = parent[:n_rows].copy()
            for _ in range(merged):  # path compression, vectorised
                following = parent[roots]
                if np.array_equal(following, roots):
                    break
                roots = following
            cuts[remaining] = np.unique(roots, return_inverse=True)[1].astype(np.intp)
        if merged < n_rows - 1:
            left, right = int(tree[merged, 0]), int(tree[merged, 1])
            parent[left] = parent[right] = n_rows + merged
    return {k: _first_appearance(cuts[k]) for k in n_clusters}


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    """Relabel so that clusters are numbered in the order their first row appears."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[labels]
