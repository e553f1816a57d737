"""What the fine-tuned regressors add to the base: standardised targets, squared error."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.multiclass import type_of_target

from sktransfer.finetune._base import _FineTuneEstimator

_NUMERIC_TARGETS = (
    "continuous",
    "binary",
    "multiclass",
    "continuous-multioutput",
    "multiclass-multioutput",
)


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
