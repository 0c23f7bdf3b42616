"""Rows grouped into clusters for GEE: any row order in, equal-size buckets out.

Rows are sorted (stably) by cluster and, within a cluster, by the time column when one is
given, else kept in data order. Clusters of one size form a *bucket* whose rows are an
``(m, k)`` index array, so that every per-cluster product is a batched array operation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Bucket:
    """All clusters of one size ``k``: ``rows`` (m, k) row indices, ``times`` (m, k) codes."""

    rows: np.ndarray
    times: np.ndarray
    clusters: np.ndarray


@dataclass
class Clusters:
    """Cluster structure of the rows.

    Attributes
    ----------
    index : ndarray (n,)
        Cluster code of each row.
    buckets : list of Bucket
    n_clusters : int
    n_times : int
        Number of distinct time codes (largest cluster size when no time column).
    """

    index: np.ndarray
    buckets: list[Bucket]
    n_clusters: int
    n_times: int

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.index, minlength=self.n_clusters)


def make_clusters(index: np.ndarray, time: np.ndarray | None = None) -> Clusters:
    """Group rows by the integer cluster codes ``index`` (0..G-1), ordered by ``time``.

    Parameters
    ----------
    index : ndarray of int, shape (n,)
    time : ndarray, shape (n,), optional
        Values that order the rows within a cluster (AR(1)) and name the time points
        (unstructured); their sorted distinct values become codes ``0..T-1``.
    """
    index = np.asarray(index, dtype=np.int64)
    n = index.size
    if time is None:
        order = np.argsort(index, kind="stable")
    else:
        tcode = np.unique(time, return_inverse=True)[1].ravel()
        order = np.lexsort((tcode, index))
    G = int(index.max()) + 1 if n else 0
    sizes = np.bincount(index, minlength=G)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.arange(n) - np.repeat(starts, sizes)  # position within cluster, sorted rows
    if time is None:
        codes = pos
        n_times = int(sizes.max()) if n else 0
    else:
        codes = tcode[order]
        n_times = int(tcode.max()) + 1
    buckets = []
    for k in np.unique(sizes[sizes > 0]):
        cl = np.flatnonzero(sizes == k)
        rows = starts[cl][:, None] + np.arange(k)[None, :]
        buckets.append(Bucket(rows=order[rows], times=codes[rows], clusters=cl))
    return Clusters(index=index, buckets=buckets, n_clusters=G, n_times=n_times)


def repeated_times(clusters: Clusters) -> list[int]:
    """Clusters in which a time code occurs twice (unstructured needs distinct times)."""
    bad = []
    for b in clusters.buckets:
        s = np.sort(b.times, axis=1)
        dup = (s[:, 1:] == s[:, :-1]).any(axis=1) if s.shape[1] > 1 else np.zeros(len(s), bool)
        bad.extend(b.clusters[dup].tolist())
    return bad
