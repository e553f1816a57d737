"""The "?" link of an estimator's HTML representation (Jupyter's diagram).

scikit-learn draws a link to each estimator's documentation in the HTML
representation when the estimator says where it is (``_doc_link_module``,
``_doc_link_template``, ``_doc_link_url_param_generator``). Ours point at the
section of our documentation that describes the estimator: the page and the
heading's anchor in ``DOC_SECTIONS``, under the ``Documentation`` address the
installed package declares (``[project.urls]`` in ``pyproject.toml``). A
package that declares no such address draws no link, as scikit-learn does for
estimators whose documentation it cannot place, rather than a link to a page
that does not exist.
"""

from __future__ import annotations

from functools import cache

# class name -> the page of docs/ and the anchor of the heading that describes it
DOC_SECTIONS = {
    "TextEncoder": "encoders.md#textencoder",
    "ImageEncoder": "encoders.md#imageencoder",
    "TextClassifier": "finetuning.md#the-four-estimators",
    "TextRegressor": "finetuning.md#the-four-estimators",
    "ImageClassifier": "finetuning.md#the-four-estimators",
    "ImageRegressor": "finetuning.md#the-four-estimators",
    "FewShotTextClassifier": "fewshot.md",
}


@cache
def documentation_url() -> str:
    """The ``Documentation`` address of the installed package, or ``""`` when it has none."""
    from importlib import metadata

    try:
        urls = metadata.metadata("sktransfer").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return ""
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("documentation", "docs") and url.strip():
            return url.strip().rstrip("/")
    return ""


def doc_link(cls: type) -> str:
    """The address of the section that documents ``cls`` (its nearest documented base)."""
    base = documentation_url()
    if not base:
        return ""
    for klass in cls.__mro__:
        section = DOC_SECTIONS.get(klass.__name__)
        if section is not None and klass.__module__.startswith("sktransfer"):
            return f"{base}/{section}"
    return ""


class DocLinkMixin:
    """Point the HTML representation's documentation link at our docs (see module doc)."""

    _doc_link_module = "sktransfer"
    _doc_link_template = "{url}"

    def _doc_link_url_param_generator(self):
        return {"url": doc_link(type(self))}
