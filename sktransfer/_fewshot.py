"""FewShotTextClassifier: contrastive fine-tuning of a sentence encoder, then any sklearn head.

The method of SetFit (Tunstall et al. 2022): with a handful of labelled texts
per class, tune the encoder so that texts of one class embed close together
and texts of different classes apart, then fit a simple classifier on the
tuned embeddings. Here it is one scikit-learn estimator, and the pairs are
scored inside batches (:mod:`sktransfer._pairs`): a batch of ``B`` sentences is
encoded once and serves up to ``B(B-1)/2`` pairs, where a list of separate
pairs costs two encodings per pair.

The body, its batches, freezing, layer-wise learning rates and the warm-up
schedule are the fine-tuners' own (``sktransfer.finetune``); only the loss,
the pair plan and the head are new.
"""

from __future__ import annotations

import importlib
import json
import numbers
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from sktransfer._doclink import DocLinkMixin
from sktransfer._hub import DEFAULT_TEXT_MODEL
from sktransfer._precision import PRECISIONS, autocast, resolve_precision
from sktransfer._validation import one_column_tags
from sktransfer.exceptions import InvalidInputError, SavedModelError

__all__ = ["FewShotTextClassifier"]

_MAX_LISTED = 10
LOSSES = ("cosine", "contrastive")
FORMAT = "sktransfer.fewshot"
FORMAT_VERSION = 1


def _head_has(method: str):
    """``available_if`` check: the (fitted, else given) head has ``method``."""

    def check(self) -> bool:
        head = getattr(self, "head_", None)
        head = self.head if head is None else head
        if head is None:  # the default head, LogisticRegression, has every method
            return True
        return hasattr(head, method)

    return check


def contrastive_loss(cos, same, loss: str, margin: float):
    """Per-pair loss from the cosine similarity ``cos`` and the pair's label ``same``.

    ``"cosine"``: squared error between the cosine and 1 (same class) or 0
    (different classes). ``"contrastive"``: Hadsell et al.'s margin loss on the
    cosine distance ``d = 1 - cos``: ``d²`` for positives, ``max(0, margin - d)²``
    for negatives (halved).
    """
    import torch

    target = same.to(cos.dtype)
    if loss == "cosine":
        return (cos - target) ** 2
    distance = 1.0 - cos
    return 0.5 * (target * distance**2 + (1 - target) * torch.relu(margin - distance) ** 2)


class FewShotTextClassifier(DocLinkMixin, ClassifierMixin, BaseEstimator):
    """Classify texts from a few labelled examples: contrastive fine-tuning, then a head.

    ``fit`` tunes a pretrained sentence-transformers body on pairs of the
    training texts (same class: embeddings pulled together; different
    classes: pushed apart), then fits ``head`` (any scikit-learn classifier)
    on the tuned embeddings. It is the method of SetFit, as an ordinary
    estimator: it goes into ``Pipeline``, ``GridSearchCV`` and
    ``cross_val_score``, pickles with CPU weights and saves without pickle.

    Pairs are drawn without ever listing all ``n²`` of them: each optimisation
    step encodes ``batch_size`` texts (a few from each of a few classes) once
    and scores balanced positive and negative pairs among them, so time and
    memory grow with the number of pairs asked for, not with the square of
    the samples or with the classes.

    Multi-label: ``y`` may be a 2-D binary indicator matrix of shape
    (n_samples, n_labels), as from ``MultiLabelBinarizer``. A pair is then
    positive when its two texts share at least one label and negative when
    they share none; the batches cycle over the labels. The head is wrapped in
    ``OneVsRestClassifier`` (one binary head per label), ``predict`` returns
    the 0/1 indicator matrix (in the dtype of the ``y`` given to ``fit``),
    ``predict_proba`` the probability of each label, and ``classes_`` is
    ``arange(n_labels)``.

    Parameters
    ----------
    model : str, default="sentence-transformers/all-MiniLM-L6-v2"
        A sentence-transformers model: Hub id or local folder (the default
        also resolves to the copy installed by ``sktransfer[offline]``).
    head : classifier or None, default=None
        The scikit-learn classifier fitted on the tuned embeddings (cloned in
        ``fit``). ``None``: ``LogisticRegression(max_iter=1000)``.
        ``predict_proba`` and ``decision_function`` exist when the head has them.
        For a multi-label ``y`` it is wrapped in ``OneVsRestClassifier``.
    max_length : int or None, default=None
        Truncate texts to this many tokens, in training and in prediction
        (``None``: the model's limit). Shorter is faster.
    pairs_per_sample : float, default=60
        Pairs scored per training text and epoch: ``pairs_per_sample *
        n_samples`` pairs, half positive and half negative (capped by
        ``max_pairs``).
    max_pairs : int or None, default=None
        At most this many pairs per epoch, whatever the data size.
    loss : {"cosine", "contrastive"}, default="cosine"
        ``"cosine"``: squared error between a pair's cosine similarity and 1
        (same class) or 0 (different classes), as in SetFit. ``"contrastive"``:
        a margin loss on the cosine distance: negatives closer than ``margin``
        are pushed apart, farther ones cost nothing.
    margin : float, default=0.5
        Cosine-distance margin of the ``"contrastive"`` loss.
    hard_negatives : bool, default=False
        Within each batch, score the negative pairs the encoder finds most
        similar (hard negatives) instead of random ones.
    epochs : int, default=1
        Passes of contrastive training; each draws new pairs.
    batch_size : int, default=16
        Texts encoded per optimisation step (and per prediction batch).
    learning_rate : float, default=1e-4
        Peak learning rate (AdamW) of the top body block.
    warmup_fraction : float in [0, 1), default=0.1
        Fraction of the steps over which the learning rate rises linearly from
        near 0; it then decays linearly to 0.
    weight_decay : float, default=0.01
        AdamW weight decay (not applied to biases and normalisation weights).
    max_grad_norm : float or None, default=1.0
        Clip the gradient norm to this value; ``None`` does not clip.
    trainable_blocks : int or "all", default="all"
        How much of the body trains, as in the fine-tuning estimators: the
        body is cut into blocks (the embeddings, then each transformer layer);
        ``k`` trains the top ``k``, ``"all"`` everything, ``0`` nothing (frozen
        features and the head: a baseline). ``n_blocks_`` says how many exist.
    unfreeze_every : int or None, default=None
        Gradual unfreezing: every this many epochs one more block toward the
        input starts training.
    layer_decay : float in (0, 1], default=1.0
        The block ``k`` steps below the top trains at ``learning_rate *
        layer_decay ** k``.
    random_state : int, RandomState instance or None, default=None
        Seeds the pairs, dropout and the head (when it takes a
        ``random_state`` left at ``None``).
    device : str, default="auto"
        "auto" (a GPU when there is one, else the CPU), "cpu", "cuda",
        "cuda:1", "mps".
    mixed_precision : bool or "auto", default="auto"
        bfloat16 autocast while training, as in the fine-tuners: on CUDA
        (float16 where bfloat16 is unsupported) and on CPUs that compute
        bfloat16 natively (AVX-512 BF16 or AMX); float32 elsewhere (True then
        warns) or with ``False``.
    precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Precision of the embeddings computed for the head and for prediction.
        "auto" picks bfloat16 where the device computes it natively (a CPU
        with AVX-512 BF16 or AMX, a GPU) and the tuned body's bfloat16
        embeddings of a fixed set of probe texts agree with its float32 ones
        (mean cosine at least 0.999), float32 otherwise; ``precision_`` says
        which and why. An explicit "bfloat16" or "float16" the device cannot
        run falls back to float32 with a warning.
    verbose : int or "auto", default="auto"
        ``0`` silent; ``"auto"`` a progress bar when someone watches; ``1`` one
        line per epoch; ``2`` the bar and the lines.

    Attributes
    ----------
    classes_ : ndarray
        The class labels (any type), sorted; for a multi-label fit the label
        column indices, ``arange(n_labels)``.
    multilabel_ : bool
        Whether ``fit`` got a 2-D label indicator matrix.
    head_ : classifier
        The fitted head (for a multi-label fit, a ``OneVsRestClassifier`` of
        ``head``).
    history_ : list of dict
        One record per epoch: mean loss, pairs, steps, trained blocks, seconds.
    n_pairs_ : int
        Pairs scored in all epochs together.
    n_blocks_ : int
        Blocks of the body.
    device_ : str
        The device the network is on.
    precision_ : str
        The precision of the embeddings (for the head and for predictions);
        ``precision_.reason`` says why, e.g. what "auto" found.
    model_source_, model_reference_ : str
        Where the pretrained body came from.
    n_features_in_ : int
        Always 1: one column of texts.

    Notes
    -----
    Every ``fit`` starts again from the pretrained weights. The embedding
    cache of :class:`~sktransfer.TextEncoder` is never used: the tuned body
    computes every embedding itself. Pickling stores the tuned body's weights
    as CPU tensors (rebuilt from ``model``, which must still be loadable);
    :meth:`save` / :meth:`load` use safetensors and JSON instead of pickle.

    Examples
    --------
    >>> from sktransfer import FewShotTextClassifier
    >>> texts = ["a great film", "loved it", "superb acting", "what a joy",
    ...          "an awful film", "hated it", "dreadful acting", "what a bore"]
    >>> labels = ["pos"] * 4 + ["neg"] * 4
    >>> clf = FewShotTextClassifier(pairs_per_sample=8, random_state=0).fit(texts, labels)
    >>> clf.classes_
    array(['neg', 'pos'], dtype='<U3')
    >>> clf.predict(["a superb film", "an awful bore"])
    array(['pos', 'neg'], dtype='<U3')
    >>> clf.predict_proba(["a superb film"]).shape
    (1, 2)

    Multi-label: one column per label (here "funny" and "scary"), 0/1 each.

    >>> import numpy as np
    >>> texts = ["a funny film", "a scary film", "a funny and scary film", "a dull film",
    ...          "a hilarious show", "a frightening show", "a hilarious, frightening show",
    ...          "a dull show"]
    >>> y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 2)
    >>> clf = FewShotTextClassifier(pairs_per_sample=8, random_state=0).fit(texts, y)
    >>> clf.predict(["a funny show", "a scary show"])
    array([[1, 0],
           [0, 1]])
    """

    _parameter_constraints = {
        "model": [str],
        "head": [HasMethods(["fit", "predict"]), None],
        "max_length": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "pairs_per_sample": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_pairs": [Interval(numbers.Integral, 2, None, closed="left"), None],
        "loss": [StrOptions(set(LOSSES))],
        "margin": [Interval(numbers.Real, 0, 2, closed="right")],
        "hard_negatives": ["boolean"],
        "epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 2, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "warmup_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "max_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "trainable_blocks": [
            Interval(numbers.Integral, 0, None, closed="left"),
            StrOptions({"all"}),
        ],
        "unfreeze_every": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "layer_decay": [Interval(numbers.Real, 0, 1, closed="right")],
        "random_state": ["random_state"],
        "device": [str],
        "mixed_precision": ["boolean", StrOptions({"auto"})],
        "precision": [StrOptions(set(PRECISIONS))],
        "verbose": ["verbose", StrOptions({"auto"})],
    }

    def __init__(
        self,
        model: str = DEFAULT_TEXT_MODEL,
        *,
        head=None,
        max_length: int | None = None,
        pairs_per_sample: float = 60,
        max_pairs: int | None = None,
        loss: str = "cosine",
        margin: float = 0.5,
        hard_negatives: bool = False,
        epochs: int = 1,
        batch_size: int = 16,
        learning_rate: float = 1e-4,
        warmup_fraction: float = 0.1,
        weight_decay: float = 0.01,
        max_grad_norm: float | None = 1.0,
        trainable_blocks: int | str = "all",
        unfreeze_every: int | None = None,
        layer_decay: float = 1.0,
        random_state=None,
        device: str = "auto",
        mixed_precision: bool | str = "auto",
        precision: str = "auto",
        verbose: int | str = "auto",
    ):
        self.model = model
        self.head = head
        self.max_length = max_length
        self.pairs_per_sample = pairs_per_sample
        self.max_pairs = max_pairs
        self.loss = loss
        self.margin = margin
        self.hard_negatives = hard_negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.warmup_fraction = warmup_fraction
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.trainable_blocks = trainable_blocks
        self.unfreeze_every = unfreeze_every
        self.layer_decay = layer_decay
        self.random_state = random_state
        self.device = device
        self.mixed_precision = mixed_precision
        self.precision = precision
        self.verbose = verbose

    # --------------------------------------------------------- validation
    def _check_y(self, y, n_samples: int):
        name = type(self).__name__
        if y is None:
            raise ValueError(f"{name} needs y (the class labels) to fit.")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim == 2:
            return self._check_indicator(y, n_samples)
        if y.ndim != 1:
            raise ValueError(
                f"{name} expects 1-D class labels or a 2-D label indicator matrix, got y of "
                f"shape {y.shape}."
            )
        if len(y) != n_samples:
            raise ValueError(
                f"X and y have inconsistent lengths: X has {n_samples} samples but y has "
                f"{len(y)} targets."
            )
        if (
            y.dtype.kind == "f"
            and np.isnan(y).any()
            or y.dtype.kind == "O"
            and any(v is None or (isinstance(v, float) and np.isnan(v)) for v in y)
        ):
            missing = [
                i for i, v in enumerate(y) if v is None or (isinstance(v, float) and np.isnan(v))
            ]
            shown = ", ".join(str(i) for i in missing[:_MAX_LISTED])
            raise ValueError(
                f"y contains {len(missing)} missing labels (NaN/None) at positions {shown}; "
                "drop those samples or fill their labels."
            )
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{name} needs samples of at least 2 classes in y; got only the class "
                f"{_plain(classes[0])!r}."
            )
        counts = np.bincount(codes, minlength=len(classes))
        lonely = np.flatnonzero(counts < 2)
        if len(lonely):
            described = [
                f"{_plain(classes[c])!r} (position {int(np.flatnonzero(codes == c)[0])})"
                for c in lonely[:_MAX_LISTED]
            ]
            more = f" and {len(lonely) - _MAX_LISTED} more" if len(lonely) > _MAX_LISTED else ""
            raise ValueError(
                f"{name} needs at least 2 samples of every class to form pairs of the same "
                f"class; {len(lonely)} class(es) have a single sample: {', '.join(described)}"
                f"{more}. Add a second example of each or drop them."
            )
        return y, classes, codes

    def _check_indicator(self, y: np.ndarray, n_samples: int):
        """Validate a multi-label indicator; return it, ``classes_`` and its bool copy."""
        name = type(self).__name__
        if len(y) != n_samples:
            raise ValueError(
                f"X and y have inconsistent lengths: X has {n_samples} samples but y has "
                f"{len(y)} rows."
            )
        if y.dtype.kind not in "biuf":
            raise ValueError(
                f"{name} takes a 2-D y as a multi-label indicator of 0/1 (ints or bools); got "
                f"values of dtype {y.dtype}. Binarize label sets with "
                "sklearn.preprocessing.MultiLabelBinarizer."
            )
        binary = (y == 0) | (y == 1)
        if not binary.all():
            row, column = (int(i) for i in np.argwhere(~binary)[0])
            raise ValueError(
                f"y is a multi-label indicator and must hold only 0 and 1; column {column} "
                f"holds {_plain(y[row, column])!r} (row {row})."
            )
        indicator = y.astype(bool)
        positives = indicator.sum(axis=0)
        few = np.flatnonzero(positives < 2)
        if len(few):
            columns = ", ".join(f"column {int(c)} ({int(positives[c])})" for c in few[:_MAX_LISTED])
            more = f" and {len(few) - _MAX_LISTED} more" if len(few) > _MAX_LISTED else ""
            raise ValueError(
                f"{name} needs at least 2 positive samples of every label to form pairs "
                f"sharing it; {len(few)} label column(s) have fewer: {columns}{more}. Add "
                "examples of those labels or drop the columns."
            )
        full = np.flatnonzero(positives == n_samples)
        if len(full):
            raise ValueError(
                f"Label column {int(full[0])} of y is 1 for every sample: there is nothing "
                "to learn about it. Drop the column."
            )
        if not _has_disjoint_pair(indicator):
            raise ValueError(
                f"{name} needs negative pairs, two samples that share no label; in y every "
                "two samples share one. Add samples without those labels."
            )
        return y, np.arange(y.shape[1]), indicator

    def _make_head(self, multilabel: bool = False):
        if self.head is None:
            from sklearn.linear_model import LogisticRegression

            head = LogisticRegression(max_iter=1000)
        elif not is_classifier(self.head):
            raise ValueError(
                f"head must be a scikit-learn classifier; got {type(self.head).__name__}, "
                "which is not (its estimator type is not 'classifier')."
            )
        else:
            head = clone(self.head)
        if multilabel:
            from sklearn.multiclass import OneVsRestClassifier

            return OneVsRestClassifier(head)
        return head

    def _make_backend(self):
        from sktransfer._adapters.text import TextAdapter as TextBackend

        return TextBackend(self.model, max_length=self.max_length)

    # ----------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Tune the pretrained body on pairs of ``X``, then fit the head.

        Every call starts from the pretrained weights.

        Parameters
        ----------
        X : sequence of str
            Texts (list, tuple, 1-D array, pandas Series or one-column DataFrame).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels; every class needs at least 2 samples. Or, for
            multi-label classification, a binary indicator matrix of 0/1
            (ints or bools; e.g. from ``MultiLabelBinarizer``) with at least 2
            columns: every label needs at least 2 positive samples and at least
            one negative, and some two samples must share no label. A
            one-column 2-D ``y`` is read as 1-D class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights passed to the head's ``fit`` (the pairs are unweighted).

        Returns
        -------
        self
        """
        self._validate_params()
        backend = self._make_backend()
        items = backend.check_X(X)
        if len(items) == 0:
            raise InvalidInputError(f"{type(self).__name__}.fit got an empty X; pass texts.")
        y, classes, codes = self._check_y(y, len(items))
        multilabel = codes.ndim == 2
        head = self._make_head(multilabel)
        random_state = check_random_state(self.random_state)
        seed = int(random_state.randint(np.iinfo(np.int32).max))
        inner = head.estimator if multilabel else head
        if "random_state" in inner.get_params() and inner.get_params()["random_state"] is None:
            inner.set_params(random_state=seed)

        from sktransfer._device import resolve_device
        from sktransfer.finetune._base import _amp_dtype, _release_memory, _seeded

        self._discard_network()
        device = resolve_device(self.device)
        if device.startswith("cpu"):
            from sktransfer._malloc import tune_malloc

            tune_malloc()
        # An explicit precision warns before training; "auto" probes the tuned body.
        precision = None
        if self.precision != "auto":
            precision = resolve_precision(self.precision, device, owner=type(self).__name__)
        amp_dtype = _amp_dtype(self.mixed_precision, device, owner=type(self).__name__)
        with _seeded(seed, device):
            body, source, reference = backend.load(device)
            backend.warn_if_truncated(items, type(self).__name__)
            trainer = _ContrastiveTrainer(self, body, backend, device, amp_dtype)
            history = trainer.train(items, codes, np.random.default_rng(seed))
            for param in body.parameters():
                param.requires_grad_(False)
            body.eval()
            precision = precision or self._resolve_precision(body, backend, device)
            features = self._embed(body, backend, items, device, precision)
        if sample_weight is None:
            head.fit(features, y)
        elif multilabel:  # OneVsRestClassifier passes fit parameters by metadata routing
            from sklearn import config_context

            with config_context(enable_metadata_routing=True):
                head.estimator.set_fit_request(sample_weight=True)
                head.fit(features, y, sample_weight=sample_weight)
        else:
            head.fit(features, y, sample_weight=sample_weight)
        self._body, self._backend = body, backend
        self.classes_ = classes
        self.multilabel_ = multilabel
        if multilabel:
            self._indicator_dtype = y.dtype.str
        self.head_ = head
        self.history_ = history
        self.n_pairs_ = int(sum(record["n_pairs"] for record in history))
        self.n_blocks_ = trainer.n_blocks
        self.n_epochs_ = len(history)
        self.device_ = device
        self.precision_ = precision
        self.model_source_ = source
        self.model_reference_ = reference
        self.n_features_in_ = 1
        del trainer
        _release_memory(device)
        return self

    def _resolve_precision(self, body, backend, device: str):
        """``precision_`` for ``body`` on ``device``; "auto" runs the numerics probe on it."""
        probe = None
        if self.precision == "auto":
            from sktransfer._base import precision_probe

            probe = precision_probe(body, backend, device)
        return resolve_precision(
            self.precision, device, owner=type(self).__name__, probe=probe, probe_key=body
        )

    # ------------------------------------------------------------- predict
    def _embed(self, body, backend, items, device, precision) -> np.ndarray:
        from sktransfer.finetune._loop import predict_outputs

        if len(items) == 0:
            return np.empty((0, body.num_features), dtype=np.float32)
        with autocast(precision, device):
            return predict_outputs(body, backend, items, self.batch_size, device)

    def embed(self, X) -> np.ndarray:
        """Embeddings of ``X`` by the tuned body: what the head sees.

        Parameters
        ----------
        X : sequence of str

        Returns
        -------
        ndarray of shape (n_samples, n_dims), float32

        Examples
        --------
        >>> from sktransfer import FewShotTextClassifier
        >>> clf = FewShotTextClassifier(pairs_per_sample=4, random_state=0)
        >>> clf = clf.fit(["good", "great", "bad", "awful"], [1, 1, 0, 0])
        >>> clf.embed(["fine", "poor"]).shape
        (2, 384)
        """
        check_is_fitted(self)
        body = self._network()
        items = self._backend.check_X(X)
        if len(items):
            self._backend.warn_if_truncated(items, type(self).__name__)
        return self._embed(body, self._backend, items, self.device_, self.precision_)

    def predict(self, X) -> np.ndarray:
        """Class of each text, by the head on the tuned embeddings.

        Parameters
        ----------
        X : sequence of str

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)
            The classes; for a multi-label fit, the 0/1 indicator matrix of
            the labels, of the dtype of the ``y`` given to ``fit``.
        """
        if getattr(self, "multilabel_", False):
            dtype = np.dtype(self._indicator_dtype)
            predicted = self._head_output("predict", X, lambda k: np.empty((0, k)))
            return np.asarray(predicted).astype(dtype, copy=False)
        return self._head_output("predict", X, lambda k: self.classes_[:0])

    @available_if(_head_has("predict_proba"))
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities from the head, columns in the order of ``classes_``.

        For a multi-label fit, column ``j`` is the probability of label ``j``
        (rows need not sum to 1).

        Parameters
        ----------
        X : sequence of str

        Returns
        -------
        ndarray of shape (n_samples, n_classes) or (n_samples, n_labels)
        """
        return self._head_output("predict_proba", X, lambda k: np.empty((0, k)))

    @available_if(_head_has("predict_log_proba"))
    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`, from the head."""
        return self._head_output("predict_log_proba", X, lambda k: np.empty((0, k)))

    @available_if(_head_has("decision_function"))
    def decision_function(self, X) -> np.ndarray:
        """The head's decision function on the tuned embeddings.

        Parameters
        ----------
        X : sequence of str

        Returns
        -------
        ndarray of shape (n_samples,) for two classes, else (n_samples, n_classes)
            For a multi-label fit, (n_samples, n_labels): one column per label.
        """
        multilabel = getattr(self, "multilabel_", False)
        return self._head_output(
            "decision_function",
            X,
            lambda k: np.empty((0,) if k == 2 and not multilabel else (0, k)),
        )

    def _head_output(self, method: str, X, empty) -> np.ndarray:
        """The head's ``method`` on the tuned embeddings of X; ``empty(n_classes)`` for no rows."""
        features = self.embed(X)  # checks that the classifier is fitted
        if len(features) == 0:
            return empty(len(self.classes_))
        output = getattr(self.head_, method)(features)
        if getattr(self, "multilabel_", False):
            output = np.asarray(output).reshape(len(features), len(self.classes_))
        return output

    def __sklearn_tags__(self):
        tags = one_column_tags(super().__sklearn_tags__())
        tags.input_tags.string = True
        tags.input_tags.one_d_array = True
        tags.target_tags.required = True
        tags.non_deterministic = self.random_state is None
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = True
        tags.classifier_tags.poor_score = True
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "head_")

    # --------------------------------------------------- network lifetime
    def _network(self):
        """The tuned body; rebuilt from the stored weights after unpickling."""
        if getattr(self, "_body", None) is not None:
            return self._body
        from sktransfer._device import reload_body

        backend = self._make_backend()
        device, body = reload_body(self, backend)
        body.load_state_dict(self._body_state)
        for param in body.parameters():
            param.requires_grad_(False)
        body = body.to(device).eval()
        if device != self.device_:
            self.precision_ = self._resolve_precision(body, backend, device)
        self._body, self._backend, self.device_ = body, backend, device
        del self._body_state
        return body

    def _discard_network(self) -> None:
        for attr in ("_body", "_backend", "_body_state"):
            if attr in self.__dict__:
                delattr(self, attr)

    def __getstate__(self):
        state = super().__getstate__()
        body = state.pop("_body", None)
        state.pop("_backend", None)
        if body is not None:  # tuned weights travel as CPU tensors
            state["_body_state"] = {
                k: v.detach().to("cpu", copy=True) for k, v in body.state_dict().items()
            }
        return state

    # ---------------------------------------------------------- save/load
    def save(self, path) -> None:
        """Save the fitted classifier to the folder ``path`` without pickle.

        The folder holds ``config.json`` (parameters, classes, history and the
        head's class, parameters and scalar attributes), ``head.safetensors``
        (the head's array attributes) and ``body/``, the tuned
        sentence-transformers folder. The head must keep its fitted state in
        arrays, numbers and strings (linear models, naive Bayes,
        discriminant analysis, nearest centroids...); a head with other state
        (trees, pipelines) raises ``SavedModelError``: pickle or joblib saves it.
        A multi-label classifier saves its ``OneVsRestClassifier`` head as one
        such head per label.

        Parameters
        ----------
        path : str or path-like
            The folder to write, created if missing; files of an earlier save
            in it are replaced.

        Examples
        --------
        >>> import tempfile
        >>> from sktransfer import FewShotTextClassifier
        >>> clf = FewShotTextClassifier(pairs_per_sample=4, random_state=0)
        >>> clf = clf.fit(["good", "great", "bad", "awful"], ["+", "+", "-", "-"])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     clf.save(folder)
        ...     loaded = FewShotTextClassifier.load(folder, device="cpu")
        >>> loaded.predict(["great", "awful"])
        array(['+', '-'], dtype='<U1')
        """
        _save(self, Path(path))

    @classmethod
    def load(cls, path, *, device: str = "auto"):
        """Load a classifier saved with :meth:`save`; nothing in the folder is executed.

        Parameters
        ----------
        path : str or path-like
            A folder that :meth:`save` wrote (weights, tokenizer, head, config).
        device : str, default="auto"
            Where to put the tuned body: "cpu", "cuda", "mps" or "auto".

        Returns
        -------
        FewShotTextClassifier
            Fitted, ready to ``predict``.

        Raises
        ------
        FileNotFoundError
            If the folder holds no ``config.json``.
        SavedModelError
            If a file is damaged, edited or of another kind of estimator; the
            message names the file and the field.
        """
        return _load(cls, Path(path), device)


# --------------------------------------------------------------- training
class _ContrastiveTrainer:
    """Contrastive training of one body for one ``fit``: plan pairs, then step through them."""

    def __init__(self, est: FewShotTextClassifier, body, backend, device: str, amp_dtype):
        from sktransfer.finetune._callbacks import FreezeSchedule
        from sktransfer.finetune._net import group_of_modules

        self.est, self.body, self.backend = est, body, backend
        self.device, self.amp_dtype = device, amp_dtype
        blocks = backend.blocks(body)
        self.block_of = {name: i for i, names in enumerate(blocks) for name in names}
        self.n_blocks = len(blocks)
        trainable = self.n_blocks if est.trainable_blocks == "all" else est.trainable_blocks
        self.freeze = FreezeSchedule(self.n_blocks, trainable, est.unfreeze_every)
        self.module_block = group_of_modules(body, self.block_of)

    def n_pairs_per_epoch(self, n_samples: int) -> int:
        wanted = int(round(self.est.pairs_per_sample * n_samples))
        if self.est.max_pairs is not None:
            wanted = min(wanted, self.est.max_pairs)
        return max(2, wanted)

    def train(self, items: list, codes: np.ndarray, rng: np.random.Generator) -> list[dict]:
        """Train on pairs of ``items``; ``codes``: class codes, or a 2-D bool label indicator."""
        from sktransfer._pairs import plan_multilabel_pair_batches, plan_pair_batches

        est = self.est
        if self.freeze.lowest_trainable(est.epochs - 1) >= self.n_blocks:
            return []  # trainable_blocks=0: the pretrained features and the head
        n_pairs = self.n_pairs_per_epoch(len(items))
        planner = plan_multilabel_pair_batches if codes.ndim == 2 else plan_pair_batches
        plans = [planner(codes, n_pairs, est.batch_size, rng) for _ in range(est.epochs)]
        self._make_optimizer(sum(len(plan) for plan in plans))
        progress = self._progress(sum(len(plan) for plan in plans))
        history = []
        try:
            for epoch, plan in enumerate(plans):
                history.append(self.run_epoch(epoch, plan, items, codes, progress))
        finally:
            if progress.bar is not None:
                progress.bar.close()
        self.body.eval()
        return history

    def _progress(self, total: int):
        from sktransfer.finetune._callbacks import TrainingProgress

        verbose = self.est.verbose
        progress = TrainingProgress(
            verbose, epochs=self.est.epochs, description=type(self.est).__name__, metric_name=""
        )
        progress.on_fit_begin(None, total)
        progress.lines = verbose != "auto" and int(verbose) >= 1
        return progress

    def _make_optimizer(self, total_steps: int) -> None:

        from sktransfer.finetune._loop import layer_decay_groups, make_optimizer

        est = self.est
        groups = layer_decay_groups(
            self.body,
            self.block_of,
            self.n_blocks,
            learning_rate=est.learning_rate / est.layer_decay,  # the top block gets the rate
            layer_decay=est.layer_decay,
            weight_decay=est.weight_decay,
            lowest_block=self.freeze.lowest_trainable(est.epochs - 1),
        )
        self.optimizer, self.scheduler, self.scaler = make_optimizer(
            groups, est.learning_rate, total_steps, est.warmup_fraction, self.amp_dtype
        )

    def run_epoch(self, epoch: int, plan, items, codes, progress) -> dict:
        start = time.perf_counter()
        self.freeze.apply(self.body, self.block_of, epoch)
        self.freeze.set_modes(self.body, self.module_block, epoch)
        total_loss, total_pairs = 0.0, 0
        for batch in plan:
            total_loss += self.train_step(batch, items, codes) * batch.n_pairs
            total_pairs += batch.n_pairs
            progress.on_step_end(None, epoch, total_loss / max(total_pairs, 1))
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / max(total_pairs, 1),
            "n_pairs": total_pairs,
            "n_steps": len(plan),
            "trainable_blocks": self.freeze.n_trainable(epoch),
            "time": time.perf_counter() - start,
        }
        if progress.lines:
            line = (
                f"epoch {record['epoch']:3d}  loss={record['train_loss']:.4f}  "
                f"pairs={total_pairs}  blocks={record['trainable_blocks']}  "
                f"{record['time']:.1f}s"
            )
            print(line)  # noqa: T201 - verbose output is the point
        return record

    def train_step(self, batch, items, codes) -> float:

        import torch
        import torch.nn.functional as F

        est, backend = self.est, self.backend
        features = backend.collate([items[i] for i in batch.rows], training=True)
        features = backend.to_device(features, self.device)
        from sktransfer.finetune._loop import training_autocast

        with training_autocast(self.device, self.amp_dtype):
            embeddings = self.body(features)
        embeddings = F.normalize(embeddings.float(), dim=1)
        left = torch.as_tensor(batch.left, device=self.device)
        right = torch.as_tensor(batch.right, device=self.device)
        same = torch.as_tensor(batch.same, device=self.device)
        if est.hard_negatives:
            left, right, same = _with_hard_negatives(embeddings, codes[batch.rows], batch)
        cos = (embeddings[left] * embeddings[right]).sum(dim=1)
        loss = contrastive_loss(cos, same, est.loss, est.margin).mean()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if est.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            params = [
                p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None
            ]
            torch.nn.utils.clip_grad_norm_(params, est.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())


def _with_hard_negatives(embeddings, labels: np.ndarray, batch):
    """The batch's positives, and as many negatives: the most similar pairs of different classes.

    ``labels``: the batch's class codes, or its rows of a 2-D label indicator
    (negatives then are pairs that share no label).
    """
    import torch

    device = embeddings.device
    n = len(labels)
    left, right = np.triu_indices(n, k=1)
    if labels.ndim == 2:
        indicator = labels.astype(np.float32)
        different = (indicator @ indicator.T)[left, right] == 0
    else:
        different = labels[left] != labels[right]
    cand_left, cand_right = left[different], right[different]
    with torch.no_grad():
        sims = (embeddings[cand_left] * embeddings[cand_right]).sum(dim=1)
    n_neg = int((~batch.same).sum())
    top = torch.topk(sims, min(n_neg, len(sims))).indices.cpu().numpy()
    pos = batch.same
    new_left = np.concatenate([batch.left[pos], cand_left[top]])
    new_right = np.concatenate([batch.right[pos], cand_right[top]])
    same = np.concatenate([np.ones(int(pos.sum()), bool), np.zeros(len(top), bool)])
    return (
        torch.as_tensor(new_left, device=device),
        torch.as_tensor(new_right, device=device),
        torch.as_tensor(same, device=device),
    )


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _has_disjoint_pair(indicator: np.ndarray, chunk: int = 512) -> bool:
    """Whether two rows of the bool ``indicator`` share no label (a negative pair exists).

    Compares the distinct label sets only, ``chunk`` at a time, and stops at
    the first disjoint pair: memory ``chunk * n_sets``, never ``n²``.
    """
    if len(indicator) < 2:
        return False
    if (~indicator.any(axis=1)).any():
        return True  # a sample without labels and any other sample
    sets = np.unique(indicator, axis=0).astype(np.float32)  # none empty: none disjoint from itself
    for start in range(0, len(sets), chunk):
        if ((sets[start : start + chunk] @ sets.T) == 0).any():
            return True
    return False


# -------------------------------------------------------------- save/load
def _json_value(value):
    """A parameter or fitted scalar as JSON, or raise ``TypeError``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return {
            "__tuple__" if isinstance(value, tuple) else "__list__": [_json_value(v) for v in value]
        }
    if isinstance(value, dict):
        return {"__pairs__": [[_json_value(k), _json_value(v)] for k, v in value.items()]}
    raise TypeError(type(value).__name__)


def _from_json(value):
    if isinstance(value, dict):
        if "__pairs__" in value:
            return {_from_json(k): _from_json(v) for k, v in value["__pairs__"]}
        if "__tuple__" in value:
            return tuple(_from_json(v) for v in value["__tuple__"])
        if "__list__" in value:
            return [_from_json(v) for v in value["__list__"]]
    return value


def _labels_json(values: np.ndarray) -> dict:
    dtype = "object" if values.dtype == object else values.dtype.str
    return {"values": [_plain(v) for v in values.tolist()], "dtype": dtype}


def _head_state(head) -> tuple[dict, dict]:
    """The fitted head's attributes: (JSON-able scalars and label arrays, numeric arrays)."""
    scalars, arrays = {}, {}
    for name, value in vars(head).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            arrays[name] = np.ascontiguousarray(value)
        elif isinstance(value, np.ndarray) and value.dtype.kind in "OUS" and value.ndim == 1:
            scalars[name] = {"__array__": _labels_json(value)}
        else:
            try:
                scalars[name] = _json_value(value)
            except TypeError:
                raise SavedModelError(
                    f"The head {type(head).__name__} keeps its fitted attribute {name} as a "
                    f"{type(value).__name__}, which cannot be saved without pickle. Use a head "
                    "whose state is arrays and numbers (e.g. LogisticRegression, RidgeClassifier,"
                    " LinearSVC), or save the classifier with joblib.dump."
                ) from None
    return scalars, arrays


def _one_vs_rest_state(ovr, arrays: dict) -> dict:
    """A fitted ``OneVsRestClassifier`` head: its JSON part; its arrays go into ``arrays``.

    Array names are prefixed: ``estimators_.<i>.<name>`` (the per-label
    heads) and ``label_binarizer_.<name>``.
    """
    estimators = []
    for i, estimator in enumerate(ovr.estimators_):
        if type(estimator) is not type(ovr.estimator):
            raise SavedModelError(
                f"The multi-label head's estimator for label {i} is a "
                f"{type(estimator).__name__}, not a fitted {type(ovr.estimator).__name__}; it "
                "cannot be saved without pickle. Save the classifier with joblib.dump instead."
            )
        scalars, own = _head_state(estimator)
        estimators.append(scalars)
        arrays.update({f"estimators_.{i}.{name}": value for name, value in own.items()})
    binarizer = ovr.label_binarizer_
    scalars, own = _head_state(binarizer)
    arrays.update({f"label_binarizer_.{name}": value for name, value in own.items()})
    return {
        "params": {
            k: _json_value(v) for k, v in ovr.get_params(deep=False).items() if k != "estimator"
        },
        "estimators": estimators,
        "label_binarizer": {
            "params": {k: _json_value(v) for k, v in binarizer.get_params().items()},
            "fitted": scalars,
        },
        "n_features_in_": int(ovr.n_features_in_),
    }


def _set_fitted(obj, scalars: dict) -> None:
    """Set the JSON-saved fitted attributes ``scalars`` (see :func:`_head_state`) on ``obj``."""
    for name, value in scalars.items():
        if isinstance(value, dict) and "__array__" in value:
            spec = value["__array__"]
            value = np.asarray(spec["values"], dtype=np.dtype(spec["dtype"]))
        else:
            value = _from_json(value)
        setattr(obj, name, value)


def _save(est: FewShotTextClassifier, folder: Path) -> None:
    from safetensors.numpy import save_file

    from sktransfer._quiet import quiet_libraries

    check_is_fitted(est)
    multilabel = getattr(est, "multilabel_", False)
    ovr = est.head_ if multilabel else None
    head = ovr.estimator if multilabel else est.head_
    if not type(head).__module__.startswith("sklearn."):
        raise SavedModelError(
            f"save stores scikit-learn heads only; the head is {type(head).__module__}."
            f"{type(head).__name__}. Save the classifier with joblib.dump instead."
        )
    params = {}
    for name, value in est.get_params(deep=False).items():
        if name == "head":
            continue
        params[name] = None if isinstance(value, np.random.RandomState) else _json_value(value)
    try:
        head_params = {k: _json_value(v) for k, v in head.get_params(deep=False).items()}
    except TypeError as exc:
        raise SavedModelError(
            f"The head {type(head).__name__} has a parameter of type {exc} that cannot be "
            "saved without pickle; save the classifier with joblib.dump instead."
        ) from None
    if multilabel:
        scalars, arrays = {}, {}
        one_vs_rest = _one_vs_rest_state(ovr, arrays)
    else:
        scalars, arrays = _head_state(head)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(est).__name__,
        "params": params,
        "head": {
            "class": f"{type(head).__module__}.{type(head).__name__}",
            "params": head_params,
            "fitted": scalars,
            "given": est.head is not None,
        },
        "fitted": {
            "classes_": _labels_json(est.classes_),
            "history_": est.history_,
            "n_pairs_": est.n_pairs_,
            "n_blocks_": est.n_blocks_,
            "n_epochs_": est.n_epochs_,
            "model_source_": est.model_source_,
            "model_reference_": est.model_reference_,
        },
    }
    if multilabel:
        config["head"]["one_vs_rest"] = one_vs_rest
        config["fitted"]["multilabel_"] = True
        config["fitted"]["indicator_dtype"] = est._indicator_dtype
    folder.mkdir(parents=True, exist_ok=True)
    body = est._network()
    with quiet_libraries():
        est._backend.save_body(body, folder)
    save_file(arrays, str(folder / "head.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))


def _bad(file: Path, field: str, problem: str) -> SavedModelError:
    return SavedModelError(
        f"{str(file)!r}, {field}: {problem}. The saved classifier is damaged or was edited; "
        "save it again from the fitted classifier."
    )


def _load(cls, folder: Path, device: str):
    from safetensors.numpy import load_file

    from sktransfer._device import resolve_device
    from sktransfer._quiet import quiet_libraries

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{str(folder)!r} holds no config.json: not a saved classifier.")
    try:
        config = json.loads(config_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(config_file, "whole file", f"not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise SavedModelError(
            f"{str(config_file)!r} is not a saved {cls.__name__} (format "
            f"{config.get('format') if isinstance(config, dict) else None!r}); fine-tuning "
            "estimators load with sktransfer.finetune.load."
        )
    for key in ("class", "params", "head", "fitted"):
        if key not in config:
            raise _bad(config_file, key, "missing")
    if config["class"] != cls.__name__:
        raise _bad(config_file, "class", f"{config['class']!r}, not {cls.__name__!r}")
    params = {k: _from_json(v) for k, v in config["params"].items()}
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise _bad(config_file, f"params.{unknown[0]}", "unknown parameter")
    head_config = config["head"]
    module_name, _, class_name = str(head_config.get("class", "")).rpartition(".")
    if not module_name.startswith("sklearn."):
        raise _bad(config_file, "head.class", "not a scikit-learn class")
    try:
        head_cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise _bad(config_file, "head.class", f"cannot be found ({exc})") from exc
    if not (isinstance(head_cls, type) and issubclass(head_cls, BaseEstimator)):
        raise _bad(config_file, "head.class", "not a scikit-learn estimator")
    head_params = {k: _from_json(v) for k, v in head_config["params"].items()}
    try:
        head = head_cls(**head_params)
    except TypeError as exc:
        raise _bad(config_file, "head.params", str(exc)) from exc
    _set_fitted(head, head_config["fitted"])
    weights_file = folder / "head.safetensors"
    try:
        arrays = load_file(str(weights_file))
    except Exception as exc:  # safetensors raises its own error types
        raise _bad(
            weights_file, "whole file", f"missing, truncated or not safetensors ({exc})"
        ) from exc
    for name in arrays:
        if not name.endswith("_"):
            raise _bad(weights_file, f"tensor {name}", "not a fitted attribute")
    if "one_vs_rest" in head_config:
        head = _load_one_vs_rest(
            head_config["one_vs_rest"], head_cls, head_params, arrays, config_file
        )
    else:
        for name, value in arrays.items():
            setattr(head, name, value)

    est = cls(**params, head=head_cls(**head_params) if head_config.get("given") else None)
    fitted = config["fitted"]
    spec = fitted["classes_"]
    est.classes_ = np.asarray(spec["values"], dtype=np.dtype(spec["dtype"]))
    for name in ("history_", "n_pairs_", "n_blocks_", "n_epochs_"):
        setattr(est, name, fitted[name])
    est.model_source_ = fitted["model_source_"]
    est.model_reference_ = fitted["model_reference_"]
    est.n_features_in_ = 1
    est.multilabel_ = bool(fitted.get("multilabel_", False))
    if est.multilabel_:
        if "one_vs_rest" not in head_config or "indicator_dtype" not in fitted:
            raise _bad(
                config_file, "fitted.multilabel_", "set, but the multi-label head is missing"
            )
        est._indicator_dtype = fitted["indicator_dtype"]
    head_classes = getattr(head, "classes_", None)
    if head_classes is not None and not np.array_equal(np.asarray(head_classes), est.classes_):
        raise _bad(config_file, "head.fitted.classes_", "differs from fitted.classes_")
    device = resolve_device(device)
    backend = est._make_backend()
    try:
        with quiet_libraries():
            body = backend.load_saved_body(folder, device).eval()
    except Exception as exc:
        raise _bad(folder / "body", "body", f"the network cannot be rebuilt ({exc})") from exc
    for param in body.parameters():
        param.requires_grad_(False)
    est.head_ = head
    est._body, est._backend = body, backend
    est.device_ = device
    est.precision_ = est._resolve_precision(body, backend, device)
    return est


def _load_one_vs_rest(spec: dict, head_cls, head_params: dict, arrays: dict, config_file: Path):
    """Rebuild the fitted ``OneVsRestClassifier`` that :func:`_one_vs_rest_state` saved."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import LabelBinarizer

    try:
        estimators = []
        for i, scalars in enumerate(spec["estimators"]):
            estimator = head_cls(**head_params)
            _set_fitted(estimator, scalars)
            prefix = f"estimators_.{i}."
            for name, value in arrays.items():
                if name.startswith(prefix):
                    setattr(estimator, name[len(prefix) :], value)
            estimators.append(estimator)
        binarizer = LabelBinarizer(**spec["label_binarizer"]["params"])
        _set_fitted(binarizer, spec["label_binarizer"]["fitted"])
        for name, value in arrays.items():
            if name.startswith("label_binarizer_."):
                setattr(binarizer, name[len("label_binarizer_.") :], value)
        params = {k: _from_json(v) for k, v in spec["params"].items()}
        ovr = OneVsRestClassifier(head_cls(**head_params), **params)
        n_features = int(spec["n_features_in_"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(config_file, "head.one_vs_rest", f"cannot be rebuilt ({exc!r})") from exc
    ovr.estimators_ = estimators
    ovr.label_binarizer_ = binarizer
    ovr.classes_ = binarizer.classes_
    ovr.n_features_in_ = n_features
    return ovr
