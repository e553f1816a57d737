"""TextClassifier and TextRegressor: fine-tuned sentence-transformers bodies."""

from __future__ import annotations

import numbers

from sklearn.utils._param_validation import Interval

from sktransfer._hub import DEFAULT_TEXT_MODEL
from sktransfer.finetune._classifier import _FineTuneClassifier
from sktransfer.finetune._params import (
    _CLASSIFIER_ATTRS,
    _CLASSIFIER_CONSTRAINTS,
    _CLASSIFIER_PARAMS,
    _COMMON_CONSTRAINTS,
    _REGRESSOR_ATTRS,
    _REGRESSOR_CONSTRAINTS,
    _REGRESSOR_PARAMS,
    _doc,
)
from sktransfer.finetune._regressor import _FineTuneRegressor

__all__ = ["TextClassifier", "TextRegressor"]

_TEXT_CONSTRAINTS = {"max_length": [Interval(numbers.Integral, 1, None, closed="left"), None]}

_TEXT_PARAMS = """
    model : str, default="sentence-transformers/all-MiniLM-L6-v2"
        A sentence-transformers model: Hub id or local folder (the default
        also resolves to the copy installed by ``sktransfer[offline]``).
    max_length : int or None, default=None
        Truncate texts to this many tokens (``None``: the model's limit).
        ``fit`` and the predict methods warn (``TruncationWarning``) when
        texts are longer, with their count and first positions."""

_TEXT_REBUILD = (
    "Text models are rebuilt from ``model`` (which must still be loadable)"
    " before the stored weights are loaded."
)


class _TextInput:
    def _make_adapter(self):
        from sktransfer._adapters.text import TextAdapter

        return TextAdapter(self.model, max_length=self.max_length)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.one_d_array = True
        return tags


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
        precision: str = "auto",
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
        precision: str = "auto",
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
