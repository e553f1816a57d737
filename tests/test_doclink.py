"""The HTML representation links each estimator to the section of our docs that describes it."""

from __future__ import annotations

import email.message
import inspect
import re
from importlib import metadata
from pathlib import Path

import pytest
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_html_repr

import sktransfer
from sktransfer import _doclink

DOCS = Path(__file__).resolve().parents[1] / "docs"
BASE = "https://docs.example.org/sktransfer"


def _public_estimators():
    return [
        getattr(sktransfer, name)
        for name in sktransfer.__all__
        if inspect.isclass(getattr(sktransfer, name))
        and issubclass(getattr(sktransfer, name), BaseEstimator)
    ]


def _installed_with(urls):
    """``importlib.metadata.metadata`` for an installed sktransfer declaring ``urls``."""

    def fake(name):
        assert name == "sktransfer"
        message = email.message.Message()
        for label, url in urls:
            message["Project-URL"] = f"{label}, {url}"
        return message

    return fake


@pytest.fixture
def declared_docs(monkeypatch):
    monkeypatch.setattr(
        metadata,
        "metadata",
        _installed_with([("Source", "https://src.example.org"), ("Documentation", BASE + "/")]),
    )
    _doclink.documentation_url.cache_clear()
    yield
    _doclink.documentation_url.cache_clear()


@pytest.mark.parametrize("cls", _public_estimators(), ids=lambda c: c.__name__)
def test_the_link_goes_to_the_estimators_own_section(declared_docs, cls):
    link = cls()._get_doc_link()
    assert link == f"{BASE}/{_doclink.DOC_SECTIONS[cls.__name__]}"
    assert link in estimator_html_repr(make_pipeline(cls(), LogisticRegression()))


def test_without_a_declared_address_there_is_no_link(monkeypatch):
    # No invented address: an estimator whose docs have no address draws no link.
    monkeypatch.setattr(
        metadata, "metadata", _installed_with([("Source", "https://src.example.org")])
    )
    _doclink.documentation_url.cache_clear()
    try:
        assert sktransfer.TextEncoder()._get_doc_link() == ""
    finally:
        _doclink.documentation_url.cache_clear()


def test_a_users_subclass_is_not_linked_to_our_page(declared_docs):
    class MyEncoder(sktransfer.TextEncoder):
        pass

    # scikit-learn's rule: estimators outside the package get no link.
    assert MyEncoder()._get_doc_link() == ""


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings (lower case, punctuation dropped, spaces -> -)."""
    found = set()
    for line in page.read_text().splitlines():
        match = re.match(r"#+\s+(.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            found.add(slug)
    return found


def test_every_public_estimator_has_a_section_that_exists():
    for cls in _public_estimators():
        assert cls.__name__ in _doclink.DOC_SECTIONS, f"{cls.__name__} has no docs section"
    for name, section in _doclink.DOC_SECTIONS.items():
        page, _, anchor = section.partition("#")
        assert (DOCS / page).is_file(), f"{name}: docs/{page} does not exist"
        if anchor:
            assert anchor in _anchors(DOCS / page), f"{name}: no heading #{anchor} in docs/{page}"
