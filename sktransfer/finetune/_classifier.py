"""What the fine-tuned classifiers add to the base: labels, cross-entropy, probabilities."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from sktransfer._warn import outside_stacklevel
from sktransfer.exceptions import UnderfitWarning
from sktransfer.finetune._base import _FineTuneEstimator
from sktransfer.finetune._params import _CLASSIFIER_CONSTRAINTS, _COMMON_CONSTRAINTS

# A loss within this share of the constant baseline's counts as no better (see
# _FineTuneClassifier._warn_if_not_learned).
_LOSS_MARGIN = 0.02


class _FineTuneClassifier(ClassifierMixin, _FineTuneEstimator):
    """A fine-tuned classifier over any adapter: a subclass names it in ``_make_adapter``.

    The parameters are those every fine-tuning classifier shares; a modality
    with parameters of its own writes its own ``__init__`` (``TextClassifier``).
    """

    _is_classifier = True
    _parameter_constraints = {**_COMMON_CONSTRAINTS, **_CLASSIFIER_CONSTRAINTS}

    def __init__(
        self,
        model: str,
        *,
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
        precision: str = "auto",
        verbose: int | str = "auto",
    ):
        self.model = model
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
        random head. A log-loss below the baseline can still come with one
        class predicted for every sample (probabilities that lean the right
        way but never cross over): with ``validation_metric="log_loss"`` the
        kept model's predictions on the validation split are also checked, the
        one pass over samples this check makes.
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
            if score >= baseline * (1 - _LOSS_MARGIN):
                verdict = (
                    f"log-loss {score:.3f} is no lower than that of predicting the class "
                    f"frequencies ({baseline:.3f})"
                )
            elif split is valid and len(predicted := np.unique(self.predict(valid.items))) == 1:
                label = predicted[0]
                label = label.item() if isinstance(label, np.generic) else label
                verdict = (
                    f"log-loss {score:.3f} is lower than that of predicting the class "
                    f"frequencies ({baseline:.3f}), but it predicts the class {label!r} for "
                    "every sample"
                )
            else:
                return
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
        """Class probabilities (softmax of the logits), columns in the order of ``classes_``.

        Parameters
        ----------
        X : sequence of samples
            As for ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float64
        """
        return softmax(self._raw_outputs(X).astype(np.float64), axis=1)

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        return log_softmax(self._raw_outputs(X).astype(np.float64), axis=1)

    def predict(self, X) -> np.ndarray:
        """Most probable class of each sample (always one of ``classes_``).

        Parameters
        ----------
        X : sequence of samples
            Texts or images, whatever the estimator was fitted on.

        Returns
        -------
        labels : ndarray of shape (n_samples,), the dtype of ``classes_``
        """
        logits = self._raw_outputs(X)
        return self.classes_[np.argmax(logits, axis=1)] if len(logits) else self.classes_[:0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.poor_score = True
        return tags
