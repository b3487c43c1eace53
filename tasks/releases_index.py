"""The hand-off side of a release: list what an output root holds, and verify one release.

Plain functions without Prefect: a receiving team runs ``synthpipe releases`` and
``synthpipe verify`` with nothing but the release folder. Verification trusts only
``manifest.json``: every file's sha256, the Parquet schema against ``arrow_schema``, the row
count against ``rows``; and it reports the provenance the manifest records.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tasks.release import QUARANTINE, sha256_file
from validation.errors import InputError

MANIFEST = "manifest.json"


@dataclass
class ReleaseInfo:
    """One release or quarantined run, as listed by ``synthpipe releases``."""

    dataset: str
    release_id: str
    path: Path
    verdict: str
    rows: int | None
    generator: str
    created_at: str
    quarantined: bool
    latest: bool
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def list_releases(out: str | Path) -> list[ReleaseInfo]:
    """Every release and quarantined run under ``out``, oldest first within each dataset.

    Hidden folders (``.work``, ``.models``, temporary ``.tmp-*`` writes) hold real data or
    half-written output and are never listed.
    """
    root = Path(out)
    if not root.is_dir():
        raise InputError(f"output folder not found: {root}")
    found: list[ReleaseInfo] = []
    for dataset_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        marker = dataset_dir / "LATEST"
        latest = marker.read_text().strip() if marker.is_file() else None
        places = [(d, False) for d in dataset_dir.iterdir()]
        if (dataset_dir / QUARANTINE).is_dir():
            places += [(d, True) for d in (dataset_dir / QUARANTINE).iterdir()]
        for folder, quarantined in places:
            if not folder.is_dir() or folder.name.startswith(".") or folder.name == QUARANTINE:
                continue
            manifest = _read_manifest(folder)
            if manifest is None:
                continue  # not a release folder (or an unreadable one: `verify` says why)
            found.append(
                ReleaseInfo(
                    dataset=dataset_dir.name,
                    release_id=manifest.get("release_id", folder.name),
                    path=folder,
                    verdict=manifest.get("verdict", "?"),
                    rows=manifest.get("rows"),
                    generator=(manifest.get("generator") or {}).get("family", "?"),
                    created_at=manifest.get("created_at", ""),
                    quarantined=quarantined,
                    latest=(not quarantined and folder.name == latest),
                    summary=(manifest.get("gate") or {}).get("summary", ""),
                )
            )
    # release ids start with a UTC timestamp, so they sort by creation time
    return sorted(found, key=lambda r: (r.dataset, r.release_id))


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_release`: problems empty means the release is intact."""

    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str = ""  # compare with the value the sender announced: the manifest cannot list itself
    checked_files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def provenance(self) -> dict[str, Any]:
        m = self.manifest
        gen = m.get("generator") or {}
        return {
            "dataset": m.get("dataset"),
            "release_id": m.get("release_id"),
            "verdict": m.get("verdict"),
            "rows": m.get("rows"),
            "created_at": m.get("created_at"),
            "source_fingerprint": (m.get("source") or {}).get("fingerprint"),
            "source_rows": (m.get("source") or {}).get("rows"),
            "generator": gen.get("family"),
            "generator_options": gen.get("options"),
            "seed": gen.get("seed"),
            "code_version": m.get("code_version"),
            "prefect_flow_run_id": m.get("prefect_flow_run_id"),
            "gate": (m.get("gate") or {}).get("summary"),
        }


def resolve_release(target: str | Path) -> Path:
    """A release folder itself, or a dataset folder (its LATEST release)."""
    path = Path(target)
    if (path / MANIFEST).is_file():
        return path
    if (path / "LATEST").is_file():
        latest = path / (path / "LATEST").read_text().strip()
        if (latest / MANIFEST).is_file():
            return latest
        raise InputError(f"{path}/LATEST points at {latest.name}, which has no {MANIFEST}")
    if not path.exists():
        raise InputError(f"release not found: {path}")
    raise InputError(f"{path} is not a release folder (no {MANIFEST}) nor a dataset folder (no LATEST)")


def verify_release(target: str | Path) -> VerifyResult:
    """Recompute every checksum and check the data against the manifest.

    Raises InputError when there is nothing to verify (no folder, no or unreadable manifest);
    returns a result whose ``problems`` list every mismatch otherwise.
    """
    folder = resolve_release(target)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except ValueError as exc:
        raise InputError(f"{folder / MANIFEST} is not valid JSON: {exc}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise InputError(f"{folder / MANIFEST} lists no file checksums; it is not a synthpipe release manifest")
    result = VerifyResult(folder, manifest, manifest_sha256=sha256_file(folder / MANIFEST))

    for rel, expected in sorted(files.items()):
        path = folder / rel
        if not path.resolve().is_relative_to(folder.resolve()):
            result.problems.append(f"{rel}: path leaves the release folder")
            continue
        if not path.is_file():
            result.problems.append(f"{rel}: missing")
            continue
        actual = sha256_file(path)
        result.checked_files += 1
        if actual != expected:
            result.problems.append(f"{rel}: sha256 {actual[:12]}… differs from the manifest's {str(expected)[:12]}…")
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    for extra in sorted(on_disk - set(files)):
        result.problems.append(f"{extra}: not listed in the manifest")

    parts = sorted(rel for rel in files if rel.startswith("data/") and rel.endswith(".parquet"))
    if not parts:
        result.problems.append("the manifest lists no data/*.parquet part")
    expected_schema = manifest.get("arrow_schema") or []
    total_rows = 0
    for rel in parts:
        path = folder / rel
        if not path.is_file():
            continue
        try:
            meta = pq.read_metadata(path)
            schema = pq.read_schema(path)
        except Exception as exc:  # a damaged file: report it, keep checking the others
            result.problems.append(f"{rel}: not readable as Parquet ({exc})")
            continue
        total_rows += meta.num_rows
        actual_schema = [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]
        if actual_schema != expected_schema:
            result.problems.append(f"{rel}: schema differs from the manifest: {_schema_diff(expected_schema, actual_schema)}")
    if parts and manifest.get("rows") is not None and total_rows != manifest["rows"]:
        result.problems.append(f"data has {total_rows} rows; the manifest says {manifest['rows']}")
    return result


def _schema_diff(expected: list[dict], actual: list[dict]) -> str:
    exp = {c["name"]: c for c in expected}
    act = {c["name"]: c for c in actual}
    notes = [f"missing column {n!r}" for n in exp if n not in act]
    notes += [f"unexpected column {n!r}" for n in act if n not in exp]
    for name in exp.keys() & act.keys():
        if exp[name] != act[name]:
            notes.append(f"{name!r} is {act[name]['type']}{'' if act[name]['nullable'] else ' not null'}, "
                         f"manifest says {exp[name]['type']}{'' if exp[name]['nullable'] else ' not null'}")
    if not notes and [c["name"] for c in expected] != [c["name"] for c in actual]:
        notes.append("column order differs")
    return "; ".join(notes)
