"""Turn the many forms of image input into RGB PIL images, one batch at a time.

Private helpers of :class:`sktransfer.ImageEncoder`. Nothing here imports torch
or timm: the caller passes its own ``transform`` (PIL image -> tensor).

Conversion rules (the same for every kind of input, so a path, its bytes, the
PIL image and the numpy array of the same picture give the same pixels):

* **Files** (paths and bytes) are fully decoded at once (``Image.open`` is
  lazy; a truncated file must fail here, not later) and their EXIF orientation
  is applied. A caller that will shrink the image anyway may pass
  ``draft_min_side``: a JPEG file whose shorter side is at least twice that is
  then decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling (PIL's draft
  mode), never below ``draft_min_side`` pixels on either side. That is several
  times faster on photos of several megapixels; the pixels differ slightly
  from a full decode followed by the same resize. PIL images passed directly
  are taken as the pixel grid they are (call ``PIL.ImageOps.exif_transpose``
  yourself if you opened a photo).
* **Transparency** (RGBA, LA, PA, palette or grey/RGB images with a
  transparent colour) is composited onto a **white** background: dropping the
  alpha channel would expose whatever colour fully transparent pixels happen to
  store (often black or random garbage).
* **Floats** must lie in [0, 1]; they are scaled by 255 and rounded half up
  (``floor(255 * x + 0.5)``, so 0.5 -> 128). Values further than half an 8-bit
  step (0.5 / 255) outside [0, 1] raise, as do NaN and infinity.
* **16-bit** values (uint16 arrays, PIL modes ``I;16*``) are scaled to 8 bits
  by dividing by 257 and rounding (65535 -> 255, 2570 -> 10), so the full
  16-bit range maps onto the full 8-bit range instead of saturating at 255.
  PIL mode ``I`` (32-bit integers; how PIL represents 16-bit samples from many
  files) is treated the same way, clipped to [0, 65535]. PIL mode ``F`` follows
  the float rule above.
* **Other integer arrays** (int8 ... int64, uint32, uint64) are accepted when
  every value is in [0, 255]; booleans map to 0 / 255.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from sktransfer._fingerprint import hash_file
from sktransfer._validation import is_missing
from sktransfer.exceptions import ImageDecodeError, InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image as PILImage

__all__ = ["as_image_list", "to_rgb", "iter_decoded_batches", "content_key", "THREAD_PREFIX"]

#: Name prefix of the decoding threads (visible in ``threading.enumerate()``).
THREAD_PREFIX = "sktransfer-decode"

_CHANNELS = (1, 3, 4)
_ITEM_KINDS = "a file path, bytes, a PIL image or a numpy array"
# Half an 8-bit step: floats this close outside [0, 1] round to 0 or 255 anyway,
# so they are rounding noise (e.g. 1.0000001 after a resize), not a wrong scale.
_FLOAT_TOLERANCE = 0.5 / 255
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_READ_CHUNK = 1 << 20
_EXIF_ORIENTATION = 0x0112
_ENCODED_FILE_TYPES = (str, os.PathLike, bytes, bytearray, memoryview)


# --------------------------------------------------------------------- helpers
def _shorten(text: str, limit: int = 120) -> str:
    """Cut ``text`` in the middle: the end of a path (the file name) is the useful part."""
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


def _describe(item: Any) -> str:
    """A short description of ``item`` for an error message, never its whole content."""
    if isinstance(item, np.ndarray):
        return f"array of shape {item.shape} and dtype {item.dtype}"
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item[:24])
        more = "..." if len(item) > 24 else ""
        return f"{len(item)} bytes ({data!r}{more})"
    return _shorten(repr(item), 80)


def _is_pandas(X: Any, kind: str) -> bool:
    """Duck-typed pandas check: pandas is optional and must not be imported here."""
    return type(X).__module__.startswith("pandas") and (
        hasattr(X, "columns") if kind == "DataFrame" else getattr(X, "ndim", None) == 1
    )


# ------------------------------------------------------------------ container
def as_image_list(X: Any) -> list:
    """Validate the container of images and return a list of per-image items.

    Items are not decoded (see :func:`to_rgb`); their types are checked at
    decode time, where the error can name the item's position.

    Parameters
    ----------
    X : list, tuple, pandas Series, one-column DataFrame or numpy array
        Accepted containers:

        * a list or tuple of items, a pandas Series of items, a one-column
          pandas DataFrame (its column), a 1-D numpy object/string array of
          items, or an ``(n, 1)`` one (what scikit-learn's ColumnTransformer
          passes for a single numpy column);
        * a 3-D numeric array ``(n, H, W)``: ``n`` grayscale images. A last
          dimension of 1, 3 or 4 is refused as ambiguous: that is almost
          certainly one ``(H, W, C)`` image passed without a list around it;
        * a 4-D numeric array: ``(n, H, W, C)`` when ``C`` (the last
          dimension) is 1, 3 or 4 (channels-last); otherwise ``(n, C, H, W)``
          when the second dimension is 1, 3 or 4 (channels-first, e.g. from
          PyTorch). When both dimensions are 1, 3 or 4 (e.g. ``(n, 3, 8, 4)``)
          the layout is ambiguous and channels-last wins; pass a list of
          ``(H, W, C)`` arrays to be explicit.

        Items are file paths (``str`` / ``os.PathLike``), bytes of an encoded
        image file (``bytes`` / ``bytearray`` / ``memoryview``), PIL images,
        or numpy arrays ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)``, ``(H, W, 4)``.

    Returns
    -------
    list
        One item per image, in input order (array batches become views, no copy).

    Raises
    ------
    InvalidInputError
        If ``X`` is a single image rather than a container, a 2-D numeric
        array (tabular features), a DataFrame with several columns, or an
        array of unsupported shape or dtype.

    Examples
    --------
    >>> import numpy as np
    >>> [a.shape for a in as_image_list(np.zeros((2, 3, 8, 8), np.uint8))]
    [(8, 8, 3), (8, 8, 3)]
    """
    from PIL import Image

    if X is None:
        raise InvalidInputError("expected a list of images, got None.")
    if isinstance(X, (str, os.PathLike)):
        raise InvalidInputError(
            f"expected a list of images, got a single file path {_shorten(repr(X), 80)}; "
            "wrap it in a list: [path]."
        )
    if isinstance(X, (bytes, bytearray, memoryview)):
        raise InvalidInputError(
            f"expected a list of images, got a single {type(X).__name__} object; "
            "wrap it in a list: [data]."
        )
    if isinstance(X, Image.Image):
        raise InvalidInputError(
            "expected a list of images, got a single PIL image; wrap it in a list: [image]."
        )
    if _is_pandas(X, "DataFrame"):
        if X.shape[1] != 1:
            names = [str(c) for c in list(X.columns)[:5]]
            raise InvalidInputError(
                f"expected one column of images, got a DataFrame with {X.shape[1]} columns "
                f"{names}{' ...' if X.shape[1] > 5 else ''}; select the image column "
                "(e.g. with a ColumnTransformer)."
            )
        return X.iloc[:, 0].tolist()
    if _is_pandas(X, "Series"):
        return X.tolist()
    if isinstance(X, (list, tuple)):
        return list(X)
    if isinstance(X, np.ndarray) or hasattr(X, "__array__"):
        try:
            array = np.asarray(X)
        except Exception as exc:  # e.g. a tensor on a GPU
            raise InvalidInputError(
                f"cannot read {type(X).__name__} as a numpy array ({exc}); "
                "pass a list of images or a numpy array."
            ) from exc
        return _array_container(array)
    raise InvalidInputError(
        f"expected a list, tuple, pandas Series, one-column DataFrame or numpy array of "
        f"images, got {type(X).__name__}."
    )


def _array_container(X: np.ndarray) -> list:
    """Split an array container into per-image items (views, not copies)."""
    if X.dtype.kind in "OUS":  # an array of items (paths, bytes, PIL images, arrays)
        if X.ndim == 1:
            return list(X)
        if X.ndim == 2 and X.shape[1] == 1:
            return list(X[:, 0])
        if X.ndim == 0:
            raise InvalidInputError(
                "expected a list of images, got a 0-d array holding a single item; "
                "wrap the item in a list."
            )
        raise InvalidInputError(
            f"an array of {X.dtype} items must be 1-D (or one column), got shape {X.shape}."
        )
    if X.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"unsupported array dtype {X.dtype} for images; use uint8, or float in [0, 1]."
        )
    if X.ndim == 2:
        raise InvalidInputError(
            f"got a 2-D numeric array of shape {X.shape}: this looks like tabular features "
            "(n_samples, n_features), not images. For a batch of grayscale images pass an "
            "(n, H, W) array (e.g. X.reshape(n, H, W)); for a single grayscale image, wrap "
            "it in a list: [image]."
        )
    if X.ndim == 3:
        if X.shape[-1] in _CHANNELS:
            raise InvalidInputError(
                f"got a 3-D array of shape {X.shape}: this looks like a single "
                f"(H, W, {X.shape[-1]}) image; wrap it in a list: [image]. (A 3-D array is "
                f"read as (n, H, W) grayscale images; if these really are {X.shape[0]} images "
                f"{X.shape[-1]} pixel(s) wide, pass list(X).)"
            )
        return list(X)
    if X.ndim == 4:
        if X.shape[-1] in _CHANNELS:  # channels-last wins when both layouts fit
            return list(X)
        if X.shape[1] in _CHANNELS:  # channels-first (n, C, H, W), e.g. from PyTorch
            return list(np.moveaxis(X, 1, -1))
        raise InvalidInputError(
            f"got a 4-D array of shape {X.shape}; expected (n, H, W, C) or (n, C, H, W) "
            "with C (channels) 1, 3 or 4."
        )
    raise InvalidInputError(
        f"got a {X.ndim}-D numeric array of shape {X.shape}; expected a list of images, "
        "an (n, H, W) array of grayscale images or an (n, H, W, C) array with C in 1, 3, 4."
    )


# ---------------------------------------------------------------------- decode
_FILE_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


# A scheme followed by "//": a URL, not a path (a Windows drive "C:\\" has no "//").
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _refuse_url(path: str, where: str) -> None:
    """Refuse a URL given where a file path is expected.

    URLs are not fetched: a download inside ``transform`` would hide network
    time and failures in a feature-extraction step, make the output depend on
    what a server returns that day (and the embedding cache key on the URL,
    not the content), and let a column of data make requests from the
    machine. Downloading is one line for the caller, who chooses the timeout,
    retries and size limit.
    """
    if not _URL_SCHEME.match(path):
        return
    raise ImageDecodeError(
        f"{where}'{_shorten(path)}' is a URL; sktransfer does not fetch URLs. Download "
        "the image first and pass its bytes or a local path, e.g. "
        "urllib.request.urlopen(url, timeout=10).read() (see docs/encoders.md#imageencoder)."
    )


def _check_regular_file(path: str, where: str) -> None:
    """Refuse a path that is not a regular file (after following symlinks).

    Opening a FIFO blocks until a writer appears and reading a device such as
    ``/dev/zero`` never ends, so both would hang the caller; a directory
    cannot be decoded either. A missing path is left to the caller's open().
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "special file")
    raise ImageDecodeError(
        f"{where}'{_shorten(path)}' is a {kind}, not a regular file; only regular files "
        "are read (a pipe or device could block or never end). Pass the path of an image "
        "file, or read the data yourself and pass its bytes."
    )


def to_rgb(item: Any, index: int, draft_min_side: int | None = None) -> PILImage.Image:
    """Decode one item to an RGB PIL image (see the module docstring for the rules).

    Parameters
    ----------
    item : str, os.PathLike, bytes, bytearray, memoryview, PIL.Image.Image or numpy.ndarray
        One image: a file path, the bytes of an encoded image file, a PIL image
        or an array ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``.
    index : int
        The item's position in the input, used in error messages.
    draft_min_side : int or None, default=None
        For JPEG files (paths and bytes): decode at a reduced scale that keeps
        both sides at least this long (see the module docstring). ``None``
        decodes every pixel.

    Returns
    -------
    PIL.Image.Image
        An image of mode "RGB".

    Raises
    ------
    ImageDecodeError
        If a file is missing, unreadable or not a decodable image.
    InvalidInputError
        If the item has an unsupported type, shape, dtype or value range.

    Examples
    --------
    >>> import numpy as np
    >>> image = to_rgb(np.full((2, 2), 0.5), 0)
    >>> image.mode, image.getpixel((0, 0))
    ('RGB', (128, 128, 128))
    """
    from PIL import Image

    if isinstance(item, Image.Image):
        return _pil_to_rgb(item, index, "the PIL image")
    if isinstance(item, (str, os.PathLike)):
        return _decode_path(item, index, draft_min_side)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _decode_bytes(item, index, draft_min_side)
    if isinstance(item, np.ndarray):
        return _array_to_rgb(item, index)
    hint = ""
    if is_missing(item):
        hint = " (a missing value)"
    elif isinstance(item, (list, tuple)):
        hint = " (convert nested lists of pixels to a numpy array)"
    raise InvalidInputError(
        f"image {index}: expected {_ITEM_KINDS}, got {type(item).__name__}{hint}."
    )


def _decode_path(
    item: str | os.PathLike, index: int, draft_min_side: int | None = None
) -> PILImage.Image:
    from PIL import Image

    path = os.fsdecode(os.fspath(item))
    shown = f"'{_shorten(path)}'"
    _refuse_url(path, f"image {index}: ")
    _check_regular_file(path, f"image {index}: ")
    try:
        with Image.open(path) as image:
            return _decode_opened(image, index, shown, draft_min_side)
    except FileNotFoundError as exc:
        where = "" if os.path.isabs(path) else f" (relative to '{_shorten(os.getcwd())}')"
        raise ImageDecodeError(f"image {index}: file not found: {shown}{where}") from exc
    except (IsADirectoryError, PermissionError) as exc:
        raise ImageDecodeError(f"image {index}: cannot read {shown} ({exc.strerror})") from exc
    except InvalidInputError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt files
        raise ImageDecodeError(
            f"image {index}: cannot decode {shown} as an image ({_reason(exc)})"
        ) from exc


def _decode_bytes(
    item: bytes | bytearray | memoryview, index: int, draft_min_side: int | None = None
) -> PILImage.Image:
    import io

    from PIL import Image

    shown = _describe(item)
    try:
        with Image.open(io.BytesIO(item)) as image:
            return _decode_opened(image, index, shown, draft_min_side)
    except InvalidInputError:
        raise
    except Exception as exc:
        n_bytes = item.nbytes if isinstance(item, memoryview) else len(item)
        reason = "empty" if n_bytes == 0 else _reason(exc)
        raise ImageDecodeError(
            f"image {index}: cannot decode {n_bytes} bytes as an image ({reason}); they "
            f"start with {bytes(item[:24])!r}{'...' if n_bytes > 24 else ''}"
        ) from exc


def apply_draft(image: PILImage.Image, min_side: int) -> bool:
    """Ask PIL to decode a JPEG at a reduced scale; True if it will.

    Only when the shorter side is at least ``2 * min_side``: the reduced image
    keeps both sides at least ``min_side`` long (PIL picks the smallest of the
    scales 1/2, 1/4, 1/8 that does), so a later resize to ``min_side`` still
    does the last step of the shrinking with its own filter.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (1600, 1200)).save(buffer, "JPEG")
    >>> image = Image.open(buffer)
    >>> apply_draft(image, 256), image.size
    (True, (400, 300))
    """
    if image.format != "JPEG" or min(image.size) < 2 * min_side:
        return False
    # Rotation by EXIF orientation swaps the sides later: a square request
    # keeps the shorter side long enough either way.
    return image.draft(None, (min_side, min_side)) is not None


def _reason(exc: BaseException) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        # PIL's message repeats the path, or shows a BytesIO object's address.
        return "unknown or unsupported image format"
    return str(exc) or type(exc).__name__


def _decode_opened(
    image: PILImage.Image, index: int, shown: str, draft_min_side: int | None = None
) -> PILImage.Image:
    """Load a freshly opened file fully, apply EXIF orientation, convert to RGB."""
    from PIL import ImageOps

    if draft_min_side is not None:
        apply_draft(image, draft_min_side)
    # Image.open only reads the header: force the decode so truncated or corrupt
    # data fails now, inside the caller's try, with the item named.
    image.load()
    # exif_transpose copies the whole image even when there is nothing to turn.
    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    return _pil_to_rgb(image, index, shown)


def _pil_to_rgb(image: PILImage.Image, index: int, shown: str) -> PILImage.Image:
    from PIL import Image

    try:
        mode = image.mode
        if mode == "RGB" and "transparency" not in image.info:
            return image
        if mode in _ALPHA_MODES or "transparency" in image.info:
            if mode == "La":  # premultiplied grey: PIL only converts it to LA
                image = image.convert("LA")
            return _composite_on_white(image.convert("RGBA"))
        if mode.startswith("I;16") or mode == "I":
            values = np.asarray(image)
            if mode == "I":
                values = np.clip(values, 0, 65535)
            return Image.fromarray(_scale_16bit(values)).convert("RGB")
        if mode == "F":
            return Image.fromarray(_float_to_uint8(np.asarray(image), index)).convert("RGB")
        return image.convert("RGB")
    except InvalidInputError:
        raise
    except Exception as exc:  # a mode PIL cannot convert, or lazy loading failing
        raise ImageDecodeError(
            f"image {index}: cannot convert {shown} (mode {image.mode!r}) to RGB ({exc})"
        ) from exc


def _composite_on_white(rgba: PILImage.Image) -> PILImage.Image:
    from PIL import Image

    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Map [0, 65535] onto [0, 255] by rounding v / 257 (65535 -> 255, 2570 -> 10)."""
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _float_to_uint8(values: np.ndarray, index: int) -> np.ndarray:
    if not np.isfinite(values).all():
        raise InvalidInputError(
            f"image {index}: the {_describe(values)} contains NaN or infinite values."
        )
    low, high = float(values.min()), float(values.max())
    if low < -_FLOAT_TOLERANCE or high > 1 + _FLOAT_TOLERANCE:
        raise InvalidInputError(
            f"image {index}: float pixel values must be in [0, 1], found [{low:.4g}, "
            f"{high:.4g}] in the {_describe(values)}; scale to [0, 1] (e.g. x / 255) or "
            "pass uint8."
        )
    # Round half up, in float32 (float64 would double the memory of a large photo).
    scaled = np.floor(values.astype(np.float32) * np.float32(255) + np.float32(0.5))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _array_to_rgb(array: np.ndarray, index: int) -> PILImage.Image:
    from PIL import Image

    shape = array.shape
    if array.size == 0 or not (array.ndim == 2 or (array.ndim == 3 and shape[-1] in _CHANNELS)):
        hint = ""
        if array.ndim == 3 and shape[0] in _CHANNELS and shape[-1] not in _CHANNELS:
            hint = " (it looks channels-first: use np.moveaxis(image, 0, -1))"
        raise InvalidInputError(
            f"image {index}: unsupported array shape {shape}; expected (H, W), (H, W, 1), "
            f"(H, W, 3) or (H, W, 4) with H, W > 0{hint}."
        )
    kind = array.dtype.kind
    if kind == "b":
        pixels = array.astype(np.uint8) * np.uint8(255)
    elif array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.uint16:
        pixels = _scale_16bit(array)
    elif kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise InvalidInputError(
                f"image {index}: {array.dtype} pixel values must be in [0, 255], found "
                f"[{low}, {high}]; pass uint8, uint16 or float in [0, 1]."
            )
        pixels = array.astype(np.uint8)
    elif kind == "f":
        pixels = _float_to_uint8(array, index)
    else:
        raise InvalidInputError(
            f"image {index}: unsupported dtype {array.dtype} in the {_describe(array)}; "
            "pass uint8, uint16, bool or float in [0, 1]."
        )
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[:, :, 0]
    pixels = np.ascontiguousarray(pixels)  # PIL needs contiguous memory (views of batches)
    if pixels.ndim == 2:
        return Image.fromarray(pixels).convert("RGB")
    if pixels.shape[-1] == 4:
        return _composite_on_white(Image.fromarray(pixels))
    return Image.fromarray(pixels)


# --------------------------------------------------------------------- batches
def _decode_one(
    items: Sequence,
    index: int,
    transform: Callable | None,
    labels: Sequence[int] | None,
    draft_min_side: int | None = None,
) -> Any:
    # ``to_rgb`` is looked up at call time so it can be swapped (e.g. in tests).
    item, where = items[index], index if labels is None else labels[index]
    if draft_min_side is None or not isinstance(item, _ENCODED_FILE_TYPES):
        image = to_rgb(item, where)
    else:  # only files can be decoded at a reduced size
        image = to_rgb(item, where, draft_min_side=draft_min_side)
    return image if transform is None else transform(image)


def iter_decoded_batches(
    items: Sequence,
    batch_size: int,
    transform: Callable[[PILImage.Image], Any] | None,
    *,
    on_error: str = "raise",
    n_workers: int = 1,
    labels: Sequence[int] | None = None,
    draft_min_side: int | None = None,
    ahead: bool = True,
) -> Iterator[tuple[int, list, list[int]]]:
    """Decode and transform ``items`` lazily, one batch at a time.

    Parameters
    ----------
    items : sequence
        Items as returned by :func:`as_image_list` (needs ``len`` and indexing).
    batch_size : int
        Items per batch (at least 1).
    transform : callable or None
        Maps an RGB PIL image to what the caller wants (e.g. a tensor); it runs
        in the same worker as the decoding. ``None`` keeps the PIL image.
    on_error : {"raise", "zero", "nan"}, default="raise"
        "raise" re-raises the first :class:`ImageDecodeError` /
        :class:`InvalidInputError` (lowest index of the batch). "zero" and
        "nan" put ``None`` in place of a failed item and report its absolute
        index in ``failed_positions``; the caller fills its row. Other
        exceptions (e.g. from ``transform``) always propagate.
    n_workers : int, default=1
        1 decodes in the calling thread. More decodes the items of a batch in
        a thread pool (PIL releases the GIL while decoding) and keeps the
        order. The pool is shut down when the iteration ends, fails or is
        closed early.
    labels : sequence of int, optional
        The position to name in error messages for each item (e.g. its row in
        the user's input when ``items`` is a subset); default: its index here.
    draft_min_side : int, optional
        Decode large JPEG files at a reduced scale that keeps both sides at
        least this long (see :func:`to_rgb`); ``None`` decodes every pixel.
    ahead : bool, default=True
        With ``n_workers`` above 1: True decodes the next batch while the
        caller works on the current one (at most two batches in memory); for
        a caller whose own work leaves cores idle (a forward pass on a GPU, or
        on fewer threads than there are cores). False decodes each batch when
        it is asked for, with every thread of the pool: for a caller whose work
        already keeps every core busy, where decoding alongside would only
        take turns with it (see ``sktransfer._threads.decode_ahead``).

    Yields
    ------
    start : int
        Index of the batch's first item.
    outputs : list
        ``transform(image)`` per item of the batch, ``None`` for failed items.
    failed_positions : list of int
        Absolute indices of the failed items of this batch.

    Examples
    --------
    >>> import numpy as np
    >>> images = [np.zeros((4, 4), np.uint8), None, np.ones((4, 4), np.uint8)]
    >>> for start, out, failed in iter_decoded_batches(images, 2, None, on_error="zero"):
    ...     print(start, [o is None for o in out], failed)
    0 [False, True] [1]
    2 [False] []
    """
    if on_error not in ("raise", "zero", "nan"):
        raise ValueError(f"on_error must be 'raise', 'zero' or 'nan', got {on_error!r}.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if int(n_workers) != n_workers or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}.")
    batch_size, n_workers = int(batch_size), int(n_workers)
    keep_going = on_error != "raise"
    n_items = len(items)
    starts = range(0, n_items, batch_size)
    if n_workers == 1 or n_items <= 1:
        for start in starts:
            outputs, failed = [], []
            for index in range(start, min(start + batch_size, n_items)):
                try:
                    outputs.append(_decode_one(items, index, transform, labels, draft_min_side))
                except InvalidInputError:  # includes ImageDecodeError
                    if not keep_going:
                        raise
                    outputs.append(None)
                    failed.append(index)
            yield start, outputs, failed
        return
    yield from _threaded_batches(
        items, starts, batch_size, transform, keep_going, n_workers, labels, draft_min_side, ahead
    )


def _threaded_batches(
    items: Sequence,
    starts: range,
    batch_size: int,
    transform: Callable | None,
    keep_going: bool,
    n_workers: int,
    labels: Sequence[int] | None = None,
    draft_min_side: int | None = None,
    ahead: bool = True,
) -> Iterator[tuple[int, list, list[int]]]:
    n_items = len(items)
    executor = ThreadPoolExecutor(
        max_workers=min(n_workers, n_items), thread_name_prefix=THREAD_PREFIX
    )
    queued: deque[tuple[int, list[Future]]] = deque()

    def submit(start: int) -> None:
        stop = min(start + batch_size, n_items)
        futures = [
            executor.submit(_decode_one, items, i, transform, labels, draft_min_side)
            for i in range(start, stop)
        ]
        queued.append((start, futures))

    try:
        if ahead:
            submit(starts[0])
        for position in range(len(starts)):
            if not ahead:
                submit(starts[position])
            elif position + 1 < len(starts):
                # Queue the next batch before waiting on this one: the pool works
                # on it while the caller runs the model on the batch yielded below.
                submit(starts[position + 1])
            start, futures = queued.popleft()
            outputs, failed = [], []
            for offset, future in enumerate(futures):
                try:
                    outputs.append(future.result())
                except InvalidInputError:
                    if not keep_going:
                        raise
                    outputs.append(None)
                    failed.append(start + offset)
            del futures
            yield start, outputs, failed
    finally:
        # Runs on exhaustion, on an error, and on close() when the consumer
        # stops early: drop queued work and join the threads.
        for _, futures in queued:
            for future in futures:
                future.cancel()
        queued.clear()
        executor.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------ keys
def content_key(item: Any) -> bytes:
    """A SHA-256 digest of an item's content, for caching its embedding.

    Parameters
    ----------
    item : str, os.PathLike, bytes, bytearray, memoryview, PIL.Image.Image or numpy.ndarray
        One image item.

    Returns
    -------
    bytes
        32 bytes. The same content gives the same key. A file path is keyed
        by the file's bytes (read in chunks), so editing the file changes the
        key; it shares its key with the same bytes passed directly, since both
        decode identically. PIL images are keyed by mode, size, palette,
        transparency and pixel data; arrays by dtype, shape and C-order bytes.
        Each kind is prefixed with its own tag, so e.g. an array never shares
        a key with bytes holding the same raw data.

    Raises
    ------
    ImageDecodeError
        If a path cannot be read.
    InvalidInputError
        If the item is not one of the kinds above.

    Examples
    --------
    >>> content_key(b"abc") == content_key(bytearray(b"abc"))
    True
    """
    from PIL import Image

    digest = hashlib.sha256()
    if isinstance(item, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(item))
        digest.update(b"encoded\0")
        _refuse_url(path, "")
        _check_regular_file(path, "")
        try:
            hash_file(path, digest, chunk_size=_READ_CHUNK)
        except OSError as exc:
            raise ImageDecodeError(f"cannot read '{_shorten(path)}' ({exc.strerror})") from exc
    elif isinstance(item, (bytes, bytearray, memoryview)):
        digest.update(b"encoded\0")
        digest.update(item)
    elif isinstance(item, Image.Image):
        # The palette and transparency change the decoded colours without
        # changing tobytes() (palette indices), so they are part of the key.
        palette = item.getpalette() if item.mode in ("P", "PA") else None
        header = (
            f"pil\0{item.mode}\0{item.size[0]}x{item.size[1]}\0{palette!r}\0"
            f"{item.info.get('transparency')!r}\0"
        )
        digest.update(header.encode())
        digest.update(item.tobytes())
    elif isinstance(item, np.ndarray):
        if item.dtype.hasobject:
            raise InvalidInputError(f"cannot key an array of dtype {item.dtype}.")
        digest.update(f"ndarray\0{item.dtype.str}\0{item.shape}\0".encode())
        digest.update(np.ascontiguousarray(item).data)
    else:
        raise InvalidInputError(
            f"cannot key an item of type {type(item).__name__}; expected {_ITEM_KINDS}."
        )
    return digest.digest()
