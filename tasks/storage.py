"""Tables cross task and process boundaries by reference: a Parquet file plus its fingerprint.

Locations are local paths or any URI pyarrow understands (``s3://``, ``gs://``, ``file://``).
"""
from __future__ import annotations

import hashlib
import posixpath

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import BaseModel

from validation.profile import decimals_as_float


class TableRef(BaseModel):
    """A table written by the pipeline: where it is, what it holds, and its content hash."""

    uri: str
    fingerprint: str
    rows: int


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path inside it for ``uri`` (a plain path is local)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(pafs.LocalFileSystem().normalize_path(uri))


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts)


def fingerprint_arrow(table: pa.Table) -> str:
    """sha256 of the table's Arrow IPC stream: same content, same fingerprint."""
    sink = pa.BufferOutputStream()
    table = table.combine_chunks()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def write_arrow(table: pa.Table, uri: str) -> TableRef:
    fs, path = filesystem(uri)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    pq.write_table(table, path, filesystem=fs)
    return TableRef(uri=uri, fingerprint=fingerprint_arrow(table), rows=table.num_rows)


def write_frame(frame: pd.DataFrame, uri: str) -> TableRef:
    return write_arrow(pa.Table.from_pandas(frame, preserve_index=False), uri)


def read_arrow(ref: TableRef | str) -> pa.Table:
    uri = ref.uri if isinstance(ref, TableRef) else ref
    fs, path = filesystem(uri)
    return pq.read_table(path, filesystem=fs)


def write_text(text: str, uri: str) -> str:
    """Write a UTF-8 text file (local path or object-store URI); return its location."""
    fs, path = filesystem(uri)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    with fs.open_output_stream(path) as fh:
        fh.write(text.encode("utf-8"))
    return uri


def read_text(uri: str) -> str:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as fh:
        return fh.read().decode("utf-8")


def arrow_to_frame(table: pa.Table) -> pd.DataFrame:
    """pandas view of an Arrow table; decimal columns become float64 so every model sees numbers
    (the release casts them back to the source's decimal type)."""
    decimal = [i for i, f in enumerate(table.schema) if pa.types.is_decimal(f.type)]
    for i in decimal:
        table = table.set_column(i, table.schema.field(i).name, decimals_as_float(table.column(i)))
    return table.to_pandas()


def read_frame(ref: TableRef | str) -> pd.DataFrame:
    return arrow_to_frame(read_arrow(ref))
