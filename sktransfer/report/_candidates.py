"""The models a transfer report compares: pretrained, from scratch, combined, tuned."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np

from sktransfer.exceptions import InvalidInputError

# Side of the square the images are shrunk to for the raw-pixel baseline.
PIXEL_SIZE = 16

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)

PRETRAINED = "pretrained"
FROM_SCRATCH = "from scratch"
COMBINED = "pretrained + from scratch"
FINE_TUNED = "fine-tuned"
FEW_SHOT = "few-shot"
USER = "user model"


@dataclass
class Candidate:
    """One row of the report: an unfitted estimator and how it was built."""

    name: str
    kind: str
    estimator: Any
    # The frozen encoder inside ``estimator`` (encoded once, up front), if any.
    encoder: Any = None
    # For from-scratch baselines: the feature step (reused by the combination).
    features: Any = None
    meta: dict = field(default_factory=dict)


# ------------------------------------------------------------------ modality
def detect_modality(X: list | np.ndarray) -> str:
    """ "text" or "image", from the samples themselves."""
    if isinstance(X, np.ndarray) and X.dtype.kind in "biuf":
        return "image"
    items = [item for item in list(X[:100]) if not _is_missing(item)][:50]
    if not items:
        raise InvalidInputError("X holds no samples (or only missing ones): nothing to report on.")
    if all(isinstance(item, str) for item in items):
        if all(PurePath(item).suffix.lower() in IMAGE_SUFFIXES for item in items):
            return "image"
        return "text"
    if all(not isinstance(item, str) and item is not None for item in items):
        return "image"
    kinds = sorted({type(item).__name__ for item in items})
    raise InvalidInputError(
        f"cannot tell whether X holds text or images: its first samples are of types "
        f"{', '.join(kinds)}. Pass modality='text' or modality='image'."
    )


def _is_missing(item) -> bool:
    return item is None or (isinstance(item, float) and item != item)


# ---------------------------------------------------------------- the pieces
def default_head(task: str):
    """The linear head of every frozen-feature and from-scratch candidate."""
    if task == "classification":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000)
    from sklearn.linear_model import Ridge

    return Ridge()


def head_label(head) -> str:
    names = {"LogisticRegression": "LR", "Ridge": "Ridge"}
    return names.get(type(head).__name__, type(head).__name__)


def downscaled_pixels(X, size: int = PIXEL_SIZE) -> np.ndarray:
    """Images -> their RGB pixels shrunk to ``size`` x ``size``, in [0, 1], one row each.

    The raw-pixel baseline's features. Accepts every image input of
    :class:`~sktransfer.ImageEncoder` (paths, bytes, PIL images, arrays).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.report._candidates import downscaled_pixels
    >>> downscaled_pixels(np.zeros((2, 28, 28), dtype=np.uint8), size=4).shape
    (2, 48)
    """
    from PIL import Image

    from sktransfer._image_io import as_image_list, to_rgb

    items = as_image_list(X)
    out = np.empty((len(items), size * size * 3), dtype=np.float32)
    for i, item in enumerate(items):
        image = to_rgb(item, i).resize((size, size), Image.Resampling.BOX)
        out[i] = np.asarray(image, dtype=np.float32).reshape(-1) / 255.0
    return out


def _short_model_name(model: str) -> str:
    text = os.fspath(model).rstrip("/\\")
    return text.replace("\\", "/").rsplit("/", 1)[-1] or text


def encoder_for(model: str, modality: str, cache):
    """A frozen encoder of the modality for a model name (Hub id, folder, timm name)."""
    if modality == "text":
        from sktransfer.text import TextEncoder

        return TextEncoder(model, cache=cache, progress=False)
    from sktransfer.image import ImageEncoder

    return ImageEncoder(model, cache=cache, progress=False)


def default_encoder(modality: str, cache):
    """The packaged model of the modality, as a frozen encoder."""
    if modality == "text":
        from sktransfer.text import TextEncoder

        return TextEncoder(cache=cache, progress=False)
    from sktransfer.image import ImageEncoder

    return ImageEncoder(cache=cache, progress=False)


def _encoder_name(encoder) -> str:
    model = getattr(encoder, "model", None)
    if isinstance(model, (str, os.PathLike)):
        name = _short_model_name(os.fspath(model))
        weights = getattr(encoder, "weights", None)
        if weights is not None:
            name += f" ({_short_model_name(os.fspath(weights))})"
        return name
    return type(encoder).__name__


def _is_predictor(estimator) -> bool:
    from sklearn.base import is_classifier, is_regressor

    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        return False
    return is_classifier(estimator) or is_regressor(estimator)


def _check_task(estimator, task: str, where: str) -> None:
    from sklearn.base import is_classifier, is_regressor

    if task == "classification" and is_regressor(estimator):
        raise InvalidInputError(
            f"{where}: {type(estimator).__name__} is a regressor, but y holds class labels. "
            "Pass a classifier, or a numeric y for regression."
        )
    if task == "regression" and is_classifier(estimator):
        raise InvalidInputError(
            f"{where}: {type(estimator).__name__} is a classifier, but y is continuous. "
            "Pass a regressor, or class labels for classification."
        )


def _named_items(spec, what: str) -> list[tuple[str | None, Any]]:
    """``spec`` as (name or None, item) pairs: a dict, a list, or one item."""
    if isinstance(spec, dict):
        return [(str(k), v) for k, v in spec.items()]
    if isinstance(spec, (list, tuple)):
        return [(None, v) for v in spec]
    return [(None, spec)]


def _frozen(encoder, head, name: str | None, kind: str = PRETRAINED) -> Candidate:
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline

    label = name or f"{_encoder_name(encoder)} + {head_label(head)}"
    pipe = make_pipeline(clone(encoder), clone(head))
    return Candidate(label, kind, pipe, encoder=clone(encoder))


def pretrained_candidates(spec, *, modality: str, task: str, head, cache) -> list[Candidate]:
    """Frozen encoders + head, and user estimators, from ``candidates=``."""
    if isinstance(spec, str) and spec == "auto":
        return [_frozen(default_encoder(modality, cache), head, None)]
    if spec is None:
        return []
    out = []
    for position, (name, item) in enumerate(_named_items(spec, "candidates")):
        where = f"candidates[{name!r}]" if name is not None else f"candidates[{position}]"
        if isinstance(item, str) and item == "auto":
            out.append(_frozen(default_encoder(modality, cache), head, name))
        elif isinstance(item, (str, os.PathLike)):
            out.append(_frozen(encoder_for(os.fspath(item), modality, cache), head, name))
        elif _is_predictor(item):
            _check_task(item, task, where)
            from sklearn.base import clone

            out.append(Candidate(name or _estimator_name(item), USER, clone(item)))
        elif hasattr(item, "fit") and hasattr(item, "transform"):
            out.append(_frozen(item, head, name))
        else:
            raise InvalidInputError(
                f"{where} is a {type(item).__name__}; expected a model name (str), a frozen "
                "encoder or other transformer (a linear head is added), or a classifier / "
                "regressor (used as it is)."
            )
    return out


def _estimator_name(estimator) -> str:
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        return " + ".join(type(step).__name__ for _, step in estimator.steps)
    return type(estimator).__name__


def baseline_candidates(spec, *, modality: str, task: str, head) -> list[Candidate]:
    """From-scratch baselines: TF-IDF words / chars + head, or downscaled pixels + head."""
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline

    if spec is None or (isinstance(spec, (list, tuple, dict)) and not spec):
        raise InvalidInputError(
            "baselines must name at least one from-scratch model: every candidate is "
            "compared with the best of them. Use baselines='auto' for the defaults."
        )
    if isinstance(spec, str) and spec == "auto":
        out = []
        for name, features in default_baseline_features(modality):
            label = f"{name} + {head_label(head)}"
            out.append(
                Candidate(
                    label,
                    FROM_SCRATCH,
                    make_pipeline(clone(features), clone(head)),
                    features=features,
                )
            )
        return out
    out = []
    for position, (name, item) in enumerate(_named_items(spec, "baselines")):
        where = f"baselines[{name!r}]" if name is not None else f"baselines[{position}]"
        if _is_predictor(item):
            _check_task(item, task, where)
            features = None
            steps = getattr(item, "steps", None)
            if steps and len(steps) > 1:  # a pipeline: its feature steps can be combined
                from sklearn.pipeline import Pipeline

                features = Pipeline(steps[:-1]) if len(steps) > 2 else steps[0][1]
            out.append(
                Candidate(
                    name or _estimator_name(item), FROM_SCRATCH, clone(item), features=features
                )
            )
        elif hasattr(item, "fit") and hasattr(item, "transform"):
            label = name or f"{_estimator_name(item)} + {head_label(head)}"
            pipe = make_pipeline(clone(item), clone(head))
            out.append(Candidate(label, FROM_SCRATCH, pipe, features=clone(item)))
        else:
            raise InvalidInputError(
                f"{where} is a {type(item).__name__}; expected a classifier / regressor or a "
                "transformer (a linear head is added)."
            )
    return out


def default_baseline_features(modality: str) -> list[tuple[str, Any]]:
    """(name, unfitted feature step) of the default from-scratch baselines."""
    if modality == "text":
        from sklearn.feature_extraction.text import TfidfVectorizer

        return [
            ("TF-IDF words 1-2", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            (
                "TF-IDF chars 2-5",
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
            ),
        ]
    from sklearn.preprocessing import FunctionTransformer

    pixels = FunctionTransformer(downscaled_pixels, kw_args={"size": PIXEL_SIZE})
    return [(f"pixels {PIXEL_SIZE}x{PIXEL_SIZE}", pixels)]


def combined_candidate(pretrained: Candidate, baseline: Candidate, head) -> Candidate | None:
    """Pretrained features side by side with the best baseline's, one linear head."""
    from sklearn.base import clone
    from sklearn.pipeline import FeatureUnion, Pipeline

    if pretrained.encoder is None or baseline.features is None:
        return None
    union = FeatureUnion(
        [("pretrained", clone(pretrained.encoder)), ("from_scratch", clone(baseline.features))]
    )
    pipe = Pipeline([("features", union), ("head", clone(head))])
    base = baseline.name.rsplit(" + ", 1)[0]
    # The pretrained candidate's own name (a user's dict key too), less its head.
    label = pretrained.name.removesuffix(f" + {head_label(head)}")
    name = f"{label} & {base} + {head_label(head)}"
    return Candidate(name, COMBINED, pipe, encoder=clone(pretrained.encoder))


def finetune_candidates(
    pretrained: list[Candidate], params: dict, *, modality: str, task: str, random_state
) -> list[Candidate]:
    """A fine-tuning estimator for each frozen encoder's model."""
    from sktransfer import finetune

    cls = {
        ("text", "classification"): finetune.TextClassifier,
        ("text", "regression"): finetune.TextRegressor,
        ("image", "classification"): finetune.ImageClassifier,
        ("image", "regression"): finetune.ImageRegressor,
    }[(modality, task)]
    out = []
    for cand in pretrained:
        model = getattr(cand.encoder, "model", None)
        if cand.kind != PRETRAINED or not isinstance(model, (str, os.PathLike)):
            continue
        settings = {"random_state": random_state, **params, "model": os.fspath(model)}
        weights = getattr(cand.encoder, "weights", None)
        if weights is not None and "weights" in cls().get_params():
            settings.setdefault("weights", weights)
        estimator = cls(**settings)
        out.append(Candidate(f"{_encoder_name(cand.encoder)} fine-tuned", FINE_TUNED, estimator))
    return out


def fewshot_candidates(
    pretrained: list[Candidate], params: dict, *, modality: str, task: str, random_state
) -> list[Candidate]:
    """A :class:`~sktransfer.FewShotTextClassifier` for each frozen text encoder's model."""
    if modality != "text" or task != "classification":
        raise InvalidInputError(
            f"fewshot=True: the few-shot classifier classifies texts, but this report is "
            f"{modality} {task}. Leave fewshot out (finetune=True fine-tunes for any task)."
        )
    from sktransfer._fewshot import FewShotTextClassifier

    out = []
    for cand in pretrained:
        model = getattr(cand.encoder, "model", None)
        if cand.kind != PRETRAINED or not isinstance(model, (str, os.PathLike)):
            continue
        settings = {"random_state": random_state, "verbose": 0, **params}
        max_length = getattr(cand.encoder, "max_length", None)
        if max_length is not None:
            settings.setdefault("max_length", max_length)
        settings["model"] = os.fspath(model)
        unknown = sorted(set(settings) - set(FewShotTextClassifier().get_params()))
        if unknown:
            raise InvalidInputError(
                f"fewshot={params!r}: {', '.join(map(repr, unknown))} is not a parameter of "
                "FewShotTextClassifier; see its docstring for the ones there are."
            )
        estimator = FewShotTextClassifier(**settings)
        out.append(Candidate(f"{_encoder_name(cand.encoder)} few-shot", FEW_SHOT, estimator))
    return out


def unique_names(candidates: list[Candidate]) -> None:
    """Make the candidates' names unique (a second "x" becomes "x (2)")."""
    seen: dict[str, int] = {}
    for cand in candidates:
        count = seen.get(cand.name, 0) + 1
        seen[cand.name] = count
        if count > 1:
            cand.name = f"{cand.name} ({count})"
