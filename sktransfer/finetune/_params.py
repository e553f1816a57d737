"""Parameters of the fine-tuners: their constraints and their documentation, written once.

Every fine-tuner's ``_parameter_constraints`` and numpydoc docstring are put
together from these pieces (the common ones, the modality's, the task's), so a
parameter is described and validated the same way in all four classes.
"""

from __future__ import annotations

import numbers

from sklearn.utils._param_validation import Interval, StrOptions

from sktransfer._precision import PRECISIONS

_COMMON_CONSTRAINTS = {
    "model": [str],
    "trainable_blocks": [Interval(numbers.Integral, 0, None, closed="left"), StrOptions({"all"})],
    "unfreeze_every": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
    "layer_decay": [Interval(numbers.Real, 0, 1, closed="right")],
    "epochs": [Interval(numbers.Integral, 1, None, closed="left")],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
    "warmup_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
    "max_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
    "head_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "device": [str],
    "mixed_precision": ["boolean", StrOptions({"auto"})],
    "precision": [StrOptions(set(PRECISIONS))],
    "verbose": ["verbose", StrOptions({"auto"})],
}
_CLASSIFIER_CONSTRAINTS = {
    "validation_metric": [StrOptions({"auto", "accuracy", "log_loss"})],
    "class_weight": [StrOptions({"balanced"}), dict, None],
}
_REGRESSOR_CONSTRAINTS = {"validation_metric": [StrOptions({"auto", "r2", "mse"})]}


_PARAMS_DOC = """
    trainable_blocks : int or "all", default=2
        How much of the body trains. The body is cut into blocks from the input
        to the output (text: the embeddings, then each transformer layer; images:
        timm's own layer-decay groups, e.g. the stem, each stage's blocks and the
        final convolution). ``0`` trains the head only, ``k`` the top ``k``
        blocks, ``"all"`` everything. Frozen blocks keep ``requires_grad=False``
        and stay in eval mode (BatchNorm statistics and dropout frozen too).
        ``n_blocks_`` says how many blocks the body has.
    unfreeze_every : int or None, default=None
        Gradual unfreezing: every this many epochs one more block toward the
        input starts training (``trainable_blocks`` is where it starts).
    learning_rate : float, default=1e-3
        Learning rate of the head (AdamW).
    layer_decay : float in (0, 1], default=0.5
        Discriminative learning rates: the block ``k`` steps below the head
        trains at ``learning_rate * layer_decay ** k``. ``1`` gives every block
        the same rate.
    epochs : int, default=5
        Passes over the training data (fewer with early stopping).
    batch_size : int, default=16
        Samples per optimisation step and per prediction batch.
    weight_decay : float, default=0.01
        AdamW weight decay (not applied to biases and normalisation weights).
    warmup_fraction : float in [0, 1), default=0.1
        Fraction of the steps over which the learning rates rise linearly from
        near 0; afterwards they decay linearly to 0.
    max_grad_norm : float or None, default=1.0
        Clip the gradient norm to this value; ``None`` does not clip.
    head_dropout : float in [0, 1), default=0.0
        Dropout on the features before the head.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers), stop after ``n_iter_no_change`` epochs without
        improvement of ``validation_metric``, and restore the best epoch's
        weights.
    validation_fraction : float in (0, 1), default=0.1
        Share of the training data held out when ``early_stopping=True``.
    n_iter_no_change : int, default=3
        Patience of early stopping, in epochs.
    random_state : int, RandomState instance or None, default=None
        Seeds the head, shuffling, dropout, augmentation and the validation
        split. An int makes CPU runs reproducible. The global random states
        of torch, numpy and ``random`` are left untouched.
    device : str, default="auto"
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    mixed_precision : bool or "auto", default="auto"
        Training under bfloat16 autocast (the weights stay float32). "auto"
        and True use it on CUDA (float16 with loss scaling where bfloat16 is
        unsupported) and on CPUs that compute bfloat16 natively (AVX-512 BF16
        or AMX); other CPUs and MPS train in float32 (True then warns).
        Head-only training (``trainable_blocks=0``) on a CPU stays float32.
        ``False``, or ``SKTRANSFER_BFLOAT16=0`` in the environment for CPUs,
        trains in float32 everywhere.
    precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Floating-point type of the forward pass in ``predict`` and friends,
        as in :class:`sktransfer.TextEncoder`: "auto" picks bfloat16 where the
        device computes it natively and the trained body's features on a fixed
        probe batch agree with float32 (mean cosine >= 0.999); "bfloat16"
        where the CPU or GPU runs it faster (a ``PrecisionWarning`` and
        float32 elsewhere), "float16" on CUDA. ``precision_`` is the one in
        use, with the reason in ``precision_.reason``. Training is not
        affected (see ``mixed_precision``).
    verbose : int or "auto", default="auto"
        What ``fit`` shows while it runs. "auto": one progress bar over all
        of the fit's work (any pass of the frozen body over the data, then
        every epoch's training steps and validation batches) with the epoch,
        the running training loss and the validation score, on stderr when it
        is a terminal or in a notebook, once the fit has run 2 seconds.
        ``0``: nothing. ``1``: one line per epoch on stdout (loss, validation
        score, trained blocks, the head's learning rate, seconds). ``2``: the
        lines, and the bar from the start wherever stderr goes. Output of
        the underlying libraries (their loading bars and logs) is silenced
        at every level."""

_ATTRIBUTES_DOC = """
    history_ : list of dict
        One record per epoch: ``epoch``, ``train_loss`` (weighted mean),
        ``valid_score`` (None without early stopping), ``trainable_blocks``,
        ``learning_rates`` (per trained block, the rates of the epoch's last
        optimisation step: ``"head"``, ``"block_<i>"``), ``train_time`` and
        ``time`` (seconds).
        :meth:`plot_history` draws it.
    best_epoch_ : int or None
        The epoch (1-based) whose weights were kept by early stopping.
    n_epochs_ : int
        Epochs run.
    n_train_samples_, n_validation_samples_ : int
        Samples trained on, and held out for early stopping (0 without it).
    n_blocks_ : int
        Blocks of the body (see ``trainable_blocks``).
    validation_metric_ : str or None
        The metric early stopping monitored.
    device_ : str
        The device the network is on.
    precision_ : Precision
        The precision of predictions (a str), with the reason for it in
        ``precision_.reason``.
    model_source_, model_reference_ : str
        Where the pretrained body came from.
    n_features_in_ : int
        Always 1: one column of texts or images.
    n_features_out_ : int
        Width of :meth:`transform`'s tuned embeddings (the head's input)."""

_NOTES_DOC = """
    Notes
    -----
    Every ``fit`` starts again from the pretrained weights. Pickling (and
    joblib) stores the trained weights as CPU tensors; unpickling rebuilds the
    architecture and loads them on the device that exists (with a warning when
    the fitted device is missing). {rebuild} :meth:`save` / :meth:`load` use
    safetensors and JSON instead of pickle, and ``save`` writes a model card
    (``README.md``: task, labels, training data size, parameters, validation
    scores, base model and its license)."""


def _doc(summary: str, specific: str, attributes: str, rebuild: str, example: str) -> str:
    return (
        f"{summary}\n\n    Parameters\n    ----------{specific}{_PARAMS_DOC}\n\n"
        f"    Attributes\n    ----------{attributes}{_ATTRIBUTES_DOC}\n"
        f"{_NOTES_DOC.format(rebuild=rebuild)}\n\n    Examples\n    --------{example}\n    "
    )


_CLASSIFIER_PARAMS = """
    validation_metric : {"auto", "accuracy", "log_loss"}, default="auto"
        What early stopping monitors ("auto": accuracy). At the end of ``fit``
        the kept epoch's score (without early stopping: the last epoch's
        training loss) is compared with the best constant prediction; a model
        no better than it gives an ``UnderfitWarning`` saying what to try, as
        does, with "log_loss", a model that predicts one class for every
        validation sample.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn (multiplied
        with ``sample_weight``)."""

_REGRESSOR_PARAMS = """
    validation_metric : {"auto", "r2", "mse"}, default="auto"
        What early stopping monitors ("auto": R²)."""

_CLASSIFIER_ATTRS = """
    classes_ : ndarray
        The class labels (any type), sorted."""

_REGRESSOR_ATTRS = """
    n_outputs_ : int
        Number of targets.
    y_mean_, y_scale_ : ndarray of shape (n_outputs_,)
        Targets are standardised for training; predictions are scaled back."""
