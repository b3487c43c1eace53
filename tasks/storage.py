"""Tables cross task and process boundaries by reference: a Parquet file plus its fingerprint.

Locations are local paths or any URI pyarrow understands (``s3://``, ``gs://``, ``file://``).

The run's working folder (:func:`claim_run_folder`) holds copies of the real data. On local disks
it is owner-only and locked for the run's lifetime, so that the next run can sweep away the
folders of runs that were killed (SIGKILL, OOM) before their cleanup ran.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import BaseModel

from validation.errors import OutputError
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


def is_local(uri: str) -> bool:
    """A local path or ``file://`` URI (not an object store)."""
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> str:
    return filesystem(uri)[1] if "://" in uri else uri


# ------------------------------------------------------------------------- the run's work folder
RUN_LOCK = ".run.lock"
"""Inside each local run folder: held with an exclusive ``flock`` while the run lives."""
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
"""Names of run folders (release ids); the sweep never touches anything else in the work root."""
CLAIMING = re.compile(r"^\.(\d{8}T\d{6}Z-[0-9a-f]{6})\.claim$")
"""A run folder being created: it gets its lock before it is renamed to its run id."""
UNLOCKED_GRACE_S = 24 * 3600
"""A run folder without a lock file (left by a version before the locks) and a half-created
one are swept only when untouched this long: neither can show whether its run still lives."""


class RunFolder:
    """The working folder of one run, and (local roots) the open lock file that marks it live."""

    def __init__(self, uri: str, lock_fd: int | None = None) -> None:
        self.uri = uri
        self._lock_fd = lock_fd

    def release(self) -> None:
        """Delete a local run folder, then drop its lock (the kernel drops it when the process
        dies, which is how a later sweep tells a killed run)."""
        if self._lock_fd is None:
            return
        shutil.rmtree(_local_path(self.uri), ignore_errors=True)
        os.close(self._lock_fd)
        self._lock_fd = None


def claim_run_folder(work_root: str, run_id: str) -> RunFolder:
    """Create ``<work_root>/<run_id>`` for a run, first deleting the folders of dead runs.

    Local roots: the root and the run folder are owner-only (0700), and the run holds an
    exclusive ``flock`` on ``<run folder>/.run.lock`` until :meth:`RunFolder.release` or its
    death. The folder is created as ``.<run_id>.claim``, locked, then renamed, so a sweep never
    sees a live run's folder unlocked. Object-store roots have no locks: their folders are
    created on first write and deleted by the run's own cleanup, and a killed run's folder stays
    until removed (e.g. a lifecycle rule on the work prefix).
    """
    uri = join(work_root, run_id)
    if not is_local(work_root):
        return RunFolder(uri)
    root = Path(_local_path(work_root))
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner_only(root)
        sweep_stale_runs(root, keep=run_id)
        claim = root / f".{run_id}.claim"
        claim.mkdir(mode=0o700)
        fd = os.open(claim / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: nobody else holds it
        os.rename(claim, root / run_id)  # the lock stays with the open file
        return RunFolder(uri, fd)
    except OSError as exc:
        raise OutputError(f"work folder {work_root} is not writable: {exc.strerror or exc}") from None


def sweep_stale_runs(root: Path, keep: str | None = None) -> list[str]:
    """Delete run folders under the local work root ``root`` whose run is dead; return their names.

    A run folder is dead when its lock file can be locked (its run released it or died). Without a
    lock file (an older version's run), and while half-created (``.<id>.claim``), it is deleted
    only when untouched for :data:`UNLOCKED_GRACE_S`.
    """
    removed = []
    for entry in sorted(root.iterdir()):
        claiming = CLAIMING.match(entry.name)
        if entry.name == keep or not (RUN_ID.match(entry.name) or claiming) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            if claiming or not (entry / RUN_LOCK).exists():
                if time.time() - entry.stat().st_mtime < UNLOCKED_GRACE_S:
                    continue
                fd = None
            else:
                # read-write: NFS emulates flock with POSIX locks, whose exclusive kind needs it
                fd = os.open(entry / RUN_LOCK, os.O_RDWR)
        except OSError:  # vanished meanwhile (its run finished), or not ours
            continue
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # held: a live run
                    continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        finally:
            if fd is not None:
                os.close(fd)
    return removed


def owner_only(path: Path) -> None:
    """Make a local folder owner-only (0700), where it is ours to change."""
    try:
        os.chmod(path, 0o700)
    except OSError:  # not ours (a shared root): its run folders are owner-only all the same
        pass


def _create_parent(fs: pafs.FileSystem, uri: str, path: str) -> None:
    parent = posixpath.dirname(path)
    if is_local(uri):  # owner-only like the run folder: these hold real data
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
    else:
        fs.create_dir(parent, recursive=True)


def _open_private(path: str):
    """A local file opened for writing, created owner-only (0600): it may hold real rows."""
    return open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def fingerprint_arrow(table: pa.Table) -> str:
    """sha256 of the table's Arrow IPC stream: same content, same fingerprint."""
    sink = pa.BufferOutputStream()
    table = table.combine_chunks()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def write_arrow(table: pa.Table, uri: str) -> TableRef:
    fs, path = filesystem(uri)
    _create_parent(fs, uri, path)
    if is_local(uri):
        with _open_private(path) as fh:
            pq.write_table(table, fh)
    else:
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
    _create_parent(fs, uri, path)
    with (_open_private(path) if is_local(uri) else fs.open_output_stream(path)) as fh:
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
