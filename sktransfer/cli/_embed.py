"""``sktransfer embed``: embed a file of texts or a folder of images into Parquet, streaming.

The input is read, encoded and written ``--chunk-size`` rows at a time, so memory
is bounded by the chunk, not by the input. Chunk *k* (rows ``k*C`` to
``(k+1)*C - 1``) is written to its own file in ``OUTPUT.partial/`` under a
temporary name and renamed when complete: a chunk file either exists whole or
not at all. A rerun of the same command after Ctrl-C or a crash skips the
chunks on disk and encodes the rest; when every chunk is there they are joined
(one row group each) into ``OUTPUT`` and the folder is removed. So the output
holds every row exactly once, in input order.

Output columns: ``row`` (int64, the 0-based position of the row in the input,
header not counted), ``path`` for a folder of images, and ``embedding``, a
fixed-size list of float32 -- one column whatever the width. pandas reads it
as one array per row (``np.stack(df["embedding"])`` is the matrix), pyarrow
and polars as a fixed-size list / Array column (``.flatten()`` is the matrix,
without a copy), DuckDB as a ``FLOAT[d]`` array column that its
``array_cosine_similarity`` reads directly; a column per dimension would give
hundreds of columns that every reader has to gather again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FORMAT_VERSION = 1
# Bad rows shown on the terminal (all of them go to the side file with --on-error skip).
SHOWN_BAD_ROWS = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sktransfer embed``."""
    parser.add_argument(
        "input",
        help="a CSV or Parquet file (the column named by --column), or a folder of images",
    )
    parser.add_argument(
        "-o", "--output", required=True, help="the Parquet file to write (e.g. emb.parquet)"
    )
    parser.add_argument(
        "--column", help="the column holding the texts (or image paths) in a CSV/Parquet file"
    )
    parser.add_argument(
        "--kind",
        choices=("auto", "text", "image"),
        default="auto",
        help="what the rows are: 'auto' = images for a folder, texts for a file; "
        "'image' for a CSV/Parquet column of image paths (relative paths are read "
        "from the file's folder)",
    )
    parser.add_argument(
        "--model",
        help="text: a sentence-transformers id or folder (default all-MiniLM-L6-v2); "
        "image: a timm architecture (default tf_efficientnet_lite0)",
    )
    parser.add_argument("--weights", help="image models: a local state-dict file for --model")
    parser.add_argument("--image-size", type=int, help="image models: square input size")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per forward pass")
    parser.add_argument(
        "--precision",
        default="float32",
        help="float32 (default), bfloat16 or float16 (see TextEncoder's precision)",
    )
    parser.add_argument(
        "--backend",
        choices=["torch", "onnx", "openvino"],
        default="torch",
        help="what runs the model: torch (default), or its ONNX export run by ONNX Runtime "
        "or OpenVINO on the CPU (see TextEncoder's backend)",
    )
    parser.add_argument(
        "--cache",
        help="a folder for the SQLite embedding cache (local disk, not a network file system)",
    )
    parser.add_argument(
        "--scheduler",
        help="address of a Dask scheduler (e.g. tcp://10.0.0.5:8786): chunks are encoded "
        "on its workers; needs pip install 'sktransfer[dask]'",
    )
    parser.add_argument("--limit", type=int, help="embed only the first LIMIT rows")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=2048,
        help="rows read, encoded and written at a time; bounds memory (default 2048)",
    )
    parser.add_argument(
        "--on-error",
        choices=("raise", "skip", "empty"),
        default="raise",
        help="a bad row (empty text, unreadable image): 'raise' stops and names it; 'skip' "
        "leaves it out and lists it in OUTPUT's .skipped.csv side file; 'empty' keeps it "
        "with a null embedding",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="show a progress bar with rate and time left ('auto': when stderr is a terminal)",
    )
    parser.add_argument(
        "--n-threads", type=int, help="torch threads per process (default: torch's own)"
    )


class EmbedError(Exception):
    """A problem the user can fix; its message is printed without a traceback."""


def run(args: argparse.Namespace) -> int:
    """Run ``sktransfer embed``; return the exit status."""
    try:
        return _run(args)
    except EmbedError as exc:
        print(f"sktransfer embed: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "\nsktransfer embed: interrupted. The chunks written so far are kept; run the "
            "same command again to continue where it stopped.",
            file=sys.stderr,
        )
        return 130


# ---------------------------------------------------------------------- the run
def _run(args) -> int:
    from sktransfer._optional import import_optional

    import_optional("pyarrow")
    for name in ("chunk_size", "batch_size"):
        if getattr(args, name) < 1:
            raise EmbedError(f"--{name.replace('_', '-')} must be at least 1.")
    if args.limit is not None and args.limit < 0:
        raise EmbedError("--limit must be 0 or more.")
    source = _Source.open(args)
    output = Path(args.output)
    partial = output.with_name(output.name + ".partial")
    skipped_file = output.with_name(output.stem + ".skipped.csv")
    manifest = _manifest(args, source)

    if output.exists() and not partial.exists():
        if _read_manifest(output) == manifest:
            print(f"sktransfer embed: {output} is complete; nothing to do.", file=sys.stderr)
            return 0
        raise EmbedError(
            f"{output} exists and was not written by this command with these options; "
            "remove it or choose another --output."
        )
    partial.mkdir(parents=True, exist_ok=True)
    manifest_file = partial / "manifest.json"
    if manifest_file.exists():
        before = json.loads(manifest_file.read_text())
        if before != manifest:
            changed = sorted(k for k in manifest if before.get(k) != manifest[k])
            raise EmbedError(
                f"{partial} holds the chunks of an earlier run with other settings or another "
                f"input (changed: {', '.join(changed)}). Rerun with the same options to "
                f"continue it, or delete {partial} to start over."
            )
    else:
        _atomic_write_text(manifest_file, json.dumps(manifest, indent=1))

    done = {int(p.stem.split("-")[1]) for p in partial.glob("part-*.parquet")}
    encoder = _Encoder(args, source.kind)
    total = source.count(args.limit) if _show_progress(args) else None
    bar = _progress(args, total, done, args.chunk_size)
    n_chunks = 0
    try:
        chunks = source.chunks(args.chunk_size, args.limit)
        for number, start, values in encoder.encode_chunks(chunks, done):
            n_chunks = max(n_chunks, number + 1)
            if values is None:  # on disk already
                continue
            chunk, bad, rows, vectors = values
            _report_bad(bad, args.on_error, source.kind)
            _write_part(partial, number, start, chunk, bad, rows, vectors, source, args)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
        encoder.close()
    n_chunks = max([n_chunks, *(k + 1 for k in done)]) if (n_chunks or done) else 0
    _join_parts(partial, n_chunks, output, skipped_file, manifest, encoder, args.on_error)
    return 0


def _show_progress(args) -> bool:
    return args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())


def _progress(args, total, done, chunk_size):
    if not _show_progress(args):
        return None
    from tqdm.auto import tqdm

    initial = min(len(done) * chunk_size, total) if total is not None else 0
    return tqdm(
        total=total,
        initial=initial,
        unit="row",
        desc="embed",
        file=sys.stderr,
        smoothing=0.1,
    )


def _manifest(args, source) -> dict:
    """What the chunks on disk depend on; a rerun continues only when all of it is equal."""
    return {
        "version": FORMAT_VERSION,
        "input": str(Path(args.input).resolve()),
        "input_stamp": source.stamp(),
        "column": args.column,
        "kind": source.kind,
        "format": source.format,
        "model": args.model,
        "weights": args.weights,
        "image_size": args.image_size,
        "precision": args.precision,
        "chunk_size": args.chunk_size,
        "limit": args.limit,
        "on_error": args.on_error,
        # Only when not the default: outputs written before --backend existed resume.
        **({"backend": args.backend} if args.backend != "torch" else {}),
    }


def _read_manifest(output: Path) -> dict | None:
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(output).metadata or {}
    except Exception:  # noqa: BLE001 - not our Parquet file: treated as foreign
        return None
    raw = metadata.get(b"sktransfer.embed")
    return json.loads(raw)["manifest"] if raw else None


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------- reading
class _Source:
    """The rows of the input, read in chunks: a CSV/Parquet column or a folder of images."""

    def __init__(self, path: Path, kind: str, column: str | None, fmt: str):
        self.path, self.kind, self.column, self.format = path, kind, column, fmt

    @classmethod
    def open(cls, args) -> _Source:
        path = Path(args.input)
        if not path.exists():
            raise EmbedError(f"input {str(path)!r} does not exist.")
        if path.is_dir():
            if args.kind == "text":
                raise EmbedError(f"{path} is a folder; --kind text needs a CSV or Parquet file.")
            if args.column:
                raise EmbedError("--column is for CSV/Parquet input, not a folder of images.")
            return cls(path, "image", None, "folder")
        name = path.name.lower()
        if name.endswith((".parquet", ".pq")):
            fmt = "parquet"
        elif name.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
            fmt = "csv"
        else:
            raise EmbedError(
                f"cannot tell the format of {path.name!r}: name a .csv (.csv.gz) or .parquet "
                "file, or a folder of images."
            )
        kind = "text" if args.kind == "auto" else args.kind
        source = cls(path, kind, args.column, fmt)
        source.column = source._check_column(args.column)
        return source

    def _columns(self) -> list[str]:
        import pyarrow.parquet as pq

        if self.format == "parquet":
            return list(pq.read_schema(self.path).names)
        return list(self._csv_reader(columns=None).schema.names)

    def _check_column(self, column: str | None) -> str:
        columns = self._columns()
        if column is None:
            if len(columns) == 1:
                return columns[0]
            raise EmbedError(
                f"{self.path.name} has {len(columns)} columns {columns[:20]}; name the one "
                "to embed with --column."
            )
        if column not in columns:
            raise EmbedError(
                f"{self.path.name} has no column {column!r}; its columns are {columns[:20]}."
            )
        return column

    def _csv_reader(self, columns):
        import pyarrow as pa
        import pyarrow.csv as pacsv

        delimiter = "\t" if self.path.name.lower().endswith(".tsv") else ","
        convert = pacsv.ConvertOptions(
            include_columns=columns,
            column_types={c: pa.string() for c in columns or ()},
            strings_can_be_null=True,
        )
        return pacsv.open_csv(
            self.path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=convert,
        )

    def stamp(self) -> list:
        """Size and modification time (a file) or a hash of the file names (a folder)."""
        if self.format != "folder":
            stat = self.path.stat()
            return [stat.st_size, stat.st_mtime_ns]
        digest = hashlib.sha256()
        n = 0
        for relative in self._image_files():
            digest.update(relative.encode("utf-8", "surrogateescape") + b"\0")
            n += 1
        return [n, digest.hexdigest()]

    def _image_files(self):
        """Image files under the folder, relative paths, in a fixed (sorted) order; streamed."""
        for root, dirs, files in os.walk(self.path):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                    yield os.path.relpath(os.path.join(root, name), self.path)

    def count(self, limit: int | None) -> int:
        """Number of rows to embed (for the progress bar): metadata or one streaming pass."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            n = pq.ParquetFile(self.path).metadata.num_rows
        elif self.format == "folder":
            n = sum(1 for _ in self._image_files())
        else:
            n = sum(batch.num_rows for batch in self._csv_reader([self.column]))
        return n if limit is None else min(n, limit)

    def _values(self):
        """Every row's value, streamed, as Python lists of at most one read block each."""
        if self.format == "folder":
            names = []
            for name in self._image_files():
                names.append(name)
                if len(names) == 1024:
                    yield names
                    names = []
            if names:
                yield names
            return
        if self.format == "parquet":
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(self.path).iter_batches(batch_size=8192, columns=[self.column])
        else:
            batches = self._csv_reader([self.column])
        for batch in batches:
            yield batch.column(0).to_pylist()

    def chunks(self, size: int, limit: int | None):
        """Yield ``(number, first_row, values)`` for consecutive chunks of ``size`` rows."""
        buffer: list = []
        start = number = 0
        remaining = limit
        for values in self._values():
            if remaining is not None:
                values = values[:remaining]
                remaining -= len(values)
            buffer.extend(values)
            while len(buffer) >= size:
                yield number, start, buffer[:size]
                buffer = buffer[size:]
                number, start = number + 1, start + size
            if remaining == 0:
                break
        if buffer:
            yield number, start, buffer


# -------------------------------------------------------------------- encoding
class _Encoder:
    """The encoder, in this process or on a Dask cluster; bad rows found per chunk."""

    def __init__(self, args, kind: str):
        self.args, self.kind = args, kind
        common = {
            "batch_size": args.batch_size,
            "precision": args.precision,
            "backend": args.backend,
            "cache": args.cache,
            "progress": False,
            "n_threads": args.n_threads,
        }
        try:
            if kind == "text":
                from sktransfer import TextEncoder

                model = args.model or "sentence-transformers/all-MiniLM-L6-v2"
                self.encoder = TextEncoder(model, **common)
            else:
                from sktransfer import ImageEncoder

                model = args.model or "tf_efficientnet_lite0"
                self.encoder = ImageEncoder(
                    model,
                    weights=args.weights,
                    image_size=args.image_size,
                    on_error="nan",
                    **common,
                )
        except (TypeError, ValueError) as exc:  # pragma: no cover - argparse checks types
            raise EmbedError(str(exc)) from exc
        self.client = None
        if args.scheduler:
            from sktransfer._optional import import_optional

            distributed = import_optional("distributed")
            self.client = distributed.Client(args.scheduler, timeout=60)
            # Fitted on a worker: this process needs only the reference and the width.
            self.encoder = self.client.submit(_fit, self.encoder, pure=False).result()
        else:
            self.encoder = _fit(self.encoder)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    @property
    def dim(self) -> int:
        return int(self.encoder.n_features_out_)

    def encode_chunks(self, chunks, done: set[int]):
        """Yield ``(number, start, result)`` per chunk; ``result`` None for chunks on disk."""
        prepared = (
            (number, start, None if number in done else self._prepare(start, values))
            for number, start, values in chunks
        )
        if self.client is None:
            for number, start, item in prepared:
                yield number, start, None if item is None else self._finish(item, None)
            return
        yield from self._encode_on_cluster(prepared)

    def _encode_on_cluster(self, prepared):
        from distributed import as_completed

        from sktransfer._dask import encode_partition

        workers = max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))
        limit = 2 * workers  # chunks in flight: enough to keep every worker busy, bounded
        running = as_completed()
        pending = {}
        for number, start, item in prepared:
            if item is None:
                yield number, start, None
                continue
            future = self.client.submit(encode_partition, self.encoder, item[1], number, pure=False)
            pending[future.key] = (number, start, item)
            running.add(future)
            while running.count() >= limit:
                yield self._collect(next(running), pending)
        for future in running:
            yield self._collect(future, pending)

    def _collect(self, future, pending):
        number, start, item = pending.pop(future.key)
        return number, start, self._finish(item, future.result())

    def _prepare(self, start: int, values: list):
        """Split a chunk into good rows (to encode) and bad ones: ``(rows, good, bad)``."""
        rows, good, bad = [], [], []
        for i, value in enumerate(values):
            row = start + i
            reason = _bad_reason(value, self.kind)
            if reason is None:
                rows.append(row)
                good.append(value)
            else:
                bad.append((row, reason, value))
        if self.kind == "image":
            good = [_resolve_image(self.args.input, v) for v in good]
        return (rows, good, bad, values)

    def _finish(self, item, vectors):
        rows, good, bad, values = item
        if vectors is None:
            vectors = self._encode_here(good)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(good), self.dim)
        if self.kind == "image" and len(good):
            failed = np.flatnonzero(np.isnan(vectors).any(axis=1))
            if failed.size:
                bad = sorted(
                    bad + [(rows[i], _image_reason(good[i], rows[i]), good[i]) for i in failed],
                )
                keep = np.ones(len(rows), dtype=bool)
                keep[failed] = False
                rows = [r for r, k in zip(rows, keep, strict=True) if k]
                vectors = vectors[keep]
        if bad and self.args.on_error == "raise":
            raise EmbedError(_bad_message(bad, "raise", self.kind))
        return values, bad, rows, vectors

    def _encode_here(self, values: list) -> np.ndarray:
        if not values:
            return np.empty((0, self.dim), dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # failed images: found from the NaNs
            return self.encoder.transform(values)


def _fit(encoder):
    return encoder.fit()


def _resolve_image(input_path: str, value: str) -> str:
    base = Path(input_path)
    base = base if base.is_dir() else base.parent
    return value if os.path.isabs(value) else str(base / value)


def _bad_reason(value, kind: str) -> str | None:
    if value is None:
        return "missing text" if kind == "text" else "missing path"
    if not isinstance(value, str):
        return f"not text ({type(value).__name__})"
    if kind == "text" and not value.strip():
        return "empty text"
    if kind == "image" and not value.strip():
        return "empty path"
    return None


def _image_reason(path: str, row: int) -> str:
    from sktransfer._image_io import to_rgb

    try:
        to_rgb(path, row)
    except Exception as exc:  # noqa: BLE001 - the reason is what the user needs
        return f"unreadable image: {exc}"
    return "the model gave NaN for this image"


def _bad_message(bad, mode: str, kind: str) -> str:
    shown = "; ".join(f"row {row}: {reason}" for row, reason, _ in bad[:SHOWN_BAD_ROWS])
    more = f"; and {len(bad) - SHOWN_BAD_ROWS} more" if len(bad) > SHOWN_BAD_ROWS else ""
    if mode == "raise":
        return (
            f"{len(bad)} bad row(s) in this chunk ({shown}{more}). Rows count from 0, header "
            "not counted. Fix the input (then delete the .partial folder), or rerun with "
            "--on-error skip (leave them out, listed in a side file) or --on-error empty "
            "(keep them with a null embedding)."
        )
    what = "left out" if mode == "skip" else "kept with a null embedding"
    return f"{len(bad)} bad row(s) {what}: {shown}{more}"


def _report_bad(bad, mode: str, kind: str) -> None:
    if bad:
        print(f"sktransfer embed: {_bad_message(bad, mode, kind)}", file=sys.stderr)


# --------------------------------------------------------------------- writing
def _part_path(partial: Path, number: int) -> Path:
    return partial / f"part-{number:08d}.parquet"


def _schema(dim: int, with_path: bool, metadata: dict | None = None):
    import pyarrow as pa

    fields = [pa.field("row", pa.int64(), nullable=False)]
    if with_path:
        fields.append(pa.field("path", pa.string()))
    fields.append(pa.field("embedding", pa.list_(pa.float32(), dim)))
    return pa.schema(fields, metadata=metadata)


def _write_part(partial, number, start, chunk, bad, rows, vectors, source, args) -> None:
    """Write chunk ``number`` atomically: a temporary file renamed when complete.

    ``chunk`` holds the chunk's input values (row ``start + i`` is ``chunk[i]``),
    ``rows`` / ``vectors`` the rows that were encoded and their embeddings.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    n_rows = len(chunk)
    dim = vectors.shape[1]
    rows = np.asarray(rows, dtype=np.int64)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
    if args.on_error == "empty" and bad:
        # Every row of the chunk, the bad ones with a null embedding, in row order.
        all_rows = np.arange(start, start + n_rows, dtype=np.int64)
        index = np.full(n_rows, -1, dtype=np.int64)
        index[rows - start] = np.arange(len(rows))
        embedding = embedding.take(pa.array(np.where(index < 0, None, index), type=pa.int64()))
        rows = all_rows
    columns = {"row": pa.array(rows, type=pa.int64())}
    with_path = source.format == "folder"
    if with_path:
        columns["path"] = pa.array([chunk[int(r) - start] for r in rows], type=pa.string())
    columns["embedding"] = embedding
    skipped = [[row, reason] for row, reason, _ in bad] if args.on_error == "skip" else []
    metadata = {b"sktransfer.part": json.dumps({"n_rows": n_rows, "skipped": skipped})}
    table = pa.table(columns, schema=_schema(dim, with_path, metadata))
    final = _part_path(partial, number)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, final)


def _join_parts(partial, n_chunks, output, skipped_file, manifest, encoder, on_error) -> None:
    """Join the chunk files, in order, into ``output``; write the side file; clean up."""
    import pyarrow.parquet as pq

    missing = [k for k in range(n_chunks) if not _part_path(partial, k).exists()]
    if missing:  # pragma: no cover - every chunk was encoded or found above
        raise EmbedError(f"chunks {missing[:10]} are missing from {partial}; rerun the command.")
    info = {
        "manifest": manifest,
        "model_source": encoder.encoder.model_source_,
        "model_reference": encoder.encoder.model_reference_,
        "model_fingerprint": encoder.encoder.model_fingerprint_,
        "dim": encoder.dim,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    metadata = {b"sktransfer.embed": json.dumps(info)}
    schema = _schema(encoder.dim, manifest["format"] == "folder", metadata)
    tmp = output.with_name(output.name + f".tmp{os.getpid()}")
    skipped, n_written = [], 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for k in range(n_chunks):
            part = pq.read_table(_part_path(partial, k))
            part_info = json.loads(part.schema.metadata[b"sktransfer.part"])
            skipped.extend(part_info["skipped"])
            writer.write_table(part.replace_schema_metadata(metadata))
            n_written += part.num_rows
    if on_error == "skip":
        lines = ["row,reason"] + [f"{row},{_csv_field(reason)}" for row, reason in skipped]
        _atomic_write_text(skipped_file, "\n".join(lines) + "\n")
    os.replace(tmp, output)
    shutil.rmtree(partial)
    note = f"; {len(skipped)} bad row(s) listed in {skipped_file}" if on_error == "skip" else ""
    print(f"sktransfer embed: wrote {n_written} rows to {output}{note}.", file=sys.stderr)


def _csv_field(text: str) -> str:
    text = str(text).replace("\r", " ").replace("\n", " ")
    return '"' + text.replace('"', '""') + '"'
