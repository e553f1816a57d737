"""ImageClassifier and ImageRegressor: fine-tuned timm bodies."""

from __future__ import annotations

import numbers
import os

import joblib
from sklearn.utils._param_validation import Interval, StrOptions

from sktransfer._hub import DEFAULT_IMAGE_MODEL
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

__all__ = ["ImageClassifier", "ImageRegressor"]

_IMAGE_CONSTRAINTS = {
    "pretrained": ["boolean"],
    "weights": [str, os.PathLike, None],
    "image_size": [Interval(numbers.Integral, 8, None, closed="left"), None],
    "augmentation": [StrOptions({"none", "light", "strong"})],
}
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

_IMAGE_REBUILD = "Image models are rebuilt from the timm architecture alone."


class _ImageInput:
    def _make_adapter(self):
        from sktransfer._adapters.image import ImageAdapter

        return ImageAdapter(
            self.model,
            pretrained=self.pretrained,
            weights=self.weights,
            image_size=self.image_size,
            augmentation=self.augmentation,
            n_workers=min(4, joblib.cpu_count()),
        )


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
        precision: str = "auto",
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
        precision: str = "auto",
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
