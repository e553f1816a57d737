"""Tests of sktransfer.datasets on the real VADER and Fashion-MNIST files.

The VADER source archive is fetched once per session (copied from the default
data home when a verified copy is already there). Every other test that
exercises downloading replaces the network with ``fake_network``, so it runs
offline and never touches the user's data home.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import sys
import tarfile
from pathlib import Path
from urllib.error import HTTPError, URLError

import numpy as np
import pytest

from sktransfer.datasets import (
    _base,
    _fashion_mnist,
    _vader,
    clear_data_home,
    get_data_home,
    load_fashion_mnist,
    load_vader,
)
from sktransfer.exceptions import DataNotFoundError

VADER_COUNTS = {
    "tweets": 4200,
    "movie_reviews": 10605,
    "product_reviews": 3708,
    "nyt_editorials": 5190,
}
VADER_TOTAL = 23703

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# --------------------------------------------------------------------------- fixtures


def default_data_home() -> Path:
    """The default data home, computed without creating it (unlike get_data_home)."""
    return Path(os.environ.get("SKTRANSFER_DATA") or "~/sktransfer_data").expanduser()


@pytest.fixture(scope="session")
def vader_home(tmp_path_factory) -> Path:
    """A data home holding the real, verified vaderSentiment 3.3.2 source archive."""
    home = tmp_path_factory.mktemp("vader_home")
    folder = home / "vader"
    folder.mkdir()
    default_copy = default_data_home() / "vader" / _vader.SDIST_NAME
    if default_copy.is_file() and _base.sha256_file(default_copy) == _vader.SDIST_SHA256:
        shutil.copy(default_copy, folder / _vader.SDIST_NAME)
    try:
        load_vader(data_home=home)
    except DataNotFoundError as error:  # pragma: no cover - only without PyPI access
        pytest.skip(f"VADER data unavailable here: {error}")
    return home


@pytest.fixture(scope="session")
def vader(vader_home):
    return load_vader(data_home=vader_home, download=False)


@pytest.fixture(scope="session")
def sdist_bytes(vader_home) -> bytes:
    return (vader_home / "vader" / _vader.SDIST_NAME).read_bytes()


class FakeNetwork:
    """Stands in for ``_base._urlopen``: serves given bytes, fails for other URLs."""

    def __init__(self, served: dict[str, bytes] | None = None):
        self.served = dict(served or {})
        self.requested: list[str] = []

    def __call__(self, url, timeout):
        self.requested.append(url)
        if url in self.served:
            return io.BytesIO(self.served[url])
        raise URLError("Temporary failure in name resolution")


@pytest.fixture
def fake_network(monkeypatch):
    """Replace the network with a FakeNetwork; add URLs to ``.served`` to serve them."""
    network = FakeNetwork()
    monkeypatch.setattr(_base, "_urlopen", network)
    return network


def texts_where(bunch, mask) -> list[str]:
    return [text for text, kept in zip(bunch.data, mask, strict=True) if kept]


def leftover_partials(folder: Path) -> list[Path]:
    return list(folder.glob("*.part"))


# --------------------------------------------------------------------------- data home


def test_get_data_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("SKTRANSFER_DATA", raising=False)
    assert get_data_home() == tmp_path / "user" / "sktransfer_data"

    monkeypatch.setenv("SKTRANSFER_DATA", "")  # empty means unset
    assert get_data_home() == tmp_path / "user" / "sktransfer_data"

    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "from_env"))
    assert get_data_home() == tmp_path / "from_env"
    assert get_data_home(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert get_data_home("~/tilde") == tmp_path / "user" / "tilde"
    for folder in ("user/sktransfer_data", "from_env", "explicit", "user/tilde"):
        assert (tmp_path / folder).is_dir()


def test_clear_data_home_removes_everything(tmp_path):
    home = get_data_home(tmp_path / "data")
    (home / "vader").mkdir()
    (home / "vader" / "cached.tsv").write_text("x")
    clear_data_home(home)
    assert not home.exists()


# --------------------------------------------------------------------------- VADER data


def test_vader_counts_per_domain_and_order(vader):
    assert len(vader.data) == len(vader.target) == len(vader.domain) == len(vader.ids)
    assert len(vader.data) == VADER_TOTAL
    names, counts = np.unique(vader.domain, return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist(), strict=True)) == VADER_COUNTS
    # Domains come in one block each, in the documented order.
    assert list(dict.fromkeys(vader.domain.tolist())) == list(VADER_COUNTS)
    block_starts = np.flatnonzero(vader.domain[1:] != vader.domain[:-1]) + 1
    np.testing.assert_array_equal(block_starts, np.cumsum(list(VADER_COUNTS.values()))[:-1])


def test_vader_types_and_score_range(vader):
    assert isinstance(vader.data, list) and all(isinstance(text, str) for text in vader.data)
    assert vader.target.dtype == np.float64 and vader.target.shape == (VADER_TOTAL,)
    assert vader.domain.dtype.kind == "U" and vader.ids.dtype.kind == "U"
    assert np.isfinite(vader.target).all()
    assert -4 <= vader.target.min() and vader.target.max() <= 4
    assert vader.target.min() == -3.875 and vader.target.max() == 3.94117647059
    nyt = vader.target[vader.domain == "nyt_editorials"]
    assert (nyt.min(), nyt.max()) == (-2.8, 2.8)
    assert vader.frame is None
    assert "Hutto" in vader.DESCR and "ICWSM" in vader.DESCR


@pytest.mark.parametrize(
    "domain, sentence_id, score, text",
    [
        (
            "tweets",
            "1",
            2.726315789,
            "Somehow I was blessed with some really amazing friends in my life who love me and "
            "send encouragement when I'm not feeling awesome. So lucky.",
        ),
        ("tweets", "4", 2.857142857, "LMAO, AMAZING!"),
        ("movie_reviews", "3", -0.6, "Effective but too tepid biopic"),
        (
            "movie_reviews",
            "264",
            1.36,
            "Münch's genuine insight makes the film's occasional overindulgence forgivable.",
        ),
        (
            "product_reviews",
            "1_1",
            -0.9,
            "troubleshooting ad-2500 and ad-2600 no picture scrolling b/w.",
        ),
        # The file has a leading space here; the loader strips it.
        ("product_reviews", "35_10", 1.7, "enjoy !"),
        (
            "nyt_editorials",
            "1_2",
            0.15,
            "Events include sprinting, broad jumping, yule log rolling, wreath tossing and a toy "
            "sack relay.",
        ),
    ],
)
def test_vader_sentences_match_the_files(vader, domain, sentence_id, score, text):
    (index,) = np.flatnonzero((vader.domain == domain) & (vader.ids == sentence_id))
    assert vader.data[index] == text
    assert vader.target[index] == score


def test_vader_ids_are_unique_within_each_domain(vader):
    for domain, count in VADER_COUNTS.items():
        assert len(set(vader.ids[vader.domain == domain])) == count
    last_ids = {domain: vader.ids[vader.domain == domain][-1] for domain in VADER_COUNTS}
    assert last_ids == {
        "tweets": "4200",
        "movie_reviews": "10605",
        "product_reviews": "309_8",
        "nyt_editorials": "500_9",
    }


def test_vader_text_oddities_are_counted(vader):
    """Pins what the loader does with the files' unusual characters.

    The files are valid UTF-8 (decoded strictly); non-ASCII text is accented
    names, en dashes, a pound sign. HTML entities are kept as published, and
    surrounding whitespace (on 12 sentences) is stripped.
    """
    texts = np.array(vader.data, dtype=object)

    def count(predicate):
        return {
            domain: sum(map(predicate, texts[vader.domain == domain])) for domain in VADER_COUNTS
        }

    assert count(lambda text: not text.isascii()) == {
        "tweets": 2,
        "movie_reviews": 133,
        "product_reviews": 0,
        "nyt_editorials": 0,
    }
    assert count(lambda text: re.search(r"&(amp|lt|gt);", text) is not None) == {
        "tweets": 162,
        "movie_reviews": 22,
        "product_reviews": 44,
        "nyt_editorials": 9,
    }
    assert not any("\ufffd" in text or "Ã" in text for text in texts)  # no mojibake
    assert all(text == text.strip() and text for text in texts)
    assert not any("\t" in text or "\n" in text or "\r" in text for text in texts)
    (pound,) = [text for text in texts if "£" in text]
    assert pound.endswith("&amp; £1000 homewares. Upload photos of your most outdated room!")


def test_vader_domains_filter(vader, vader_home):
    subset = load_vader(data_home=vader_home, domains=["nyt_editorials", "tweets"])
    assert len(subset.data) == VADER_COUNTS["tweets"] + VADER_COUNTS["nyt_editorials"]
    # Canonical order, whatever order was asked for.
    assert subset.domain[0] == "tweets" and subset.domain[-1] == "nyt_editorials"
    keep = np.isin(vader.domain, ["tweets", "nyt_editorials"])
    assert subset.data == texts_where(vader, keep)
    np.testing.assert_array_equal(subset.target, vader.target[keep])
    np.testing.assert_array_equal(subset.ids, vader.ids[keep])

    single = load_vader(data_home=vader_home, domains="product_reviews")
    assert set(single.domain) == {"product_reviews"}
    assert len(single.data) == VADER_COUNTS["product_reviews"]


@pytest.mark.parametrize("domains", [["tweet"], ["tweets", "amazon"], "movies"])
def test_vader_unknown_domain_lists_valid_names(vader_home, domains):
    message = (
        r"Unknown VADER domain\(s\) \[.+\]; valid domains are "
        r"\['tweets', 'movie_reviews', 'product_reviews', 'nyt_editorials'\]"
    )
    with pytest.raises(ValueError, match=message):
        load_vader(data_home=vader_home, domains=domains)


def test_vader_empty_domains_is_an_error(vader_home):
    with pytest.raises(ValueError, match="at least one"):
        load_vader(data_home=vader_home, domains=[])


def test_vader_as_frame(vader, vader_home):
    pytest.importorskip("pandas")
    bunch = load_vader(data_home=vader_home, domains=["movie_reviews"], as_frame=True)
    frame = bunch.frame
    assert list(frame.columns) == ["text", "score", "domain"]
    assert frame.shape == (VADER_COUNTS["movie_reviews"], 3)
    assert frame["score"].dtype == np.float64
    assert bunch.data is not None and bunch.data.equals(frame["text"])
    assert bunch.target.equals(frame["score"])
    keep = vader.domain == "movie_reviews"
    assert frame["text"].tolist() == texts_where(vader, keep)
    np.testing.assert_array_equal(frame["score"].to_numpy(), vader.target[keep])


def test_vader_as_frame_without_pandas_names_the_extra(vader_home, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes "import pandas" fail
    with pytest.raises(ImportError, match=re.escape("pip install 'sktransfer[pandas]'")):
        load_vader(data_home=vader_home, as_frame=True)


# --------------------------------------------------------------------------- VADER files


def test_vader_download_false_without_data_says_how_to_get_it(tmp_path, fake_network):
    folder = tmp_path / "vader"
    with pytest.raises(DataNotFoundError) as excinfo:
        load_vader(data_home=tmp_path, download=False)
    message = str(excinfo.value)
    assert "download=False" in message
    assert f"pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d {folder}" in message
    assert "vaderSentiment-3.3.2.tar.gz" in message and "download=True" in message
    assert isinstance(excinfo.value, OSError)
    assert fake_network.requested == []


def test_vader_archive_placed_by_hand_is_used_then_cached(tmp_path, sdist_bytes, vader):
    folder = tmp_path / "vader"
    folder.mkdir()
    (folder / _vader.SDIST_NAME).write_bytes(sdist_bytes)
    first = load_vader(data_home=tmp_path, download=False)
    assert first.data == vader.data
    # Only the cache is written next to the archive: nothing is extracted to disk.
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [_vader.SDIST_NAME, _vader._CACHE_NAME]
    )
    # Later calls read the cache alone.
    (folder / _vader.SDIST_NAME).unlink()
    second = load_vader(data_home=tmp_path, download=False)
    assert second.data == vader.data
    np.testing.assert_array_equal(second.target, vader.target)
    np.testing.assert_array_equal(second.ids, vader.ids)


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],
        lambda text: text.replace("\t2.726315789\t", "\tnot-a-number\t"),
        lambda text: "",
    ],
    ids=["truncated", "bad-score", "empty"],
)
def test_vader_damaged_cache_is_rebuilt(tmp_path, sdist_bytes, vader, damage):
    folder = tmp_path / "vader"
    folder.mkdir()
    (folder / _vader.SDIST_NAME).write_bytes(sdist_bytes)
    load_vader(data_home=tmp_path, download=False)
    cache = folder / _vader._CACHE_NAME
    cache.write_text(damage(cache.read_text(encoding="utf-8")), encoding="utf-8")
    rebuilt = load_vader(data_home=tmp_path, download=False)
    assert rebuilt.data == vader.data
    np.testing.assert_array_equal(rebuilt.target, vader.target)


def test_vader_downloads_and_verifies_the_archive(tmp_path, sdist_bytes, fake_network, vader):
    fake_network.served[_vader.SDIST_URL] = sdist_bytes
    bunch = load_vader(data_home=tmp_path)
    assert fake_network.requested == [_vader.SDIST_URL]  # the PyPI API was not needed
    assert _base.sha256_file(tmp_path / "vader" / _vader.SDIST_NAME) == _vader.SDIST_SHA256
    assert bunch.data == vader.data
    assert leftover_partials(tmp_path / "vader") == []


def test_vader_falls_back_to_the_pypi_json_api(tmp_path, sdist_bytes, monkeypatch):
    mirror_url = "https://mirror.example/vaderSentiment-3.3.2.tar.gz"
    release = {
        "urls": [
            {"packagetype": "bdist_wheel", "url": "https://x/wheel.whl", "digests": {}},
            {
                "packagetype": "sdist",
                "url": mirror_url,
                "digests": {"sha256": _vader.SDIST_SHA256},
            },
        ]
    }
    requested = []

    def network(url, timeout):
        requested.append(url)
        if url == _vader.SDIST_URL:
            raise HTTPError(url, 404, "Not Found", {}, None)
        if url == _vader.PYPI_JSON_URL:
            return io.BytesIO(json.dumps(release).encode())
        if url == mirror_url:
            return io.BytesIO(sdist_bytes)
        raise AssertionError(f"unexpected request {url}")

    monkeypatch.setattr(_base, "_urlopen", network)
    bunch = load_vader(data_home=tmp_path, domains="tweets")
    assert requested == [_vader.SDIST_URL, _vader.PYPI_JSON_URL, mirror_url]
    assert len(bunch.data) == VADER_COUNTS["tweets"]


def test_vader_network_failure_gives_guidance(tmp_path, fake_network):
    with pytest.raises(DataNotFoundError) as excinfo:
        load_vader(data_home=tmp_path)
    message = str(excinfo.value)
    assert "Could not download the VADER data" in message
    assert _vader.SDIST_URL in message and "Temporary failure in name resolution" in message
    assert "pip download --no-deps --no-binary :all: vaderSentiment==3.3.2" in message
    assert isinstance(excinfo.value.__cause__, URLError)
    assert fake_network.requested == [_vader.SDIST_URL, _vader.PYPI_JSON_URL]
    assert not (tmp_path / "vader" / _vader.SDIST_NAME).exists()
    assert leftover_partials(tmp_path / "vader") == []


def test_vader_download_with_wrong_checksum_is_rejected(tmp_path, sdist_bytes, fake_network):
    fake_network.served[_vader.SDIST_URL] = sdist_bytes[:-10] + b"0123456789"
    with pytest.raises(DataNotFoundError, match="SHA-256 mismatch: expected 5d7c06e0"):
        load_vader(data_home=tmp_path)
    assert not (tmp_path / "vader" / _vader.SDIST_NAME).exists()
    assert leftover_partials(tmp_path / "vader") == []


def test_vader_corrupt_archive_is_downloaded_again(tmp_path, sdist_bytes, fake_network, vader):
    folder = tmp_path / "vader"
    folder.mkdir()
    (folder / _vader.SDIST_NAME).write_bytes(sdist_bytes[: len(sdist_bytes) // 2])
    fake_network.served[_vader.SDIST_URL] = sdist_bytes
    with pytest.warns(UserWarning, match="corrupt.*Downloading it again"):
        bunch = load_vader(data_home=tmp_path)
    assert fake_network.requested == [_vader.SDIST_URL]
    assert _base.sha256_file(folder / _vader.SDIST_NAME) == _vader.SDIST_SHA256
    assert bunch.data == vader.data


def test_vader_corrupt_archive_without_download_is_an_error(tmp_path, sdist_bytes, fake_network):
    folder = tmp_path / "vader"
    folder.mkdir()
    (folder / _vader.SDIST_NAME).write_bytes(b"not a tar file")
    with pytest.raises(DataNotFoundError, match=r"(?s)is corrupt.*SHA-256.*pip download"):
        load_vader(data_home=tmp_path, download=False)
    assert fake_network.requested == []


# --------------------------------------------------------------------------- helpers


def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch):
    class DroppedConnection(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(4)

    monkeypatch.setattr(_base, "_urlopen", lambda url, timeout: DroppedConnection(b"x" * 100))
    destination = tmp_path / "file.bin"
    with pytest.raises(DataNotFoundError, match="connection reset") as excinfo:
        _base.download_file(["https://example.invalid/file.bin"], destination, guidance="Try X.")
    assert str(excinfo.value).endswith("Try X.")
    assert isinstance(excinfo.value.__cause__, ConnectionResetError)
    assert list(tmp_path.iterdir()) == []


def test_read_tar_member_reads_in_memory_and_refuses_links(tmp_path):
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in [("../outside.txt", b"escape"), ("inside/data.txt", b"data")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("inside/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    before = sorted(tmp_path.rglob("*"))
    assert _base.read_tar_member(archive, "inside/data.txt") == b"data"
    # A hostile name is just a key: its bytes are returned, nothing is written.
    assert _base.read_tar_member(archive, "../outside.txt") == b"escape"
    with pytest.raises(ValueError, match="not a regular file"):
        _base.read_tar_member(archive, "inside/link")
    with pytest.raises(KeyError):
        _base.read_tar_member(archive, "missing.txt")
    assert sorted(tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "outside.txt").exists()


# --------------------------------------------------------------------------- Fashion-MNIST


def _fashion_or_skip(**kwargs):
    try:
        return load_fashion_mnist(download=False, **kwargs)
    except DataNotFoundError as error:  # pragma: no cover - only without the data
        pytest.skip(f"Fashion-MNIST unavailable here: {error}")


@pytest.fixture(scope="module")
def fashion_train():
    return _fashion_or_skip(subset="train")


@pytest.fixture(scope="module")
def fashion_test():
    return _fashion_or_skip(subset="test")


@pytest.fixture(scope="module")
def fashion_source_dir(fashion_test) -> Path:
    """The folder holding the real test-set files (system package or data home)."""
    for directory in (*_fashion_mnist.SYSTEM_DIRS, default_data_home() / "fashion_mnist"):
        if all((directory / name).is_file() for name in TEST_FILES):
            return directory
    pytest.skip("Fashion-MNIST test files not found on disk")  # pragma: no cover


@pytest.fixture
def isolated_fashion(tmp_path, monkeypatch, fake_network):
    """No system folder, an empty data home and no network: only what a test puts there."""
    monkeypatch.setattr(_fashion_mnist, "SYSTEM_DIRS", (tmp_path / "system",))
    (tmp_path / "system").mkdir()
    return tmp_path


def test_fashion_train_shapes_dtypes_and_classes(fashion_train):
    bunch = fashion_train
    assert bunch.images.shape == (60000, 28, 28) and bunch.images.dtype == np.uint8
    assert bunch.data is bunch.images
    assert bunch.target.shape == (60000,) and bunch.target.dtype == np.int64
    assert bunch.target_names == FASHION_CLASSES
    np.testing.assert_array_equal(np.bincount(bunch.target), [6000] * 10)
    # Known facts of the real data: first labels, and the mean pixel (0.2860 * 255).
    np.testing.assert_array_equal(bunch.target[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    assert bunch.images.mean() == pytest.approx(72.9403522, abs=1e-6)
    assert bunch.images.min() == 0 and bunch.images.max() == 255
    assert bunch.images.flags.writeable
    assert "Fashion-MNIST" in bunch.DESCR


def test_fashion_test_shapes_and_classes(fashion_test):
    assert fashion_test.images.shape == (10000, 28, 28)
    assert fashion_test.target.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(fashion_test.target), [1000] * 10)
    np.testing.assert_array_equal(fashion_test.target[:10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])


def test_fashion_all_is_train_then_test(fashion_train, fashion_test):
    everything = _fashion_or_skip(subset="all")
    assert everything.images.shape == (70000, 28, 28)
    np.testing.assert_array_equal(everything.images[:60000], fashion_train.images)
    np.testing.assert_array_equal(everything.images[60000:], fashion_test.images)
    np.testing.assert_array_equal(
        everything.target, np.concatenate([fashion_train.target, fashion_test.target])
    )


def test_fashion_n_samples_is_stratified_and_reproducible(fashion_test):
    first = _fashion_or_skip(subset="test", n_samples=1000, random_state=0)
    again = _fashion_or_skip(subset="test", n_samples=1000, random_state=0)
    other = _fashion_or_skip(subset="test", n_samples=1000, random_state=np.random.RandomState(1))
    assert first.images.shape == (1000, 28, 28) and first.data is first.images
    np.testing.assert_array_equal(np.bincount(first.target), [100] * 10)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.target, again.target)
    assert not np.array_equal(first.images, other.images)
    # Every chosen image is a real test image, kept in file order.
    flat = fashion_test.images.reshape(10000, -1)
    positions = [
        int(np.flatnonzero((flat == image.ravel()).all(axis=1))[0]) for image in first.images[:50]
    ]
    assert positions == sorted(positions)
    np.testing.assert_array_equal(fashion_test.target[positions], first.target[:50])


@pytest.mark.parametrize("n_samples, per_class", [(25, {2, 3}), (5, {0, 1}), (10000, {1000})])
def test_fashion_n_samples_small_and_full(n_samples, per_class):
    bunch = _fashion_or_skip(subset="test", n_samples=n_samples, random_state=3)
    counts = np.bincount(bunch.target, minlength=10)
    assert counts.sum() == n_samples and set(counts.tolist()) == per_class


@pytest.mark.parametrize("n_samples", [0, -5, 10001, 2.5, True, "100"])
def test_fashion_bad_n_samples(n_samples):
    with pytest.raises(ValueError, match="n_samples must be an integer from 1 to 10000"):
        _fashion_or_skip(subset="test", n_samples=n_samples)


@pytest.mark.parametrize("subset", ["validation", "Train", None])
def test_fashion_bad_subset(subset):
    with pytest.raises(ValueError, match=r"subset must be one of \['train', 'test', 'all'\]"):
        load_fashion_mnist(subset=subset, download=False)


def test_fashion_missing_without_download_says_how_to_get_it(isolated_fashion, fake_network):
    with pytest.raises(DataNotFoundError) as excinfo:
        load_fashion_mnist(subset="test", data_home=isolated_fashion, download=False)
    message = str(excinfo.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(isolated_fashion / "fashion_mnist") in message
    assert "t10k-images-idx3-ubyte.gz" in message and "download=False" in message
    assert fake_network.requested == []


def test_fashion_network_failure_gives_guidance(isolated_fashion, fake_network):
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_fashion_mnist(subset="test", data_home=isolated_fashion)
    assert isinstance(info.value.__cause__, URLError)
    assert fake_network.requested == [
        mirror + "t10k-images-idx3-ubyte.gz" for mirror in _fashion_mnist.MIRRORS
    ]
    assert leftover_partials(isolated_fashion / "fashion_mnist") == []


def test_fashion_data_home_copy_is_used(isolated_fashion, fashion_source_dir, fashion_test):
    folder = isolated_fashion / "fashion_mnist"
    folder.mkdir()
    for name in TEST_FILES:
        shutil.copy(fashion_source_dir / name, folder / name)
    bunch = load_fashion_mnist(subset="test", data_home=isolated_fashion, download=False)
    np.testing.assert_array_equal(bunch.images, fashion_test.images)
    np.testing.assert_array_equal(bunch.target, fashion_test.target)


def test_fashion_checksum_is_on_content_not_compression(
    isolated_fashion, fashion_source_dir, fashion_test
):
    """A faithful recompression (as Debian's package has) is accepted."""
    folder = isolated_fashion / "fashion_mnist"
    folder.mkdir()
    for name in TEST_FILES:
        content = gzip.decompress((fashion_source_dir / name).read_bytes())
        (folder / name).write_bytes(gzip.compress(content, compresslevel=1, mtime=0))
    bunch = load_fashion_mnist(subset="test", data_home=isolated_fashion, download=False)
    np.testing.assert_array_equal(bunch.target, fashion_test.target)


def test_fashion_corrupt_system_file_is_skipped(isolated_fashion, fashion_source_dir, fashion_test):
    system = isolated_fashion / "system"
    folder = isolated_fashion / "fashion_mnist"
    folder.mkdir()
    for name in TEST_FILES:
        shutil.copy(fashion_source_dir / name, system / name)
        shutil.copy(fashion_source_dir / name, folder / name)
    labels = gzip.decompress((system / TEST_FILES[1]).read_bytes())
    tampered = labels[:8] + bytes([(labels[8] + 1) % 10]) + labels[9:]  # relabel one image
    (system / TEST_FILES[1]).write_bytes(gzip.compress(tampered))
    with pytest.warns(UserWarning, match="t10k-labels-idx1-ubyte.gz is corrupt.*ignoring it"):
        bunch = load_fashion_mnist(subset="test", data_home=isolated_fashion, download=False)
    np.testing.assert_array_equal(bunch.target, fashion_test.target)


def test_fashion_corrupt_data_home_copy(
    isolated_fashion, fashion_source_dir, fake_network, monkeypatch
):
    folder = isolated_fashion / "fashion_mnist"
    folder.mkdir()
    for name in TEST_FILES:
        shutil.copy(fashion_source_dir / name, folder / name)
    labels_path = folder / TEST_FILES[1]
    good_labels = labels_path.read_bytes()
    labels_path.write_bytes(good_labels[:100])  # truncated gzip stream

    with pytest.raises(DataNotFoundError, match=r"(?s)is corrupt.*apt-get install"):
        load_fashion_mnist(subset="test", data_home=isolated_fashion, download=False)

    # With download allowed, the bad copy is replaced. The fake server serves the
    # local file, whose .gz digest differs from the original mirrors', so pin it.
    url = _fashion_mnist.MIRRORS[0] + TEST_FILES[1]
    fake_network.served[url] = good_labels
    pinned = dict(_fashion_mnist._ARCHIVE_SHA256)
    pinned[TEST_FILES[1]] = _base.sha256_bytes(good_labels)
    monkeypatch.setattr(_fashion_mnist, "_ARCHIVE_SHA256", pinned)
    with pytest.warns(UserWarning, match="downloading it again"):
        bunch = load_fashion_mnist(subset="test", data_home=isolated_fashion)
    assert fake_network.requested == [url]
    assert labels_path.read_bytes() == good_labels
    np.testing.assert_array_equal(np.bincount(bunch.target), [1000] * 10)


def test_fashion_parse_idx_rejects_bad_headers():
    labels = np.array([0x00000801, 3], dtype=">i4").tobytes() + bytes([1, 2, 3])
    np.testing.assert_array_equal(_fashion_mnist._parse_idx(labels, 1, "x"), [1, 2, 3])
    with pytest.raises(ValueError, match="not an IDX file"):
        _fashion_mnist._parse_idx(labels, 3, "x")
    with pytest.raises(ValueError, match="not an IDX file"):
        _fashion_mnist._parse_idx(labels[:3], 1, "x")
    with pytest.raises(ValueError, match="size does not match"):
        _fashion_mnist._parse_idx(labels[:-1], 1, "x")
