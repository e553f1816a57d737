"""Tests of sktransfer.datasets on small files written by the tests themselves.

No test needs the network or an installed data set: the files are written in
the formats of the real ones (IDX files for Fashion-MNIST, the vaderSentiment
source archive for VADER) and the digests the loaders pin are replaced by
those of the written files. Every test runs in a sandbox: an empty home
folder, no ``SKTRANSFER_DATA``, an empty stand-in for the system folder and a
fake network that serves only what a test gives it.
"""

from __future__ import annotations

import gzip
import io
import json
import re
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

pytest_plugins = ["pytester"]  # to run the root conftest's gpu hook on a written test file

ROOT = Path(__file__).resolve().parents[1]
PINNED_SDIST_SHA256 = _vader.SDIST_SHA256  # read before any test replaces it

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
TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
# Images per class in the written files (the real ones have 6,000 and 1,000).
TRAIN_PER_CLASS, TEST_PER_CLASS = 3, 10


# --------------------------------------------------------------------------- written files


def idx_file(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, as in Fashion-MNIST: magic, sizes, data."""
    magic = np.array([0x800 | array.ndim], dtype=">i4").tobytes()
    sizes = np.array(array.shape, dtype=">i4").tobytes()
    return magic + sizes + array.astype(np.uint8).tobytes()


class FashionFiles:
    """Small Fashion-MNIST look-alike: arrays and the .gz files that hold them."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.arrays = {}
        self.files = {}
        for subset, per_class, names in [
            ("train", TRAIN_PER_CLASS, TRAIN_FILES),
            ("test", TEST_PER_CLASS, TEST_FILES),
        ]:
            target = rng.permutation(np.repeat(np.arange(10), per_class))
            images = rng.integers(0, 256, size=(len(target), 28, 28), dtype=np.uint8)
            images[:, 0, 0] = np.arange(len(target))  # every image is unique
            self.arrays[subset] = (images, target)
            self.files[names[0]] = gzip.compress(idx_file(images), mtime=0)
            self.files[names[1]] = gzip.compress(idx_file(target), mtime=0)

    def write(self, folder: Path, names=TRAIN_FILES + TEST_FILES) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / name).write_bytes(self.files[name])
        return folder


def vader_rows(domain: str, count: int) -> list[tuple[str, float, str]]:
    """``count`` (id, score, sentence) rows, with the oddities of the real files."""
    rng = np.random.default_rng(len(domain))
    rows = []
    for number in range(1, count + 1):
        if domain in ("product_reviews", "nyt_editorials"):
            sentence_id = f"{(number - 1) // 12 + 1}_{(number - 1) % 12 + 1}"
        else:
            sentence_id = str(number)
        score = round(float(rng.uniform(-4, 4)), 9)
        rows.append((sentence_id, score, f"{domain} sentence number {number}."))
    oddities = [
        (-4.0, "  padded with spaces  "),  # stripped by the loader
        (4.0, "AT&amp;T &lt;3 kept as published"),
        (1.36, "Münch's film costs £1000 – worth it"),
        (0.5, "one line\u2028with a line separator\x85and a next-line inside"),
        (-0.25, "a trailing tab\t"),
    ]
    for index, (score, text) in enumerate(oddities):
        rows[index] = (rows[index][0], score, text)
    return rows


def ground_truth_file(rows, bom: bool) -> bytes:
    """A ``*_GroundTruth.txt`` file: UTF-8, CRLF line ends, tab-separated fields."""
    text = "".join(f"{sentence_id}\t{score!r}\t{text}\r\n" for sentence_id, score, text in rows)
    return ("\ufeff" if bom else "").encode() + text.encode("utf-8") + b"\r\n"


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def vader_sdist(files: dict[str, bytes]) -> bytes:
    """A source archive laid out as vaderSentiment 3.3.2's, holding ``files``."""
    inner = tar_gz({f"hutto_ICWSM_2014/{name}": payload for name, payload in files.items()})
    return tar_gz(
        {
            "vaderSentiment-3.3.2/setup.py": b"# setup\n",
            "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner,
        }
    )


class VaderFiles:
    """A vaderSentiment-like source archive and the rows the loader should return."""

    def __init__(self):
        self.rows = {domain: vader_rows(domain, count) for domain, count in VADER_COUNTS.items()}
        self.ground_truth = {
            _vader._DOMAIN_FILES[domain][0].split("/")[-1]: ground_truth_file(rows, bom=index == 0)
            for index, (domain, rows) in enumerate(self.rows.items())
        }
        self.sdist = vader_sdist(self.ground_truth)
        self.sha256 = _base.sha256_bytes(self.sdist)

    def expected(self, domains=VADER_COUNTS):
        """(domain, id, score, stripped text) rows, in the documented order."""
        return [
            (domain, sentence_id, score, text.strip())
            for domain in VADER_COUNTS
            if domain in domains
            for sentence_id, score, text in self.rows[domain]
        ]


@pytest.fixture(scope="session")
def fashion_files() -> FashionFiles:
    return FashionFiles()


@pytest.fixture(scope="session")
def vader_files() -> VaderFiles:
    return VaderFiles()


class FakeNetwork:
    """Stands in for ``_base._urlopen``: serves given bytes, fails for other URLs."""

    def __init__(self):
        self.served: dict[str, bytes] = {}
        self.requested: list[str] = []

    def __call__(self, url, timeout):
        self.requested.append(url)
        if url in self.served:
            return io.BytesIO(self.served[url])
        raise URLError("Temporary failure in name resolution")


@pytest.fixture(autouse=True)
def fake_network(monkeypatch) -> FakeNetwork:
    """No test reaches the network; add URLs to ``.served`` to serve them."""
    network = FakeNetwork()
    monkeypatch.setattr(_base, "_urlopen", network)
    return network


@pytest.fixture(autouse=True)
def sandbox(tmp_path, monkeypatch, fashion_files, vader_files) -> Path:
    """An empty home, no SKTRANSFER_DATA, an empty system folder; digests of the written files."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(_base.DATA_HOME_ENV, raising=False)
    system = tmp_path / "system"
    system.mkdir()
    monkeypatch.setattr(_fashion_mnist, "SYSTEM_DIRS", (system,))
    contents = {
        name: _base.sha256_bytes(gzip.decompress(data))
        for name, data in fashion_files.files.items()
    }
    archives = {name: _base.sha256_bytes(data) for name, data in fashion_files.files.items()}
    monkeypatch.setattr(_fashion_mnist, "_CONTENT_SHA256", contents)
    monkeypatch.setattr(_fashion_mnist, "_ARCHIVE_SHA256", archives)
    monkeypatch.setattr(_vader, "SDIST_SHA256", vader_files.sha256)
    return tmp_path


def leftover_partials(folder: Path) -> list[Path]:
    return list(folder.glob("*.part"))


def assert_vader_equals(bunch, rows):
    assert bunch.domain.tolist() == [row[0] for row in rows]
    assert bunch.ids.tolist() == [row[1] for row in rows]
    assert bunch.target.tolist() == [row[2] for row in rows]
    assert list(bunch.data) == [row[3] for row in rows]


# --------------------------------------------------------------------------- data home


def test_get_data_home_precedence(tmp_path, monkeypatch):
    assert get_data_home() == tmp_path / "home" / "sktransfer_data"

    monkeypatch.setenv("SKTRANSFER_DATA", "")  # empty means unset
    assert get_data_home() == tmp_path / "home" / "sktransfer_data"

    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "from_env"))
    assert get_data_home() == tmp_path / "from_env"
    assert get_data_home(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert get_data_home("~/tilde") == tmp_path / "home" / "tilde"
    for folder in ("home/sktransfer_data", "from_env", "explicit", "home/tilde"):
        assert (tmp_path / folder).is_dir()


def test_get_data_home_rejects_a_non_path():
    with pytest.raises(TypeError, match="data_home must be a folder path .* got int 3"):
        get_data_home(3)


def test_clear_data_home_removes_everything(tmp_path):
    home = get_data_home(tmp_path / "data")
    (home / "vader").mkdir()
    (home / "vader" / "cached.tsv").write_text("x")
    clear_data_home(home)
    assert not home.exists()


def test_search_folders_a_named_data_folder_is_the_only_one(tmp_path, monkeypatch):
    system = (Path("/usr/share/datasets/x"),)
    default = tmp_path / "home" / "sktransfer_data" / "x"
    assert _base.search_folders(None, "x", system) == (*system, default)
    assert _base.search_folders(tmp_path / "mine", "x", system) == (tmp_path / "mine" / "x",)
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "env"))
    assert _base.search_folders(None, "x", system) == (tmp_path / "env" / "x",)
    monkeypatch.setenv("SKTRANSFER_DATA", "")
    assert _base.search_folders(None, "x", system) == (*system, default)
    assert not (tmp_path / "home").exists()  # looking creates nothing


# --------------------------------------------------------------------------- VADER


def place_sdist(data_home: Path, sdist: bytes) -> Path:
    folder = data_home / "vader"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _vader.SDIST_NAME).write_bytes(sdist)
    return folder


def test_vader_reads_every_domain_in_order(tmp_path, vader_files, fake_network):
    place_sdist(tmp_path, vader_files.sdist)
    vader = load_vader(data_home=tmp_path, download=False)
    assert_vader_equals(vader, vader_files.expected())
    assert len(vader.data) == VADER_TOTAL
    names, counts = np.unique(vader.domain, return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist(), strict=True)) == VADER_COUNTS
    assert isinstance(vader.data, list)
    assert vader.target.dtype == np.float64 and vader.target.shape == (VADER_TOTAL,)
    assert vader.domain.dtype.kind == "U" and vader.ids.dtype.kind == "U"
    assert vader.frame is None
    assert "Hutto" in vader.DESCR and "ICWSM" in vader.DESCR
    assert fake_network.requested == []


def test_vader_text_is_kept_as_published_but_stripped(tmp_path, vader_files):
    """BOM and CRLF are file format; entities, non-ASCII and U+2028 are text."""
    place_sdist(tmp_path, vader_files.sdist)
    vader = load_vader(data_home=tmp_path, domains="tweets")
    assert vader.data[:5] == [
        "padded with spaces",
        "AT&amp;T &lt;3 kept as published",
        "Münch's film costs £1000 – worth it",
        "one line\u2028with a line separator\x85and a next-line inside",
        "a trailing tab",
    ]
    assert vader.ids[0] == "1"  # the byte-order mark is not part of the first id
    assert vader.target[:2].tolist() == [-4.0, 4.0]
    assert not any("\r" in text or "\n" in text for text in vader.data)


def test_vader_is_cached_and_nothing_else_is_written(tmp_path, vader_files):
    folder = place_sdist(tmp_path, vader_files.sdist)
    first = load_vader(data_home=tmp_path, download=False)
    # Only the parsed copy is written next to the archive: nothing is extracted.
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [_vader.SDIST_NAME, _vader._CACHE_NAME]
    )
    (folder / _vader.SDIST_NAME).unlink()  # later calls read the parsed copy alone
    second = load_vader(data_home=tmp_path, download=False)
    assert_vader_equals(second, vader_files.expected())
    assert second.data == first.data


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],
        lambda text: text.replace("\ntweets\t", "\ntweet\t", 1),
        lambda text: re.sub(r"\t-?\d\.\d+\t", "\tnot-a-number\t", text, count=1),
        lambda text: text.replace("\t4.0\t", "\t4.5\t", 1),
        lambda text: "",
    ],
    ids=["truncated", "unknown-domain", "bad-score", "score-out-of-range", "empty"],
)
def test_vader_damaged_cache_is_rebuilt(tmp_path, vader_files, damage):
    folder = place_sdist(tmp_path, vader_files.sdist)
    load_vader(data_home=tmp_path, download=False)
    cache = folder / _vader._CACHE_NAME
    damaged = damage(cache.read_text(encoding="utf-8"))
    assert damaged != cache.read_text(encoding="utf-8")
    cache.write_text(damaged, encoding="utf-8")
    rebuilt = load_vader(data_home=tmp_path, download=False)
    assert_vader_equals(rebuilt, vader_files.expected())
    assert cache.read_text(encoding="utf-8") != damaged


def test_vader_domains_filter(tmp_path, vader_files):
    place_sdist(tmp_path, vader_files.sdist)
    subset = load_vader(data_home=tmp_path, domains=["nyt_editorials", "tweets"])
    # Canonical order, whatever order was asked for.
    assert_vader_equals(subset, vader_files.expected(["tweets", "nyt_editorials"]))
    single = load_vader(data_home=tmp_path, domains="product_reviews")
    assert_vader_equals(single, vader_files.expected(["product_reviews"]))


def test_vader_as_frame(tmp_path, vader_files):
    pytest.importorskip("pandas")  # the test extra installs pandas
    place_sdist(tmp_path, vader_files.sdist)
    bunch = load_vader(data_home=tmp_path, domains=["movie_reviews"], as_frame=True)
    frame = bunch.frame
    assert list(frame.columns) == ["text", "score", "domain"]
    assert frame.shape == (VADER_COUNTS["movie_reviews"], 3)
    assert frame["score"].dtype == np.float64
    assert bunch.data.equals(frame["text"]) and bunch.target.equals(frame["score"])
    expected = vader_files.expected(["movie_reviews"])
    assert frame["text"].tolist() == [row[3] for row in expected]
    assert frame["score"].tolist() == [row[2] for row in expected]


def test_vader_as_frame_without_pandas_names_the_extra(tmp_path, monkeypatch, fake_network):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes "import pandas" fail
    with pytest.raises(ImportError, match=re.escape("pip install 'sktransfer[pandas]'")):
        load_vader(data_home=tmp_path, as_frame=True)  # before looking for the data
    assert fake_network.requested == []


@pytest.mark.parametrize("domains", [["tweet"], ["tweets", "amazon"], "movies"])
def test_vader_unknown_domain_lists_valid_names(tmp_path, domains, fake_network):
    message = (
        r"Unknown VADER domain\(s\) \[.+\]; valid domains are "
        r"\['tweets', 'movie_reviews', 'product_reviews', 'nyt_editorials'\]"
    )
    with pytest.raises(ValueError, match=message):
        load_vader(data_home=tmp_path, domains=domains)
    assert fake_network.requested == [] and list(tmp_path.iterdir()) == [tmp_path / "system"]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"domains": []}, ValueError, "at least one"),
        ({"download": "no"}, TypeError, "download must be True or False, got 'no'"),
        ({"as_frame": 1}, TypeError, "as_frame must be True or False, got 1"),
        ({"data_home": 3.5}, TypeError, "data_home must be a folder path"),
    ],
)
def test_vader_bad_arguments_fail_before_looking_for_data(kwargs, error, message, fake_network):
    with pytest.raises(error, match=message):
        load_vader(**kwargs)
    assert fake_network.requested == []
    assert not get_data_home().joinpath("vader").exists()


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


def test_vader_reads_only_the_folder_sktransfer_data_names(tmp_path, vader_files, monkeypatch):
    place_sdist(tmp_path / "home" / "sktransfer_data", vader_files.sdist)
    assert len(load_vader(download=False, domains="tweets").data) == 4200  # default home
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "empty"))
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "empty" / "vader"))):
        load_vader(download=False)


def test_vader_downloads_and_verifies_the_archive(tmp_path, vader_files, fake_network):
    fake_network.served[_vader.SDIST_URL] = vader_files.sdist
    bunch = load_vader(data_home=tmp_path)
    assert fake_network.requested == [_vader.SDIST_URL]  # the PyPI API was not needed
    assert (tmp_path / "vader" / _vader.SDIST_NAME).read_bytes() == vader_files.sdist
    assert_vader_equals(bunch, vader_files.expected())
    assert leftover_partials(tmp_path / "vader") == []


def test_vader_falls_back_to_the_pypi_json_api(tmp_path, vader_files, monkeypatch):
    mirror_url = "https://mirror.example/vaderSentiment-3.3.2.tar.gz"
    release = {
        "urls": [
            {"packagetype": "bdist_wheel", "url": "https://x/wheel.whl", "digests": {}},
            {"packagetype": "sdist", "url": "https://x/other.tar.gz", "digests": {"sha256": "0"}},
            {
                "packagetype": "sdist",
                "url": mirror_url,
                "digests": {"sha256": vader_files.sha256},
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
            return io.BytesIO(vader_files.sdist)
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


def test_vader_download_with_wrong_checksum_is_rejected(tmp_path, vader_files, fake_network):
    fake_network.served[_vader.SDIST_URL] = vader_files.sdist[:-10] + b"0123456789"
    with pytest.raises(DataNotFoundError, match=f"SHA-256 mismatch: expected {vader_files.sha256}"):
        load_vader(data_home=tmp_path)
    assert not (tmp_path / "vader" / _vader.SDIST_NAME).exists()
    assert leftover_partials(tmp_path / "vader") == []


def test_vader_corrupt_archive_is_downloaded_again(tmp_path, vader_files, fake_network):
    folder = place_sdist(tmp_path, vader_files.sdist[: len(vader_files.sdist) // 2])
    fake_network.served[_vader.SDIST_URL] = vader_files.sdist
    with pytest.warns(UserWarning, match="corrupt.*Downloading it again"):
        bunch = load_vader(data_home=tmp_path)
    assert fake_network.requested == [_vader.SDIST_URL]
    assert (folder / _vader.SDIST_NAME).read_bytes() == vader_files.sdist
    assert_vader_equals(bunch, vader_files.expected())


def test_vader_corrupt_archive_without_download_is_an_error(tmp_path, fake_network):
    place_sdist(tmp_path, b"not a tar file")
    with pytest.raises(DataNotFoundError, match=r"(?s)is corrupt.*SHA-256.*pip download"):
        load_vader(data_home=tmp_path, download=False)
    assert fake_network.requested == []


def test_vader_pins_the_pypi_archive():
    # The sandbox replaces the digest for the written archives; the loader's own
    # value is the SHA-256 PyPI publishes for vaderSentiment-3.3.2.tar.gz.
    assert PINNED_SDIST_SHA256 == (
        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
    )
    assert _vader.SDIST_URL.endswith("/vaderSentiment-3.3.2.tar.gz")


@pytest.mark.parametrize(
    "domain, edit, message",
    [
        ("tweets", lambda rows: rows[:-1], "expected 4200 sentences, found 4199"),
        ("nyt_editorials", lambda rows: [*rows, ("x", 0.0, "extra")], "expected 5190"),
    ],
)
def test_vader_archive_with_wrong_counts_is_refused(
    tmp_path, vader_files, monkeypatch, domain, edit, message
):
    files = dict(vader_files.ground_truth)
    name = _vader._DOMAIN_FILES[domain][0].split("/")[-1]
    files[name] = ground_truth_file(edit(vader_files.rows[domain]), bom=False)
    sdist = vader_sdist(files)
    monkeypatch.setattr(_vader, "SDIST_SHA256", _base.sha256_bytes(sdist))
    place_sdist(tmp_path, sdist)
    with pytest.raises(ValueError, match=message):
        load_vader(data_home=tmp_path, download=False)


@pytest.mark.parametrize(
    "line, message",
    [
        (b"1\t2.5\n", r"tweets line 1: expected 3 tab-separated fields"),
        (b"1\t4.01\ttoo positive\n", r"tweets line 1: score 4.01 outside \[-4, 4\]"),
        (b"\n1\t0.5\tok\n2\t-7\tbad\n", r"tweets line 3: score -7.0 outside"),
    ],
)
def test_vader_parse_errors_name_the_line(line, message):
    with pytest.raises(ValueError, match=message):
        _vader._parse_ground_truth(line, "tweets")


def test_vader_not_installed_reason(tmp_path, vader_files):
    assert "VADER data is not installed" in _vader._not_installed_reason(tmp_path)
    assert not (tmp_path / "vader").exists()
    place_sdist(tmp_path, vader_files.sdist)
    assert _vader._not_installed_reason(tmp_path) is None


# --------------------------------------------------------------------------- helpers


def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch):
    class DroppedConnection(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(4)

    monkeypatch.setattr(_base, "_urlopen", lambda url, timeout: DroppedConnection(b"x" * 100))
    destination = tmp_path / "download" / "file.bin"
    with pytest.raises(DataNotFoundError, match="connection reset") as excinfo:
        _base.download_file(["https://example.invalid/file.bin"], destination, guidance="Try X.")
    assert str(excinfo.value).endswith("Try X.")
    assert isinstance(excinfo.value.__cause__, ConnectionResetError)
    assert list((tmp_path / "download").iterdir()) == []


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


def fashion_home(tmp_path: Path, fashion_files: FashionFiles, names=TRAIN_FILES + TEST_FILES):
    """A data home whose fashion_mnist folder holds the written files."""
    fashion_files.write(tmp_path / "data" / "fashion_mnist", names)
    return tmp_path / "data"


def test_fashion_shapes_dtypes_and_classes(tmp_path, fashion_files, fake_network):
    home = fashion_home(tmp_path, fashion_files)
    for subset, per_class in [("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)]:
        bunch = load_fashion_mnist(subset=subset, data_home=home, download=False)
        images, target = fashion_files.arrays[subset]
        assert bunch.images.shape == (10 * per_class, 28, 28) and bunch.images.dtype == np.uint8
        assert bunch.data is bunch.images
        assert bunch.target.dtype == np.int64
        np.testing.assert_array_equal(bunch.images, images)
        np.testing.assert_array_equal(bunch.target, target)
        assert bunch.target_names == FASHION_CLASSES
        assert bunch.images.flags.writeable
        assert "Fashion-MNIST" in bunch.DESCR
    assert fake_network.requested == []


def test_fashion_all_is_train_then_test(tmp_path, fashion_files):
    home = fashion_home(tmp_path, fashion_files)
    everything = load_fashion_mnist(subset="all", data_home=home)
    train_images, train_target = fashion_files.arrays["train"]
    test_images, test_target = fashion_files.arrays["test"]
    np.testing.assert_array_equal(everything.images, np.concatenate([train_images, test_images]))
    np.testing.assert_array_equal(everything.target, np.concatenate([train_target, test_target]))


def test_fashion_n_samples_is_stratified_and_reproducible(tmp_path, fashion_files):
    home = fashion_home(tmp_path, fashion_files)

    def load(random_state):
        return load_fashion_mnist(
            subset="test", data_home=home, n_samples=50, random_state=random_state
        )

    first, again, other = load(0), load(0), load(np.random.RandomState(1))
    assert first.images.shape == (50, 28, 28) and first.data is first.images
    np.testing.assert_array_equal(np.bincount(first.target), [5] * 10)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.target, again.target)
    assert not np.array_equal(first.images, other.images)
    # Every chosen image is one of the file's, with its label, kept in file order.
    images, target = fashion_files.arrays["test"]
    positions = first.images[:, 0, 0].astype(int)
    assert positions.tolist() == sorted(set(positions.tolist()))
    np.testing.assert_array_equal(images[positions], first.images)
    np.testing.assert_array_equal(target[positions], first.target)


@pytest.mark.parametrize("n_samples, per_class", [(25, {2, 3}), (5, {0, 1}), (100, {10})])
def test_fashion_n_samples_small_and_full(tmp_path, fashion_files, n_samples, per_class):
    home = fashion_home(tmp_path, fashion_files)
    bunch = load_fashion_mnist(subset="test", data_home=home, n_samples=n_samples, random_state=3)
    counts = np.bincount(bunch.target, minlength=10)
    assert counts.sum() == n_samples and set(counts.tolist()) == per_class


@pytest.mark.parametrize(
    "subset, n_samples, limit",
    [
        ("test", 0, 10000),
        ("test", -5, 10000),
        ("test", 10001, 10000),
        ("train", 60001, 60000),
        ("all", 70001, 70000),
        ("test", 2.5, 10000),
        ("test", True, 10000),
        ("test", "100", 10000),
    ],
)
def test_fashion_bad_n_samples_fails_before_looking_for_data(
    subset, n_samples, limit, fake_network
):
    message = f"n_samples must be an integer from 1 to {limit} for subset '{subset}'"
    with pytest.raises(ValueError, match=message):
        load_fashion_mnist(subset=subset, n_samples=n_samples)  # no data anywhere
    assert fake_network.requested == []


@pytest.mark.parametrize("subset", ["validation", "Train", None, ["train"]])
def test_fashion_bad_subset_fails_before_looking_for_data(subset, fake_network):
    with pytest.raises(ValueError, match=r"subset must be one of \['train', 'test', 'all'\]"):
        load_fashion_mnist(subset=subset)
    assert fake_network.requested == []


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"download": None}, TypeError, "download must be True or False, got None"),
        ({"data_home": 1}, TypeError, "data_home must be a folder path"),
        ({"random_state": "seed"}, ValueError, "random_state must be None, an int or"),
    ],
)
def test_fashion_bad_arguments_fail_before_looking_for_data(kwargs, error, message, fake_network):
    with pytest.raises(error, match=message):
        load_fashion_mnist(**kwargs)
    assert fake_network.requested == []
    assert not get_data_home().joinpath("fashion_mnist").exists()


def test_fashion_missing_without_download_says_how_to_get_it(sandbox, fake_network):
    with pytest.raises(DataNotFoundError) as excinfo:
        load_fashion_mnist(subset="test", data_home=sandbox, download=np.False_)
    message = str(excinfo.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert f"not found in {sandbox / 'fashion_mnist'}, and download=False" in message
    assert "t10k-images-idx3-ubyte.gz" in message
    assert fake_network.requested == []


def test_fashion_network_failure_gives_guidance(sandbox, fake_network):
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_fashion_mnist(subset="test", data_home=sandbox)
    assert isinstance(info.value.__cause__, URLError)
    assert fake_network.requested == [
        mirror + "t10k-images-idx3-ubyte.gz" for mirror in _fashion_mnist.MIRRORS
    ]
    assert leftover_partials(sandbox / "fashion_mnist") == []


def test_fashion_downloads_verifies_and_keeps_the_files(sandbox, fashion_files, fake_network):
    second_mirror = _fashion_mnist.MIRRORS[1]  # the first one fails
    fake_network.served.update(
        {second_mirror + name: fashion_files.files[name] for name in TEST_FILES}
    )
    bunch = load_fashion_mnist(subset="test", data_home=sandbox)
    np.testing.assert_array_equal(bunch.target, fashion_files.arrays["test"][1])
    folder = sandbox / "fashion_mnist"
    assert sorted(path.name for path in folder.iterdir()) == sorted(TEST_FILES)
    fake_network.requested.clear()
    load_fashion_mnist(subset="test", data_home=sandbox)
    assert fake_network.requested == []  # the second call reads the kept copies


def test_fashion_default_search_reads_the_system_folder_first(sandbox, fashion_files):
    system = sandbox / "system"
    fashion_files.write(system, TEST_FILES)
    bunch = load_fashion_mnist(subset="test", download=False)
    np.testing.assert_array_equal(bunch.target, fashion_files.arrays["test"][1])
    assert not (sandbox / "home" / "sktransfer_data" / "fashion_mnist").exists()
    assert _fashion_mnist._not_installed_reason() is not None  # the train files are missing
    fashion_files.write(system, TRAIN_FILES)
    assert _fashion_mnist._not_installed_reason() is None


@pytest.mark.parametrize("named_by", ["SKTRANSFER_DATA", "data_home"])
def test_fashion_a_named_data_folder_is_the_only_one_read(
    sandbox, fashion_files, monkeypatch, named_by
):
    fashion_files.write(sandbox / "system", TEST_FILES)
    empty = sandbox / "empty"
    kwargs = {"data_home": empty} if named_by == "data_home" else {}
    if named_by == "SKTRANSFER_DATA":
        monkeypatch.setenv("SKTRANSFER_DATA", str(empty))
    with pytest.raises(DataNotFoundError) as excinfo:
        load_fashion_mnist(subset="test", download=False, **kwargs)
    message = str(excinfo.value)
    assert f"not found in {empty / 'fashion_mnist'}, and download=False" in message
    assert f"A copy exists in {sandbox / 'system'}, which is not searched" in message
    assert "Fashion-MNIST is not installed" in _fashion_mnist._not_installed_reason(**kwargs)
    fashion_files.write(empty / "fashion_mnist", TEST_FILES)
    bunch = load_fashion_mnist(subset="test", download=False, **kwargs)
    np.testing.assert_array_equal(bunch.target, fashion_files.arrays["test"][1])


def test_fashion_checksum_is_on_content_not_compression(sandbox, fashion_files):
    """A faithful recompression (as Debian's package has) is accepted."""
    folder = sandbox / "fashion_mnist"
    folder.mkdir()
    for name in TEST_FILES:
        content = gzip.decompress(fashion_files.files[name])
        (folder / name).write_bytes(gzip.compress(content, compresslevel=1, mtime=123))
        assert (folder / name).read_bytes() != fashion_files.files[name]
    bunch = load_fashion_mnist(subset="test", data_home=sandbox, download=False)
    np.testing.assert_array_equal(bunch.target, fashion_files.arrays["test"][1])


def test_fashion_corrupt_system_file_is_skipped(sandbox, fashion_files):
    system = fashion_files.write(sandbox / "system", TEST_FILES)
    fashion_files.write(sandbox / "home" / "sktransfer_data" / "fashion_mnist", TEST_FILES)
    labels = gzip.decompress(fashion_files.files[TEST_FILES[1]])
    tampered = labels[:8] + bytes([(labels[8] + 1) % 10]) + labels[9:]  # relabel one image
    (system / TEST_FILES[1]).write_bytes(gzip.compress(tampered))
    with pytest.warns(UserWarning, match="t10k-labels-idx1-ubyte.gz is corrupt.*ignoring it"):
        bunch = load_fashion_mnist(subset="test", download=False)
    np.testing.assert_array_equal(bunch.target, fashion_files.arrays["test"][1])


def test_fashion_corrupt_data_home_copy(sandbox, fashion_files, fake_network):
    folder = fashion_files.write(sandbox / "fashion_mnist", TEST_FILES)
    labels_path = folder / TEST_FILES[1]
    good_labels = labels_path.read_bytes()
    labels_path.write_bytes(good_labels[:20])  # truncated gzip stream

    with pytest.raises(DataNotFoundError, match=r"(?s)is corrupt.*apt-get install"):
        load_fashion_mnist(subset="test", data_home=sandbox, download=False)

    # With download allowed, the bad copy is replaced.
    url = _fashion_mnist.MIRRORS[0] + TEST_FILES[1]
    fake_network.served[url] = good_labels
    with pytest.warns(UserWarning, match="downloading it again"):
        bunch = load_fashion_mnist(subset="test", data_home=sandbox)
    assert fake_network.requested == [url]
    assert labels_path.read_bytes() == good_labels
    np.testing.assert_array_equal(bunch.target, fashion_files.arrays["test"][1])


def test_fashion_files_with_wrong_shapes_are_refused(sandbox, fashion_files, monkeypatch):
    folder = sandbox / "fashion_mnist"
    folder.mkdir()
    images = gzip.compress(idx_file(np.zeros((4, 28, 27), dtype=np.uint8)))
    labels = gzip.compress(idx_file(np.zeros(4, dtype=np.uint8)))
    (folder / TEST_FILES[0]).write_bytes(images)
    (folder / TEST_FILES[1]).write_bytes(labels)
    monkeypatch.setitem(
        _fashion_mnist._CONTENT_SHA256, TEST_FILES[0], _base.sha256_bytes(gzip.decompress(images))
    )
    monkeypatch.setitem(
        _fashion_mnist._CONTENT_SHA256, TEST_FILES[1], _base.sha256_bytes(gzip.decompress(labels))
    )
    with pytest.raises(ValueError, match=r"Fashion-MNIST test: images \(4, 28, 27\)"):
        load_fashion_mnist(subset="test", data_home=sandbox, download=False)


def test_fashion_parse_idx_rejects_bad_headers():
    labels = np.array([0x00000801, 3], dtype=">i4").tobytes() + bytes([1, 2, 3])
    assert idx_file(np.array([1, 2, 3])) == labels
    np.testing.assert_array_equal(_fashion_mnist._parse_idx(labels, 1, "x"), [1, 2, 3])
    with pytest.raises(ValueError, match="not an IDX file"):
        _fashion_mnist._parse_idx(labels, 3, "x")
    with pytest.raises(ValueError, match="not an IDX file"):
        _fashion_mnist._parse_idx(labels[:3], 1, "x")
    with pytest.raises(ValueError, match="size does not match"):
        _fashion_mnist._parse_idx(labels[:-1], 1, "x")


# --------------------------------------------------------------------------- the test run


def test_ci_runs_the_tests_with_an_empty_data_folder():
    """CI proves the suite needs no installed data set: SKTRANSFER_DATA is empty."""
    lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert lines[-1].endswith("python -m pytest")
    setup = [line.split("#")[0].strip() for line in lines[:-1]]
    assert 'SKTRANSFER_DATA="$(mktemp -d)"' in setup and "export SKTRANSFER_DATA" in setup


def test_gpu_marker_is_registered(pytestconfig):
    markers = [line.split(":")[0] for line in pytestconfig.getini("markers")]
    assert "gpu" in markers


@pytest.mark.parametrize("cuda", [False, True], ids=["no-gpu", "gpu"])
def test_gpu_tests_are_skipped_with_the_reason_only_without_cuda(pytester, monkeypatch, cuda):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a CUDA GPU\naddopts = --strict-markers\n")
    pytester.makepyfile(
        "import pytest\n\n"
        "@pytest.mark.gpu\ndef test_on_gpu():\n    pass\n\n"
        "def test_anywhere():\n    pass\n"
    )
    result = pytester.runpytest_inprocess("-ra")
    if cuda:
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED * needs a CUDA GPU"])
