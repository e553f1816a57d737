"""Prompts (instructions) that some text models expect in front of every text.

E5 models read "query: " / "passage: ", BGE models an instruction in front of
search queries; sentence-transformers stores such prompts in a model's
``config_sentence_transformers.json`` (``prompts``, ``default_prompt_name``).
:class:`sktransfer.TextEncoder` takes them as ``prompt`` (the text itself) or
``prompt_name`` (a key of the model's ``prompts``), as ``SentenceTransformer.encode``
does.
"""

from __future__ import annotations

from sktransfer.exceptions import InvalidInputError


def check_prompt_params(prompt: str | None, prompt_name: str | None) -> None:
    """Refuse ``prompt`` and ``prompt_name`` together: which one wins would be a guess."""
    if prompt is not None and prompt_name is not None:
        raise ValueError(
            f"TextEncoder got both prompt={prompt!r} and prompt_name={prompt_name!r}; pass one "
            "of them (prompt is the text itself, prompt_name a key of the model's prompts)."
        )


def resolve_prompt(network, prompt: str | None, prompt_name: str | None) -> str | None:
    """The text put in front of every input, or ``None``.

    ``prompt`` wins; else the model's prompt called ``prompt_name``; else the
    model's own default prompt (``default_prompt_name``), as
    ``SentenceTransformer.encode`` does. An empty prompt is no prompt.

    Examples
    --------
    >>> class Model:
    ...     prompts = {"query": "query: ", "passage": "passage: "}
    ...     default_prompt_name = None
    >>> resolve_prompt(Model(), None, "passage")
    'passage: '
    >>> resolve_prompt(Model(), "Represent this: ", None)
    'Represent this: '
    >>> resolve_prompt(Model(), None, None) is None
    True
    """
    check_prompt_params(prompt, prompt_name)
    if prompt is not None:
        return prompt or None
    prompts = dict(getattr(network, "prompts", None) or {})
    name = prompt_name if prompt_name is not None else getattr(network, "default_prompt_name", None)
    if name is None:
        return None
    if name not in prompts:
        known = ", ".join(repr(k) for k in prompts) or "none"
        raise InvalidInputError(
            f"prompt_name={name!r} is not one of this model's prompts (it has: {known}). "
            "Pass the prompt text itself with prompt='...' (e.g. prompt='query: ' for E5 "
            "models), or a name from that list."
        )
    return prompts[name] or None


def prompt_tokens(network, prompt: str | None) -> int:
    """Tokens the prompt adds to every text (0 without a prompt or a tokenizer)."""
    tokenizer = getattr(network, "tokenizer", None)
    if not prompt or tokenizer is None or not callable(tokenizer):
        return 0
    try:
        return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    except Exception:  # noqa: BLE001 - a tokenizer we cannot drive: nothing reserved
        return 0
