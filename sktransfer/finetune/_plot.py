"""Learning curves of a fitted fine-tuning estimator (matplotlib is an optional extra)."""

from __future__ import annotations

from sktransfer._optional import import_optional

LOSS_LABEL = "training loss"

# The second y-axis's label for each validation metric.
VALIDATION_LABELS = {
    "accuracy": "validation accuracy",
    "log_loss": "validation log-loss",
    "r2": "validation R²",
    "mse": "validation MSE (standardised targets)",
}


def plot_history(estimator_or_history, ax=None):
    """Plot training loss and validation score per epoch.

    Parameters
    ----------
    estimator_or_history : fitted estimator or list of dict
        A fitted fine-tuning estimator (its ``history_`` is used) or a history
        list itself.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made when omitted. The validation score
        (if any) goes on a second y-axis sharing the epochs.

    Returns
    -------
    matplotlib.axes.Axes
        The axes with the training loss.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install 'sktransfer[plot]'``).

    Notes
    -----
    The epochs axis has integer ticks; the y-axes say what they show
    ("training loss", "validation accuracy", ...); the legend sits above the
    axes, off the curves. A fitted estimator's :meth:`plot_history` method
    draws the same.

    Examples
    --------
    A fitted estimator or its ``history_`` in, matplotlib axes out:

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktransfer.finetune import plot_history
    >>> history = [{"epoch": 1, "train_loss": 0.9, "valid_score": 0.6},
    ...            {"epoch": 2, "train_loss": 0.5, "valid_score": 0.8}]
    >>> ax = plot_history(history)
    >>> ax.get_xlabel(), ax.get_ylabel(), ax.figure.axes[1].get_ylabel()
    ('epoch', 'training loss', 'validation score')
    >>> matplotlib.pyplot.close(ax.figure)
    """
    history = getattr(estimator_or_history, "history_", estimator_or_history)
    if not isinstance(history, (list, tuple)) or not all(isinstance(r, dict) for r in history):
        raise TypeError(
            "plot_history expects a fitted fine-tuning estimator or its history_ "
            f"(a list of dicts), got {type(estimator_or_history).__name__}."
        )
    matplotlib = import_optional("matplotlib")
    import_optional("matplotlib.ticker")
    if ax is None:
        import_optional("matplotlib.pyplot")
        _, ax = matplotlib.pyplot.subplots()
    epochs = [record["epoch"] for record in history]
    ax.plot(epochs, [record["train_loss"] for record in history], marker="o", label=LOSS_LABEL)
    ax.set_xlabel("epoch")
    ax.set_ylabel(LOSS_LABEL)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    handles, labels = ax.get_legend_handles_labels()
    scores = [record.get("valid_score") for record in history]
    if any(score is not None for score in scores):
        metric = getattr(estimator_or_history, "validation_metric_", None)
        label = VALIDATION_LABELS.get(metric, f"validation {metric or 'score'}")
        twin = ax.twinx()
        twin.plot(epochs, scores, marker="s", color="tab:orange", label=label)
        twin.set_ylabel(label)
        best = getattr(estimator_or_history, "best_epoch_", None)
        if best is not None:
            twin.axvline(best, color="grey", linestyle="--", linewidth=1, label="best epoch")
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    # Above the axes: off the curves, and clear of the second y-axis on the right.
    ax.legend(
        handles,
        labels,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.02, 1.0, 0.1),
        ncol=len(labels),
        mode="expand",
        borderaxespad=0.0,
        frameon=False,
    )
    return ax
