"""Learning curves of a fitted fine-tuning estimator (matplotlib is an optional extra)."""

from __future__ import annotations

from sktransfer._optional import import_optional


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

    Examples
    --------
    A fitted estimator or its ``history_`` in, matplotlib axes out. matplotlib
    is an optional extra, so the drawing lines are not run as tests:

    >>> from sktransfer.finetune import plot_history
    >>> history = [{"epoch": 1, "train_loss": 0.9, "valid_score": 0.6},
    ...            {"epoch": 2, "train_loss": 0.5, "valid_score": 0.8}]
    >>> ax = plot_history(history)  # doctest: +SKIP
    >>> ax.get_xlabel(), ax.get_ylabel()  # doctest: +SKIP
    ('epoch', 'train loss')
    """
    history = getattr(estimator_or_history, "history_", estimator_or_history)
    if not isinstance(history, (list, tuple)) or not all(isinstance(r, dict) for r in history):
        raise TypeError(
            "plot_history expects a fitted fine-tuning estimator or its history_ "
            f"(a list of dicts), got {type(estimator_or_history).__name__}."
        )
    matplotlib = import_optional("matplotlib")
    if ax is None:
        import_optional("matplotlib.pyplot")
        _, ax = matplotlib.pyplot.subplots()
    epochs = [record["epoch"] for record in history]
    ax.plot(epochs, [record["train_loss"] for record in history], marker="o", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    scores = [record.get("valid_score") for record in history]
    if any(score is not None for score in scores):
        metric = getattr(estimator_or_history, "validation_metric_", None) or "validation score"
        twin = ax.twinx()
        twin.plot(epochs, scores, marker="s", color="tab:orange", label=metric)
        twin.set_ylabel(metric)
        best = getattr(estimator_or_history, "best_epoch_", None)
        if best is not None:
            twin.axvline(best, color="grey", linestyle="--", linewidth=1, label="best epoch")
        handles = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], loc="best")
    else:
        ax.legend(loc="best")
    return ax
