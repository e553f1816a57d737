"""What the fine-tuned regressors add to the base: standardised targets, squared error."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.multiclass import type_of_target

from sktransfer.finetune._base import _FineTuneEstimator
from sktransfer.finetune._params import _COMMON_CONSTRAINTS, _REGRESSOR_CONSTRAINTS

_NUMERIC_TARGETS = (
    "continuous",
    "binary",
    "multiclass",
    "continuous-multioutput",
    "multiclass-multioutput",
)


class _FineTuneRegressor(RegressorMixin, _FineTuneEstimator):
    """A fine-tuned regressor over any adapter: a subclass names it in ``_make_adapter``.

    The parameters are those every fine-tuning regressor shares; a modality
    with parameters of its own writes its own ``__init__`` (``TextRegressor``).
    """

    _parameter_constraints = {**_COMMON_CONSTRAINTS, **_REGRESSOR_CONSTRAINTS}

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
        self.random_state = random_state
        self.device = device
        self.mixed_precision = mixed_precision
        self.precision = precision
        self.verbose = verbose

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
