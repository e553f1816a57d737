"""Where the four fine-tuning classes lived until they were split by concern.

Pickles name a class by its module: estimators pickled by earlier versions say
``sktransfer.finetune._estimators.TextClassifier``. This module keeps those
names importable; new code imports from :mod:`sktransfer.finetune`.
"""

from sktransfer.finetune._image import ImageClassifier, ImageRegressor
from sktransfer.finetune._text import TextClassifier, TextRegressor

__all__ = ["ImageClassifier", "ImageRegressor", "TextClassifier", "TextRegressor"]
