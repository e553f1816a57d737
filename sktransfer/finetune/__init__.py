"""Fine-tuning estimators: a pretrained body and a new head, trained with one loop.

:class:`TextClassifier`, :class:`TextRegressor` (sentence-transformers bodies),
:class:`ImageClassifier`, :class:`ImageRegressor` (timm bodies), the helper
:func:`plot_history` for their learning curves and :func:`load` for folders
written by their ``save`` method.
"""

from sktransfer.finetune._image import ImageClassifier, ImageRegressor
from sktransfer.finetune._io import load
from sktransfer.finetune._plot import plot_history
from sktransfer.finetune._text import TextClassifier, TextRegressor

__all__ = [
    "ImageClassifier",
    "ImageRegressor",
    "TextClassifier",
    "TextRegressor",
    "load",
    "plot_history",
]
