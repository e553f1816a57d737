"""The base of the fine-tuning estimators: validation, seeding, the fit, pickling, save/load.

A fine-tuner is this base, a task mixin (``_classifier.py`` / ``_regressor.py``)
and a modality (``_text.py`` / ``_image.py``: the adapter it makes and its
parameters). ``fit`` hands the work to the shared training loop (``_loop.py``)
with its callbacks (``_callbacks.py``). torch is imported inside the methods that
need it, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import gc
import warnings

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from sktransfer._device import reload_body, resolve_device
from sktransfer._doclink import DocLinkMixin
from sktransfer._precision import autocast, resolve_precision
from sktransfer._validation import is_missing, one_column_tags
from sktransfer._warn import outside_stacklevel
from sktransfer.exceptions import InvalidInputError, PrecisionWarning
from sktransfer.finetune._metrics import LOWER_IS_BETTER, METRICS
from sktransfer.finetune._registry import register
from sktransfer.finetune._transform import TunedEmbeddingsMixin

_MAX_LISTED = 10


@contextlib.contextmanager
def _seeded(seed: int, device: str):
    """Seed torch, ``random`` and numpy's global RNG inside, restore them after.

    timm's augmentations draw from ``random`` and ``numpy.random``; dropout and
    the head's initialisation from torch's RNG. Forking keeps the caller's
    random streams untouched.
    """
    import random

    import torch

    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002 - timm's RandAugment uses the global RNG
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)  # noqa: NPY002


def _release_memory(device: str | None) -> None:
    """Hand a finished fit's GPU memory back to the driver.

    On the CPU, freed tensors go back to the allocator as soon as their last
    reference drops, so the (slow) full garbage collection runs only for CUDA.
    """
    if device is not None and device.startswith("cuda"):
        import torch

        gc.collect()
        torch.cuda.empty_cache()


class _FineTuneEstimator(DocLinkMixin, TunedEmbeddingsMixin, BaseEstimator):
    """What the four fine-tuning estimators share. Not meant to be used directly.

    A predictor that also transforms: ``transform`` gives the tuned embeddings
    (see ``_transform.py``).
    """

    _is_classifier = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register(cls)

    # --------------------------------------------------------------- hooks
    def _make_adapter(self):  # pragma: no cover
        """The modality's adapter, configured by this estimator's parameters."""
        raise NotImplementedError

    def _encode_targets(self, y) -> tuple:  # pragma: no cover
        raise NotImplementedError

    # --------------------------------------------------------- validation
    def _check_y(self, y, n_samples: int) -> np.ndarray:
        if y is None:
            raise ValueError(f"{type(self).__name__} needs y (the targets) to fit.")
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != n_samples:
            got = "a scalar" if y.ndim == 0 else f"{len(y)} targets"
            raise ValueError(
                f"X and y have inconsistent lengths: X has {n_samples} samples but y has {got}."
            )
        missing = _missing_positions(y)
        if missing:
            shown = ", ".join(str(i) for i in missing[:_MAX_LISTED])
            more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
            raise ValueError(
                f"y contains {len(missing)} missing values (NaN/None) at positions "
                f"{shown}{more}; drop those samples or fill their targets."
            )
        return y

    def _validation_metric(self) -> str:
        if self.validation_metric != "auto":
            return self.validation_metric
        return "accuracy" if self._is_classifier else "r2"

    def _warn_if_not_learned(self, train, valid) -> None:
        """Warn when the fitted model does no better than a constant (hook: classifiers)."""

    # ----------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fine-tune the pretrained body and a new head on ``(X, y)``.

        Every call starts from the pretrained weights.

        Parameters
        ----------
        X : sequence of samples
            Texts or images; see the class docstring for the accepted types.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classifiers) or targets (regressors).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss (multiplied by ``class_weight``).

        Returns
        -------
        self
        """
        import torch

        from sktransfer.finetune._callbacks import (
            EarlyStopping,
            EpochLog,
            FreezeSchedule,
            TrainingProgress,
        )
        from sktransfer.finetune._frozen_features import cached_body_features
        from sktransfer.finetune._loop import LoopConfig, TrainingLoop
        from sktransfer.finetune._net import FineTuneNet

        adapter = self._make_adapter()
        items = adapter.check_X(X)
        n_samples = len(items)
        if n_samples == 0:
            raise InvalidInputError(f"{type(self).__name__}.fit got an empty X; pass samples.")
        y = self._check_y(y, n_samples)
        targets, y_metric, stratify = self._encode_targets(y)
        weights = _check_sample_weight(sample_weight, np.empty(n_samples), dtype=np.float64)
        if self._is_classifier and self.class_weight is not None:
            weights = weights * compute_sample_weight(self.class_weight, y)
        if not np.all(weights >= 0) or weights.sum() <= 0:
            raise ValueError("sample_weight must be non-negative and not all zero.")

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self._discard_network()
        device = resolve_device(self.device)
        if device.startswith("cpu"):
            # Training allocates the same large buffers as inference, batch after
            # batch: raise glibc's thresholds as the encoders do (sktransfer._malloc).
            from sktransfer._malloc import tune_malloc

            tune_malloc()
        # An explicit precision warns before training; "auto" probes the trained body.
        precision = None
        if self.precision != "auto":
            precision = resolve_precision(self.precision, device, owner=type(self).__name__)
        amp_dtype = _amp_dtype(self.mixed_precision, device, owner=type(self).__name__)
        metric_name = self._validation_metric()
        with _seeded(seed, device):
            body, source, reference = adapter.load(device)
            adapter.warn_if_truncated(items, type(self).__name__)
            blocks = adapter.blocks(body)
            block_of = {f"body.{name}": i for i, names in enumerate(blocks) for name in names}
            n_outputs = targets.shape[1] if targets.ndim == 2 else len(self.classes_)
            net = FineTuneNet(body, n_outputs, self.head_dropout).to(device)
            train, valid = self._split(items, targets, y_metric, weights, stratify, seed)
            n_blocks = len(blocks)
            trainable = n_blocks if self.trainable_blocks == "all" else self.trainable_blocks
            freeze = FreezeSchedule(n_blocks, trainable, self.unfreeze_every)
            stopper = None
            if self.early_stopping:
                greater_is_better = metric_name not in LOWER_IS_BETTER
                stopper = EarlyStopping(self.n_iter_no_change, greater_is_better)
            name = type(self).__name__
            callbacks = [
                freeze,
                *([stopper] if stopper is not None else []),
                TrainingProgress(
                    self.verbose, epochs=self.epochs, description=name, metric_name=metric_name
                ),
                EpochLog(self.verbose, metric_name=metric_name),
            ]
            loop = TrainingLoop(
                net,
                adapter,
                block_of,
                n_blocks,
                freeze,
                self._loss_function(),
                METRICS[metric_name],
                LoopConfig(
                    epochs=self.epochs,
                    batch_size=self.batch_size,
                    learning_rate=self.learning_rate,
                    layer_decay=self.layer_decay,
                    weight_decay=self.weight_decay,
                    warmup_fraction=self.warmup_fraction,
                    max_grad_norm=self.max_grad_norm,
                    device=device,
                    amp_dtype=amp_dtype,
                    body_features=cached_body_features(adapter, device),
                ),
                torch.Generator().manual_seed(seed),
                callbacks,
            )
            history = loop.fit(train, valid)
        for param in net.parameters():
            param.requires_grad_(False)
        self._net = net.eval()
        self._adapter = adapter
        self.device_ = device
        self.precision_ = precision or prediction_precision(self, net, adapter, device)
        self.model_source_ = source
        self.model_reference_ = reference
        self.n_features_in_ = 1
        self.n_blocks_ = n_blocks
        self.history_ = history
        self.validation_metric_ = metric_name if valid is not None else None
        self.best_epoch_ = None if stopper is None else stopper.best_epoch + 1
        self.n_epochs_ = len(history)
        self.n_train_samples_ = len(train.items)
        self.n_validation_samples_ = 0 if valid is None else len(valid.items)
        del loop
        _release_memory(device)
        self._warn_if_not_learned(train, valid)
        return self

    def _split(self, items, targets, y_metric, weights, stratify, seed):
        import torch
        from sklearn.model_selection import train_test_split

        from sktransfer.finetune._loop import Split

        def subset(idx):
            return Split(
                items=[items[i] for i in idx],
                targets=torch.as_tensor(targets[idx]),
                weights=torch.as_tensor(weights[idx], dtype=torch.float32),
                y=y_metric[idx],
            )

        everything = np.arange(len(items))
        if not self.early_stopping:
            return subset(everything), None
        n_valid = int(np.ceil(self.validation_fraction * len(items)))
        if n_valid >= len(items) or n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no training data for "
                f"{len(items)} samples; use more samples or early_stopping=False."
            )
        try:
            train_idx, valid_idx = train_test_split(
                everything, test_size=n_valid, random_state=seed, stratify=stratify
            )
        except ValueError:
            if stratify is None:
                raise
            warnings.warn(
                "The validation split could not be stratified (a class has too few "
                "samples); it was drawn at random instead.",
                UserWarning,
                stacklevel=outside_stacklevel(),
            )
            train_idx, valid_idx = train_test_split(
                everything, test_size=n_valid, random_state=seed
            )
        return subset(np.sort(train_idx)), subset(np.sort(valid_idx))

    # ------------------------------------------------------------- predict
    def _raw_outputs(self, X) -> np.ndarray:
        from sktransfer.finetune._loop import predict_outputs

        check_is_fitted(self)
        net = self._network()
        items = self._adapter.check_X(X)
        if len(items) == 0:
            return np.empty((0, net.head.out_features), dtype=np.float32)
        self._adapter.warn_if_truncated(items, type(self).__name__)
        run, memory_format = self._prediction_runner(net)
        with autocast(self.precision_, self.device_):
            return predict_outputs(
                run,
                self._adapter,
                items,
                self.batch_size,
                self.device_,
                memory_format=memory_format,
            )

    def _prediction_runner(self, net):
        """``(what runs net's predictions, the batches' memory format or None)``.

        On a CPU, the encoders' inference copy of the trained net (see
        ``sktransfer._inference``), made on the first prediction after each
        fit: for a convolutional net, BatchNorm folded into the convolutions,
        timm's "SAME" paddings fixed and ReLU-like activations fused, each
        checked on the adapter's probe photos, with channels-last batches; in
        bfloat16, the linear and convolution weights cast once instead of on
        every batch.
        """
        from sktransfer import _inference

        probe = None
        if _inference.has_conv2d(net) and hasattr(self._adapter, "probe_batch"):
            probe = self._adapter.probe_batch
        run = _inference.runner(net, str(self.precision_), self.device_, probe)
        if probe is None or not str(self.device_).startswith("cpu"):
            return run, None
        import torch

        return run, torch.channels_last

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "history_")

    def __sklearn_tags__(self):
        tags = one_column_tags(super().__sklearn_tags__())
        tags.target_tags.required = True
        tags.non_deterministic = self.random_state is None
        return tags

    # --------------------------------------------------- network lifetime
    def _network(self):
        """The trained net; rebuilt from the stored weights after unpickling."""
        net = getattr(self, "_net", None)
        if net is not None:
            return net
        from sktransfer.finetune._net import rebuild_network

        adapter = self._make_adapter()
        device, body = reload_body(self, adapter)
        net = rebuild_network(body, self._net_state, device, self.head_dropout)
        if device != self.device_:  # e.g. trained on a GPU, unpickled on a CPU
            self.precision_ = prediction_precision(self, net, adapter, device)
        self._net, self._adapter, self.device_ = net, adapter, device
        del self._net_state
        return self._net

    def _discard_network(self) -> None:
        previous = getattr(self, "device_", None)
        for attr in ("_net", "_adapter", "_net_state"):
            if attr in self.__dict__:
                delattr(self, attr)
        _release_memory(previous)

    def __getstate__(self):
        state = super().__getstate__()
        net = state.pop("_net", None)
        state.pop("_adapter", None)
        if net is not None:
            from sktransfer.finetune._net import cpu_state

            # Trained weights travel as CPU tensors: they load on any machine.
            state["_net_state"] = cpu_state(net)
        return state

    def plot_history(self, ax=None):
        """Plot the training loss and the validation score per epoch.

        The same as :func:`sktransfer.finetune.plot_history` on this
        estimator: integer epoch ticks, axes labelled "training loss" and
        "validation <metric>", the best epoch marked, the legend above the axes.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw; a new figure is made when omitted.

        Returns
        -------
        matplotlib.axes.Axes

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sktransfer import TextClassifier
        >>> texts, labels = ["good", "great", "fine", "bad", "awful", "poor"], [1, 1, 1, 0, 0, 0]
        >>> clf = TextClassifier(trainable_blocks=0, epochs=2, early_stopping=True,
        ...                      validation_fraction=0.34, random_state=0).fit(texts, labels)
        >>> ax = clf.plot_history()
        >>> ax.figure.axes[1].get_ylabel()
        'validation accuracy'
        >>> matplotlib.pyplot.close(ax.figure)
        """
        from sktransfer.finetune._plot import plot_history

        check_is_fitted(self)
        return plot_history(self, ax=ax)

    # ---------------------------------------------------------- save/load
    def save(self, path) -> None:
        """Save the fitted estimator to the folder ``path`` without pickle.

        The folder holds ``config.json`` (parameters, classes and other fitted
        attributes), ``weights.safetensors`` and, for text models, the
        fine-tuned sentence-transformers folder ``body/``. Loading it executes
        no code from the folder.

        Parameters
        ----------
        path : str or path-like
            A folder; created if missing.

        Examples
        --------
        >>> import tempfile
        >>> from sktransfer import TextClassifier
        >>> clf = TextClassifier(trainable_blocks=0, epochs=1, random_state=0)
        >>> clf = clf.fit(["good", "great", "bad", "awful"], [1, 1, 0, 0])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     clf.save(folder)
        ...     loaded = TextClassifier.load(folder, device="cpu")
        >>> loaded.classes_
        array([0, 1])
        """
        from sktransfer.finetune._io import save_estimator

        save_estimator(self, path)

    @classmethod
    def load(cls, path, *, device: str = "auto"):
        """Load an estimator saved with :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The folder written by :meth:`save`.
        device : str, default="auto"
            Where to put the network: a model trained on a GPU loads on a
            CPU-only machine with ``device="cpu"`` (or ``"auto"``).

        Returns
        -------
        estimator
            Fitted, ready to ``predict``.

        Raises
        ------
        FileNotFoundError
            If the folder holds no ``config.json``.
        InvalidInputError
            If the folder holds another kind of estimator (say an
            ``ImageRegressor`` given to ``TextClassifier.load``) or weights
            that do not fit it.

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from sktransfer import ImageRegressor
        >>> images = np.linspace(0, 1, 6)[:, None, None] * np.ones((6, 16, 16))
        >>> reg = ImageRegressor(image_size=32, trainable_blocks=0, epochs=1,
        ...                      random_state=0).fit(images, np.arange(6.0))
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     reg.save(folder)
        ...     loaded = ImageRegressor.load(folder, device="cpu")
        >>> bool(np.allclose(loaded.predict(images), reg.predict(images), atol=1e-5))
        True
        """
        from sktransfer.finetune._io import load_estimator

        return load_estimator(path, device=device, expected=cls)


def _amp_dtype(mixed_precision, device: str, *, owner: str = "The estimator"):
    """The autocast type of training (None: float32), from ``mixed_precision``.

    CUDA: bfloat16, or float16 (with loss scaling) where bfloat16 is missing.
    CPU: bfloat16 where the CPU computes it natively (AVX-512 BF16 or AMX, see
    ``sktransfer._precision.native_bfloat16``; ``SKTRANSFER_BFLOAT16=0`` turns
    it off); elsewhere float32, with a ``PrecisionWarning`` when
    ``mixed_precision=True`` asked for it. MPS: float32.
    """
    if mixed_precision is False:
        return None
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if kind == "cpu":
        from sktransfer._precision import native_bfloat16

        native, why = native_bfloat16(device)
        if native:
            return torch.bfloat16
        if mixed_precision is True:
            warnings.warn(
                f"{owner}(mixed_precision=True): training runs in float32 on this CPU, "
                f"because {why}. Use mixed_precision='auto' to choose silently.",
                PrecisionWarning,
                stacklevel=outside_stacklevel(),
            )
    return None


def prediction_precision(estimator, net, adapter, device: str):
    """``precision_`` of a fitted fine-tuner; "auto" probes the body of ``net``.

    The probe compares the body's features on the adapter's fixed probe batch
    (texts or photos, see ``sktransfer._precision``) in float32 and bfloat16.
    """
    from sktransfer._base import precision_probe

    probe = None
    if estimator.precision == "auto":
        probe = precision_probe(net.body, adapter, device)
    return resolve_precision(
        estimator.precision, device, owner=type(estimator).__name__, probe=probe, probe_key=net
    )


def _missing_positions(y: np.ndarray) -> list[int]:
    flat = y.reshape(len(y), -1) if y.ndim > 0 else y
    if y.dtype.kind == "f":
        return np.flatnonzero(np.isnan(flat).any(axis=1)).tolist()
    if y.dtype.kind == "O":
        return [i for i, row in enumerate(flat) if any(is_missing(v) for v in row)]
    return []
