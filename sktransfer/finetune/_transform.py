"""A fitted fine-tuner as a transformer: its tuned embeddings, to feed another model.

``transform(X)`` returns what the tuned body gives the head: the pooled
embedding (text) or pooled features (images), float32, one row per sample. The
fine-tuners stay classifiers / regressors (``is_classifier`` is true, scoring
and cross-validation treat them as predictors); the transformer role is added
with scikit-learn's own ``TransformerMixin``, so ``fit_transform``,
``set_output(transform="pandas")``, ``get_feature_names_out`` and a place
before the last step of a ``Pipeline`` or in a ``ColumnTransformer`` work as
for any transformer (an intermediate step is fitted with ``y``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from sktransfer._precision import autocast


class TunedEmbeddingsMixin(TransformerMixin):
    """``transform``: the embeddings of the fine-tuned body (the head's input)."""

    def transform(self, X) -> np.ndarray:
        """Tuned embeddings of ``X``: the body's pooled output that feeds the head.

        Parameters
        ----------
        X : sequence of samples
            As for ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out_), float32
            Row *i* is the embedding of sample *i* by the fine-tuned body, in
            eval mode (no dropout), at ``precision_``.

        Examples
        --------
        >>> from sktransfer import TextClassifier
        >>> clf = TextClassifier(trainable_blocks=0, epochs=1, random_state=0)
        >>> clf = clf.fit(["good", "great", "bad", "awful"], [1, 1, 0, 0])
        >>> clf.transform(["fine", "poor"]).shape
        (2, 384)
        >>> clf.get_feature_names_out()[:2]
        array(['textclassifier0', 'textclassifier1'], dtype=object)
        """
        from sktransfer.finetune._loop import predict_outputs

        check_is_fitted(self)
        net = self._network()
        items = self._adapter.check_X(X)
        if len(items) == 0:
            return np.empty((0, self.n_features_out_), dtype=np.float32)
        self._adapter.warn_if_truncated(items, type(self).__name__)
        with autocast(self.precision_, self.device_):
            return predict_outputs(net.body, self._adapter, items, self.batch_size, self.device_)

    @property
    def n_features_out_(self) -> int:
        """Width of :meth:`transform`'s rows: the body's embedding width."""
        check_is_fitted(self)
        net = getattr(self, "_net", None)
        if net is not None:
            return int(net.head.in_features)
        return int(self._net_state["head.weight"].shape[1])  # unpickled, not yet rebuilt

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of :meth:`transform`'s columns.

        ``<column>_0`` ... when ``input_features`` names the one input column
        (a ``ColumnTransformer`` passes it), else ``<classname>0`` ...

        Parameters
        ----------
        input_features : array-like of str, optional
            The one input column's name.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features, generate_names=False)
        prefix = f"{names[0]}_" if names is not None else type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # float32 whatever comes in
        return tags
