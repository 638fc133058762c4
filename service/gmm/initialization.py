"""Initial responsibilities for EM: k-means, k-means++, random, random_from_data.

Each method returns hard or soft responsibilities of shape
(n_samples, n_components); the fit turns them into initial parameters with the
same M-step it uses afterwards. k-means is our own vectorized Lloyd, started
from k-means++ seeds (scikit-learn is not a runtime dependency).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .kernels import chunk_rows, map_chunks

__all__ = ["INIT_METHODS", "initial_responsibilities", "kmeans", "kmeans_plusplus"]

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


def _squared_distances(x: np.ndarray, centers: np.ndarray, center_norms: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, shape (n_rows, n_centers), clipped at 0."""
    distances = np.einsum("nd,nd->n", x, x)[:, None] - 2.0 * (x @ centers.T) + center_norms
    np.maximum(distances, 0.0, out=distances)
    return distances


def _closest(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the closest center, per row."""
    center_norms = np.einsum("kd,kd->k", centers, centers)
    rows = chunk_rows(X.shape[1], len(centers))

    def one_chunk(rows_slice: slice) -> tuple[np.ndarray, np.ndarray]:
        distances = _squared_distances(X[rows_slice], centers, center_norms)
        labels = distances.argmin(axis=1)
        return labels, distances[np.arange(len(labels)), labels]

    parts = list(map_chunks(one_chunk, len(X), rows))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def kmeans_plusplus(
    X: np.ndarray, n_clusters: int, sample_weight: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Greedy k-means++ seeding (as in Arthur & Vassilvitskii, with local trials).

    Returns
    -------
    indices : ndarray of shape (n_clusters,)
        Rows of ``X`` chosen as seeds.
    """
    n_samples = len(X)
    n_local_trials = 2 + int(np.log(n_clusters))
    first = rng.choice(n_samples, p=sample_weight / sample_weight.sum())
    indices = [int(first)]
    closest = _closest(X, X[[first]])[1]
    for _ in range(1, n_clusters):
        potential = closest * sample_weight
        total = potential.sum()
        if total <= 0.0:  # every point sits on a seed already: take any unused row
            remaining = np.setdiff1d(np.arange(n_samples), indices)
            indices.append(int(rng.choice(remaining)))
            continue
        cumulative = np.cumsum(potential)
        candidates = np.searchsorted(cumulative, rng.uniform(size=n_local_trials) * total)
        candidates = np.minimum(candidates, n_samples - 1)
        candidate_norms = np.einsum("kd,kd->k", X[candidates], X[candidates])
        distances = _squared_distances(X, X[candidates], candidate_norms)
        new_closest = np.minimum(closest[:, None], distances)
        best = int(np.argmin(sample_weight @ new_closest))
        indices.append(int(candidates[best]))
        closest = new_closest[:, best]
    return np.asarray(indices)


def kmeans(
    X: np.ndarray,
    n_clusters: int,
    sample_weight: np.ndarray,
    rng: np.random.Generator,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> np.ndarray:
    """Weighted Lloyd iterations from k-means++ seeds.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
    """
    centers = X[kmeans_plusplus(X, n_clusters, sample_weight, rng)].astype(np.float64)
    # Convergence is judged against the data's overall spread, as scikit-learn does.
    tolerance = tol * float(np.mean(np.var(X, axis=0)))
    labels = np.zeros(len(X), dtype=np.intp)
    for _ in range(max_iter):
        labels, _ = _closest(X, centers.astype(X.dtype))
        totals = np.bincount(labels, weights=sample_weight, minlength=n_clusters)
        new_centers = np.empty_like(centers)
        for d in range(X.shape[1]):
            new_centers[:, d] = np.bincount(
                labels, weights=sample_weight * X[:, d], minlength=n_clusters
            )
        empty = totals == 0
        new_centers[~empty] /= totals[~empty, None]
        new_centers[empty] = centers[empty]  # an empty cluster keeps its center
        shift = float(np.sum((new_centers - centers) ** 2))
        centers = new_centers
        if shift <= tolerance:
            break
    labels, _ = _closest(X, centers.astype(X.dtype))
    return labels


def _one_hot(labels: np.ndarray, n_components: int) -> np.ndarray:
    resp = np.zeros((len(labels), n_components))
    resp[np.arange(len(labels)), labels] = 1.0
    return resp


def _init_kmeans(X, n_components, sample_weight, rng):
    return _one_hot(kmeans(X, n_components, sample_weight, rng), n_components)


def _init_kmeans_plusplus(X, n_components, sample_weight, rng):
    resp = np.zeros((len(X), n_components))
    resp[kmeans_plusplus(X, n_components, sample_weight, rng), np.arange(n_components)] = 1.0
    return resp


def _init_random(X, n_components, sample_weight, rng):
    resp = rng.uniform(size=(len(X), n_components))
    resp /= resp.sum(axis=1, keepdims=True)
    return resp


def _init_random_from_data(X, n_components, sample_weight, rng):
    candidates = np.flatnonzero(sample_weight > 0)
    indices = rng.choice(candidates, size=n_components, replace=False)
    resp = np.zeros((len(X), n_components))
    resp[indices, np.arange(n_components)] = 1.0
    return resp


_INITIALISERS: dict[str, Callable[..., np.ndarray]] = {
    "kmeans": _init_kmeans,
    "k-means++": _init_kmeans_plusplus,
    "random": _init_random,
    "random_from_data": _init_random_from_data,
}


def initial_responsibilities(
    X: np.ndarray,
    n_components: int,
    init_params: str,
    sample_weight: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Responsibilities to start EM from.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}
    sample_weight : ndarray of shape (n_samples,) or None
    rng : numpy Generator

    Returns
    -------
    responsibilities : ndarray of shape (n_samples, n_components)
    """
    weights = np.ones(len(X)) if sample_weight is None else sample_weight.astype(np.float64)
    return _INITIALISERS[init_params](X, n_components, weights, rng)
