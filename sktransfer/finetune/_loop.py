"""The one training loop every fine-tuning estimator shares.

``TrainingLoop.fit -> run_epoch -> train_step`` (and ``validate``), each a small
method with one job, over batches that the modality's adapter prepares. What
happens around the steps -- freezing and gradual unfreezing, early stopping,
the progress bar, epoch lines -- are callbacks (``_callbacks.py``). The learning
rates come from :func:`layer_decay_groups` (discriminative learning rates) and
:func:`warmup_then_linear_decay` (the schedule).

Head-only training without augmentation runs the frozen body once over the data
(:meth:`TrainingLoop.use_body_features`); the epochs then train the same head
over :class:`StoredFeatureBatches`, with the same steps.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sktransfer._threads import decode_ahead
from sktransfer.finetune._net import HeadOverFeatures, group_of_modules

# ------------------------------------------------------ discriminative LRs


def block_lr_scales(n_blocks: int, layer_decay: float) -> list[float]:
    """Learning-rate scale of body blocks 0..n_blocks-1 (input first), then the head.

    The head gets 1; a block ``k`` steps below the head gets ``layer_decay ** k``.
    """
    return [layer_decay ** (n_blocks - b) for b in range(n_blocks)] + [1.0]


def layer_decay_groups(
    net: nn.Module,
    block_of: dict[str, int],
    n_blocks: int,
    *,
    learning_rate: float,
    layer_decay: float,
    weight_decay: float,
    lowest_block: int,
) -> list[dict]:
    """Optimizer parameter groups: one per (block, decay / no decay).

    Biases and normalisation weights (1-D parameters) get no weight decay, as in
    timm's ``param_groups_layer_decay``. Blocks below ``lowest_block`` never
    train and are left out.
    """
    scales = block_lr_scales(n_blocks, layer_decay)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in net.named_parameters():
        block = block_of.get(name, n_blocks)
        if block < lowest_block:
            continue
        decay = param.ndim > 1
        key = (block, decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "lr": learning_rate * scales[block],
                "weight_decay": weight_decay if decay else 0.0,
                "block": block,
            }
        groups[key]["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def warmup_then_linear_decay(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the learning rate at a step: linear warm-up, then linear decay to 0."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        remaining = max(1, total_steps - warmup_steps)
        return max(0.0, (total_steps - step) / remaining)

    return factor


def make_optimizer(
    groups: list[dict], learning_rate: float, total_steps: int, warmup_fraction: float, amp_dtype
):
    """AdamW over ``groups``, its warm-up/decay schedule and the float16 gradient scaler."""
    optimizer = torch.optim.AdamW(groups, lr=learning_rate)
    warmup = int(round(warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_then_linear_decay(total_steps, warmup)
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return optimizer, scheduler, scaler


def training_autocast(device: str, amp_dtype):
    """``torch.autocast`` to ``amp_dtype`` on ``device``'s kind; nothing when it is None."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=amp_dtype)


# -------------------------------------------------------------------- loop


@dataclass
class LoopConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    layer_decay: float
    weight_decay: float
    warmup_fraction: float
    max_grad_norm: float | None
    device: str
    amp_dtype: torch.dtype | None = None
    # items -> body features (or None), e.g. through the embedding cache
    # (``_frozen_features``); used when the body never trains.
    body_features: Callable | None = None


@dataclass
class Split:
    """Items, targets (tensor) and sample weights (tensor) of a training or validation split."""

    items: list
    targets: torch.Tensor
    weights: torch.Tensor
    y: np.ndarray  # targets as the metric wants them


class StoredFeatureBatches:
    """Batches of features the frozen body computed once (a tensor, row i for item i)."""

    augments = False

    @staticmethod
    def collate(rows: list, training: bool) -> torch.Tensor:
        return torch.stack(rows)

    @staticmethod
    def inference_batches(features: torch.Tensor, batch_size: int):
        yield np.arange(len(features)), features  # one head pass over all of them

    @staticmethod
    def to_device(batch, device: str):
        return batch.to(device)


class TrainingLoop:
    """Train ``net`` on one adapter's batches. One object per ``fit``.

    Parameters
    ----------
    net : FineTuneNet
    adapter : the modality's adapter
        Prepares batches (``collate``, ``inference_batches``, ``to_device``).
    block_of : dict
        Block index of every body parameter name (as named in ``net``).
    n_blocks : int
    freeze : FreezeSchedule
        Also one of ``callbacks``; the optimizer leaves out blocks it never unfreezes.
    loss_fn : callable
        ``(outputs, targets) -> per-sample losses``.
    metric : callable or None
        ``(outputs ndarray, y, weights) -> score`` on the validation split.
    config : LoopConfig
    generator : torch.Generator
        Shuffles the training data.
    callbacks : list of Callback
        Called in this order at every seam (see ``_callbacks.py``).
    """

    def __init__(
        self,
        net,
        adapter,
        block_of,
        n_blocks,
        freeze,
        loss_fn,
        metric,
        config,
        generator,
        callbacks=(),
    ):
        self.net = net
        self.adapter = adapter
        self.block_of = block_of
        self.n_blocks = n_blocks
        self.freeze = freeze
        self.loss_fn = loss_fn
        self.metric = metric
        self.config = config
        self.generator = generator
        self.callbacks = list(callbacks)
        self.module_block = group_of_modules(net, block_of)
        self.history: list[dict] = []
        self.stop_training = False
        # What the steps run and where their batches come from (see use_body_features).
        self.trained, self.batches = net, adapter

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    # ---------------------------------------------------------------- setup
    def _make_optimizer(self, n_steps_per_epoch: int) -> None:
        cfg = self.config
        groups = layer_decay_groups(
            self.net,
            self.block_of,
            self.n_blocks,
            learning_rate=cfg.learning_rate,
            layer_decay=cfg.layer_decay,
            weight_decay=cfg.weight_decay,
            lowest_block=self.freeze.lowest_trainable(cfg.epochs - 1),
        )
        self.optimizer, self.scheduler, self.scaler = make_optimizer(
            groups,
            cfg.learning_rate,
            cfg.epochs * n_steps_per_epoch,
            cfg.warmup_fraction,
            cfg.amp_dtype,
        )

    def _autocast(self):
        return training_autocast(self.config.device, self.config.amp_dtype)

    # ------------------------------------------------------- frozen body
    def body_always_frozen(self) -> bool:
        """True when no body block trains in any epoch (head-only training)."""
        return self.freeze.lowest_trainable(self.config.epochs - 1) >= self.n_blocks

    def use_body_features(self, train: Split, valid: Split | None):
        """Encode every sample with the frozen body once; epochs then train the head alone.

        Only when the body never trains and the training batches are the
        evaluation ones (no augmentation): the body is a fixed function then,
        so running it every epoch would recompute the same features. Returns
        the splits with the features as their items. On a CPU they are computed
        in float32 whatever ``amp_dtype`` says: a linear head gains nothing from
        bfloat16, and the features are then exactly the frozen encoder's (the
        embedding cache's).
        """
        if not self.config.device.startswith("cuda"):
            self.config.amp_dtype = None

        def features(split: Split | None) -> Split | None:
            if split is None:
                return None
            cfg = self.config
            if cfg.body_features is not None and cfg.amp_dtype is None:
                encoded = cfg.body_features(split.items)
                if encoded is not None:
                    self._call("on_batches", math.ceil(len(split.items) / cfg.batch_size))
                    return Split(torch.from_numpy(encoded), split.targets, split.weights, split.y)
            encoded = self._outputs(self.net.body, self.adapter, split.items)
            return Split(torch.from_numpy(encoded), split.targets, split.weights, split.y)

        self.trained, self.batches = HeadOverFeatures(self.net), StoredFeatureBatches()
        return features(train), features(valid)

    # ------------------------------------------------------------------ fit
    def n_batches(self, train: Split, valid: Split | None) -> int:
        """Batches of work in the whole fit: what the progress bar counts.

        The frozen body's pass over both splits (when its features are computed
        once), then for each epoch the training steps and the validation
        batches (one head pass on computed features).
        """
        size = self.config.batch_size
        n_train = math.ceil(len(train.items) / size)
        n_valid = 0 if valid is None else math.ceil(len(valid.items) / size)
        if not self.features_cached:
            return self.config.epochs * (n_train + n_valid)
        return n_train + n_valid + self.config.epochs * (n_train + (valid is not None))

    def fit(self, train: Split, valid: Split | None) -> list[dict]:
        self.features_cached = self.body_always_frozen() and not self.adapter.augments
        self._call("on_fit_begin", self.n_batches(train, valid))
        finished = False
        try:
            self._fit(train, valid)
            finished = True
        finally:
            self._call("on_fit_end", finished)
        self.net.eval()
        return self.history

    def _fit(self, train: Split, valid: Split | None) -> None:
        n_steps = math.ceil(len(train.items) / self.config.batch_size)
        self.net.to(self.config.device)
        self._make_optimizer(n_steps)
        setup_time = 0.0
        if self.features_cached:
            start = time.perf_counter()
            train, valid = self.use_body_features(train, valid)
            setup_time = time.perf_counter() - start  # counted in the first epoch
        # Mean weight 1 over the training set: weights rescale, they do not shrink the loss.
        self.weight_scale = float(train.weights.mean())
        for epoch in range(self.config.epochs):
            record = self.run_epoch(epoch, train, valid)
            if epoch == 0:
                record["train_time"] += setup_time
                record["time"] += setup_time
            self.history.append(record)
            self._call("on_epoch_end", epoch, record)
            if self.stop_training:
                break

    def run_epoch(self, epoch: int, train: Split, valid: Split | None) -> dict:
        start = time.perf_counter()
        self._call("on_epoch_begin", epoch)
        order = torch.randperm(len(train.items), generator=self.generator).numpy()
        total_loss, total_weight = 0.0, 0.0
        for begin in range(0, len(order), self.config.batch_size):
            rows = order[begin : begin + self.config.batch_size]
            loss_sum, weight_sum = self.train_step(train, rows)
            total_loss += loss_sum
            total_weight += weight_sum
            self._call("on_step_end", epoch, total_loss / max(total_weight, 1e-12))
        train_time = time.perf_counter() - start
        score = None if valid is None else self.validate(valid)
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / max(total_weight, 1e-12),
            "valid_score": score,
        }
        self._call("on_record", epoch, record)
        record["train_time"] = train_time
        record["time"] = time.perf_counter() - start
        return record

    def train_step(self, train: Split, rows: np.ndarray) -> tuple[float, float]:
        """One optimisation step on the samples ``rows``.

        Returns the batch's weighted loss sum and weight sum (for the epoch's mean).
        """
        index = torch.from_numpy(rows)
        batch = self.batches.collate([train.items[i] for i in rows], training=True)
        batch = self.batches.to_device(batch, self.config.device)
        with self._autocast():
            outputs = self.trained(batch)
        targets = train.targets[index].to(self.config.device)
        weights = train.weights[index].to(self.config.device) / self.weight_scale
        losses = self.loss_fn(outputs.float(), targets)
        loss = (losses * weights).mean()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            groups = self.optimizer.param_groups
            params = [p for g in groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # The rates this step used; the scheduler then sets those of the next step.
        self.step_rates = [float(group["lr"]) for group in self.optimizer.param_groups]
        self.scheduler.step()
        scale = self.weight_scale
        return float(loss.detach()) * len(rows) * scale, float(weights.sum()) * scale

    def validate(self, valid: Split) -> float:
        outputs = self._outputs(self.trained, self.batches, valid.items)
        return float(self.metric(outputs, valid.y, valid.weights.numpy()))

    def _outputs(self, net, batches, items) -> np.ndarray:
        """``net``'s outputs on ``items`` (eval mode); the callbacks count each batch."""
        cfg, count = self.config, lambda n: self._call("on_batches", n)
        return predict_outputs(
            net, batches, items, cfg.batch_size, cfg.device, cfg.amp_dtype, on_batch=count
        )

    def learning_rates_used(self, lowest_block: int = 0) -> dict[str, float]:
        """Learning rate of every trained block in the last step ("head", "block_<i>").

        The rates the last optimisation step used, not the ones the scheduler
        has set since for the next step (after the very last step, those are 0).
        Blocks below ``lowest_block`` are frozen this epoch (gradual unfreezing
        has not reached them yet) and are left out.
        """
        groups = self.optimizer.param_groups
        used = getattr(self, "step_rates", None) or [float(group["lr"]) for group in groups]
        rates = {}
        for group, rate in zip(groups, used, strict=True):
            block = group["block"]
            if block < lowest_block:
                continue
            name = "head" if block >= self.n_blocks else f"block_{block}"
            rates[name] = rate
        return dict(sorted(rates.items(), key=lambda kv: (kv[0] != "head", kv[0])))


def predict_outputs(
    net, adapter, items, batch_size, device, amp_dtype=None, on_batch=None, memory_format=None
) -> np.ndarray:
    """Raw outputs of ``net`` (eval mode, inference mode, batched), row i for item i.

    ``on_batch(1)`` is called after each batch (the training progress bar).
    ``memory_format`` (e.g. ``torch.channels_last``) is given to each batch.
    """
    was_training = net.training
    net.eval()
    chunks, positions = [], []
    autocast = training_autocast(device, amp_dtype)
    try:
        with torch.inference_mode(), autocast:
            # Images: decoded one batch ahead only where the forward pass
            # leaves cores idle (see sktransfer._threads.decode_ahead).
            image = getattr(adapter, "kind", None) == "image"
            options = {"ahead": decode_ahead(device)} if image else {}
            for rows, batch in adapter.inference_batches(items, batch_size, **options):
                batch = adapter.to_device(batch, device)
                if memory_format is not None:
                    batch = batch.contiguous(memory_format=memory_format)
                out = net(batch)
                chunks.append(out.float().cpu().numpy())
                positions.append(np.asarray(rows))
                if on_batch is not None:
                    on_batch(1)
    finally:
        net.train(was_training)
    outputs = np.empty((len(items), chunks[0].shape[1]), dtype=np.float32)
    outputs[np.concatenate(positions)] = np.concatenate(chunks)
    return outputs
