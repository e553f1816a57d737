"""Honest evaluation of domain adaptation: does it beat training on the source alone?"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sktransfer._optional import import_optional
from sktransfer.exceptions import InvalidInputError

SOURCE_ONLY = "source only"
ORACLE = "target oracle"


@dataclass
class AdaptationComparison:
    """The result of :func:`compare_adaptation`.

    Attributes
    ----------
    rows : list of dict
        One per (body, method): ``body`` (the encoder variant, "features" for
        precomputed features), ``method``, ``target_accuracy`` (on the target
        samples, with the labels used for evaluation only) and one entry per
        unsupervised scorer (cross-validated, higher is better; no target
        label is read).
    oracle_accuracy : float or None
        Cross-validated accuracy of the estimator trained on the labelled
        target samples (what labelling the target would give).
    selected : dict
        Scorer name -> the ``(body, method)`` that scorer ranks first.
    scorers : list of str
    """

    rows: list[dict]
    oracle_accuracy: float | None
    selected: dict = field(default_factory=dict)
    scorers: list[str] = field(default_factory=list)

    @property
    def source_only_accuracy(self) -> float:
        """Target accuracy of the first body with no feature-level method."""
        return self.rows[0]["target_accuracy"]

    @property
    def best(self) -> dict:
        """The row of the highest target accuracy (known only with target labels)."""
        return max(self.rows, key=lambda row: row["target_accuracy"])

    def selection_accuracy(self, scorer: str) -> float:
        """Target accuracy of the row that ``scorer`` selected without target labels."""
        return self._row(*self.selected[scorer])["target_accuracy"]

    def _row(self, body: str, method: str) -> dict:
        for row in self.rows:
            if row["body"] == body and row["method"] == method:
                return row
        raise KeyError((body, method))

    def to_frame(self):
        """The rows as a pandas DataFrame (the oracle as a last row)."""
        pandas = import_optional("pandas")
        rows = list(self.rows)
        if self.oracle_accuracy is not None:
            rows.append(
                {"body": rows[0]["body"], "method": ORACLE, "target_accuracy": self.oracle_accuracy}
            )
        return pandas.DataFrame(rows)

    def __str__(self) -> str:
        lines = [f"{'body':<14} {'method':<22} {'target acc.':>11}"]
        for row in self.rows:
            lines.append(f"{row['body']:<14} {row['method']:<22} {row['target_accuracy']:>11.3f}")
        if self.oracle_accuracy is not None:
            lines.append(f"{'':<14} {ORACLE:<22} {self.oracle_accuracy:>11.3f}")
        for scorer, (body, method) in self.selected.items():
            lines.append(
                f"{scorer} selects {body} / {method}: {self.selection_accuracy(scorer):.3f} "
                f"(source only {self.source_only_accuracy:.3f})"
            )
        return "\n".join(lines)


def default_methods() -> dict:
    """skada's feature-level adapters compared by default (name -> adapter or None)."""
    skada = _import_skada()
    return {
        SOURCE_ONLY: None,
        "CORAL": skada.CORALAdapter(),
        "subspace alignment": skada.SubspaceAlignmentAdapter(),
        "OT mapping": skada.OTMappingAdapter(),
    }


def default_scorers(random_state: int | None = 0) -> dict:
    """skada's unsupervised scorers used to select a method without target labels."""
    import sklearn

    _import_skada()
    from skada.metrics import CircularValidation, MixValScorer, PredictionEntropyScorer

    with sklearn.config_context(enable_metadata_routing=True):  # skada's scorers need it
        return {
            "circular validation": CircularValidation(),
            "mix-val": MixValScorer(random_state=random_state),
            "prediction entropy": PredictionEntropyScorer(),
        }


def compare_adaptation(
    X,
    y,
    sample_domain,
    *,
    bodies: dict | None = None,
    methods: dict | None = None,
    estimator=None,
    scorers: dict | None = None,
    cv=3,
    oracle_cv: int | None = 5,
    random_state: int | None = 0,
) -> AdaptationComparison:
    """Compare source-only training, domain adaptation methods and the target oracle.

    Every (body, method) pair is fitted on the source samples with their labels
    and the target samples without theirs (skada's masking), then scored on
    the target labels -- which only this evaluation reads. skada's
    unsupervised scorers are cross-validated on the same pipelines (source and
    target split together, no target label read) and each one "selects" the
    pair it ranks first: how well that pick does, against source-only, is
    what an unsupervised model selection would have given.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or raw samples
        Features, or texts / images when ``bodies`` holds encoders.
    y : array-like of shape (n_samples,)
        Labels of every sample, the target's included (evaluation only).
    sample_domain : array-like of int of shape (n_samples,)
        Negative for target samples, positive for source samples.
    bodies : dict of str -> encoder, or None
        Encoder variants to compare, e.g. ``{"frozen": TextEncoder(),
        "contrastive": TextEncoder(adapt="contrastive")}``; each is fitted
        with ``sample_domain`` (body adaptation sees the target samples, not
        their labels). ``None``: ``X`` is already features.
    methods : dict of str -> skada adapter or None, default=None
        Feature-level methods (``None`` as a value: no adaptation; "source
        only" is added when no value is ``None``). Default: source only,
        CORAL, subspace alignment, optimal-transport mapping (exact EMD). A method with
        ``n_components=None`` gets min(32, n_features, a tenth of the smallest domain), so that
        the validation splits of the scorers can fit it too.
    estimator : classifier, default=LogisticRegression(max_iter=2000)
        The final classifier, after a StandardScaler.
    scorers : dict of str -> skada scorer, default=None
        Default: circular validation, MixVal and prediction entropy.
    cv : int or cross-validation splitter, default=3
        Splits for the unsupervised scorers (an int: skada's
        ``SourceTargetShuffleSplit`` with that many splits).
    oracle_cv : int or None, default=5
        Folds of the target oracle (cross-validated on the target samples
        with their labels); ``None`` leaves it out.
    random_state : int or None, default=0

    Returns
    -------
    AdaptationComparison

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adapt import compare_adaptation
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(0, 1, (200, 4)); ys = (Xs[:, 0] > 0).astype(int)
    >>> Xt = rng.normal(0, 1, (200, 4)); yt = (Xt[:, 0] > 0).astype(int)
    >>> Xt = Xt * [3.0, 0.5, 1.0, 1.0] + 2.0     # the target: scaled and moved
    >>> result = compare_adaptation(
    ...     np.vstack([Xs, Xt]), np.r_[ys, yt], np.r_[np.ones(200, int), -np.ones(200, int)]
    ... )
    >>> result.best["method"] != "source only"
    True
    """
    skada = _import_skada()
    import sklearn
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score, cross_validate
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y)
    domains = np.asarray(sample_domain)
    if domains.ndim != 1 or len(domains) != len(y):
        raise InvalidInputError(
            f"compare_adaptation: sample_domain has shape {domains.shape} and y has "
            f"{len(y)} entries; pass one domain and one label per sample."
        )
    target = domains < 0
    if not target.any() or target.all():
        raise InvalidInputError(
            "compare_adaptation needs source samples (sample_domain >= 0) and target "
            f"samples (sample_domain < 0); got {int((~target).sum())} source and "
            f"{int(target.sum())} target."
        )
    if len(np.unique(y[~target])) < 2:
        raise InvalidInputError(
            "compare_adaptation needs source labels of at least 2 classes; the source "
            f"samples have {len(np.unique(y[~target]))}."
        )
    y_masked = np.where(target, -1, y)
    methods = default_methods() if methods is None else dict(methods)
    if not any(method is None for method in methods.values()):
        methods = {SOURCE_ONLY: None, **methods}  # the baseline every method must beat
    # the baseline first: rows[0] is source-only on the first body
    methods = dict(sorted(methods.items(), key=lambda item: item[1] is not None))
    scorers = default_scorers(random_state) if scorers is None else scorers
    estimator = LogisticRegression(max_iter=2000) if estimator is None else estimator
    if isinstance(cv, int):
        from skada.model_selection import SourceTargetShuffleSplit

        cv = SourceTargetShuffleSplit(n_splits=cv, random_state=random_state)

    rows = []
    oracle = None
    with sklearn.config_context(enable_metadata_routing=True):
        for body_name, features in _bodies(X, y_masked, domains, bodies):
            for method_name, method in methods.items():
                steps = [StandardScaler()]
                if method is not None:
                    steps.append(_sized(clone(method), features, target))
                steps.append(clone(estimator))
                pipe = skada.make_da_pipeline(*steps)
                scores = cross_validate(
                    pipe,
                    features,
                    y_masked,
                    cv=cv,
                    scoring=scorers,
                    params={"sample_domain": domains},
                )
                pipe.fit(features, y_masked, sample_domain=domains)
                predicted = pipe.predict(features[target], sample_domain=domains[target])
                row = {
                    "body": body_name,
                    "method": method_name,
                    "target_accuracy": float(np.mean(predicted == y[target])),
                }
                for name in scorers:
                    values = np.asarray(scores[f"test_{name}"], dtype=float)
                    values = values[np.isfinite(values)]  # a failed split scores NaN
                    row[name] = float(values.mean()) if values.size else float("nan")
                rows.append(row)
            if oracle is None and oracle_cv:
                # on the first body's features: what labelling the target would give
                oracle = float(
                    np.mean(
                        cross_val_score(
                            _oracle_pipeline(estimator), features[target], y[target], cv=oracle_cv
                        )
                    )
                )
    selected = {}
    for name in scorers:
        finite = [row for row in rows if np.isfinite(row[name])]
        if finite:
            pick = max(finite, key=lambda row: row[name])
            selected[name] = (pick["body"], pick["method"])
    return AdaptationComparison(rows, oracle, selected, list(scorers))


# Subspace methods with ``n_components=None`` use at most this many components.
MAX_COMPONENTS = 32


def _sized(method, features: np.ndarray, target: np.ndarray):
    """Give a subspace method with ``n_components=None`` a size every domain can fit.

    (skada's default takes the size of source and target together, which a
    PCA of one domain alone cannot reach.)
    """
    if method.get_params().get("n_components", 0) is None:
        # skada's validation splits (and scorers refitting on them) hold a tenth
        smallest = min(int(target.sum()), int((~target).sum())) // 10
        method.set_params(n_components=max(1, min(MAX_COMPONENTS, features.shape[1], smallest)))
    return method


def _oracle_pipeline(estimator):
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), clone(estimator))


def _bodies(X, y_masked, domains, bodies):
    """(name, features) for each encoder variant, or the given features."""
    if bodies is None:
        try:
            features = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                "compare_adaptation got samples that are not numeric features; pass "
                "bodies={'frozen': TextEncoder()} (or ImageEncoder) to encode them."
            ) from exc
        if features.ndim != 2:
            raise InvalidInputError(
                f"compare_adaptation expects features of shape (n_samples, n_features), "
                f"got {features.shape}; pass bodies=... for raw texts or images."
            )
        yield "features", features
        return
    from sklearn.base import clone

    for name, encoder in bodies.items():
        encoder = clone(encoder)
        features = encoder.fit_transform(X, y_masked, sample_domain=domains)
        yield name, np.asarray(features, dtype=np.float64)


def _import_skada():
    """skada, imported without leaving metadata routing switched on for the caller."""
    import sklearn

    before = sklearn.get_config()["enable_metadata_routing"]
    skada = import_optional("skada")
    sklearn.set_config(enable_metadata_routing=before)
    return skada
