"""Loader for Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017)."""

from __future__ import annotations

import gzip
import logging
import numbers
import warnings
import zlib
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from sktransfer.datasets import _base
from sktransfer.exceptions import DataNotFoundError

__all__ = ["load_fashion_mnist", "FASHION_MNIST_CLASSES"]

logger = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = (
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
)

# Folders searched before the data home; the first is where the Debian/Ubuntu
# package ``dataset-fashion-mnist`` installs the files.
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)

# The original repository's download addresses, tried in order.
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

_SUBSET_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_SUBSETS = ("train", "test", "all")
# Images in each subset, known before any file is read so that arguments are
# checked first.
_SUBSET_SIZES = {"train": 60000, "test": 10000, "all": 70000}

# SHA-256 of the *decompressed* IDX files. Checking the content rather than the
# .gz file accepts any faithful recompression: Debian's package recompresses the
# files, so its .gz digests differ from the originals while the content is equal.
_CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte.gz": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}
# SHA-256 of the original .gz files as served by the mirrors (their MD5s are the
# ones published in the Fashion-MNIST README), checked on download.
_ARCHIVE_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    ),
    "train-labels-idx1-ubyte.gz": (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    ),
}

_FOLDER = "fashion_mnist"
_IMAGE_SIDE = 28
# IDX magic numbers: two zero bytes, a type code (0x08 = unsigned byte), the
# number of dimensions.
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}

_DESCR = """\
Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017)
--------------------------------------------

70,000 grayscale 28x28 images of Zalando fashion articles in 10 balanced
classes: a training set of 60,000 (6,000 per class) and a test set of 10,000
(1,000 per class). Pixel values are uint8 in [0, 255], 0 being background.

Classes: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

Licence: MIT. Source: https://github.com/zalandoresearch/fashion-mnist

Citation: Han Xiao, Kashif Rasul, Roland Vollgraf. Fashion-MNIST: a Novel
Image Dataset for Benchmarking Machine Learning Algorithms. arXiv:1708.07747,
2017.
"""


def _guidance(folder: Path) -> str:
    return (
        "To get Fashion-MNIST, either install the Debian/Ubuntu package:\n"
        "    sudo apt-get install dataset-fashion-mnist\n"
        f"(files in {SYSTEM_DIRS[0]}, read when no data folder is named with data_home or "
        f"{_base.DATA_HOME_ENV}), or place the four files "
        f"{', '.join(_CONTENT_SHA256)} from https://github.com/zalandoresearch/fashion-mnist "
        f"in {folder}/, or call load_fashion_mnist(download=True) on a machine that can reach "
        "the download servers."
    )


def _unsearched_system_copy(folders: tuple[Path, ...], filename: str) -> str:
    """A note when ``filename`` sits in a system folder that was not searched."""
    for directory in SYSTEM_DIRS:
        if directory not in folders and (directory / filename).is_file():
            return (
                f"\n\nA copy exists in {directory}, which is not searched because a data "
                f"folder was named (data_home or {_base.DATA_HOME_ENV}); copy the files "
                "into that folder, or name no data folder."
            )
    return ""


def _read_verified(path: Path) -> bytes | None:
    """Decompressed content of ``path`` if it matches its checksum, else ``None``."""
    try:
        content = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error):  # unreadable, not gzip, or truncated
        return None
    if _base.sha256_bytes(content) != _CONTENT_SHA256[path.name]:
        return None
    return content


def _load_file(filename: str, folders: tuple[Path, ...], download: bool) -> bytes:
    """Decompressed, verified content of one Fashion-MNIST file.

    ``folders`` are searched in order; the last one is the data home's folder,
    where a download goes.
    """
    folder = folders[-1]
    local_copy = folder / filename
    for candidate in (directory / filename for directory in folders):
        if not candidate.is_file():
            continue
        content = _read_verified(candidate)
        if content is not None:
            return content
        problem = f"{candidate} is corrupt or not the original file (checksum mismatch)"
        if candidate != local_copy:
            warnings.warn(f"{problem}; ignoring it.", UserWarning, stacklevel=4)
        elif download:
            warnings.warn(f"{problem}; downloading it again.", UserWarning, stacklevel=4)
        else:
            raise DataNotFoundError(
                f"{problem}. Delete it and get it again.\n\n{_guidance(folder)}"
            )

    if not download:
        raise DataNotFoundError(
            f"Fashion-MNIST file {filename} was not found in "
            f"{', '.join(str(directory) for directory in folders)}, and download=False."
            f"{_unsearched_system_copy(folders, filename)}\n\n{_guidance(folder)}"
        )
    _base.download_file(
        [mirror + filename for mirror in MIRRORS],
        local_copy,
        sha256=_ARCHIVE_SHA256[filename],
        description=f"Fashion-MNIST file {filename}",
        guidance=_guidance(folder),
    )
    content = _read_verified(local_copy)
    if content is None:  # pragma: no cover - the archive digest was just checked
        raise DataNotFoundError(f"{local_copy} does not decompress to the expected content.")
    return content


def _not_installed_reason(data_home: _base.PathLike | None = None) -> str | None:
    """Why ``load_fashion_mnist(data_home=data_home)`` would have to download, or ``None``.

    Only looks for the four files (nothing is read, verified or created); used to
    run examples that need the real data only where it is installed.
    """
    folders = _base.search_folders(data_home, _FOLDER, SYSTEM_DIRS)
    missing = [
        name
        for name in _CONTENT_SHA256
        if not any((directory / name).is_file() for directory in folders)
    ]
    if not missing:
        return None
    return (
        f"Fashion-MNIST is not installed: {', '.join(missing)} not found in "
        f"{', '.join(str(directory) for directory in folders)}"
    )


def _parse_idx(content: bytes, ndim: int, filename: str) -> np.ndarray:
    """Array from an IDX file of unsigned bytes (big-endian int32 header)."""
    offset = 4 * (1 + ndim)
    if len(content) < offset or int.from_bytes(content[:4], "big") != _IDX_MAGIC[ndim]:
        raise ValueError(f"{filename}: not an IDX file of {ndim}-D unsigned bytes")
    shape = tuple(int(size) for size in np.frombuffer(content, dtype=">i4", count=ndim, offset=4))
    if len(content) - offset != int(np.prod(shape)):
        raise ValueError(f"{filename}: header says shape {shape}, size does not match")
    # Copy so callers get an ordinary writable array, not a view of immutable bytes.
    return np.frombuffer(content, dtype=np.uint8, offset=offset).reshape(shape).copy()


def _load_subset(
    subset: str, folders: tuple[Path, ...], download: bool
) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = _SUBSET_FILES[subset]
    images = _parse_idx(_load_file(images_file, folders, download), 3, images_file)
    labels = _parse_idx(_load_file(labels_file, folders, download), 1, labels_file)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (_IMAGE_SIDE, _IMAGE_SIDE):
        raise ValueError(f"Fashion-MNIST {subset}: images {images.shape}, labels {labels.shape}")
    return images, labels.astype(np.int64)


def _stratified_indices(target: np.ndarray, n_samples: int, random_state) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of size ``n_samples``."""
    from sklearn.utils import resample

    chosen = resample(
        np.arange(len(target)),
        replace=False,
        n_samples=n_samples,
        random_state=random_state,
        stratify=target,
    )
    # Keep the original file order; the subset, not its order, is random.
    return np.sort(chosen)


def _check_arguments(subset, data_home, download, n_samples, random_state):
    """Check every argument before any file is looked for; return the random state."""
    from sklearn.utils import check_random_state

    if not isinstance(subset, str) or subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {list(_SUBSETS)}, got {subset!r}.")
    _base.check_data_home(data_home)
    _base.check_bool(download, "download")
    size = _SUBSET_SIZES[subset]
    if n_samples is not None and (
        not isinstance(n_samples, numbers.Integral)
        or isinstance(n_samples, bool)
        or not 1 <= n_samples <= size
    ):
        raise ValueError(
            f"n_samples must be an integer from 1 to {size} for subset {subset!r}, "
            f"or None; got {n_samples!r}."
        )
    try:
        return check_random_state(random_state)
    except ValueError as error:
        raise ValueError(
            f"random_state must be None, an int or a numpy RandomState; got {random_state!r}."
        ) from error


def load_fashion_mnist(
    *,
    subset: str = "train",
    data_home: _base.PathLike | None = None,
    download: bool = True,
    n_samples: int | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> Bunch:
    """Load the Fashion-MNIST images of clothing (Xiao et al., 2017).

    70,000 grayscale 28x28 images in 10 balanced classes: 60,000 for
    training and 10,000 for testing.

    Each file is looked for, in order: in ``/usr/share/datasets/fashion-mnist/``
    (where the Debian/Ubuntu package ``dataset-fashion-mnist`` puts it), in
    ``~/sktransfer_data/fashion_mnist/``, and otherwise, if ``download`` is
    true, it is downloaded from the original mirrors into that folder. A data
    folder named with ``data_home`` or the ``SKTRANSFER_DATA`` environment
    variable replaces both places: only ``<data folder>/fashion_mnist/`` is
    read, and downloads go there. Every file is verified by the SHA-256 of its
    content. Arguments are checked before any file is looked for.

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        Which images to load; ``"all"`` is the training set followed by the
        test set.
    data_home : str or path-like, default=None
        Data folder, the only place read when given; see :func:`get_data_home`
        (``SKTRANSFER_DATA`` or ``~/sktransfer_data`` by default).
    download : bool, default=True
        Whether to download files that are not found locally.
    n_samples : int, default=None
        If given, return a random subset of this many images with the class
        proportions of ``subset`` (at least one per class when
        ``n_samples >= 10``), in their original order. ``None`` returns all.
    random_state : int, RandomState instance or None, default=None
        Seed for choosing the subset; pass an int for reproducible results.

    Returns
    -------
    sklearn.utils.Bunch
        With the following attributes:

        images : numpy.ndarray of uint8, shape (n, 28, 28)
            The images; 0 is background, 255 full intensity.
        data : numpy.ndarray of uint8, shape (n, 28, 28)
            The same array as ``images`` (not a copy): a 3-D array of
            grayscale images is valid input for
            :class:`~sktransfer.ImageEncoder`. Use
            ``images.reshape(len(images), -1)`` for 784 pixel features.
        target : numpy.ndarray of int64, shape (n,)
            Class index of each image, 0 to 9.
        target_names : list of str
            The 10 class names, indexed by ``target``.
        DESCR : str
            Description of the data set and its citation.

    Raises
    ------
    DataNotFoundError
        If a file is not available locally and ``download`` is false, a local
        copy is corrupt and ``download`` is false, or the download fails. The
        message says how to get the data.
    ValueError
        If ``subset``, ``n_samples`` or ``random_state`` is invalid.
    TypeError
        If ``data_home`` is not a path or ``download`` not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.datasets import load_fashion_mnist
    >>> train = load_fashion_mnist()
    >>> train.images.shape, train.images.dtype, train.target.dtype
    ((60000, 28, 28), dtype('uint8'), dtype('int64'))
    >>> train.target_names[train.target[0]]
    'Ankle boot'
    >>> small = load_fashion_mnist(subset="test", n_samples=500, random_state=0)
    >>> small.data.shape
    (500, 28, 28)
    >>> np.bincount(small.target)
    array([50, 50, 50, 50, 50, 50, 50, 50, 50, 50])
    """
    random_state = _check_arguments(subset, data_home, download, n_samples, random_state)
    folders = _base.search_folders(data_home, _FOLDER, SYSTEM_DIRS)

    if subset == "all":
        train_images, train_target = _load_subset("train", folders, download)
        test_images, test_target = _load_subset("test", folders, download)
        images = np.concatenate([train_images, test_images])
        target = np.concatenate([train_target, test_target])
    else:
        images, target = _load_subset(subset, folders, download)

    if n_samples is not None:
        keep = _stratified_indices(target, int(n_samples), random_state)
        images, target = images[keep], target[keep]

    return Bunch(
        images=images,
        data=images,
        target=target,
        target_names=list(FASHION_MNIST_CLASSES),
        DESCR=_DESCR,
    )
