"""The model card a saved fine-tuner carries: ``README.md`` in the folder ``save`` writes.

It says what the model does and where it came from -- the task and its labels,
how much data trained it, every parameter, the validation scores of each epoch,
the base model and that model's license -- in place of the base model's own
card, which describes another model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

UNKNOWN = "unknown"

# Sources whose weights are not the ones a timm configuration describes.
_NOT_THE_ARCHITECTURES_WEIGHTS = frozenset({"file", "random-init"})

# The license line of a Hugging Face model card's YAML front matter.
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---", flags=re.S)
_LICENSE = re.compile(r"^license:\s*['\"]?([^'\"\n#]+?)['\"]?\s*$", flags=re.M)


def base_model_license(estimator) -> str:
    """The base model's license as its metadata states it, or "unknown".

    Images: the ``license`` of the timm model's pretrained configuration
    ("unknown" for a ``weights=`` file or random weights). Text:
    the ``license:`` of the model card (``README.md`` front matter) in the
    folder the model was loaded from, or in the Hugging Face cache for a Hub
    id. Nothing is downloaded.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> base_model_license(SimpleNamespace(model_reference_="/no/such/folder"))
    'unknown'
    """
    source = getattr(estimator, "model_source_", None)
    if source in _NOT_THE_ARCHITECTURES_WEIGHTS:
        # A weights file of the user's, or random weights: timm's configuration
        # names the license of the architecture's published weights, not these.
        return UNKNOWN
    body = getattr(getattr(estimator, "_net", None), "body", None)
    config = getattr(body, "pretrained_cfg", None) or {}
    if isinstance(config, dict) and config.get("license"):
        return str(config["license"])
    card = _base_card(getattr(estimator, "model_reference_", None))
    if card is None:
        return UNKNOWN
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return UNKNOWN
    front = _FRONT_MATTER.match(text)
    found = _LICENSE.search(front.group(1)) if front else None
    return found.group(1).strip() if found else UNKNOWN


def _base_card(reference) -> Path | None:
    """The base model's README.md: in its folder, or in the Hugging Face cache."""
    if not isinstance(reference, (str, os.PathLike)):
        return None
    folder = Path(reference)
    if folder.is_dir():
        card = folder / "README.md"
        return card if card.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(reference), "README.md")
    except Exception:  # not a repository id, no cache: nothing to read
        return None
    return Path(cached) if isinstance(cached, str) else None


def model_card(estimator) -> str:
    """The Markdown model card of a fitted fine-tuner.

    Examples
    --------
    >>> from sktransfer import TextClassifier
    >>> clf = TextClassifier(trainable_blocks=0, epochs=1, random_state=0)
    >>> clf = clf.fit(["good", "great", "bad", "awful"], [1, 1, 0, 0])
    >>> card = model_card(clf)
    >>> print(card.splitlines()[0])
    # TextClassifier fine-tuned from sentence-transformers/all-MiniLM-L6-v2
    >>> "- License: apache-2.0" in card
    True
    """
    import sktransfer

    name = type(estimator).__name__
    kind = "texts" if name.startswith("Text") else "images"
    lines = [
        f"# {name} fine-tuned from {estimator.model}",
        "",
        f"Written by sktransfer {sktransfer.__version__} (`{name}.save`). Load it with "
        "`sktransfer.finetune.load(folder)`: the folder holds `config.json` (parameters and "
        "fitted attributes) and safetensors weights, and loading runs no code from it.",
        "",
        "## Task",
        "",
    ]
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        labels = ", ".join(f"`{_plain(c)}`" for c in classes)
        lines.append(f"Classification of {kind} into {len(classes)} classes: {labels}.")
    else:
        n_outputs = int(getattr(estimator, "n_outputs_", 1))
        targets = "one target" if n_outputs == 1 else f"{n_outputs} targets"
        lines.append(f"Regression of {kind} onto {targets}.")
    lines += ["", "## Training data", ""]
    n_train = getattr(estimator, "n_train_samples_", None)
    n_valid = getattr(estimator, "n_validation_samples_", None)
    if n_train is None:
        lines.append(f"Size: {UNKNOWN} (fitted by a version that did not record it).")
    else:
        total = n_train + (n_valid or 0)
        held = f", of which {n_valid} held out for validation" if n_valid else ""
        lines.append(f"{total} samples{held}; {n_train} trained on.")
    lines += ["", "## Validation", ""]
    lines += _history_table(estimator)
    lines += [
        "",
        "## Base model",
        "",
        f"- Model: `{estimator.model}`",
        f"- Loaded from: `{estimator.model_reference_}` ({estimator.model_source_})",
        f"- License: {base_model_license(estimator)}",
        "",
        "The license of the base model applies to these weights too; check it before you "
        "share or deploy the model.",
        "",
        "## Parameters",
        "",
        "| parameter | value |",
        "|---|---|",
    ]
    for key, value in sorted(estimator.get_params().items()):
        lines.append(f"| `{key}` | `{value!r}` |")
    return "\n".join(lines) + "\n"


def _history_table(estimator) -> list[str]:
    from sktransfer.finetune._plot import VALIDATION_LABELS

    history = estimator.history_
    metric = estimator.validation_metric_
    best = estimator.best_epoch_
    if metric is None:
        lines = ["No validation split (`early_stopping=False`): training losses only.", ""]
        header, rule = "| epoch | training loss |", "|---|---|"
    else:
        label = VALIDATION_LABELS.get(metric, f"validation {metric}")
        kept = f" The weights are those of epoch {best}." if best is not None else ""
        lines = [f"Validation metric: {metric}, on the held-out split.{kept}", ""]
        header, rule = f"| epoch | training loss | {label} |", "|---|---|---|"
    lines += [header, rule]
    for record in history:
        row = f"| {record['epoch']} | {record['train_loss']:.4f} |"
        if metric is not None:
            score = record.get("valid_score")
            row += f" {score:.4f} |" if score is not None else " - |"
        lines.append(row)
    return lines


def _plain(label):
    return label.item() if hasattr(label, "item") else label
