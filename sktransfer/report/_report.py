"""``transfer_report``: does transfer help on this data, which model, how many labels."""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys
import time
import warnings
from typing import Any

import numpy as np

from sktransfer._optional import import_optional
from sktransfer.exceptions import InvalidInputError
from sktransfer.report import _candidates as C
from sktransfer.report import _render
from sktransfer.report._stats import compare_paired, verdict_of

__all__ = ["TransferReport", "transfer_report"]

# Inputs at least this long show progress when ``progress="auto"``.
PROGRESS_AUTO_MIN_SAMPLES = 1024


class TransferReport:
    """What :func:`transfer_report` found: scores, paired comparisons, verdict, costs.

    Not built directly: :func:`transfer_report` returns one.

    Attributes
    ----------
    results_ : pandas.DataFrame
        One row per candidate (index ``candidate``), best mean score first.
        Columns: ``kind`` ("pretrained", "from scratch", "pretrained + from
        scratch", "fine-tuned", "few-shot" or "user model"); ``score_mean`` and
        ``score_sd`` over the splits; ``difference``, ``ci_low``, ``ci_high``,
        ``p_value`` and ``verdict`` of the paired comparison with the best
        from-scratch baseline (empty on the baselines' rows); ``encode_s``
        (encoding all samples once with the row's frozen encoder, seconds,
        after the model was loaded; shared by the rows that use it);
        ``fit_s`` and ``predict_s`` (mean per split, seconds; a frozen
        encoder's part of them is its cache look-ups); with ``sample_domain``,
        ``shift_auc`` (the domain-classifier AUC of ``domain_shift_``, on the
        frozen pretrained rows).
    verdict_ : str
        Starts with the verdict of the best candidate that uses pretrained
        weights alone (frozen, fine-tuned, few-shot or given by the user) against the
        best from-scratch baseline: "transfer helps", "no evidence either way"
        or "negative transfer: the from-scratch model ... is better by ...",
        with the difference and its confidence interval; then, with
        ``combine=True``, the same for the best pretrained + from-scratch
        combination.
    best_ : estimator
        The candidate with the best mean score (any kind), unfitted: ready to
        ``fit`` on all the data.
    best_name_ : str
        Its name (a row of ``results_``).
    reference_ : str
        The best from-scratch baseline: the reference of every comparison.
    estimators_ : dict of str to estimator
        Every candidate, unfitted, by name.
    scores_ : pandas.DataFrame
        The score of every candidate (columns) on every split (rows), paired.
    learning_curves_ : pandas.DataFrame or None
        With ``train_sizes``: one row per candidate and training size, with
        ``score_mean``, ``score_sd`` and the paired comparison with the best
        baseline at that size (``difference``, ``ci_low``, ``ci_high``,
        ``verdict``).
    domain_shift_ : pandas.DataFrame or None
        With ``sample_domain``: one row per frozen pretrained candidate
        (index ``candidate``) saying how far apart target and source samples
        are in its encoder's features (:func:`sktransfer.adapt.domain_shift`):
        ``auc`` and ``auc_sd`` (domain classifier, cross-validated; 0.5 = no
        detectable shift), ``mmd2`` and ``mmd_pvalue`` (kernel two-sample
        test), ``shift`` ("none", "mild", "moderate" or "strong"),
        ``n_source`` and ``n_target``.
    splits_ : list of (ndarray, ndarray)
        The (train, test) indices every candidate was scored on.
    modality_ : str
        "text" or "image".
    task_ : str
        "classification" or "regression".
    scoring_ : str
        The score's name ("accuracy", "r2", ...).
    n_samples_ : int
        Number of samples.
    confidence_ : float
        Level of the confidence intervals.
    cv_description_ : str
        The cross-validation scheme, in words.
    elapsed_s_ : float
        Wall time of the whole report.
    timings_ : dict of str to float
        Wall time of each phase, in seconds: "baselines" (their splits),
        "encoding" (the frozen encoders' one pass, model loading included),
        "domain_shift" (the diagnostic, with ``sample_domain``),
        "candidates" (the other candidates' splits), "learning_curves".

    Examples
    --------
    See :func:`transfer_report`.
    """

    def __init__(self, **attributes: Any):
        for name, value in attributes.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return (
            f"<TransferReport: {len(self.results_)} candidates, {self.modality_} "
            f"{self.task_}, {self.n_samples_} samples, {self.cv_description_}>"
        )

    def summary(self) -> str:
        """The verdict and the results table, as plain text."""
        return _render.summary(self)

    def __str__(self) -> str:
        return self.summary()

    def to_markdown(self) -> str:
        """The verdict, the results table and the learning curves as Markdown.

        Returns
        -------
        str
        """
        return _render.markdown(self)

    def _repr_html_(self) -> str:
        return _render.html_fragment(self)

    def to_html(self, path: str | os.PathLike | None = None) -> str:
        """A self-contained HTML page: verdict, tables, and the plot embedded as PNG.

        Parameters
        ----------
        path : str or path-like, default=None
            Where to write the page; ``None`` only returns it.

        Returns
        -------
        str
            The page.
        """
        page = _render.html_page(self)
        if path is not None:
            with open(path, "w", encoding="utf-8") as file:
                file.write(page)
        return page

    def plot(self, *, figsize: tuple[float, float] | None = None):
        """Differences to the best baseline with confidence intervals, and learning curves.

        Needs matplotlib (``pip install 'sktransfer[plot]'``).

        Parameters
        ----------
        figsize : (float, float), default=None
            Figure size in inches.

        Returns
        -------
        matplotlib.figure.Figure
        """
        return _render.plot(self, figsize=figsize)


# ----------------------------------------------------------------- the input
def _as_samples(X, y, column):
    """(samples, y) from X (sequence, array, Series, DataFrame) and y (array or column)."""
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(X, pd.DataFrame):
        if isinstance(y, str):
            if y not in X.columns:
                raise InvalidInputError(
                    f"y={y!r} is not a column of X; its columns are {list(map(str, X.columns))}."
                )
            y = X[y]
        if column is None:
            if X.shape[1] != 1:
                raise InvalidInputError(
                    f"X is a DataFrame with {X.shape[1]} columns "
                    f"{list(map(str, X.columns))[:10]}; say which one holds the text or "
                    "images with column=NAME."
                )
            X = X.iloc[:, 0]
        else:
            if column not in X.columns:
                raise InvalidInputError(
                    f"column={column!r} is not a column of X; its columns are "
                    f"{list(map(str, X.columns))[:20]}."
                )
            X = X[column]
    elif column is not None:
        raise InvalidInputError(
            f"column={column!r} needs X to be a pandas DataFrame; got {type(X).__name__}."
        )
    elif isinstance(y, str):
        raise InvalidInputError(
            f"y={y!r} names a column, which needs X to be a pandas DataFrame; got "
            f"{type(X).__name__}. Pass the targets as an array."
        )
    if pd is not None and isinstance(X, pd.Series):
        X = X.to_list()
    if pd is not None and isinstance(y, (pd.Series, pd.DataFrame)):
        y = y.to_numpy()
    if isinstance(X, np.ndarray):
        if X.dtype.kind in "OUS":
            X = X.reshape(-1).tolist() if X.ndim == 2 and X.shape[1] == 1 else X.tolist()
    elif isinstance(X, (list, tuple)):
        X = list(X)
    else:
        raise InvalidInputError(
            f"X must be a list, numpy array, pandas Series or DataFrame of texts or images; "
            f"got {type(X).__name__}."
        )
    y = np.asarray(y)
    if y.ndim != 1:
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise InvalidInputError(f"y must be 1-D (one target per sample); got shape {y.shape}.")
    if len(X) != len(y):
        raise InvalidInputError(
            f"X has {len(X)} samples but y has {len(y)}; they must have one target per sample."
        )
    return X, y


def _check_missing(X, y, modality: str) -> None:
    def missing(v):
        return v is None or (isinstance(v, float) and math.isnan(v))

    if modality == "text" and not isinstance(X, np.ndarray):
        bad = [i for i, v in enumerate(X) if missing(v) or not isinstance(v, str)]
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
            raise InvalidInputError(
                f"X has {len(bad)} missing or non-text entries (positions {shown}); a report "
                "compares models on the same samples, so drop those rows first."
            )
    if y.dtype.kind == "f" and np.isnan(y).any():
        bad = np.flatnonzero(np.isnan(y))
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        raise InvalidInputError(
            f"y has {bad.size} missing values (positions {shown}); drop those rows first."
        )


def _task_of(y) -> str:
    from sklearn.utils.multiclass import type_of_target

    kind = type_of_target(y)
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind in ("continuous",):
        return "regression"
    raise InvalidInputError(
        f"y is {kind!r}; a transfer report needs class labels (classification) or "
        "numbers (regression), one per sample."
    )


def _splits(cv, n_repeats, task, y, random_state):
    from sklearn.model_selection import (
        RepeatedKFold,
        RepeatedStratifiedKFold,
        check_cv,
    )

    n = len(y)
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if cv < 2:
            raise InvalidInputError(f"cv={cv} must be at least 2 folds.")
        if not isinstance(n_repeats, numbers.Integral) or n_repeats < 1:
            raise InvalidInputError(f"n_repeats={n_repeats!r} must be a positive integer.")
        cls = RepeatedStratifiedKFold if task == "classification" else RepeatedKFold
        splitter = cls(n_splits=int(cv), n_repeats=int(n_repeats), random_state=random_state)
        splits = list(splitter.split(np.zeros(n), y))
        times = f"{n_repeats} x " if n_repeats > 1 else ""
        strat = "stratified " if task == "classification" else ""
        description = f"{times}{strat}{cv}-fold cross-validation ({len(splits)} splits)"
    else:
        splitter = check_cv(cv, y, classifier=task == "classification")
        splits = list(splitter.split(np.zeros(n), y))
        description = f"{type(splitter).__name__} ({len(splits)} splits)"
    if len(splits) < 2:
        raise InvalidInputError(
            f"cv gave {len(splits)} split; the paired comparison needs at least 2."
        )
    return splits, description


def _scorer(scoring, task):
    from sklearn.metrics import get_scorer

    if scoring is None:
        scoring = "accuracy" if task == "classification" else "r2"
    if isinstance(scoring, str):
        return get_scorer(scoring), scoring
    if callable(scoring):
        return scoring, getattr(scoring, "__name__", "score")
    raise InvalidInputError(
        f"scoring must be None, a scikit-learn scorer name or a scorer callable; got "
        f"{type(scoring).__name__}."
    )


# --------------------------------------------------------------- the progress
class _Progress:
    def __init__(self, show: bool, total: int):
        self.bar = None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="fit", file=sys.stderr, dynamic_ncols=True)

    def stage(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text[:60])

    def step(self, n: int = 1, postfix: str = "") -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------ the work
def _encoder_key(encoder) -> str:
    params = {k: v for k, v in encoder.get_params().items() if k != "progress"}
    return f"{type(encoder).__name__}{sorted(params.items(), key=lambda kv: kv[0])!r}"


def _encode_once(candidates, X, progress: _Progress, show: bool, features=None) -> dict:
    """Encode the data once per distinct frozen encoder (filling its cache); time it.

    ``features``, a dict, receives each encoder's output by its key (for the
    domain-shift diagnostic): this pass is then the only one over all samples.
    """
    from sklearn.base import clone

    from sktransfer._base import BaseEncoder

    times: dict[str, float] = {}
    for cand in candidates:
        encoder = cand.encoder
        if not isinstance(encoder, BaseEncoder):
            continue
        key = _encoder_key(encoder)
        cand.meta["encoder_key"] = key
        if key in times:
            continue
        if encoder.cache is None:
            warnings.warn(
                f"{cand.name}: the encoder has cache=None, so every split encodes its "
                "training and test samples again; give it a cache to encode once.",
                UserWarning,
                stacklevel=3,
            )
            if features is None:
                times[key] = math.nan
                continue
        progress.stage(f"encoding: {cand.name.rsplit(' + ', 1)[0]}")
        one = clone(encoder).set_params(progress="auto" if show else False).fit(X)
        start = time.perf_counter()  # the model is loaded: time the encoding alone
        encoded = one.transform(X)
        times[key] = time.perf_counter() - start if encoder.cache is not None else math.nan
        if features is not None:
            features[key] = np.asarray(encoded)
    return times


def _sample_domain(sample_domain, X, n: int):
    """``sample_domain`` as an int array (skada's convention), checked; a column of X too."""
    pd = sys.modules.get("pandas")
    if isinstance(sample_domain, str):
        if pd is None or not isinstance(X, pd.DataFrame):
            raise InvalidInputError(
                f"sample_domain={sample_domain!r} names a column, which needs X to be a "
                f"pandas DataFrame; got {type(X).__name__}. Pass one integer per sample."
            )
        if sample_domain not in X.columns:
            raise InvalidInputError(
                f"sample_domain={sample_domain!r} is not a column of X; its columns are "
                f"{list(map(str, X.columns))[:20]}."
            )
        sample_domain = X[sample_domain]
    from sktransfer.adapt._encoder import _check_sample_domain

    domains = _check_sample_domain(sample_domain, n, "transfer_report")
    n_target = int((domains < 0).sum())
    n_source = len(domains) - n_target
    if min(n_target, n_source) < 2:
        raise InvalidInputError(
            f"sample_domain has {n_source} source (>= 0) and {n_target} target (< 0) samples; "
            "the domain-shift diagnostic needs at least 2 of each. Mark the target domain "
            "with negative integers (skada's convention)."
        )
    return domains


def _domain_shifts(candidates, X, domains, features, seed, progress: _Progress):
    """Each frozen pretrained encoder's domain shift, on the features encoded up front."""
    from sklearn.base import clone

    from sktransfer.adapt import domain_shift

    cv = int(min(5, (domains < 0).sum(), (domains >= 0).sum()))
    shifts = {}
    for cand in candidates:
        if cand.kind != C.PRETRAINED or cand.encoder is None:
            continue
        progress.stage(f"domain shift: {cand.name}")
        key = cand.meta.get("encoder_key")
        if key in features:
            Z = features[key]
        else:  # a transformer given by the user (no cache): its features, once
            Z = clone(cand.encoder).fit(X).transform(X)
        Z = Z.toarray() if hasattr(Z, "toarray") else np.asarray(Z)
        shifts[cand.name] = domain_shift(Z, domains, cv=cv, random_state=seed)
    return shifts


def _shift_table(pd, shifts: dict):
    rows = [
        {
            "candidate": name,
            "auc": s.auc,
            "auc_sd": s.auc_std,
            "mmd2": s.mmd2,
            "mmd_pvalue": s.mmd_pvalue,
            "shift": s.verdict,
            "n_source": s.n_source,
            "n_target": s.n_target,
        }
        for name, s in shifts.items()
    ]
    columns = ["auc", "auc_sd", "mmd2", "mmd_pvalue", "shift", "n_source", "n_target"]
    return pd.DataFrame(rows, columns=["candidate", *columns]).set_index("candidate")


def _cross_validate(cand, X, y, splits, scorer, n_jobs, progress: _Progress):
    """Score one candidate on every split; per-split score, fit and predict time."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import cross_validate

    def one(i, train, test):
        out = cross_validate(
            cand.estimator, X, y, cv=[(train, test)], scoring=scorer, error_score="raise"
        )
        return i, out["test_score"][0], out["fit_time"][0], out["score_time"][0]

    n = len(splits)
    scores, fit_s, predict_s = np.empty(n), np.empty(n), np.empty(n)
    progress.stage(cand.name)
    jobs = (delayed(one)(i, tr, te) for i, (tr, te) in enumerate(splits))
    done = 0
    for i, score, fit_time, score_time in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        jobs
    ):
        scores[i], fit_s[i], predict_s[i] = score, fit_time, score_time
        done += 1
        progress.step(postfix=f"split {done}/{n}")
    return scores, fit_s, predict_s


def _learning_curve(cand, X, y, splits, scorer, train_sizes, n_jobs, seed, progress):
    from sklearn.model_selection import learning_curve

    progress.stage(f"learning curve: {cand.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # sklearn's FitFailedWarning
        sizes, _, test_scores = learning_curve(
            cand.estimator,
            X,
            y,
            train_sizes=train_sizes,
            cv=splits,
            scoring=scorer,
            n_jobs=n_jobs,
            shuffle=True,
            random_state=seed,
            error_score=np.nan,
        )
    progress.step(len(sizes) * len(splits))
    return sizes, test_scores


def _mean_ratio(splits) -> float:
    return float(np.mean([len(te) / len(tr) for tr, te in splits]))


def transfer_report(
    X,
    y,
    *,
    candidates="auto",
    baselines="auto",
    cv=5,
    n_repeats: int = 2,
    scoring=None,
    train_sizes=None,
    n_jobs: int | None = None,
    random_state=None,
    modality: str = "auto",
    column: str | None = None,
    combine: bool = True,
    finetune: bool | dict = False,
    fewshot: bool | dict = False,
    sample_domain=None,
    head=None,
    cache="memory",
    confidence: float = 0.95,
    progress: bool | str = "auto",
) -> TransferReport:
    """Does transfer learning help on this data, with which pretrained model?

    Cross-validates, on the same splits, frozen pretrained encoders with a
    linear head, from-scratch baselines, their combination and (on request)
    fine-tuned and few-shot models; compares each with the best from-scratch baseline by a
    paired test that is valid for cross-validation (the corrected resampled
    t-test of Nadeau & Bengio, 2003, over repeated k-fold); and says whether
    transfer helps, hurts ("negative transfer") or cannot be told apart.

    Parameters
    ----------
    X : list, numpy array, pandas Series or DataFrame
        Texts, or images (any input of :class:`~sktransfer.ImageEncoder`:
        paths, bytes, PIL images, arrays, an ``(n, H, W[, C])`` array). A
        DataFrame needs ``column`` unless it has a single column.
    y : array-like of shape (n_samples,), or str
        Class labels (classification) or numbers (regression); with a
        DataFrame ``X``, the name of its target column.
    candidates : "auto", str, estimator, or a list / dict of them, default="auto"
        The pretrained models to try. "auto": the packaged model of the
        modality (all-MiniLM-L6-v2 for text, EfficientNet-Lite0 for images).
        A string is a model name (a Hub id, a local folder, a timm name) made
        into a frozen encoder; a transformer (e.g. a configured
        :class:`~sktransfer.TextEncoder`) gets the linear head; a classifier
        or regressor is used as it is. A dict names them. ``None``: none.
    baselines : "auto", estimator, or a list / dict of them, default="auto"
        From-scratch models. "auto": for text, TF-IDF of words (1-2-grams) and
        of characters (2-5-grams, within words), each with the linear head; for
        images, the RGB pixels shrunk to 16x16 with the linear head. A
        transformer gets the head; a classifier or regressor is used as it is.
    cv : int or cross-validation splitter, default=5
        Number of folds, repeated ``n_repeats`` times (stratified for
        classification), or any scikit-learn splitter (then ``n_repeats`` is
        not used). Every candidate is scored on the same splits.
    n_repeats : int, default=2
        Repetitions of the k-fold split with different shuffles; more repeats
        narrow the confidence intervals.
    scoring : str or callable, default=None
        A scikit-learn scorer; ``None``: "accuracy" for classification, "r2"
        for regression. Higher must be better.
    train_sizes : array-like, default=None
        Training sizes (fractions of a training split in (0, 1], or counts)
        for a learning curve of every candidate on the same splits, to see
        where pretrained and from-scratch models cross. ``None``: no curves.
    n_jobs : int, default=None
        Splits fitted in parallel. With the in-memory cache the workers are
        threads (they share the cache); with a cache directory, processes.
    random_state : int, RandomState or None, default=None
        Seeds the splits, the learning curves' subsets and the fine-tuners.
    modality : {"auto", "text", "image"}, default="auto"
        What X holds; "auto" tells from the samples (strings are text unless
        all end in an image file suffix).
    column : str, default=None
        The column of a DataFrame ``X`` that holds the texts or images.
    combine : bool, default=True
        Also score each pretrained encoder's features side by side with the
        best baseline's features, under one linear head.
    finetune : bool or dict, default=False
        Also fine-tune each named pretrained model (:class:`~sktransfer.TextClassifier`
        and friends); a dict gives their parameters, e.g. ``{"epochs": 3}``.
        Costs far more than the frozen candidates.
    fewshot : bool or dict, default=False
        Text classification: also fit a :class:`~sktransfer.FewShotTextClassifier`
        (contrastive fine-tuning on pairs, then a head) on each named
        pretrained model; a dict gives its parameters, e.g.
        ``{"pairs_per_sample": 20}``. Like ``finetune``, it costs far more than
        the frozen candidates: every split tunes the body again, from the
        pretrained weights, and never reads the embedding cache.
    sample_domain : array-like of int of shape (n_samples,), str or None, default=None
        The domain of each sample in skada's convention: negative for the
        target domain (where the model is to be used), non-negative for the
        source (see ``docs/adaptation.md``); with a DataFrame ``X``, the name of
        its column. Adds a domain-shift diagnostic
        (:func:`sktransfer.adapt.domain_shift`: cross-validated domain-classifier
        AUC and MMD² with a permutation p-value) in each frozen pretrained
        encoder's feature space, computed on the features of the one encoding
        pass; ``domain_shift_`` and the ``shift_auc`` column hold it. The
        scores are still cross-validated over all samples.
    head : estimator, default=None
        The linear head of the frozen and from-scratch candidates;
        ``None``: ``LogisticRegression(max_iter=1000)`` or ``Ridge()``.
    cache : "memory", str, path-like or None, default="memory"
        The embedding cache of the encoders built from model names: each
        sample is encoded once, and the splits read it from the cache. A
        directory keeps it across processes, so an interrupted report reruns
        fast (see ``docs/cache.md``).
    confidence : float, default=0.95
        Level of the confidence intervals; a verdict other than "no evidence
        either way" needs the interval to exclude 0.
    progress : bool or "auto", default="auto"
        Show which candidate and split is running; "auto" shows it for 1,024
        samples or more.

    Returns
    -------
    TransferReport

    Notes
    -----
    The best baseline and the best pretrained candidate are chosen by their
    mean score on the same splits that then test them, which favours them
    slightly; the corrected t-test does not account for that choice, so treat
    p-values near the threshold with care, and more repeats help.

    Examples
    --------
    >>> from sktransfer import transfer_report
    >>> texts = ["a great film", "awful, avoid it", "superb acting", "dull and boring"] * 10
    >>> labels = [1, 0, 1, 0] * 10
    >>> report = transfer_report(texts, labels, cv=2, random_state=0)
    >>> list(report.results_.columns[:3])
    ['kind', 'score_mean', 'score_sd']
    >>> report.reference_
    'TF-IDF words 1-2 + LR'
    """
    from sklearn.base import clone
    from sklearn.utils import check_random_state

    pd = import_optional("pandas")
    started = time.perf_counter()
    if modality not in ("auto", "text", "image"):
        raise InvalidInputError(f"modality={modality!r}; expected 'auto', 'text' or 'image'.")
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence={confidence!r} must be in (0, 1).")
    if not (isinstance(progress, bool) or progress == "auto"):
        raise InvalidInputError(f"progress={progress!r}; expected True, False or 'auto'.")
    table = X
    X, y = _as_samples(X, y, column)
    domains = None if sample_domain is None else _sample_domain(sample_domain, table, len(y))
    if modality == "auto":
        modality = C.detect_modality(X)
    _check_missing(X, y, modality)
    task = _task_of(y)
    scorer, scoring_name = _scorer(scoring, task)
    rng = check_random_state(random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    head = C.default_head(task) if head is None else head

    pretrained = C.pretrained_candidates(
        candidates, modality=modality, task=task, head=head, cache=cache
    )
    scratch = C.baseline_candidates(baselines, modality=modality, task=task, head=head)
    tuned = []
    if finetune:
        params = dict(finetune) if isinstance(finetune, dict) else {}
        tuned = C.finetune_candidates(
            pretrained, params, modality=modality, task=task, random_state=seed
        )
    if fewshot:
        params = dict(fewshot) if isinstance(fewshot, dict) else {}
        tuned += C.fewshot_candidates(
            pretrained, params, modality=modality, task=task, random_state=seed
        )
    splits, cv_description = _splits(cv, n_repeats, task, y, random_state)
    n_combined = sum(c.encoder is not None for c in pretrained) if combine else 0
    n_candidates = len(pretrained) + len(scratch) + len(tuned) + n_combined
    n_sizes = 0 if train_sizes is None else len(np.atleast_1d(train_sizes))
    show = progress is True or (progress == "auto" and len(y) >= PROGRESS_AUTO_MIN_SAMPLES)
    bar = _Progress(show, n_candidates * len(splits) * (1 + n_sizes))

    threads = n_jobs not in (None, 1) and (cache == "memory")
    backend = _threads_backend() if threads else contextlib.nullcontext()
    per_split: dict[str, tuple] = {}
    started_work = time.perf_counter()
    try:
        with backend:
            for cand in scratch:
                per_split[cand.name] = _cross_validate(cand, X, y, splits, scorer, n_jobs, bar)
            means = {c.name: per_split[c.name][0].mean() for c in scratch}
            reference = max(scratch, key=lambda c: means[c.name])
            combined = []
            if combine:
                for cand in pretrained:
                    both = C.combined_candidate(cand, reference, head)
                    if both is not None:
                        combined.append(both)
            others = pretrained + combined + tuned
            everyone = scratch + others
            C.unique_names(everyone)
            t_encode = time.perf_counter()
            features = {} if domains is not None else None
            encode_s = _encode_once(others, X, bar, show, features)
            t_shift = time.perf_counter()
            shifts = None
            if domains is not None:
                shifts = _domain_shifts(pretrained, X, domains, features, seed, bar)
                del features
            t_others = time.perf_counter()
            for cand in others:
                per_split[cand.name] = _cross_validate(cand, X, y, splits, scorer, n_jobs, bar)
            t_curves = time.perf_counter()
            curves = None
            if train_sizes is not None:
                curves = {
                    cand.name: _learning_curve(
                        cand, X, y, splits, scorer, train_sizes, n_jobs, seed, bar
                    )
                    for cand in everyone
                }
    finally:
        bar.close()
    t_end = time.perf_counter()
    timings = {
        "baselines": t_encode - started_work,
        "encoding": t_shift - t_encode,
        "domain_shift": t_others - t_shift,
        "candidates": t_curves - t_others,
        "learning_curves": t_end - t_curves,
    }

    ratio = _mean_ratio(splits)
    ref_scores = per_split[reference.name][0]
    rows = []
    for cand in everyone:
        scores, fit_s, predict_s = per_split[cand.name]
        row = {
            "candidate": cand.name,
            "kind": cand.kind,
            "score_mean": scores.mean(),
            "score_sd": scores.std(ddof=1),
            "difference": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "p_value": np.nan,
            "verdict": "reference" if cand is reference else "",
            "encode_s": encode_s.get(cand.meta.get("encoder_key"), np.nan),
            "fit_s": fit_s.mean(),
            "predict_s": predict_s.mean(),
        }
        if cand.kind != C.FROM_SCRATCH:
            comp = compare_paired(scores, ref_scores, test_train_ratio=ratio, confidence=confidence)
            row.update(
                difference=comp.difference,
                ci_low=comp.ci_low,
                ci_high=comp.ci_high,
                p_value=comp.p_value,
                verdict=comp.verdict,
            )
            cand.meta["comparison"] = comp
        rows.append(row)
    results = pd.DataFrame(rows).set_index("candidate")
    shift_table = None
    if shifts is not None:
        shift_table = _shift_table(pd, shifts)
        results["shift_auc"] = shift_table["auc"].reindex(results.index)
    results = results.sort_values("score_mean", ascending=False, kind="stable")

    verdict = _headline(everyone, per_split, reference, scoring_name)
    best_name = str(results.index[0])
    estimators = {c.name: clone(c.estimator) for c in everyone}

    learning = None
    if curves is not None:
        learning = _curve_table(pd, curves, reference.name, splits, confidence, everyone)

    scores_table = pd.DataFrame({c.name: per_split[c.name][0] for c in everyone})
    scores_table.index.name = "split"
    return TransferReport(
        results_=results,
        verdict_=verdict,
        best_=clone(estimators[best_name]),
        best_name_=best_name,
        reference_=reference.name,
        estimators_=estimators,
        scores_=scores_table,
        learning_curves_=learning,
        domain_shift_=shift_table,
        splits_=splits,
        modality_=modality,
        task_=task,
        scoring_=scoring_name,
        n_samples_=len(y),
        confidence_=confidence,
        cv_description_=cv_description,
        elapsed_s_=time.perf_counter() - started,
        timings_=timings,
    )


def _headline(everyone, per_split, reference, scoring: str) -> str:
    """The verdict of the best purely pretrained candidate, then of the best combination."""

    def best(kinds):
        pool = [c for c in everyone if c.kind in kinds]
        return max(pool, key=lambda c: per_split[c.name][0].mean()) if pool else None

    alone = best({C.PRETRAINED, C.FINE_TUNED, C.FEW_SHOT, C.USER})
    both = best({C.COMBINED})
    parts = []
    if alone is not None:
        comp = alone.meta["comparison"]
        parts.append(
            verdict_of(comp, scoring=scoring, reference=reference.name)
            + f"; best pretrained candidate: {alone.name}"
        )
    if both is not None:
        comp = both.meta["comparison"]
        parts.append(
            f"pretrained + from-scratch features ({both.name}): {comp.verdict}, "
            f"{comp.difference:+.3f} {scoring} ({100 * comp.confidence:g}% CI "
            f"{comp.ci_low:+.3f} to {comp.ci_high:+.3f})"
        )
    if not parts:
        return "no pretrained candidate was given: nothing to compare with the baselines"
    return ". ".join(parts) + "."


def _threads_backend():
    from joblib import parallel_config

    return parallel_config(backend="threading")


def _curve_table(pd, curves, reference, splits, confidence, everyone):
    kinds = {c.name: c.kind for c in everyone}
    ref_sizes, ref_scores = curves[reference]
    n_test = np.mean([len(te) for _, te in splits])
    rows = []
    for name, (sizes, scores) in curves.items():
        for k, size in enumerate(sizes):
            row = {
                "candidate": name,
                "kind": kinds[name],
                "train_size": int(size),
                "score_mean": float(np.nanmean(scores[k])),
                "score_sd": float(np.nanstd(scores[k], ddof=1)),
                "difference": np.nan,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "verdict": "reference" if name == reference else "",
            }
            if kinds[name] != C.FROM_SCRATCH:
                ok = ~(np.isnan(scores[k]) | np.isnan(ref_scores[k]))
                if ok.sum() >= 2:
                    comp = compare_paired(
                        scores[k][ok],
                        ref_scores[k][ok],
                        test_train_ratio=n_test / size,
                        confidence=confidence,
                    )
                    row.update(
                        difference=comp.difference,
                        ci_low=comp.ci_low,
                        ci_high=comp.ci_high,
                        verdict=comp.verdict,
                    )
            rows.append(row)
    return pd.DataFrame(rows)
