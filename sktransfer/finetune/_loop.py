"""The one training loop every fine-tuning estimator shares.

``TrainingLoop.fit -> run_epoch -> train_step`` (and ``validate``), each a small
method with one job. The practices are small objects the loop consults:
:class:`FreezeSchedule` (freezing and gradual unfreezing), :func:`layer_decay_groups`
(discriminative learning rates), :func:`warmup_then_linear_decay` (the learning-rate
schedule), :class:`EarlyStopping` (patience and best-weights restoring) and
:class:`TrainingProgress` (what ``verbose`` shows). Text and image differ only in the
backend that prepares batches (see ``_bodies.py``).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sktransfer.finetune._bodies import group_of_modules

# ---------------------------------------------------------------- freezing


class FreezeSchedule:
    """How many body blocks (counted from the top) train at each epoch.

    Parameters
    ----------
    n_blocks : int
        Blocks of the body. The head always trains.
    trainable_blocks : int
        Blocks that train from the first epoch (0 = head only).
    unfreeze_every : int or None
        Unfreeze one more block toward the input every this many epochs.
    """

    def __init__(self, n_blocks: int, trainable_blocks: int, unfreeze_every: int | None):
        self.n_blocks = n_blocks
        self.trainable_blocks = min(trainable_blocks, n_blocks)
        self.unfreeze_every = unfreeze_every

    def n_trainable(self, epoch: int) -> int:
        extra = 0 if self.unfreeze_every is None else epoch // self.unfreeze_every
        return min(self.n_blocks, self.trainable_blocks + extra)

    def lowest_trainable(self, epoch: int) -> int:
        """Index of the lowest trainable body block (``n_blocks`` = head only)."""
        return self.n_blocks - self.n_trainable(epoch)

    def apply(self, net: nn.Module, block_of: dict[str, int], epoch: int) -> None:
        """Set ``requires_grad`` for this epoch's blocks (parameters outside the map train)."""
        lowest = self.lowest_trainable(epoch)
        for name, param in net.named_parameters():
            param.requires_grad_(block_of.get(name, self.n_blocks) >= lowest)

    def set_modes(self, net: nn.Module, module_block: dict[str, int], epoch: int) -> None:
        """Put the net in training mode except frozen blocks (BatchNorm stats, dropout)."""
        net.train()
        lowest = self.lowest_trainable(epoch)
        modules = dict(net.named_modules())
        for name, block in module_block.items():
            if block < lowest:
                modules[name].train(False)


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


# ---------------------------------------------------------- early stopping


class EarlyStopping:
    """Stop after ``patience`` epochs without improvement; remember the best weights."""

    def __init__(self, patience: int, greater_is_better: bool = True, tol: float = 0.0):
        self.patience = patience
        self.sign = 1.0 if greater_is_better else -1.0
        self.tol = tol
        self.best_score = -math.inf
        self.best_epoch: int | None = None
        self.best_state: dict | None = None
        self.bad_epochs = 0

    def update(self, epoch: int, score: float, net: nn.Module) -> bool:
        """Record an epoch's score; return True when training should stop."""
        signed = self.sign * score
        if self.best_epoch is None or signed > self.best_score + self.tol:
            self.best_score, self.best_epoch, self.bad_epochs = signed, epoch, 0
            self.best_state = _cpu_copy(net)
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, net: nn.Module) -> None:
        if self.best_state is not None:
            net.load_state_dict(self.best_state)


def _cpu_copy(net: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


# ---------------------------------------------------------------- progress

# With verbose="auto", a fit's bar appears once the fit has run this long
# (seconds): quick fits, such as most of a grid search's, stay silent.
AUTO_PROGRESS_DELAY = 2.0


def someone_watching() -> bool:
    """Whether stderr is a terminal or the code runs in a Jupyter kernel."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # a replaced or closed stream
        pass
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    # Jupyter, VS Code and Colab kernels all derive from ZMQInteractiveShell.
    return shell is not None and any(
        cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__
    )


class TrainingProgress:
    """What a fit shows while it runs, chosen by ``verbose``.

    The bar counts every batch of the fit: the frozen body's pass over the
    data when its features are computed once, then each epoch's training steps
    and validation batches. Its label shows the epoch, the running training
    loss and the last validation score.

    - ``0``: nothing;
    - ``"auto"``: the bar, on stderr when it is a terminal or in a notebook,
      once the fit has run :data:`AUTO_PROGRESS_DELAY` seconds;
    - ``1``: one line per epoch on stdout;
    - ``2``: the bar from the start, wherever stderr goes, and the lines.
    """

    def __init__(self, verbose, *, total: int, epochs: int, description: str, metric_name: str):
        if verbose == "auto":
            self.lines, show_bar, delay = False, someone_watching(), AUTO_PROGRESS_DELAY
        else:
            level = int(verbose)
            self.lines, show_bar, delay = level >= 1, level >= 2, 0.0
        self.epochs = epochs
        self.metric_name = metric_name
        self.postfix: dict[str, str] = {}
        self.bar = None
        if show_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, desc=description, unit="batch", delay=delay, dynamic_ncols=True
            )

    def advance(self, n: int = 1) -> None:
        """``n`` more batches of work done (pre-pass, training or validation)."""
        if self.bar is not None:
            self.bar.update(n)

    def step(self, epoch: int, running_loss: float) -> None:
        """One training step of ``epoch`` (0-based) done."""
        if self.bar is not None:
            self.postfix["epoch"] = f"{epoch + 1}/{self.epochs}"
            self.postfix["loss"] = f"{running_loss:.4f}"
            # No refresh here: the bar redraws at its own pace (and not before its delay).
            self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.update(1)

    def end_epoch(self, record: dict) -> None:
        score = record["valid_score"]
        if self.bar is not None:
            self.postfix["loss"] = f"{record['train_loss']:.4f}"
            if score is not None:
                self.postfix[self.metric_name] = f"{score:.4f}"
            self.bar.set_postfix(self.postfix, refresh=False)
        if self.lines:
            line = format_record(record, self.metric_name)
            if self.bar is not None:
                self.bar.write(line, file=sys.stdout)  # above the bar, not through it
            else:
                print(line)  # noqa: T201 - verbose output is the point

    def close(self, finished: bool) -> None:
        """Close the bar; a ``finished`` fit that stopped early ends it at 100%."""
        if self.bar is not None:
            if finished and self.bar.n < self.bar.total:  # early stopping skipped epochs
                self.bar.total = self.bar.n
            self.bar.close()


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
    verbose: int | str = 0
    description: str = "fine-tuning"  # the progress bar's label
    metric_name: str = "valid"  # the validation score's label


@dataclass
class Split:
    """Items, targets (tensor) and sample weights (tensor) of a training or validation split."""

    items: list
    targets: torch.Tensor
    weights: torch.Tensor
    y: np.ndarray  # targets as the metric wants them


class TrainingLoop:
    """Train ``net`` on one backend's batches. One object per ``fit``.

    Parameters
    ----------
    net : FineTuneNet
    backend : TextBackend or ImageBackend
        Prepares batches (``collate``, ``inference_batches``, ``to_device``).
    block_of : dict
        Block index of every body parameter name (as named in ``net``).
    n_blocks : int
    freeze : FreezeSchedule
    loss_fn : callable
        ``(outputs, targets) -> per-sample losses``.
    metric : callable or None
        ``(outputs ndarray, y, weights) -> score`` on the validation split.
    early_stopping : EarlyStopping or None
    config : LoopConfig
    generator : torch.Generator
        Shuffles the training data.
    """

    def __init__(
        self,
        net,
        backend,
        block_of,
        n_blocks,
        freeze,
        loss_fn,
        metric,
        early_stopping,
        config,
        generator,
    ):
        self.net = net
        self.backend = backend
        self.block_of = block_of
        self.n_blocks = n_blocks
        self.freeze = freeze
        self.loss_fn = loss_fn
        self.metric = metric
        self.early_stopping = early_stopping
        self.config = config
        self.generator = generator
        self.module_block = group_of_modules(net, block_of)
        self.history: list[dict] = []
        # Silent until fit sets up the display that verbose asks for.
        self.progress = TrainingProgress(
            0, total=0, epochs=config.epochs, description="", metric_name=""
        )

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
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate)
        total = cfg.epochs * n_steps_per_epoch
        warmup = int(round(cfg.warmup_fraction * total))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_then_linear_decay(total, warmup)
        )
        use_scaler = cfg.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    def _autocast(self):
        if self.config.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.config.amp_dtype)

    # ------------------------------------------------------- frozen body
    def body_always_frozen(self) -> bool:
        """True when no body block trains in any epoch (head-only training)."""
        return self.freeze.lowest_trainable(self.config.epochs - 1) >= self.n_blocks

    def _use_body_features(self) -> None:
        """Encode every sample with the frozen body once; epochs then train the head alone.

        Only when the body never trains and the training batches are the
        evaluation ones (no augmentation): the body is a fixed function then,
        so running it every epoch would recompute the same features.
        """
        cfg = self.config
        body = self.net.body

        def features(split: Split | None) -> Split | None:
            if split is None:
                return None
            encoded = predict_outputs(
                body,
                self.backend,
                split.items,
                cfg.batch_size,
                cfg.device,
                cfg.amp_dtype,
                on_batch=self.progress.advance,
            )
            return Split(torch.from_numpy(encoded), split.targets, split.weights, split.y)

        self._train_features = features(self._train)
        self._valid_features = features(self._valid)

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
        cfg = self.config
        self.features_cached = self.body_always_frozen() and not self.backend.augments
        self.progress = TrainingProgress(
            cfg.verbose,
            total=self.n_batches(train, valid),
            epochs=cfg.epochs,
            description=cfg.description,
            metric_name=cfg.metric_name,
        )
        finished = False
        try:
            history = self._fit(train, valid)
            finished = True
        finally:
            self.progress.close(finished)
        return history

    def _fit(self, train: Split, valid: Split | None) -> list[dict]:
        n_steps = math.ceil(len(train.items) / self.config.batch_size)
        self.net.to(self.config.device)
        self._make_optimizer(n_steps)
        self._train, self._valid = train, valid
        setup_time = 0.0
        if self.features_cached:
            start = time.perf_counter()
            self._use_body_features()
            train, valid = self._train_features, self._valid_features
            setup_time = time.perf_counter() - start  # counted in the first epoch
        # Mean weight 1 over the training set: weights rescale, they do not shrink the loss.
        self.weight_scale = float(train.weights.mean())
        for epoch in range(self.config.epochs):
            record = self.run_epoch(epoch, train, valid)
            if epoch == 0:
                record["train_time"] += setup_time
                record["time"] += setup_time
            self.history.append(record)
            self.progress.end_epoch(record)
            if self.early_stopping is not None and record["valid_score"] is not None:
                if self.early_stopping.update(epoch, record["valid_score"], self.net):
                    break
        if self.early_stopping is not None:
            self.early_stopping.restore(self.net)
        self.net.eval()
        return self.history

    def run_epoch(self, epoch: int, train: Split, valid: Split | None) -> dict:
        start = time.perf_counter()
        self.freeze.apply(self.net, self.block_of, epoch)
        self.freeze.set_modes(self.net, self.module_block, epoch)
        order = torch.randperm(len(train.items), generator=self.generator).numpy()
        total_loss, total_weight = 0.0, 0.0
        for begin in range(0, len(order), self.config.batch_size):
            rows = order[begin : begin + self.config.batch_size]
            loss_sum, weight_sum = self.train_step(train, rows)
            total_loss += loss_sum
            total_weight += weight_sum
            self.progress.step(epoch, total_loss / max(total_weight, 1e-12))
        train_time = time.perf_counter() - start
        score = None if valid is None else self.validate(valid)
        return {
            "epoch": epoch + 1,
            "train_loss": total_loss / max(total_weight, 1e-12),
            "valid_score": score,
            "trainable_blocks": self.freeze.n_trainable(epoch),
            "learning_rates": self.learning_rates_used(self.freeze.lowest_trainable(epoch)),
            "train_time": train_time,
            "time": time.perf_counter() - start,
        }

    def train_step(self, train: Split, rows: np.ndarray) -> tuple[float, float]:
        """One optimisation step on the samples ``rows``.

        Returns the batch's weighted loss sum and weight sum (for the epoch's mean).
        """
        index = torch.from_numpy(rows)
        if self.features_cached:  # the items are the frozen body's features
            features = train.items[index].to(self.config.device)
            with self._autocast():
                outputs = self.net.head(self.net.dropout(features))
        else:
            batch = self.backend.collate([train.items[i] for i in rows], training=True)
            batch = self.backend.to_device(batch, self.config.device)
            with self._autocast():
                outputs = self.net(batch)
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
        cfg = self.config
        if self.features_cached:
            was_training = self.net.training
            self.net.eval()
            with torch.inference_mode(), self._autocast():
                outputs = self.net.head(valid.items.to(cfg.device)).float().cpu().numpy()
            self.net.train(was_training)
            self.progress.advance()  # one head pass over all the features
        else:
            outputs = predict_outputs(
                self.net,
                self.backend,
                valid.items,
                cfg.batch_size,
                cfg.device,
                cfg.amp_dtype,
                on_batch=self.progress.advance,
            )
        return float(self.metric(outputs, valid.y, valid.weights.numpy()))

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
    net, backend, items, batch_size, device, amp_dtype=None, on_batch=None
) -> np.ndarray:
    """Raw outputs of ``net`` (eval mode, inference mode, batched), row i for item i.

    ``on_batch(1)`` is called after each batch (the training progress bar).
    """
    was_training = net.training
    net.eval()
    chunks, positions = [], []
    autocast = (
        torch.autocast(device_type="cuda", dtype=amp_dtype)
        if amp_dtype is not None
        else contextlib.nullcontext()
    )
    try:
        with torch.inference_mode(), autocast:
            for rows, batch in backend.inference_batches(items, batch_size):
                out = net(backend.to_device(batch, device))
                chunks.append(out.float().cpu().numpy())
                positions.append(np.asarray(rows))
                if on_batch is not None:
                    on_batch(1)
    finally:
        net.train(was_training)
    outputs = np.empty((len(items), chunks[0].shape[1]), dtype=np.float32)
    outputs[np.concatenate(positions)] = np.concatenate(chunks)
    return outputs


def format_record(record: dict, metric_name: str = "valid") -> str:
    """One epoch as a line: loss, validation score, trained blocks, head rate, seconds."""
    score = record["valid_score"]
    valid = "" if score is None else f"  {metric_name}={score:.4f}"
    return (
        f"epoch {record['epoch']:3d}  loss={record['train_loss']:.4f}{valid}  "
        f"blocks={record['trainable_blocks']}  lr={record['learning_rates'].get('head', 0):.2e}  "
        f"{record['time']:.1f}s"
    )
