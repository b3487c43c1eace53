"""The release folder: Parquet parts, manifest with checksums, reports; LATEST moved atomically.

Everything is written into a temporary folder beside the target and renamed into place, so a
crash never leaves a half-written release and an earlier release is never overwritten.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from validation.errors import OutputError
from validation.schema import TableSchema

PART_ROWS = 1_000_000
QUARANTINE = "quarantine"
LATEST_LOCK = ".lock"
"""Lock file in each dataset folder: runs publishing at once take turns to move LATEST."""

log = logging.getLogger(__name__)


def ensure_writable(out: str | Path) -> Path:
    """Create ``out`` if needed and prove it is writable, before any work is done."""
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{secrets.token_hex(4)}"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"output folder {root} is not writable: {exc.strerror or exc}") from None
    return root


def new_release_id() -> str:
    """Sortable and unique: UTC time plus random suffix."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def to_release_arrow(frame: pd.DataFrame, schema: TableSchema) -> pa.Table:
    """Cast the synthetic frame to the source's Arrow schema (released columns, source order)."""
    target = schema.arrow_schema()
    arrays = []
    for field in target:
        col = frame[field.name]
        try:
            arr = pa.array(col, from_pandas=True)
            # temporal: drop sub-unit digits; decimal: floats were rounded to its scale already
            lossy_ok = pa.types.is_temporal(field.type) or pa.types.is_decimal(field.type)
            arrays.append(arr.cast(field.type, safe=not lossy_ok))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"synthetic column {field.name!r} cannot be cast to {field.type}: {exc}") from exc
    return pa.Table.from_arrays(arrays, schema=target)


def sha256_file(path: Path, sync: bool = False) -> str:
    """The file's sha256; with ``sync``, the file is also forced to disk on the same handle."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
        if sync:
            os.fsync(fh.fileno())
    return h.hexdigest()


def code_version() -> dict[str, str]:
    """Package version and, when run from a checkout, the git commit."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("synthpipe")
    except PackageNotFoundError:
        pkg = "unknown"
    info = {"synthpipe": pkg}
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        if commit:
            info["git_commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def write_release(
    out: str | Path,
    dataset: str,
    table: pa.Table,
    manifest: dict[str, Any],
    files: dict[str, str | bytes],
    passed: bool,
    release_id: str | None = None,
    reuse_existing: bool = False,
) -> Path:
    """Write a release (or a quarantined run) atomically and, if it passed, move LATEST to it.

    An existing folder is never overwritten. With ``reuse_existing`` (a retried write of the same
    release, e.g. after moving LATEST failed) a complete folder of this ``release_id`` and
    ``dataset`` is returned instead of refused. A passed release gets LATEST unless a newer
    one holds it already (runs may publish out of order); it is complete and listed either way.
    Text files are written as UTF-8 whatever the host's locale.
    """
    dataset_dir = ensure_writable(Path(out) / dataset)
    release_id = release_id or new_release_id()
    final = dataset_dir / release_id if passed else dataset_dir / QUARANTINE / release_id
    if final.exists():
        if reuse_existing and _is_release(final, dataset, release_id):
            if passed:
                advance_latest(dataset_dir, release_id)
            log.info("release %s is already in place at %s (an earlier attempt wrote it)", release_id, final)
            return final
        raise OutputError(f"release {final} already exists; refusing to overwrite it")
    _sweep_stale_writes(dataset_dir)
    tmp = dataset_dir / f".tmp-{release_id}"
    try:
        (tmp / "data").mkdir(parents=True)
        for i, start in enumerate(range(0, max(table.num_rows, 1), PART_ROWS)):
            pq.write_table(table.slice(start, PART_ROWS), tmp / "data" / f"part-{i:05d}.parquet")
        for name, content in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        # hashed and forced to disk in one read: a power cut must not leave a renamed, listed
        # release with empty files
        checksums = {
            str(p.relative_to(tmp)): sha256_file(p, sync=True) for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        manifest = {
            **manifest,
            "release_id": release_id,
            "dataset": dataset,
            "verdict": "pass" if passed else "fail",
            "rows": table.num_rows,
            "arrow_schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in table.schema],
            "files": checksums,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        _sync_written(tmp)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _sync_folder(final.parent)
    if passed:
        advance_latest(dataset_dir, release_id)
    return final


STALE_WRITE_SECONDS = 24 * 3600
"""A ``.tmp-*`` write folder untouched this long was left by a killed run: a write takes minutes."""


def _sweep_stale_writes(dataset_dir: Path) -> None:
    """Remove the ``.tmp-*`` folders of writes killed mid-way (kill -9, power cut), which would
    otherwise travel with every copy of the dataset folder. A live write is never that old."""
    now = time.time()
    for folder in dataset_dir.glob(".tmp-*"):
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > STALE_WRITE_SECONDS:
                shutil.rmtree(folder)
                log.info("removed %s, the half-written output of a killed run", folder)
        except OSError:  # another run removed it, or it is not ours to remove: not this run's problem
            continue


def _sync_folder(folder: Path) -> None:
    """Best effort, as PostgreSQL does: some filesystems (FUSE, SMB, 9p) refuse to sync a folder,
    which must not refuse the release; a file that cannot be synced still fails it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EPERM):
            raise
    finally:
        os.close(fd)


def _sync_written(folder: Path) -> None:
    """Force the rest of a written release to disk before it is renamed into place and LATEST
    moves: its manifest (the other files were synced as they were hashed) and its folders."""
    with open(folder / "manifest.json", "rb") as fh:
        os.fsync(fh.fileno())
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        _sync_folder(path)
    _sync_folder(folder)


def _is_release(folder: Path, dataset: str, release_id: str) -> bool:
    """Whether ``folder`` is the complete release ``release_id`` of ``dataset``: a release is
    renamed into place only once complete, so a manifest naming it means the write succeeded."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("release_id") == release_id and manifest.get("dataset") == dataset


def advance_latest(dataset_dir: Path, release_id: str) -> bool:
    """Point LATEST at ``release_id`` unless it names a newer release; True when it moved.

    Release ids sort by time, so LATEST never moves backwards: of two runs publishing at once,
    the older one finishing last leaves LATEST on the newer. A LATEST that names no release (its
    folder deleted, the file damaged) is replaced: a later-sorting name alone, left by a host
    with a wrong clock say, must not hold LATEST forever. The check and the move happen under
    an exclusive lock on a file in the dataset folder, so no other run moves LATEST in between.
    """
    with open(Path(dataset_dir) / LATEST_LOCK, "a", encoding="utf-8") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        current = latest_release(dataset_dir)
        if current is not None and current.name >= release_id:
            if current.name > release_id:
                log.info("LATEST stays on %s, newer than %s", current.name, release_id)
            return False
        move_latest(dataset_dir, release_id)
        return True


def move_latest(dataset_dir: Path, release_id: str) -> None:
    """Point LATEST at ``release_id`` with an atomic rename (readers never see a partial file)."""
    tmp = dataset_dir / f".LATEST.{secrets.token_hex(4)}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(release_id + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, dataset_dir / "LATEST")
    _sync_folder(dataset_dir)


def read_latest(dataset_dir: Path) -> str | None:
    """The release id LATEST holds; None when there is no LATEST. Raises ValueError, saying why,
    when LATEST is not a line of UTF-8 text naming a folder beside it (damaged, hand-edited)."""
    marker = Path(dataset_dir) / "LATEST"
    try:
        name = marker.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{marker} is not readable as text ({getattr(exc, 'strerror', None) or exc})") from None
    # LATEST names a release folder beside it, never a path (into quarantine/, another dataset)
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"{marker} holds {name!r}, which is not a release id")
    return name


def latest_name(dataset_dir: Path) -> str | None:
    """:func:`read_latest`, with None for a damaged LATEST as for a missing one."""
    try:
        return read_latest(dataset_dir)
    except ValueError:
        return None


def latest_release(dataset_dir: Path) -> Path | None:
    """The release folder LATEST names, when it names one that holds a manifest."""
    name = latest_name(dataset_dir)
    if name is None or not (Path(dataset_dir) / name / "manifest.json").is_file():
        return None
    return Path(dataset_dir) / name
