"""What the training loop does around its steps, as callbacks (skorch's pattern).

The loop (``_loop.py``) trains; everything else hangs on its seams, in the order
the estimator lists the callbacks:

:class:`FreezeSchedule`
    Freezing and gradual unfreezing: which body blocks train at each epoch.
:class:`EarlyStopping`
    Patience on the validation score; the best epoch's weights restored at the end.
:class:`TrainingProgress`
    The progress bar that ``verbose`` asks for.
:class:`EpochLog`
    One line per epoch on stdout (``verbose >= 1``).

A new practice (a learning-rate finder, a checkpoint) is one more callback.
"""

from __future__ import annotations

import math
import sys

from torch import nn

from sktransfer.finetune._net import cpu_state


class Callback:
    """The seams of :class:`~sktransfer.finetune._loop.TrainingLoop`; every hook is optional.

    ``loop`` gives access to the net, the optimizer and the configuration;
    setting ``loop.stop_training = True`` in :meth:`on_epoch_end` ends the fit
    after that epoch.
    """

    def on_fit_begin(self, loop, total_batches: int) -> None:
        """Before the first epoch; ``total_batches`` is all the work the fit will do."""

    def on_epoch_begin(self, loop, epoch: int) -> None:
        """Before the epoch's first training step (``epoch`` is 0-based)."""

    def on_batches(self, loop, n: int) -> None:
        """``n`` batches of work other than training steps done (body pass, validation)."""

    def on_step_end(self, loop, epoch: int, running_loss: float) -> None:
        """After each training step, with the epoch's running mean loss."""

    def on_record(self, loop, epoch: int, record: dict) -> None:
        """Add this callback's fields to the epoch's record (before its timings)."""

    def on_epoch_end(self, loop, epoch: int, record: dict) -> None:
        """After the epoch's validation, with its complete record."""

    def on_fit_end(self, loop, finished: bool) -> None:
        """After the last epoch, or on an error (``finished=False``)."""


# ---------------------------------------------------------------- freezing


class FreezeSchedule(Callback):
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

    def on_epoch_begin(self, loop, epoch: int) -> None:
        self.apply(loop.net, loop.block_of, epoch)
        self.set_modes(loop.net, loop.module_block, epoch)

    def on_record(self, loop, epoch: int, record: dict) -> None:
        record["trainable_blocks"] = self.n_trainable(epoch)
        record["learning_rates"] = loop.learning_rates_used(self.lowest_trainable(epoch))


# ---------------------------------------------------------- early stopping


class EarlyStopping(Callback):
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
            self.best_state = cpu_state(net)
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, net: nn.Module) -> None:
        if self.best_state is not None:
            net.load_state_dict(self.best_state)

    def on_epoch_end(self, loop, epoch: int, record: dict) -> None:
        score = record["valid_score"]
        if score is not None and self.update(epoch, score, loop.net):
            loop.stop_training = True

    def on_fit_end(self, loop, finished: bool) -> None:
        if finished:
            self.restore(loop.net)


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


class TrainingProgress(Callback):
    """The progress bar of a fit, as ``verbose`` asks.

    The bar counts every batch of the fit: the frozen body's pass over the
    data when its features are computed once, then each epoch's training steps
    and validation batches. Its label shows the epoch, the running training
    loss and the last validation score.

    - ``0`` and ``1``: no bar;
    - ``"auto"``: the bar, on stderr when it is a terminal or in a notebook,
      once the fit has run :data:`AUTO_PROGRESS_DELAY` seconds;
    - ``2``: the bar from the start, wherever stderr goes.
    """

    def __init__(self, verbose, *, epochs: int, description: str, metric_name: str):
        if verbose == "auto":
            self.show, self.delay = someone_watching(), AUTO_PROGRESS_DELAY
        else:
            self.show, self.delay = int(verbose) >= 2, 0.0
        self.epochs = epochs
        self.description = description
        self.metric_name = metric_name
        self.postfix: dict[str, str] = {}
        self.bar = None

    def on_fit_begin(self, loop, total_batches: int) -> None:
        if self.show:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total_batches,
                desc=self.description,
                unit="batch",
                delay=self.delay,
                dynamic_ncols=True,
            )

    def on_batches(self, loop, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def on_step_end(self, loop, epoch: int, running_loss: float) -> None:
        if self.bar is not None:
            self.postfix["epoch"] = f"{epoch + 1}/{self.epochs}"
            self.postfix["loss"] = f"{running_loss:.4f}"
            # No refresh here: the bar redraws at its own pace (and not before its delay).
            self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.update(1)

    def on_epoch_end(self, loop, epoch: int, record: dict) -> None:
        if self.bar is not None:
            self.postfix["loss"] = f"{record['train_loss']:.4f}"
            if record["valid_score"] is not None:
                self.postfix[self.metric_name] = f"{record['valid_score']:.4f}"
            self.bar.set_postfix(self.postfix, refresh=False)

    def on_fit_end(self, loop, finished: bool) -> None:
        self.close(finished)

    def close(self, finished: bool) -> None:
        """Close the bar; a ``finished`` fit that stopped early ends it at 100%."""
        if self.bar is not None:
            if finished and self.bar.n < self.bar.total:  # early stopping skipped epochs
                self.bar.total = self.bar.n
            self.bar.close()


class EpochLog(Callback):
    """One line per epoch on stdout when ``verbose >= 1`` (above any progress bar)."""

    def __init__(self, verbose, *, metric_name: str):
        self.show = verbose != "auto" and int(verbose) >= 1
        self.metric_name = metric_name

    def on_epoch_end(self, loop, epoch: int, record: dict) -> None:
        if self.show:
            from tqdm.auto import tqdm

            # tqdm.write prints above open bars (and like print when there are none).
            tqdm.write(format_record(record, self.metric_name), file=sys.stdout)


def format_record(record: dict, metric_name: str = "valid") -> str:
    """One epoch as a line: loss, validation score, trained blocks, head rate, seconds."""
    score = record["valid_score"]
    valid = "" if score is None else f"  {metric_name}={score:.4f}"
    return (
        f"epoch {record['epoch']:3d}  loss={record['train_loss']:.4f}{valid}  "
        f"blocks={record['trainable_blocks']}  lr={record['learning_rates'].get('head', 0):.2e}  "
        f"{record['time']:.1f}s"
    )
