"""How far apart are source and target data in a feature space?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sktransfer.exceptions import InvalidInputError


@dataclass(frozen=True)
class DomainShift:
    """The result of :func:`domain_shift`.

    Attributes
    ----------
    auc : float
        Cross-validated ROC AUC of a classifier telling target from source
        samples: 0.5 when they cannot be told apart, 1.0 when they always can.
    auc_std : float
        Standard deviation of the AUC over the folds.
    mmd2 : float
        Unbiased squared maximum mean discrepancy between source and target
        features with a Gaussian kernel (0 in expectation without shift).
    mmd_pvalue : float
        Permutation p-value of ``mmd2`` (domains shuffled): small values mean
        the shift is real, not noise.
    bandwidth : float
        The kernel bandwidth (median distance between samples).
    n_source, n_target : int
        Samples of each side that were used (after subsampling).
    """

    auc: float
    auc_std: float
    mmd2: float
    mmd_pvalue: float
    bandwidth: float
    n_source: int
    n_target: int

    @property
    def verdict(self) -> str:
        """A one-word reading of the AUC: "none", "mild", "moderate" or "strong"."""
        if self.auc < 0.6:
            return "none"
        if self.auc < 0.75:
            return "mild"
        if self.auc < 0.9:
            return "moderate"
        return "strong"

    def __str__(self) -> str:
        return (
            f"domain shift: {self.verdict} (domain-classifier AUC {self.auc:.3f} "
            f"± {self.auc_std:.3f}; MMD² {self.mmd2:.4f}, permutation p = {self.mmd_pvalue:.3g}; "
            f"{self.n_source} source / {self.n_target} target samples)"
        )


def domain_shift(
    X,
    sample_domain,
    *,
    encoder=None,
    cv: int = 5,
    max_samples: int = 2000,
    n_permutations: int = 200,
    random_state: int | None = 0,
) -> DomainShift:
    """Measure the shift between source and target samples in a feature space.

    Two views of one question: a domain classifier (logistic regression on
    standardised features) is cross-validated on telling target from source
    (ROC AUC; 0.5 = no detectable shift), and a kernel two-sample statistic
    (unbiased MMD² with a Gaussian kernel of median bandwidth) is tested by
    permutation. Samples of every non-negative domain are the source, of every
    negative domain the target (skada's convention).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or raw samples
        Features, or texts / images when ``encoder`` is given.
    sample_domain : array-like of int of shape (n_samples,)
        Negative for target samples, non-negative for source samples.
    encoder : TextEncoder, ImageEncoder or None, default=None
        Encodes raw ``X`` first (fitted here, frozen: ``adapt`` is ignored so
        that the shift is measured in the pretrained feature space).
    cv : int, default=5
        Folds of the domain classifier (stratified by domain).
    max_samples : int, default=2000
        At most this many samples per side are used (a random subset), which
        bounds the kernel matrix and the classifier.
    n_permutations : int, default=200
        Permutations for the MMD p-value.
    random_state : int or None, default=0
        Seeds subsampling, folds and permutations.

    Returns
    -------
    DomainShift

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adapt import domain_shift
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (200, 5)), rng.normal(1.5, 1, (200, 5))])
    >>> domains = np.r_[np.ones(200, dtype=int), -np.ones(200, dtype=int)]
    >>> shift = domain_shift(X, domains)
    >>> shift.verdict, shift.auc > 0.95, shift.mmd_pvalue < 0.01
    ('strong', True, True)
    >>> domain_shift(rng.normal(0, 1, (400, 5)), domains).verdict
    'none'
    """
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    domains = np.asarray(sample_domain)
    if encoder is not None:
        encoder = clone(encoder)
        if "adapt" in encoder.get_params():
            encoder.set_params(adapt=None)
        features = np.asarray(encoder.fit(X).transform(X), dtype=np.float64)
    else:
        features = _as_features(X)
    if domains.ndim != 1 or len(domains) != len(features):
        raise InvalidInputError(
            f"domain_shift: sample_domain has shape {domains.shape} but X has "
            f"{len(features)} samples; pass one integer domain per sample."
        )
    target = domains < 0
    n_target, n_source = int(target.sum()), int((~target).sum())
    if min(n_target, n_source) < cv:
        raise InvalidInputError(
            f"domain_shift needs at least cv={cv} samples of each side; got {n_source} "
            f"source (sample_domain >= 0) and {n_target} target (sample_domain < 0)."
        )
    rng = np.random.default_rng(random_state)
    keep = np.concatenate(
        [
            _subset(np.flatnonzero(~target), max_samples, rng),
            _subset(np.flatnonzero(target), max_samples, rng),
        ]
    )
    features, is_target = features[keep], target[keep].astype(int)

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    aucs = cross_val_score(clone(classifier), features, is_target, cv=folds, scoring="roc_auc")
    mmd2, pvalue, bandwidth = _mmd_test(features, is_target.astype(bool), n_permutations, rng)
    return DomainShift(
        auc=float(np.mean(aucs)),
        auc_std=float(np.std(aucs)),
        mmd2=float(mmd2),
        mmd_pvalue=float(pvalue),
        bandwidth=float(bandwidth),
        n_source=int((is_target == 0).sum()),
        n_target=int(is_target.sum()),
    )


def _as_features(X) -> np.ndarray:
    try:
        features = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            "domain_shift got samples that are not numeric features; pass "
            "encoder=TextEncoder() or ImageEncoder() to measure the shift in the "
            "pretrained feature space."
        ) from exc
    if features.ndim != 2:
        raise InvalidInputError(
            f"domain_shift expects features of shape (n_samples, n_features), got "
            f"{features.shape}; pass encoder=... for raw texts or images."
        )
    return features


def _subset(indices: np.ndarray, n: int, rng) -> np.ndarray:
    return indices if len(indices) <= n else np.sort(rng.choice(indices, n, replace=False))


def _mmd_test(features: np.ndarray, is_target: np.ndarray, n_permutations: int, rng):
    """Unbiased MMD² (Gaussian kernel, median bandwidth) and its permutation p-value."""
    from sklearn.metrics import pairwise_distances

    distances = pairwise_distances(features, metric="sqeuclidean")
    upper = distances[np.triu_indices_from(distances, k=1)]
    bandwidth = float(np.sqrt(np.median(upper))) if upper.size else 1.0
    bandwidth = bandwidth if bandwidth > 0 else 1.0
    kernel = np.exp(-distances / (2 * bandwidth**2))
    observed = _mmd2_unbiased(kernel, is_target)
    exceed = 0
    for _ in range(n_permutations):
        if _mmd2_unbiased(kernel, rng.permutation(is_target)) >= observed:
            exceed += 1
    return observed, (exceed + 1) / (n_permutations + 1), bandwidth


def _mmd2_unbiased(kernel: np.ndarray, is_target: np.ndarray) -> float:
    # Block sums through matrix-vector products: no copy of the kernel per permutation.
    a, b = (~is_target).astype(np.float64), is_target.astype(np.float64)
    diagonal = np.diag(kernel)
    k_b = kernel @ b
    sum_bb, sum_ab = b @ k_b, a @ k_b
    sum_aa = a @ (kernel @ a)
    m, n = a.sum(), b.sum()
    term_a = (sum_aa - diagonal @ a) / (m * (m - 1))
    term_b = (sum_bb - diagonal @ b) / (n * (n - 1))
    return float(term_a + term_b - 2 * sum_ab / (m * n))
