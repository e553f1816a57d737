"""Loader for the VADER (Hutto & Gilbert, ICWSM 2014) human-rated sentences."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from sktransfer._optional import import_optional
from sktransfer.datasets import _base
from sktransfer.exceptions import DataNotFoundError

__all__ = ["load_vader", "VADER_DOMAINS"]

logger = logging.getLogger(__name__)

# The ratings ship inside the source distribution of vaderSentiment 3.3.2 on
# PyPI, which is pinned by its SHA-256 (the digest PyPI publishes for it).
SDIST_NAME = "vaderSentiment-3.3.2.tar.gz"
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/77/8c/"
    "4a48c10a50f750ae565e341e697d74a38075a3e43ff0df6f1ab72e186902/" + SDIST_NAME
)
PYPI_JSON_URL = "https://pypi.org/pypi/vaderSentiment/3.3.2/json"
PIP_DOWNLOAD_COMMAND = "pip download --no-deps --no-binary :all: vaderSentiment==3.3.2"

_INNER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"

# domain -> (ground-truth file inside the inner archive, number of sentences in it)
_DOMAIN_FILES = {
    "tweets": ("hutto_ICWSM_2014/tweets_GroundTruth.txt", 4200),
    "movie_reviews": ("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", 10605),
    "product_reviews": ("hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt", 3708),
    "nyt_editorials": ("hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt", 5190),
}
VADER_DOMAINS = tuple(_DOMAIN_FILES)

_FOLDER = "vader"
# Bump the version when the cache layout changes, so stale caches are ignored.
_CACHE_NAME = "vader_icwsm2014_v1.tsv"
_CACHE_HEADER = "domain\tid\tscore\ttext"

_SCORE_RANGE = (-4.0, 4.0)

_DESCR = """\
VADER sentiment intensity data set (Hutto & Gilbert, ICWSM 2014)
----------------------------------------------------------------

23,703 English sentences, each with the mean of at least 20 human ratings of
its sentiment on a scale from -4 (extremely negative) to +4 (extremely
positive), in four domains:

=================  =========  ====================================================
domain             sentences  source
=================  =========  ====================================================
tweets                 4,200  tweet-like texts: 4,000 modelled on public tweets,
                              200 written to test grammar cues
movie_reviews         10,605  sentences from Rotten Tomatoes reviews
                              (Pang & Lee, 2004)
product_reviews        3,708  sentences from 309 Amazon customer reviews
                              (Hu & Liu, 2004)
nyt_editorials         5,190  sentences from 500 New York Times editorials
=================  =========  ====================================================

Text is as in the original files (including HTML entities such as ``&amp;``
in tweets and doubled apostrophes used as quotes), with surrounding
whitespace removed. ``ids`` are the original identifiers; they are unique
only within a domain.

The data is taken from ``additional_resources/hutto_ICWSM_2014.tar.gz`` in
the source archive of vaderSentiment 3.3.2 on PyPI (MIT licence).

Citation: Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious
Rule-based Model for Sentiment Analysis of Social Media Text. Eighth
International Conference on Weblogs and Social Media (ICWSM-14). Ann Arbor,
MI, June 2014.
"""


def _guidance(folder: Path) -> str:
    return (
        "To get the VADER data, either call load_vader(download=True) on a machine that can "
        "reach PyPI, or download the vaderSentiment 3.3.2 source archive yourself:\n"
        f"    {PIP_DOWNLOAD_COMMAND} -d {folder}\n"
        f"(or copy {SDIST_NAME} from another machine into {folder}/)."
    )


def _sdist_urls() -> Iterator[str]:
    """Addresses of the source archive, the pinned one first."""
    yield SDIST_URL
    # The pinned address is permanent on PyPI; asking the JSON API as well only
    # helps where it is served elsewhere (e.g. an index mirror).
    try:
        with _base._urlopen(PYPI_JSON_URL, _base.DOWNLOAD_TIMEOUT) as response:
            release = json.load(response)
    except (OSError, ValueError) as error:
        logger.info("PyPI JSON API not reachable (%s)", error)
        return
    files = release.get("urls", []) if isinstance(release, dict) else []
    for file_info in files:
        if (
            file_info.get("packagetype") == "sdist"
            and file_info.get("digests", {}).get("sha256") == SDIST_SHA256
            and file_info.get("url") != SDIST_URL
        ):
            yield file_info["url"]


Row = tuple[str, str, float, str]  # (domain, id, score, sentence)


def _check_score(score: float) -> bool:
    return _SCORE_RANGE[0] <= score <= _SCORE_RANGE[1]


def _parse_ground_truth(raw: bytes, domain: str) -> list[Row]:
    """Rows of one ``*_GroundTruth.txt`` file (lines of id, score, sentence)."""
    # The files are UTF-8 with CRLF line ends. Decoding is strict on purpose:
    # the archive is pinned by checksum, so an undecodable byte means a bug
    # here, not data to skip. "-sig" drops a byte-order mark if present.
    text = raw.decode("utf-8-sig")
    # Split on line ends only; str.splitlines would also split on characters
    # such as U+2028 or U+0085 that may legitimately occur inside a sentence.
    lines = text.replace("\r\n", "\n").split("\n")
    rows = []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3:
            raise ValueError(f"{domain} line {line_number}: expected 3 tab-separated fields")
        sentence_id, score_text, sentence = fields
        score = float(score_text)
        if not _check_score(score):
            raise ValueError(f"{domain} line {line_number}: score {score} outside [-4, 4]")
        # A dozen sentences start or end with stray spaces; they carry no meaning.
        rows.append((domain, sentence_id.strip(), score, sentence.strip()))
    return rows


def _parse_sdist(sdist: Path) -> list[Row]:
    inner_archive = _base.read_tar_member(sdist, _INNER_ARCHIVE)
    rows = []
    for domain, (member, expected_count) in _DOMAIN_FILES.items():
        raw = _base.read_tar_member(io.BytesIO(inner_archive), member)
        domain_rows = _parse_ground_truth(raw, domain)
        if len(domain_rows) != expected_count:
            raise ValueError(
                f"{member}: expected {expected_count} sentences, found {len(domain_rows)}"
            )
        rows.extend(domain_rows)
    return rows


def _write_cache(path: Path, rows: list[Row]) -> None:
    # Sentences contain neither tabs nor line breaks (they were tab-separated
    # lines to begin with), so a plain TSV round-trips them exactly; repr()
    # of a float reads back as the identical float.
    body = "\n".join(
        f"{domain}\t{sentence_id}\t{score!r}\t{sentence}"
        for domain, sentence_id, score, sentence in rows
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _base.atomic_write_text(path, f"{_CACHE_HEADER}\n{body}\n")


def _read_cache(path: Path) -> list[Row] | None:
    """Rows of the parsed cache, or ``None`` when it is missing or not as written.

    A damaged or truncated cache is not an error: it is rebuilt from the archive.
    """
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if lines[0] != _CACHE_HEADER or lines[-1] != "":
        return None
    rows = []
    counts = dict.fromkeys(VADER_DOMAINS, 0)
    for line in lines[1:-1]:
        fields = line.split("\t", 3)
        if len(fields) != 4 or fields[0] not in counts:
            return None
        domain, sentence_id, score_text, sentence = fields
        try:
            score = float(score_text)
        except ValueError:
            return None
        if not _check_score(score):
            return None
        counts[domain] += 1
        rows.append((domain, sentence_id, score, sentence))
    if any(counts[domain] != expected for domain, (_, expected) in _DOMAIN_FILES.items()):
        return None
    return rows


def _ensure_sdist(folder: Path, download: bool) -> Path:
    """Path of a verified source archive in ``folder``, downloading it if allowed."""
    sdist = folder / SDIST_NAME
    if sdist.is_file():
        actual = _base.sha256_file(sdist)
        if actual == SDIST_SHA256:
            return sdist
        problem = (
            f"{sdist} is corrupt or not the expected file "
            f"(SHA-256 {actual}, expected {SDIST_SHA256})."
        )
        if not download:
            raise DataNotFoundError(f"{problem} Delete it and get it again.\n\n{_guidance(folder)}")
        warnings.warn(f"{problem} Downloading it again.", UserWarning, stacklevel=3)
    elif not download:
        raise DataNotFoundError(
            f"The VADER data was not found in {folder} and download=False.\n\n{_guidance(folder)}"
        )
    return _base.download_file(
        _sdist_urls(),
        sdist,
        sha256=SDIST_SHA256,
        description=f"the VADER data ({SDIST_NAME})",
        guidance=_guidance(folder),
    )


def _not_installed_reason(data_home: _base.PathLike | None = None) -> str | None:
    """Why ``load_vader(data_home=data_home)`` would have to download, or ``None``.

    Only looks for the parsed copy or the archive (nothing is read or created);
    used to run examples that need the real data only where it is installed.
    """
    (folder,) = _base.search_folders(data_home, _FOLDER)
    if (folder / _CACHE_NAME).is_file() or (folder / SDIST_NAME).is_file():
        return None
    return f"the VADER data is not installed: neither {_CACHE_NAME} nor {SDIST_NAME} in {folder}"


def _check_domains(domains: str | Iterable[str] | None) -> list[str]:
    if domains is None:
        return list(VADER_DOMAINS)
    requested = [domains] if isinstance(domains, str) else list(domains)
    unknown = [name for name in requested if name not in _DOMAIN_FILES]
    if unknown:
        raise ValueError(
            f"Unknown VADER domain(s) {unknown}; valid domains are {list(VADER_DOMAINS)}."
        )
    if not requested:
        raise ValueError(f"domains must name at least one of {list(VADER_DOMAINS)}.")
    # Canonical order, whatever order was asked for, so results are deterministic.
    return [name for name in VADER_DOMAINS if name in requested]


def load_vader(
    *,
    data_home: _base.PathLike | None = None,
    domains: str | Iterable[str] | None = None,
    download: bool = True,
    as_frame: bool = False,
) -> Bunch:
    """Load the VADER human-rated sentences (Hutto & Gilbert, ICWSM 2014).

    23,703 English sentences from four domains (tweets, movie reviews, Amazon
    product reviews, New York Times editorials), each with the mean sentiment
    rating of at least 20 people on a scale from -4 to +4. Comparing domains
    makes it a small benchmark for domain shift in sentiment regression.

    The data is looked for, in order: a parsed copy in
    ``<data folder>/vader/``; the vaderSentiment 3.3.2 source archive
    (``vaderSentiment-3.3.2.tar.gz``) in that folder, verified by SHA-256;
    otherwise, if ``download`` is true, that archive is downloaded from PyPI.
    The parsed copy is then saved, so later calls are fast. The data folder is
    ``data_home``, else the ``SKTRANSFER_DATA`` environment variable, else
    ``~/sktransfer_data``; no other place is read. Arguments are checked
    before any file is looked for.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Data folder; see :func:`get_data_home` (``SKTRANSFER_DATA`` or
        ``~/sktransfer_data`` by default).
    domains : str or iterable of str, default=None
        Keep only these domains, among ``"tweets"``, ``"movie_reviews"``,
        ``"product_reviews"`` and ``"nyt_editorials"``. ``None`` keeps all.
        Sentences always come in that domain order, then in file order.
    download : bool, default=True
        Whether to download the archive from PyPI when it is not found locally.
    as_frame : bool, default=False
        If true, also return a pandas DataFrame ``frame`` (needs pandas), and
        make ``data`` and ``target`` its columns.

    Returns
    -------
    sklearn.utils.Bunch
        With the following attributes:

        data : list of str, or pandas.Series if ``as_frame``
            The sentences.
        target : numpy.ndarray of float64, shape (n,), or pandas.Series if ``as_frame``
            Mean human sentiment rating, in [-4, 4].
        domain : numpy.ndarray of str, shape (n,)
            Domain of each sentence.
        ids : numpy.ndarray of str, shape (n,)
            Original sentence identifiers (unique within a domain only).
        frame : pandas.DataFrame or None
            Columns ``text``, ``score`` and ``domain`` if ``as_frame``, else ``None``.
        DESCR : str
            Description of the data set and its citation.

    Raises
    ------
    DataNotFoundError
        If the data is not available locally and ``download`` is false, the
        local archive is corrupt and ``download`` is false, or the download
        fails. The message says how to get the data.
    ValueError
        If ``domains`` names an unknown domain or none.
    TypeError
        If ``data_home`` is not a path, or ``download`` or ``as_frame`` not a bool.
    ImportError
        If ``as_frame`` is true and pandas is not installed.

    Notes
    -----
    Please cite Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious
    Rule-based Model for Sentiment Analysis of Social Media Text. ICWSM-14.

    Examples
    --------
    >>> from sktransfer.datasets import load_vader
    >>> vader = load_vader()
    >>> len(vader.data), vader.target.dtype
    (23703, dtype('float64'))
    >>> tweets = load_vader(domains=["tweets"])
    >>> len(tweets.data)
    4200
    >>> tweets.data[1], float(tweets.target[1])
    ('Yay. Another good phone interview.', 1.443298969)
    >>> frame = load_vader(domains="product_reviews", as_frame=True).frame
    >>> frame.shape, list(frame.columns)
    ((3708, 3), ['text', 'score', 'domain'])
    """
    selected = _check_domains(domains)
    _base.check_data_home(data_home)
    _base.check_bool(download, "download")
    _base.check_bool(as_frame, "as_frame")
    if as_frame:
        pandas = import_optional("pandas", "load_vader(as_frame=True)")
    (folder,) = _base.search_folders(data_home, _FOLDER)
    cache = folder / _CACHE_NAME

    rows = _read_cache(cache)
    if rows is None:
        sdist = _ensure_sdist(folder, download)
        rows = _parse_sdist(sdist)
        _write_cache(cache, rows)
        logger.info("Saved the parsed VADER data to %s", cache)

    rows = [row for row in rows if row[0] in selected]
    domain = np.array([row[0] for row in rows], dtype=str)
    ids = np.array([row[1] for row in rows], dtype=str)
    target = np.array([row[2] for row in rows], dtype=np.float64)
    data = [row[3] for row in rows]

    frame = None
    if as_frame:
        frame = pandas.DataFrame({"text": data, "score": target, "domain": domain})
        data, target = frame["text"], frame["score"]
    return Bunch(data=data, target=target, domain=domain, ids=ids, frame=frame, DESCR=_DESCR)
