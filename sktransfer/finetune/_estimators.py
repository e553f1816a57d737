"""TextClassifier, TextRegressor, ImageClassifier, ImageRegressor.

Four thin classes over one base: the base validates, encodes targets, splits off
validation data, seeds, and hands the work to the shared training loop
(``_loop.py``); text and image differ only in their backend (``_bodies.py``).
torch is imported inside the methods that need it, so importing this module
is cheap.
"""

from __future__ import annotations

import contextlib
import gc
import numbers
import os
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from sktransfer._device import device_after_unpickling, resolve_device
from sktransfer._hub import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL
from sktransfer._precision import PRECISIONS, autocast, resolve_precision
from sktransfer._warn import outside_stacklevel
from sktransfer.exceptions import InvalidInputError, UnderfitWarning

__all__ = ["TextClassifier", "TextRegressor", "ImageClassifier", "ImageRegressor"]

_MAX_LISTED = 10

# A loss within this share of the constant baseline's counts as no better (see
# _FineTuneClassifier._warn_if_not_learned).
_LOSS_MARGIN = 0.02

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
_TEXT_CONSTRAINTS = {"max_length": [Interval(numbers.Integral, 1, None, closed="left"), None]}
_IMAGE_CONSTRAINTS = {
    "pretrained": ["boolean"],
    "weights": [str, os.PathLike, None],
    "image_size": [Interval(numbers.Integral, 8, None, closed="left"), None],
    "augmentation": [StrOptions({"none", "light", "strong"})],
}
_CLASSIFIER_CONSTRAINTS = {
    "validation_metric": [StrOptions({"auto", "accuracy", "log_loss"})],
    "class_weight": [StrOptions({"balanced"}), dict, None],
}
_REGRESSOR_CONSTRAINTS = {"validation_metric": [StrOptions({"auto", "r2", "mse"})]}


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


class _FineTuneEstimator(BaseEstimator):
    """What the four fine-tuning estimators share. Not meant to be used directly."""

    _is_classifier = False

    # --------------------------------------------------------------- hooks
    def _make_backend(self):  # pragma: no cover
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

        from sktransfer.finetune._bodies import FineTuneNet
        from sktransfer.finetune._loop import (
            EarlyStopping,
            FreezeSchedule,
            LoopConfig,
            TrainingLoop,
        )

        self._validate_params()
        backend = self._make_backend()
        items = backend.check_X(X)
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
        precision = resolve_precision(self.precision, device, owner=type(self).__name__)
        amp_dtype = _amp_dtype(self.mixed_precision, device)
        metric_name = self._validation_metric()
        with _seeded(seed, device):
            body, source, reference = backend.load(device)
            backend.warn_if_truncated(items, type(self).__name__)
            blocks = backend.blocks(body)
            block_of = {f"body.{name}": i for i, names in enumerate(blocks) for name in names}
            n_outputs = targets.shape[1] if targets.ndim == 2 else len(self.classes_)
            net = FineTuneNet(body, n_outputs, self.head_dropout).to(device)
            train, valid = self._split(items, targets, y_metric, weights, stratify, seed)
            n_blocks = len(blocks)
            trainable = n_blocks if self.trainable_blocks == "all" else self.trainable_blocks
            stopper = None
            if self.early_stopping:
                greater_is_better = metric_name not in ("log_loss", "mse")
                stopper = EarlyStopping(self.n_iter_no_change, greater_is_better)
            loop = TrainingLoop(
                net,
                backend,
                block_of,
                n_blocks,
                FreezeSchedule(n_blocks, trainable, self.unfreeze_every),
                self._loss_function(),
                _METRICS[metric_name],
                stopper,
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
                    verbose=self.verbose,
                    description=type(self).__name__,
                    metric_name=metric_name,
                ),
                torch.Generator().manual_seed(seed),
            )
            history = loop.fit(train, valid)
        for param in net.parameters():
            param.requires_grad_(False)
        self._net = net.eval()
        self._backend = backend
        self.device_ = device
        self.precision_ = precision
        self.model_source_ = source
        self.model_reference_ = reference
        self.n_features_in_ = 1
        self.n_blocks_ = n_blocks
        self.history_ = history
        self.validation_metric_ = metric_name if valid is not None else None
        self.best_epoch_ = None if stopper is None else stopper.best_epoch + 1
        self.n_epochs_ = len(history)
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
                stacklevel=3,
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
        items = self._backend.check_X(X)
        if len(items) == 0:
            return np.empty((0, net.head.out_features), dtype=np.float32)
        self._backend.warn_if_truncated(items, type(self).__name__)
        with autocast(self.precision_, self.device_):
            return predict_outputs(net, self._backend, items, self.batch_size, self.device_)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "history_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        tags.target_tags.required = True
        tags.non_deterministic = self.random_state is None
        return tags

    # --------------------------------------------------- network lifetime
    def _network(self):
        """The trained net; rebuilt from the stored weights after unpickling."""
        net = getattr(self, "_net", None)
        if net is not None:
            return net
        from sktransfer.finetune._bodies import FineTuneNet

        device = device_after_unpickling(self.device, self.device_)
        backend = self._make_backend()
        body, _, _ = backend.load(device, pretrained=False)
        net = FineTuneNet(body, self._net_state["head.weight"].shape[0], self.head_dropout)
        net.load_state_dict(self._net_state)
        for param in net.parameters():
            param.requires_grad_(False)
        if device != self.device_:  # e.g. trained on a GPU, unpickled on a CPU
            self.precision_ = resolve_precision(self.precision, device, owner=type(self).__name__)
        self._net, self._backend, self.device_ = net.to(device).eval(), backend, device
        del self._net_state
        return self._net

    def _discard_network(self) -> None:
        previous = getattr(self, "device_", None)
        for attr in ("_net", "_backend", "_net_state"):
            if attr in self.__dict__:
                delattr(self, attr)
        _release_memory(previous)

    def __getstate__(self):
        state = super().__getstate__()
        net = state.pop("_net", None)
        state.pop("_backend", None)
        if net is not None:
            # Trained weights travel as CPU tensors: they load on any machine.
            state["_net_state"] = _cpu_state(net)
        return state

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


# -------------------------------------------------------------- classifier
class _FineTuneClassifier(ClassifierMixin, _FineTuneEstimator):
    _is_classifier = True

    def _encode_targets(self, y):
        if y.ndim != 1:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            else:
                raise ValueError(
                    f"{type(self).__name__} expects 1-D class labels, got y of shape {y.shape}."
                )
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in y; "
                f"got only the class {classes[0]!r}."
            )
        self.classes_ = classes
        return codes.astype(np.int64), codes, codes

    def _loss_function(self):
        import torch.nn.functional as F

        def loss(outputs, targets):
            return F.cross_entropy(outputs, targets, reduction="none")

        return loss

    def _warn_if_not_learned(self, train, valid) -> None:
        """Warn (``UnderfitWarning``) when training did no better than one constant answer.

        Judged on what training already measured, so no sample runs through
        the network again: the validation score of the kept epoch (with
        ``early_stopping``), else the training loss of the last epoch. The
        baseline is the best constant prediction on the same samples under the
        same weights: always the most frequent class (accuracy; a classifier
        that predicts one class only never beats it), or the class frequencies
        (log-loss). A loss within ``_LOSS_MARGIN`` of the baseline counts as no
        better: the training loss is averaged over an epoch that starts from a
        random head.
        """
        if valid is not None:
            score = self.history_[self.best_epoch_ - 1]["valid_score"]
            metric, split = self.validation_metric_, valid
            where = f"its validation split ({len(valid.y)} samples)"
        else:
            score = self.history_[-1]["train_loss"]
            metric, split = "log_loss", train
            where = "its training data (loss of the last epoch)"
        weights = split.weights.numpy().astype(np.float64)
        shares = np.bincount(split.y, weights=weights, minlength=len(self.classes_))
        shares = shares / shares.sum()
        top = int(np.argmax(shares))
        if metric == "accuracy":
            if score > shares[top] + 1e-9:
                return
            label = self.classes_[top]
            label = label.item() if isinstance(label, np.generic) else label  # 0, not np.int64(0)
            verdict = (
                f"accuracy {score:.3f} is no better than always predicting the class "
                f"{label!r} ({shares[top]:.3f})"
            )
        else:
            present = shares[shares > 0]
            baseline = float(-(present * np.log(present)).sum())
            if score < baseline * (1 - _LOSS_MARGIN):
                return
            verdict = (
                f"log-loss {score:.3f} is no lower than that of predicting the class "
                f"frequencies ({baseline:.3f})"
            )
        encoder = type(self).__name__.replace("Classifier", "Encoder")
        warnings.warn(
            f"{type(self).__name__} did not learn: on {where}, its {verdict}. Try more "
            f"epochs (now {self.epochs}), a higher learning_rate (now {self.learning_rate:g}) "
            "or more trainable_blocks; frozen features with a linear model are a strong "
            f"baseline: make_pipeline({encoder}(), LogisticRegression()).",
            UnderfitWarning,
            stacklevel=outside_stacklevel(),
        )

    def decision_function(self, X) -> np.ndarray:
        """Logits: shape (n_samples,) for two classes (positive class), else (n_samples, n_classes).

        Parameters
        ----------
        X : sequence of samples

        Returns
        -------
        ndarray of float32
        """
        logits = self._raw_outputs(X)
        if len(self.classes_) == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : sequence of samples

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return _softmax(self._raw_outputs(X))

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        logits = self._raw_outputs(X).astype(np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict(self, X) -> np.ndarray:
        """Most probable class of each sample (always one of ``classes_``).

        Parameters
        ----------
        X : sequence of samples

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        logits = self._raw_outputs(X)
        return self.classes_[np.argmax(logits, axis=1)] if len(logits) else self.classes_[:0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.poor_score = True
        return tags


# --------------------------------------------------------------- regressor
class _FineTuneRegressor(RegressorMixin, _FineTuneEstimator):
    def _encode_targets(self, y):
        kind = type_of_target(y)
        if y.dtype.kind not in "biuf" or y.ndim > 2 or kind not in _NUMERIC_TARGETS:
            raise ValueError(
                f"{type(self).__name__} expects numeric targets of shape (n_samples,) or "
                f"(n_samples, n_outputs); got {kind} y of shape {y.shape}."
            )
        y = y.astype(np.float64)
        y2 = y.reshape(len(y), -1)
        self.n_outputs_ = y2.shape[1]
        # Standardised targets train faster; predictions are scaled back.
        self.y_mean_ = y2.mean(axis=0)
        scale = y2.std(axis=0)
        self.y_scale_ = np.where(scale > 0, scale, 1.0)
        self._y_1d = y.ndim == 1
        scaled = ((y2 - self.y_mean_) / self.y_scale_).astype(np.float32)
        return scaled, scaled, None

    def _loss_function(self):
        def loss(outputs, targets):
            return ((outputs - targets) ** 2).mean(dim=1)

        return loss

    def predict(self, X) -> np.ndarray:
        """Predicted targets.

        Parameters
        ----------
        X : sequence of samples

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            1-D when ``y`` was 1-D at fit time.
        """
        out = self._raw_outputs(X).astype(np.float64) * self.y_scale_ + self.y_mean_
        return out[:, 0] if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = True
        return tags


# ---------------------------------------------------------------- metrics
_NUMERIC_TARGETS = (
    "continuous",
    "binary",
    "multiclass",
    "continuous-multioutput",
    "multiclass-multioutput",
)


def _cpu_state(net) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _accuracy(outputs, y, weights):
    return float(np.average(outputs.argmax(axis=1) == y, weights=weights))


def _log_loss(outputs, y, weights):
    from sklearn.metrics import log_loss

    labels = np.arange(outputs.shape[1])
    return float(log_loss(y, _softmax(outputs), labels=labels, sample_weight=weights))


def _r2(outputs, y, weights):
    from sklearn.metrics import r2_score

    # R² is unchanged by the target standardisation (per output).
    return float(r2_score(y, outputs, sample_weight=weights))


def _mse(outputs, y, weights):
    return float(np.average(((outputs - y) ** 2).mean(axis=1), weights=weights))


_METRICS = {"accuracy": _accuracy, "log_loss": _log_loss, "r2": _r2, "mse": _mse}


def _amp_dtype(mixed_precision, device: str):
    """bfloat16 (or float16 where bf16 is missing) autocast on CUDA; None elsewhere."""
    if mixed_precision is False or not device.startswith("cuda"):
        return None
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _missing_positions(y: np.ndarray) -> list[int]:
    flat = y.reshape(len(y), -1) if y.ndim > 0 else y
    if y.dtype.kind == "f":
        return np.flatnonzero(np.isnan(flat).any(axis=1)).tolist()
    if y.dtype.kind == "O":
        bad = []
        for i, row in enumerate(flat):
            if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in row):
                bad.append(i)
        return bad
    return []


# ---------------------------------------------------------- the backends
class _TextInput:
    def _make_backend(self):
        from sktransfer.finetune._bodies import TextBackend

        return TextBackend(self.model, max_length=self.max_length)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.one_d_array = True
        return tags


class _ImageInput:
    def _make_backend(self):
        from sktransfer.finetune._bodies import ImageBackend

        return ImageBackend(
            self.model,
            pretrained=self.pretrained,
            weights=self.weights,
            image_size=self.image_size,
            augmentation=self.augmentation,
            n_workers=min(4, os.cpu_count() or 1),
        )


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
        Training in bfloat16 (float16 with loss scaling where bf16 is
        unsupported) autocast on CUDA; "auto" and True use it on CUDA. It
        never applies on the CPU.
    precision : {"float32", "bfloat16", "float16"}, default="float32"
        Floating-point type of the forward pass in ``predict`` and friends,
        as in :class:`sktransfer.TextEncoder`: "bfloat16" where the CPU or GPU
        runs it faster (a ``PrecisionWarning`` and float32 elsewhere),
        "float16" on CUDA. ``precision_`` is the one in use. Training is not
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
        :func:`sktransfer.finetune.plot_history` draws it.
    best_epoch_ : int or None
        The epoch (1-based) whose weights were kept by early stopping.
    n_epochs_ : int
        Epochs run.
    n_blocks_ : int
        Blocks of the body (see ``trainable_blocks``).
    validation_metric_ : str or None
        The metric early stopping monitored.
    device_ : str
        The device the network is on.
    precision_ : str
        The precision of predictions: ``precision``, or "float32" after a
        fallback.
    model_source_, model_reference_ : str
        Where the pretrained body came from.
    n_features_in_ : int
        Always 1: one column of texts or images."""

_NOTES_DOC = """
    Notes
    -----
    Every ``fit`` starts again from the pretrained weights. Pickling (and
    joblib) stores the trained weights as CPU tensors; unpickling rebuilds the
    architecture and loads them on the device that exists (with a warning when
    the fitted device is missing). {rebuild} :meth:`save` / :meth:`load` use
    safetensors and JSON instead of pickle."""


def _doc(summary: str, specific: str, attributes: str, rebuild: str, example: str) -> str:
    return (
        f"{summary}\n\n    Parameters\n    ----------{specific}{_PARAMS_DOC}\n\n"
        f"    Attributes\n    ----------{attributes}{_ATTRIBUTES_DOC}\n"
        f"{_NOTES_DOC.format(rebuild=rebuild)}\n\n    Examples\n    --------{example}\n    "
    )


_TEXT_PARAMS = """
    model : str, default="sentence-transformers/all-MiniLM-L6-v2"
        A sentence-transformers model: Hub id or local folder (the default
        also resolves to the copy installed by ``sktransfer[offline]``).
    max_length : int or None, default=None
        Truncate texts to this many tokens (``None``: the model's limit).
        ``fit`` and the predict methods warn (``TruncationWarning``) when
        texts are longer, with their count and first positions."""

_IMAGE_PARAMS = """
    model : str, default="tf_efficientnet_lite0"
        A timm architecture (the default also resolves to the ImageNet weights
        installed by ``sktransfer[offline]``).
    pretrained : bool, default=True
        Load pretrained weights (``False``: seeded random weights, a
        from-scratch baseline).
    weights : str or path-like, default=None
        A local state-dict file for ``model``; overrides ``pretrained``.
    image_size : int or None, default=None
        Square input size (``None``: the model's pretrained size). Smaller is
        much faster on a CPU.
    augmentation : {"none", "light", "strong"}, default="none"
        Training-time augmentation from timm's training transforms, applied
        only while training: "light" = random resized crop (60-100% of the
        area) and horizontal flips; "strong" = wider crops (35-100%), flips,
        RandAugment (magnitude 9) and random erasing."""

_CLASSIFIER_PARAMS = """
    validation_metric : {"auto", "accuracy", "log_loss"}, default="auto"
        What early stopping monitors ("auto": accuracy). At the end of ``fit``
        the kept epoch's score (without early stopping: the last epoch's
        training loss) is compared with the best constant prediction; a model
        no better than it gives an ``UnderfitWarning`` saying what to try.
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

_TEXT_REBUILD = (
    "Text models are rebuilt from ``model`` (which must still be loadable)"
    " before the stored weights are loaded."
)
_IMAGE_REBUILD = "Image models are rebuilt from the timm architecture alone."


class TextClassifier(_TextInput, _FineTuneClassifier):
    __doc__ = _doc(
        "Fine-tune a pretrained sentence-transformers model to classify texts.",
        _TEXT_PARAMS + _CLASSIFIER_PARAMS,
        _CLASSIFIER_ATTRS,
        _TEXT_REBUILD,
        """
    >>> from sktransfer import TextClassifier
    >>> texts = ["a great film", "loved it", "superb acting", "what a joy",
    ...          "an awful film", "hated it", "dreadful acting", "what a bore"]
    >>> labels = ["pos"] * 4 + ["neg"] * 4
    >>> clf = TextClassifier(trainable_blocks=0, epochs=3, learning_rate=1e-2,
    ...                      random_state=0).fit(texts, labels)
    >>> clf.classes_
    array(['neg', 'pos'], dtype='<U3')
    >>> clf.predict(["a superb film", "an awful bore"])
    array(['pos', 'neg'], dtype='<U3')
    >>> clf.predict_proba(["a superb film"]).shape
    (1, 2)""",
    )

    _parameter_constraints = {
        **_COMMON_CONSTRAINTS,
        **_TEXT_CONSTRAINTS,
        **_CLASSIFIER_CONSTRAINTS,
    }

    def __init__(
        self,
        model: str = DEFAULT_TEXT_MODEL,
        *,
        max_length: int | None = None,
        trainable_blocks: int | str = 2,
        unfreeze_every: int | None = None,
        learning_rate: float = 1e-3,
        layer_decay: float = 0.5,
        epochs: int = 5,
        batch_size: int = 16,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        max_grad_norm: float | None = 1.0,
        head_dropout: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 3,
        validation_metric: str = "auto",
        class_weight: dict | str | None = None,
        random_state=None,
        device: str = "auto",
        mixed_precision: bool | str = "auto",
        precision: str = "float32",
        verbose: int | str = "auto",
    ):
        self.model = model
        self.max_length = max_length
        self.trainable_blocks = trainable_blocks
        self.unfreeze_every = unfreeze_every
        self.learning_rate = learning_rate
        self.layer_decay = layer_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.max_grad_norm = max_grad_norm
        self.head_dropout = head_dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.validation_metric = validation_metric
        self.class_weight = class_weight
        self.random_state = random_state
        self.device = device
        self.mixed_precision = mixed_precision
        self.precision = precision
        self.verbose = verbose


class TextRegressor(_TextInput, _FineTuneRegressor):
    __doc__ = _doc(
        "Fine-tune a pretrained sentence-transformers model to predict numbers from texts.",
        _TEXT_PARAMS + _REGRESSOR_PARAMS,
        _REGRESSOR_ATTRS,
        _TEXT_REBUILD,
        """
    >>> from sktransfer import TextRegressor
    >>> texts = ["a great film", "loved it", "superb acting", "what a joy",
    ...          "an awful film", "hated it", "dreadful acting", "what a bore"]
    >>> scores = [3.0, 2.5, 3.2, 2.8, -3.0, -2.6, -3.1, -2.2]
    >>> reg = TextRegressor(trainable_blocks=0, epochs=3, learning_rate=1e-2,
    ...                     random_state=0).fit(texts, scores)
    >>> good, bad = reg.predict(["a superb film", "an awful bore"])
    >>> bool(good > bad)
    True""",
    )

    _parameter_constraints = {
        **_COMMON_CONSTRAINTS,
        **_TEXT_CONSTRAINTS,
        **_REGRESSOR_CONSTRAINTS,
    }

    def __init__(
        self,
        model: str = DEFAULT_TEXT_MODEL,
        *,
        max_length: int | None = None,
        trainable_blocks: int | str = 2,
        unfreeze_every: int | None = None,
        learning_rate: float = 1e-3,
        layer_decay: float = 0.5,
        epochs: int = 5,
        batch_size: int = 16,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        max_grad_norm: float | None = 1.0,
        head_dropout: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 3,
        validation_metric: str = "auto",
        random_state=None,
        device: str = "auto",
        mixed_precision: bool | str = "auto",
        precision: str = "float32",
        verbose: int | str = "auto",
    ):
        self.model = model
        self.max_length = max_length
        self.trainable_blocks = trainable_blocks
        self.unfreeze_every = unfreeze_every
        self.learning_rate = learning_rate
        self.layer_decay = layer_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.max_grad_norm = max_grad_norm
        self.head_dropout = head_dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.validation_metric = validation_metric
        self.random_state = random_state
        self.device = device
        self.mixed_precision = mixed_precision
        self.precision = precision
        self.verbose = verbose


class ImageClassifier(_ImageInput, _FineTuneClassifier):
    __doc__ = _doc(
        "Fine-tune a pretrained timm model to classify images.",
        _IMAGE_PARAMS + _CLASSIFIER_PARAMS,
        _CLASSIFIER_ATTRS,
        _IMAGE_REBUILD,
        """
    >>> import numpy as np
    >>> from sktransfer import ImageClassifier
    >>> rng = np.random.default_rng(0)
    >>> images = np.concatenate([rng.integers(0, 90, (6, 32, 32, 3)),
    ...                          rng.integers(160, 256, (6, 32, 32, 3))]).astype(np.uint8)
    >>> labels = ["dark"] * 6 + ["bright"] * 6
    >>> clf = ImageClassifier(image_size=64, trainable_blocks=1, epochs=3,
    ...                       learning_rate=1e-2, random_state=0).fit(images, labels)
    >>> clf.predict(images[[0, -1]])
    array(['dark', 'bright'], dtype='<U6')
    >>> clf.n_blocks_  # stem, 15 inverted-residual blocks, final 1x1 convolution
    17""",
    )

    _parameter_constraints = {
        **_COMMON_CONSTRAINTS,
        **_IMAGE_CONSTRAINTS,
        **_CLASSIFIER_CONSTRAINTS,
    }

    def __init__(
        self,
        model: str = DEFAULT_IMAGE_MODEL,
        *,
        pretrained: bool = True,
        weights: str | os.PathLike | None = None,
        image_size: int | None = None,
        augmentation: str = "none",
        trainable_blocks: int | str = 2,
        unfreeze_every: int | None = None,
        learning_rate: float = 1e-3,
        layer_decay: float = 0.5,
        epochs: int = 5,
        batch_size: int = 16,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        max_grad_norm: float | None = 1.0,
        head_dropout: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 3,
        validation_metric: str = "auto",
        class_weight: dict | str | None = None,
        random_state=None,
        device: str = "auto",
        mixed_precision: bool | str = "auto",
        precision: str = "float32",
        verbose: int | str = "auto",
    ):
        self.model = model
        self.pretrained = pretrained
        self.weights = weights
        self.image_size = image_size
        self.augmentation = augmentation
        self.trainable_blocks = trainable_blocks
        self.unfreeze_every = unfreeze_every
        self.learning_rate = learning_rate
        self.layer_decay = layer_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.max_grad_norm = max_grad_norm
        self.head_dropout = head_dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.validation_metric = validation_metric
        self.class_weight = class_weight
        self.random_state = random_state
        self.device = device
        self.mixed_precision = mixed_precision
        self.precision = precision
        self.verbose = verbose


class ImageRegressor(_ImageInput, _FineTuneRegressor):
    __doc__ = _doc(
        "Fine-tune a pretrained timm model to predict numbers from images.",
        _IMAGE_PARAMS + _REGRESSOR_PARAMS,
        _REGRESSOR_ATTRS,
        _IMAGE_REBUILD,
        """
    >>> import numpy as np
    >>> from sktransfer import ImageRegressor
    >>> rng = np.random.default_rng(0)
    >>> brightness = np.linspace(0, 1, 12)
    >>> images = np.stack([np.full((32, 32, 3), b) for b in brightness])
    >>> images = np.clip(images + rng.normal(0, 0.05, images.shape), 0, 1)
    >>> reg = ImageRegressor(image_size=64, trainable_blocks=1, epochs=3,
    ...                      learning_rate=1e-2, random_state=0).fit(images, brightness)
    >>> reg.predict(images).shape
    (12,)""",
    )

    _parameter_constraints = {
        **_COMMON_CONSTRAINTS,
        **_IMAGE_CONSTRAINTS,
        **_REGRESSOR_CONSTRAINTS,
    }

    def __init__(
        self,
        model: str = DEFAULT_IMAGE_MODEL,
        *,
        pretrained: bool = True,
        weights: str | os.PathLike | None = None,
        image_size: int | None = None,
        augmentation: str = "none",
        trainable_blocks: int | str = 2,
        unfreeze_every: int | None = None,
        learning_rate: float = 1e-3,
        layer_decay: float = 0.5,
        epochs: int = 5,
        batch_size: int = 16,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        max_grad_norm: float | None = 1.0,
        head_dropout: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 3,
        validation_metric: str = "auto",
        random_state=None,
        device: str = "auto",
        mixed_precision: bool | str = "auto",
        precision: str = "float32",
        verbose: int | str = "auto",
    ):
        self.model = model
        self.pretrained = pretrained
        self.weights = weights
        self.image_size = image_size
        self.augmentation = augmentation
        self.trainable_blocks = trainable_blocks
        self.unfreeze_every = unfreeze_every
        self.learning_rate = learning_rate
        self.layer_decay = layer_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.max_grad_norm = max_grad_norm
        self.head_dropout = head_dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.validation_metric = validation_metric
        self.random_state = random_state
        self.device = device
        self.mixed_precision = mixed_precision
        self.precision = precision
        self.verbose = verbose
