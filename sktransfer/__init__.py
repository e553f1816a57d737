"""sktransfer: transfer learning for scikit-learn.

Pretrained text encoders (sentence-transformers) and image encoders (timm) as
scikit-learn transformers, and fine-tuning estimators (classifiers and
regressors) built on them.

Importing this package is cheap: torch, timm, sentence-transformers and even
scikit-learn are imported only when an estimator is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_LAZY = {
    "FewShotTextClassifier": "sktransfer._fewshot",
    "TextEncoder": "sktransfer.text",
    "ImageEncoder": "sktransfer.image",
    "TextClassifier": "sktransfer.finetune",
    "TextRegressor": "sktransfer.finetune",
    "ImageClassifier": "sktransfer.finetune",
    "ImageRegressor": "sktransfer.finetune",
    "TransferReport": "sktransfer.report",
    "transfer_report": "sktransfer.report",
}

__all__ = [
    "FewShotTextClassifier",
    "ImageClassifier",
    "ImageEncoder",
    "ImageRegressor",
    "TextClassifier",
    "TextEncoder",
    "TextRegressor",
    "TransferReport",
    "adapt",
    "datasets",
    "exceptions",
    "finetune",
    "report",
    "transfer_report",
]

if TYPE_CHECKING:  # pragma: no cover
    from sktransfer._fewshot import FewShotTextClassifier
    from sktransfer.finetune import ImageClassifier, ImageRegressor, TextClassifier, TextRegressor
    from sktransfer.image import ImageEncoder
    from sktransfer.report import TransferReport, transfer_report
    from sktransfer.text import TextEncoder


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in ("adapt", "datasets", "exceptions", "finetune", "report"):
        return importlib.import_module(f"sktransfer.{name}")
    raise AttributeError(f"module 'sktransfer' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
