"""Pairs for contrastive training, sampled in O(pairs): never all n² of them.

A contrastive step encodes a small set of sentences once and scores pairs
*among them*: a batch of ``B`` sentences holds up to ``B(B-1)/2`` pairs for the
price of ``B`` encodings, where a list of independent pairs costs two
encodings per pair. :func:`plan_pair_batches` draws those sets:

- each batch takes ``K`` samples from each of ``P`` classes (``P * K`` about
  ``batch_size``), the classes visited in a shuffled cycle and each class's
  samples in a shuffled cycle, so every sample is used about equally often;
- within a batch it keeps as many positive pairs (same class) as negative
  pairs (different classes), drawn at random among the batch's own pairs;
- the plan holds exactly ``min(n_pairs, what the data allows)`` pairs, never
  more, in memory proportional to that number plus the samples (a batch's own
  pairs are enumerated, at most ``batch_size²``, whatever the data size).

:func:`plan_multilabel_pair_batches` does the same for multi-label data (a
binary indicator matrix): the cycle runs over label columns instead of
classes, and a pair is positive when its two samples share at least one label,
negative when they share none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PairBatch", "plan_multilabel_pair_batches", "plan_pair_batches"]


@dataclass(frozen=True)
class PairBatch:
    """One optimisation step: the samples it encodes and the pairs it scores.

    ``rows`` are sample indices (distinct); ``left`` / ``right`` index into
    ``rows``; ``same`` says whether a pair is positive (same class, or for
    multi-label data at least one shared label).
    """

    rows: np.ndarray
    left: np.ndarray
    right: np.ndarray
    same: np.ndarray

    @property
    def n_pairs(self) -> int:
        return len(self.left)


def samples_per_class(n_classes: int, batch_size: int) -> int:
    """``K``: samples a batch takes from each of its classes (at least 2, for positives)."""
    return max(2, batch_size // max(n_classes, 1))


def plan_pair_batches(
    codes: np.ndarray, n_pairs: int, batch_size: int, rng: np.random.Generator
) -> list[PairBatch]:
    """Batches of samples and balanced pairs among them, ``n_pairs`` pairs in all at most.

    Parameters
    ----------
    codes : ndarray of int, shape (n_samples,)
        Class code of every sample (0 .. n_classes-1); every class needs at
        least 2 samples.
    n_pairs : int
        Pairs wanted. The plan holds at most this many; fewer only when a
        batch of the data can hold no balanced pair at all.
    batch_size : int
        Samples encoded per batch (at least 2).
    rng : numpy.random.Generator

    Returns
    -------
    list of PairBatch
        Each with as many positive as negative pairs.
    """
    codes = np.asarray(codes, dtype=np.int64)
    counts = np.bincount(codes)
    n_classes = len(counts)
    if n_classes < 2 or counts.min() < 2:
        raise ValueError("plan_pair_batches needs >= 2 classes of >= 2 samples each")
    # Members of every class in a shuffled order, one array: class c is
    # members[starts[c]:starts[c + 1]].
    members = np.lexsort((rng.random(len(codes)), codes))

    def same_of(rows: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        labels = codes[rows]
        return labels[left] == labels[right]

    return _plan_groups(members, counts, same_of, n_pairs, batch_size, rng)


def plan_multilabel_pair_batches(
    indicator: np.ndarray, n_pairs: int, batch_size: int, rng: np.random.Generator
) -> list[PairBatch]:
    """Multi-label batches: a pair is positive when its samples share a label.

    Each batch takes ``K`` samples carrying each of ``P`` labels, the labels
    visited in a shuffled cycle and each label's samples in a shuffled cycle;
    samples without any label form one more group of the cycle (they are
    negatives for every other sample). Within a batch, ``same`` is whether the
    two samples share at least one label, and as many positive as negative
    pairs are kept. Memory is proportional to the pairs planned plus the
    non-zero entries of ``indicator`` (a batch's own pairs, at most
    ``batch_size²``, are enumerated; never all pairs of the data).

    Parameters
    ----------
    indicator : array-like of shape (n_samples, n_labels)
        Binary label indicator (0/1 or bool); every label column needs at
        least 2 positive samples.
    n_pairs : int
        Pairs wanted. The plan holds at most this many.
    batch_size : int
        Samples encoded per batch (at least 2).
    rng : numpy.random.Generator

    Returns
    -------
    list of PairBatch
        Each with as many positive as negative pairs. The plan ends early
        (possibly empty) when a full cycle of batches finds no balanced pair,
        e.g. when every two samples share a label, so there are no negatives.
    """
    indicator = np.asarray(indicator).astype(bool, copy=False)
    if indicator.ndim != 2 or indicator.shape[1] < 1:
        raise ValueError(
            "plan_multilabel_pair_batches needs a 2-D indicator with at least 1 label column"
        )
    counts = indicator.sum(axis=0)
    if counts.min() < 2:
        column = int(np.flatnonzero(counts < 2)[0])
        raise ValueError(
            f"plan_multilabel_pair_batches needs >= 2 positive samples in every label column; "
            f"column {column} has {int(counts[column])}"
        )
    # Members of every group in a shuffled order, one array: group g is
    # members[starts[g]:starts[g + 1]]. Groups: the label columns, then the
    # samples without labels (when there are any).
    label_of, sample = np.nonzero(indicator.T)  # sorted by label column
    unlabeled = np.flatnonzero(~indicator.any(axis=1))
    n_labels = indicator.shape[1]
    if len(unlabeled):
        label_of = np.concatenate([label_of, np.full(len(unlabeled), n_labels)])
        sample = np.concatenate([sample, unlabeled])
        counts = np.concatenate([counts, [len(unlabeled)]])
    members = sample[np.lexsort((rng.random(len(sample)), label_of))]

    def same_of(rows: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        labels = indicator[rows].astype(np.float32)
        return (labels @ labels.T)[left, right] > 0

    return _plan_groups(members, counts, same_of, n_pairs, batch_size, rng)


def _plan_groups(members, counts, same_of, n_pairs: int, batch_size: int, rng) -> list[PairBatch]:
    """The batches of both planners: groups visited in a shuffled cycle, balanced pairs.

    Group ``g`` is ``members[starts[g]:starts[g + 1]]`` (its samples in a
    shuffled order; ``counts[g]`` of them), walked cyclically by a cursor.
    ``same_of(rows, left, right)`` says which pairs of a batch are positive.
    The plan ends early when a whole cycle of batches finds no balanced pair.
    """
    n_groups = len(counts)
    starts = np.concatenate([[0], np.cumsum(counts)])
    cursor = np.zeros(n_groups, dtype=np.int64)
    batch_size = max(2, int(batch_size))
    k = samples_per_class(n_groups, batch_size)
    p = min(n_groups, max(2, batch_size // k))  # groups per batch: negatives need two
    group_cycle = rng.permutation(n_groups)
    group_pos = 0

    batches: list[PairBatch] = []
    remaining = int(n_pairs) // 2 * 2  # balanced: an even number
    misses = 0  # consecutive batches without a balanced pair
    while remaining >= 2 and misses < n_groups:
        chosen = []
        for _ in range(p):
            if group_pos == n_groups:
                group_cycle, group_pos = rng.permutation(n_groups), 0
            g = int(group_cycle[group_pos])
            group_pos += 1
            take = min(k, int(counts[g]))
            idx = (cursor[g] + np.arange(take)) % counts[g]
            cursor[g] = (cursor[g] + take) % counts[g]
            chosen.append(members[starts[g] + idx])
        rows = np.concatenate(chosen)
        _, first = np.unique(rows, return_index=True)  # a sample met twice in one batch
        rows = rows[np.sort(first)]
        left, right = np.triu_indices(len(rows), k=1)
        same = same_of(rows, left, right)
        pos, neg = np.flatnonzero(same), np.flatnonzero(~same)
        half = min(len(pos), len(neg), remaining // 2)
        if half == 0:
            misses += 1
            continue
        misses = 0
        pick = np.concatenate(
            [rng.choice(pos, half, replace=False), rng.choice(neg, half, replace=False)]
        )
        pick = pick[rng.permutation(len(pick))]
        batches.append(PairBatch(rows, left[pick], right[pick], same[pick]))
        remaining -= 2 * half
    return batches
