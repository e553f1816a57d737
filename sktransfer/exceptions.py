"""Errors raised by sktransfer.

Each error subclasses the Python or scikit-learn exception that means the same
thing, so ``except ValueError`` or ``except NotFittedError`` in user code keeps
working.
"""

from sklearn.exceptions import ConvergenceWarning, NotFittedError

__all__ = [
    "SktransferError",
    "ModelNotFoundError",
    "InvalidInputError",
    "ImageDecodeError",
    "SavedModelError",
    "DataNotFoundError",
    "NotFittedError",
    "PrecisionWarning",
    "CacheError",
    "CacheWarning",
    "BackendError",
    "TruncationWarning",
    "UnderfitWarning",
]


class SktransferError(Exception):
    """Base class of every error raised by sktransfer."""


class ModelNotFoundError(SktransferError, ValueError):
    """A model name or path could not be resolved to loadable weights.

    The message lists every place that was tried, in order, and what to do.
    """


class InvalidInputError(SktransferError, ValueError):
    """An input sample cannot be encoded (``None``/NaN text, wrong type, wrong shape)."""


class ImageDecodeError(InvalidInputError):
    """An image could not be read or decoded; the message names the item."""


class SavedModelError(InvalidInputError):
    """A saved estimator folder is inconsistent, tampered with or truncated.

    Raised by ``load`` before anything is predicted; the message names the
    file and the field (or tensor) that is wrong. A subclass of
    :class:`InvalidInputError` (and so of ``ValueError``): the folder is the
    input that cannot be used.
    """


class DataNotFoundError(SktransferError, OSError):
    """A data set is neither installed locally nor downloadable from here."""


class PrecisionWarning(UserWarning):
    """The requested ``precision`` is slow or unsupported here; float32 is used instead.

    The message says why (e.g. bfloat16 measured slower than float32 on this CPU).
    """


class CacheError(SktransferError, RuntimeError):
    """An embedding cache file cannot be used (not an sktransfer cache, damaged beyond repair).

    The message names the file and says what to do (point ``cache=`` at another
    directory, or move or delete the file).
    """


class BackendError(SktransferError, RuntimeError):
    """``backend="onnx"`` / ``"openvino"`` cannot run this model.

    The model could not be exported to ONNX, or its export does not compute
    what the torch model does (checked in ``fit``). The message says why;
    ``backend="torch"`` always works.
    """


class CacheWarning(UserWarning):
    """The embedding cache works in a reduced mode; results stay correct.

    Raised (once per store) when a cache directory is read-only (vectors are read
    but new ones are not stored) or when a damaged cache file was moved aside and
    a new one started. The message names the file.
    """


class TruncationWarning(UserWarning):
    """Texts longer than the model's limit were cut: only their first tokens were read.

    Texts that differ only after the limit then get the same embedding (or the
    same prediction). The message counts the truncated texts, names the first
    positions and says how to avoid the cut: ``TextEncoder(long_texts="chunk")``
    encodes long texts whole, in overlapping windows; a larger ``max_length``
    helps where the model can read more than its default.
    """


class UnderfitWarning(ConvergenceWarning):
    """A fine-tuned classifier did no better than always predicting one class.

    Raised at the end of ``fit`` when the score that training measured (the
    validation score of the kept epoch with ``early_stopping=True``, else the
    training loss of the last epoch) is no better than that of the best
    constant prediction. The message says what to try: more epochs, a higher
    ``learning_rate``, or frozen features with a linear model. A subclass of
    scikit-learn's ``ConvergenceWarning``, so existing filters apply.
    """
