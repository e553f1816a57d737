"""Adaptation of a pretrained body to unlabelled target data.

Three passes, each on a private copy of the network (the loaded network is
shared between encoders and never modified):

- :func:`adapt_batchnorm` (AdaBN, Li et al. 2016): BatchNorm running statistics
  re-estimated on the target images; nothing else changes.
- :func:`adapt_tent` (TENT, Wang et al. 2021): BatchNorm scale and shift trained
  to minimise the entropy of a source-trained linear head's predictions on the
  target images, then AdaBN statistics under the new scale and shift.
- :func:`adapt_contrastive` (unsupervised SimCSE, Gao et al. 2021): a short
  contrastive pass on target sentences, two dropout views of each sentence as
  the positive pair and the other sentences of the batch as negatives.

Each returns the number of optimisation steps (or forward batches) it ran.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable

import numpy as np

# Unsupervised SimCSE settings (Gao et al. 2021, table D.1: temperature 0.05,
# learning rate 3e-5 for BERT-base-sized models).
SIMCSE_TEMPERATURE = 0.05
SIMCSE_LEARNING_RATE = 3e-5
# TENT (Wang et al. 2021): Adam on the BatchNorm affine parameters only.
TENT_LEARNING_RATE = 1e-3
# Default bound of the text pass: one epoch over the target sentences, at most
# this many steps (a few minutes for MiniLM on a laptop CPU).
DEFAULT_CONTRASTIVE_STEPS = 200


def batchnorm_layers(network) -> list:
    import torch

    return [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def adapt_batchnorm(network, batches: Callable[[], Iterable]) -> int:
    """Re-estimate every BatchNorm layer's running mean and variance on ``batches``.

    ``batches()`` yields input tensors (already on the network's device). The
    statistics are cumulative averages over all target batches (momentum
    ``None``), so the order of the batches does not matter; weights and
    biases are untouched. The network is left in eval mode.
    """
    import torch

    layers = batchnorm_layers(network)
    saved = [(m, m.momentum) for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every target batch counts the same
    network.eval()
    for m in layers:
        m.train()
    n = 0
    try:
        with torch.no_grad():
            for batch in batches():
                network(batch)
                n += 1
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        network.eval()
    return n


def adapt_tent(
    network,
    batches: Callable[[], Iterable],
    head_weight: np.ndarray,
    head_bias: np.ndarray,
    *,
    steps: int,
    seed: int,
) -> int:
    """Train BatchNorm scale/shift to make a fixed head confident on the target.

    ``head_weight`` (n_classes, n_features) and ``head_bias`` are a linear
    classifier trained on source features; the loss is the mean entropy of its
    softmax on each target batch, with BatchNorm normalising by the batch's own
    statistics (train mode) and only the BatchNorm affine parameters learning.
    At most ``steps`` steps are taken (cycling over the batches); then the
    running statistics are re-estimated on the target (:func:`adapt_batchnorm`).
    """
    import torch

    torch.manual_seed(seed)
    layers = batchnorm_layers(network)
    device = next(network.parameters()).device
    weight = torch.as_tensor(head_weight, dtype=torch.float32, device=device)
    bias = torch.as_tensor(head_bias, dtype=torch.float32, device=device)
    params = []
    for p in network.parameters():
        p.requires_grad_(False)
    for m in layers:
        for p in (m.weight, m.bias):
            if p is not None:
                p.requires_grad_(True)
                params.append(p)
    optimizer = torch.optim.Adam(params, lr=TENT_LEARNING_RATE, betas=(0.9, 0.999))
    network.eval()
    for m in layers:
        m.train()
    done = 0
    try:
        while done < steps:
            progressed = False
            for batch in batches():
                if len(batch) < 2:  # batch statistics of one image are meaningless
                    continue
                logits = network(batch).float() @ weight.T + bias
                log_p = torch.log_softmax(logits, dim=1)
                loss = -(log_p.exp() * log_p).sum(dim=1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                done += 1
                progressed = True
                if done >= steps:
                    break
            if not progressed:
                break
    finally:
        for p in network.parameters():
            p.requires_grad_(False)
        network.eval()
    adapt_batchnorm(network, batches)
    return done


def adapt_contrastive(
    network,
    texts: list[str],
    *,
    batch_size: int,
    steps: int,
    seed: int,
    device: str,
) -> int:
    """Unsupervised SimCSE on ``texts``: dropout views as positives, in-batch negatives.

    ``network`` is a sentence-transformers model. At most ``steps`` steps on
    batches of ``batch_size`` distinct sentences drawn without replacement
    (reshuffled each epoch). Left in eval mode.
    """
    import torch
    from sentence_transformers.util import batch_to_device

    unique = list(dict.fromkeys(texts))
    if len(unique) < 2:
        raise ValueError(
            "adapt='contrastive' needs at least 2 distinct target texts (the other texts "
            f"of a batch are the negatives); got {len(unique)}."
        )
    batch_size = max(2, min(batch_size, len(unique)))
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    trainable = [p for p in network.parameters()]
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(trainable, lr=SIMCSE_LEARNING_RATE, weight_decay=0.0)
    network.train()  # dropout on: two passes give two views of each sentence
    done = 0
    try:
        while done < steps:
            order = rng.permutation(len(unique))
            for start in range(0, len(order) - 1, batch_size):
                rows = order[start : start + batch_size]
                if len(rows) < 2:
                    break
                features = network.preprocess([unique[i] for i in rows])
                features = batch_to_device(features, device)
                first = network(dict(features))["sentence_embedding"]
                second = network(dict(features))["sentence_embedding"]
                first = torch.nn.functional.normalize(first.float(), dim=1)
                second = torch.nn.functional.normalize(second.float(), dim=1)
                logits = first @ second.T / SIMCSE_TEMPERATURE
                labels = torch.arange(len(rows), device=logits.device)
                loss = torch.nn.functional.cross_entropy(logits, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                done += 1
                if done >= steps:
                    break
    finally:
        for p in trainable:
            p.requires_grad_(False)
        network.eval()
    return done


def snapshot(network) -> dict:
    """A CPU copy of the network's state (parameters and buffers)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()}


def changed_state(before: dict, network) -> dict:
    """The entries of ``network``'s state that differ from ``before`` (CPU copies)."""
    import torch

    changed = {}
    for key, value in network.state_dict().items():
        value = value.detach().to("cpu")
        if key not in before or not torch.equal(before[key], value):
            changed[key] = value.clone()
    return changed


def state_digest(state: dict) -> str:
    """A hex digest of tensors' names, shapes, dtypes and values."""
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key].contiguous()
        h.update(f"{key}|{tuple(value.shape)}|{value.dtype}".encode())
        h.update(value.view(-1).view(dtype=_byte_dtype()).numpy().tobytes())
    return h.hexdigest()


def _byte_dtype():
    import torch

    return torch.uint8


class Timer:
    """Seconds since construction."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
