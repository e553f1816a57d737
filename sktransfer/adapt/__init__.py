"""Domain adaptation around the pretrained encoders.

- The encoders adapt their own body to unlabelled target data:
  ``ImageEncoder(adapt="batchnorm" | "tent")`` and
  ``TextEncoder(adapt="contrastive")``, fitted with ``sample_domain``
  (negative = target, skada's convention).
- :func:`domain_shift`: how far apart source and target are in a feature space.
- :func:`compare_adaptation`: source-only, feature-level methods (skada), body
  adaptation and the target oracle side by side, and how often skada's
  unsupervised scorers pick the best method without target labels.

Feature-level methods (CORAL, subspace alignment, optimal transport, ...) are
skada's (``pip install 'sktransfer[adapt]'``); nothing here re-implements them.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "domain_shift": "sktransfer.adapt._shift",
    "DomainShift": "sktransfer.adapt._shift",
    "compare_adaptation": "sktransfer.adapt._compare",
    "AdaptationComparison": "sktransfer.adapt._compare",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sktransfer.adapt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
