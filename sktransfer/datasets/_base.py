"""Helpers shared by the data set loaders: data home, download, checksums, tar members."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import secrets
import shutil
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO
from urllib.request import Request, urlopen

from sktransfer.exceptions import DataNotFoundError

__all__ = [
    "ChecksumError",
    "atomic_write_text",
    "check_bool",
    "check_data_home",
    "clear_data_home",
    "download_file",
    "get_data_home",
    "read_tar_member",
    "search_folders",
    "sha256_bytes",
    "sha256_file",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

DATA_HOME_ENV = "SKTRANSFER_DATA"
DEFAULT_DATA_HOME = "~/sktransfer_data"

# Seconds without any data from the server before a download attempt gives up.
DOWNLOAD_TIMEOUT = 30.0

_CHUNK_SIZE = 1 << 20
_USER_AGENT = "sktransfer-datasets (+https://pypi.org/project/sktransfer/)"


class ChecksumError(OSError):
    """A file's SHA-256 digest is not the one recorded for it."""


def _data_home_path(data_home: PathLike | None) -> Path:
    """The data folder ``get_data_home`` would return, without creating it."""
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or DEFAULT_DATA_HOME
    return Path(data_home).expanduser()


def check_data_home(data_home: object) -> None:
    """Raise ``TypeError`` unless ``data_home`` is ``None``, a str or a path-like."""
    if data_home is not None and not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(
            f"data_home must be a folder path (str or path-like) or None, "
            f"got {type(data_home).__name__} {data_home!r}."
        )


def check_bool(value: object, name: str) -> None:
    """Raise ``TypeError`` unless ``value`` is a bool (Python's or NumPy's)."""
    import numpy as np

    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")


def search_folders(
    data_home: PathLike | None, subfolder: str, system_dirs: Iterable[PathLike] = ()
) -> tuple[Path, ...]:
    """Folders where a loader looks for its files, in order; nothing is created.

    With no data folder named (``data_home`` is ``None`` and ``SKTRANSFER_DATA``
    is unset or empty), the loader reads ``system_dirs`` (where system packages
    install data sets), then ``~/sktransfer_data/<subfolder>``. A named data
    folder is the only place read: ``<data_home>/<subfolder>``.
    """
    folder = _data_home_path(data_home) / subfolder
    if data_home is None and not os.environ.get(DATA_HOME_ENV):
        return (*(Path(directory) for directory in system_dirs), folder)
    return (folder,)


def get_data_home(data_home: PathLike | None = None) -> Path:
    """Return the folder where sktransfer keeps downloaded data sets.

    The folder is, in order of precedence: ``data_home`` when given, the
    ``SKTRANSFER_DATA`` environment variable when set and not empty, or
    ``~/sktransfer_data``. A leading ``~`` is expanded. The folder is created
    if it does not exist.

    A data folder you name, with ``data_home`` or ``SKTRANSFER_DATA``, is the
    only place the loaders read: system folders such as
    ``/usr/share/datasets/fashion-mnist`` are searched only when neither is
    set. ``SKTRANSFER_DATA=$(mktemp -d)`` therefore makes every loader behave
    as on a machine with no data set installed.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder to use instead of the environment variable or the default.

    Returns
    -------
    pathlib.Path
        The data folder, which exists on return.

    See Also
    --------
    clear_data_home : Delete the data folder and everything in it.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sktransfer.datasets import get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     home = get_data_home(Path(tmp) / "my_data")
    ...     print(home.name, home.is_dir())
    my_data True
    """
    check_data_home(data_home)
    path = _data_home_path(data_home)
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_data_home(data_home: PathLike | None = None) -> None:
    """Delete the data folder and everything in it.

    Cached archives and parsed copies are removed, so the next loader call
    finds or downloads its data again.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder to delete; ``None`` means the one :func:`get_data_home`
        returns (``SKTRANSFER_DATA`` or ``~/sktransfer_data``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sktransfer.datasets import clear_data_home, get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     home = get_data_home(Path(tmp) / "my_data")
    ...     clear_data_home(home)
    ...     print(home.exists())
    False
    """
    shutil.rmtree(get_data_home(data_home))


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 digest of a file, read in chunks so large files fit in memory."""
    from sktransfer._fingerprint import hash_file

    return hash_file(path, chunk_size=_CHUNK_SIZE).hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _urlopen(url: str, timeout: float) -> IO[bytes]:
    """Open ``url`` for reading; tests replace this to simulate the network."""
    return urlopen(Request(url, headers={"User-Agent": _USER_AGENT}), timeout=timeout)


def _partial_path(destination: Path) -> Path:
    """A fresh temporary name next to ``destination``, so ``os.replace`` stays atomic.

    Opened with mode ``"xb"`` by the caller, the file gets the usual permissions
    (from the umask), unlike ``tempfile.mkstemp``'s owner-only ones.
    """
    return destination.with_name(f".{destination.name}.{secrets.token_hex(8)}.part")


def _download_one(url: str, destination: Path, sha256: str | None, timeout: float) -> None:
    partial = _partial_path(destination)
    try:
        digest = hashlib.sha256()
        with _urlopen(url, timeout) as response, open(partial, "xb") as file:
            for chunk in iter(lambda: response.read(_CHUNK_SIZE), b""):
                digest.update(chunk)
                file.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ChecksumError(f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}")
        # Readers never see a half-written file: the name appears only when complete.
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def download_file(
    urls: Iterable[str],
    destination: PathLike,
    *,
    sha256: str | None = None,
    description: str = "the file",
    guidance: str = "",
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """Download the first of ``urls`` that works to ``destination``.

    The file is written to a temporary name in the destination folder and
    renamed only once complete and verified, so an interrupted download never
    leaves a partial file under the final name.

    Parameters
    ----------
    urls : iterable of str
        Addresses tried in order until one succeeds; may be lazy (a generator).
    destination : str or path-like
        Final path of the file; its folder is created if needed.
    sha256 : str, default=None
        Expected hex SHA-256 digest; a mismatch counts as a failed attempt.
    description : str
        What is being downloaded, for the error message.
    guidance : str
        How to get the file another way, appended to the error message.
    timeout : float
        Seconds to wait for the server at each step before giving up.

    Returns
    -------
    pathlib.Path
        ``destination``.

    Raises
    ------
    DataNotFoundError
        If every address failed. The message lists each address with its
        error and ends with ``guidance``; the exception is chained to the
        last underlying error (for example ``urllib.error.URLError``).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    last_error: Exception | None = None
    for url in urls:
        logger.info("Downloading %s from %s", description, url)
        try:
            _download_one(url, destination, sha256, timeout)
        # OSError covers URLError, HTTPError, timeouts and ChecksumError;
        # HTTPException covers a connection that closes mid-transfer.
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"  {url}: {error}")
            last_error = error
            continue
        return destination
    attempts = "\n".join(failures) or "  (no address to try)"
    message = f"Could not download {description}. Tried:\n{attempts}"
    if guidance:
        message += f"\n\n{guidance}"
    raise DataNotFoundError(message) from last_error


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` through a temporary file and a rename."""
    path = Path(path)
    partial = _partial_path(path)
    try:
        with open(partial, "x", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_tar_member(archive: PathLike | IO[bytes], member_name: str) -> bytes:
    """Return the bytes of one regular file inside a (possibly compressed) tar archive.

    Only the member whose name is exactly ``member_name`` is read, and it is
    read into memory: nothing is written to disk under a name taken from the
    archive, so hostile names (``../``, absolute paths) cannot escape the data
    folder. Links and other special members are refused.

    Raises
    ------
    KeyError
        If the archive has no such member.
    ValueError
        If the member is not a regular file.
    tarfile.TarError
        If the archive cannot be read.
    """
    if isinstance(archive, (str, os.PathLike)):
        tar = tarfile.open(archive, mode="r:*")
    else:
        tar = tarfile.open(fileobj=archive, mode="r:*")
    with tar:
        member = tar.getmember(member_name)
        if not member.isfile():
            raise ValueError(f"{member_name!r} in the archive is not a regular file")
        extracted = tar.extractfile(member)
        if extracted is None:  # pragma: no cover - isfile() members always extract
            raise ValueError(f"{member_name!r} could not be read from the archive")
        with extracted:
            return extracted.read()
