"""What identifies a model's weights, for the embedding cache and shared networks.

The cache key of an embedding starts with a *model fingerprint*: the encoder's
class, the identity of the weights that were loaded, the output width and every
output-affecting parameter. The identity is a hash of the weights' content,
taken once each time the weights are loaded (the loader reads them anyway), so:

- a Hub or Hugging Face cache model is identified by the files of the snapshot
  that was loaded (its commit), not by its id: when ``refs/main`` moves to new
  weights, the fingerprint moves too;
- a local folder or weights file rewritten in place is hashed again on its next
  load, whatever its size and modification time;
- the same files reached as a Hub id, a cache snapshot, a local folder or a
  packaged copy give the same identity.

Only a model with nothing on disk (``pretrained=False``: seeded random weights)
is identified by its name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# Files in a model folder that never change the numbers a model computes.
_IGNORED_NAMES = frozenset({"README.md", ".gitattributes"})


def _model_files(root: Path) -> list[Path]:
    """Files of a model folder (or the file itself), sorted, hidden entries skipped."""
    if not root.is_dir():
        return [root]
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue  # .cache/, .git/: download bookkeeping
        if path.name in _IGNORED_NAMES or not path.is_file():
            continue
        files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def path_stamp(path: str | os.PathLike) -> tuple:
    """A cheap stamp of a file or folder that changes when any file in it does.

    Path, inode, size, modification and status-change time of every file: a
    file rewritten in place keeps neither its status-change time (which no
    user call can set back) nor, when replaced, its inode. Used to decide
    whether a network loaded earlier in this process can be reused; the cache
    key itself uses :func:`weights_digest`.
    """
    stamps = []
    for p in _model_files(Path(path)):
        st = p.stat()
        stamps.append((str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(stamps)


def weights_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file, or of the files of a model folder.

    A single file is hashed by its content only, so a renamed copy has the same
    digest. A folder is hashed by the relative name and content of each file
    (hidden entries, ``README.md`` and ``.gitattributes`` excluded). Nothing is
    memoised: the content is read on every call.

    Parameters
    ----------
    path : str or path-like
        A weights file or a model folder.

    Returns
    -------
    str
        Hex digest.

    Examples
    --------
    >>> import hashlib, pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     file = pathlib.Path(folder) / "w.bin"
    ...     _ = file.write_bytes(b"weights")
    ...     digest = weights_digest(file)
    >>> digest == hashlib.sha256(b"weights").hexdigest()
    True
    """
    root = Path(path)
    if not root.is_dir():
        return hash_file(root).hexdigest()
    h = hashlib.sha256()
    for p in _model_files(root):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\x00")
        h.update(hash_file(p).digest())
    return h.hexdigest()


def hash_file(path: str | os.PathLike, digest=None, chunk_size: int = 1 << 22):
    """Feed a file's bytes to ``digest`` (a new SHA-256 by default) in chunks; return it.

    The one chunked file hasher of the package: weights identities, image cache
    keys and data set checksums all read files through it (bounded memory).
    """
    digest = hashlib.sha256() if digest is None else digest
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest


def model_identity(source: str, reference: str) -> str:
    """What identifies a model's weights: a content hash of what is on disk.

    ``reference`` is what the loader returned: the folder or file that was
    loaded (for the Hugging Face cache and Hub: the snapshot folder or file of
    the resolved commit). A reference with nothing on disk (random weights) is
    identified by its source and name.
    """
    if source != "random-init" and reference and os.path.exists(reference):
        return f"sha256:{weights_digest(reference)}"
    return f"{source}:{reference}"


def fingerprint(*parts) -> bytes:
    """Hash the model identity and output-affecting parameters into a key prefix."""
    h = hashlib.blake2b(digest_size=32)
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\x00")
    return h.digest()


def sample_key(prefix: bytes, content: bytes) -> bytes:
    """The cache key of one sample under one model fingerprint."""
    return hashlib.blake2b(content, digest_size=20, key=prefix[:64]).digest()
