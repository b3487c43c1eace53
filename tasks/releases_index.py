"""The hand-off side of a release: list what an output root holds, and verify one release.

Plain functions without Prefect: a receiving team runs ``synthpipe releases`` and
``synthpipe verify`` with nothing but the release folder. Verification trusts only
``manifest.json``: every file's sha256, the Parquet schema against ``arrow_schema``, the row
count against ``rows``; and it reports the provenance the manifest records. The manifest itself
is not checksummed, so its verdict must agree with what is: its own gate record, the
checksummed ``report.json`` and the folder the release sits in.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tasks.release import QUARANTINE, latest_name, read_latest, sha256_file
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


def _read_manifest(folder: Path) -> Any:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else empty: a hand-edited manifest may hold anything."""
    return value if isinstance(value, dict) else {}


def _unreadable_why(manifest: Any) -> str | None:
    """Why a manifest cannot be listed, or None when its shape is a release manifest's."""
    if manifest is None:
        return f"{MANIFEST} is not readable JSON"
    if not isinstance(manifest, dict):
        return f"{MANIFEST} is not a JSON object"
    for key in ("generator", "gate"):
        if key in manifest and not isinstance(manifest[key], dict):
            return f"{MANIFEST} field {key!r} is not an object"
    return None


def list_releases(out: str | Path, unreadable: list[tuple[Path, str]] | None = None) -> list[ReleaseInfo]:
    """Every release and quarantined run under ``out``, oldest first within each dataset.

    Hidden folders (``.work``, ``.models``, temporary ``.tmp-*`` writes) hold real data or
    half-written output and are never listed. A folder that cannot be read or whose manifest is
    not shaped like a release manifest is skipped, and a LATEST naming no release is ignored;
    when ``unreadable`` is given, each is appended to it with the reason.
    """
    root = Path(out)
    if not root.is_dir():
        raise InputError(f"output folder not found: {root}")
    try:
        dataset_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise InputError(f"output folder {root} is not readable ({exc.strerror or exc})") from None
    found: list[ReleaseInfo] = []
    notes = unreadable if unreadable is not None else []
    for dataset_dir in dataset_dirs:
        # an output root is often shared: a folder this user cannot read is reported, not fatal
        try:
            places = [(d, False) for d in dataset_dir.iterdir()]
            if (dataset_dir / QUARANTINE).is_dir():
                places += [(d, True) for d in (dataset_dir / QUARANTINE).iterdir()]
        except OSError as exc:
            notes.append((dataset_dir, f"folder not readable ({exc.strerror or exc})"))
            continue
        latest = latest_name(dataset_dir)
        if (dataset_dir / "LATEST").is_file() and (latest is None or not (dataset_dir / latest / MANIFEST).is_file()):
            notes.append((dataset_dir / "LATEST", "names no release in this folder; the next passing run replaces it"))
        for folder, quarantined in places:
            try:
                if not folder.is_dir() or folder.name.startswith(".") or folder.name == QUARANTINE:
                    continue
                if not (folder / MANIFEST).is_file():
                    continue  # not a release folder
            except OSError as exc:
                notes.append((folder, f"folder not readable ({exc.strerror or exc})"))
                continue
            manifest = _read_manifest(folder)
            why = _unreadable_why(manifest)
            if why is not None:
                notes.append((folder, f"{why}; not listed (`synthpipe verify {folder}` says more)"))
                continue
            rows = manifest.get("rows")
            found.append(
                ReleaseInfo(
                    dataset=dataset_dir.name,
                    # str(): the listing sorts on these, and a hand-edited value may be any JSON
                    release_id=str(manifest.get("release_id", folder.name)),
                    path=folder,
                    verdict=str(manifest.get("verdict", "?")),
                    rows=rows if isinstance(rows, int) and not isinstance(rows, bool) else None,
                    generator=str(_dict(manifest.get("generator")).get("family", "?")),
                    created_at=str(manifest.get("created_at", "")),
                    quarantined=quarantined,
                    latest=(not quarantined and folder.name == latest),
                    summary=str(_dict(manifest.get("gate")).get("summary", "")),
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
        gen = _dict(m.get("generator"))
        return {
            "dataset": m.get("dataset"),
            "release_id": m.get("release_id"),
            "verdict": m.get("verdict"),
            "rows": m.get("rows"),
            "created_at": m.get("created_at"),
            "source_fingerprint": _dict(m.get("source")).get("fingerprint"),
            "source_rows": _dict(m.get("source")).get("rows"),
            "generator": gen.get("family"),
            "generator_options": gen.get("options"),
            "seed": gen.get("seed"),
            "code_version": m.get("code_version"),
            "prefect_flow_run_id": m.get("prefect_flow_run_id"),
            "gate": _dict(m.get("gate")).get("summary"),
        }


def resolve_release(target: str | Path) -> Path:
    """A release folder itself, or a dataset folder (its LATEST release)."""
    path = Path(target)
    if (path / MANIFEST).is_file():
        return path
    if (path / "LATEST").is_file():
        try:
            name = read_latest(path)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        assert name is not None  # the file is there
        latest = path / name
        if (latest / MANIFEST).is_file():
            return latest
        raise InputError(f"{path}/LATEST points at {latest.name}, which has no {MANIFEST}")
    if not path.exists():
        raise InputError(f"release not found: {path}")
    raise InputError(f"{path} is not a release folder (no {MANIFEST}) nor a dataset folder (no LATEST)")


def verify_release(target: str | Path) -> VerifyResult:
    """Recompute every checksum, check the data against the manifest and the manifest's verdict
    against the gate record, report.json and the folder's place.

    A release folder verifies wherever it was copied; a dataset folder's LATEST must name a
    folder holding that release. Raises InputError when there is
    nothing to verify (no folder, no or unreadable manifest); returns a result whose
    ``problems`` list every mismatch otherwise.
    """
    folder = resolve_release(target)
    try:
        raw = (folder / MANIFEST).read_bytes()  # hashed and parsed from the same bytes
    except OSError as exc:
        raise InputError(f"{folder / MANIFEST} is not readable ({exc.strerror or exc})") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise InputError(f"{folder / MANIFEST} is not valid JSON: {exc}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise InputError(f"{folder / MANIFEST} lists no file checksums; it is not a synthpipe release manifest")
    result = VerifyResult(folder, manifest, manifest_sha256=hashlib.sha256(raw).hexdigest())

    unusable: set[str] = set()
    for rel, expected in sorted(files.items()):
        path = folder / rel
        try:
            if path.is_symlink():  # its target may change after verification, or lie outside
                why = "a symbolic link, not a file"
            elif not path.resolve().is_relative_to(folder.resolve()):
                why = "path leaves the release folder"
            elif not path.is_file():
                why = "missing"
            else:
                why, actual = None, sha256_file(path)
        except OSError as exc:  # a folder on the way that cannot be searched, a file that cannot be read
            why = f"not readable ({exc.strerror or exc})"
        if why is not None:
            result.problems.append(f"{rel}: {why}")
            unusable.add(rel)
            continue
        result.checked_files += 1
        if actual != expected:
            result.problems.append(f"{rel}: sha256 {actual[:12]}… differs from the manifest's {str(expected)[:12]}…")
    result.problems += _unlisted_entries(folder, set(files))

    parts = sorted(rel for rel in files if rel.startswith("data/") and rel.endswith(".parquet"))
    if not parts:
        result.problems.append("the manifest lists no data/*.parquet part")
    expected_schema = manifest.get("arrow_schema") or []
    total_rows = 0
    for rel in parts:
        path = folder / rel
        if rel in unusable:  # missing, a link or unreadable: reported with the checksums
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
    via_latest = Path(target) if folder != Path(target) else None
    result.problems += _verdict_problems(folder, manifest, files, via_latest)
    return result


def _unlisted_entries(folder: Path, listed: set[str]) -> list[str]:
    """Every entry of the release folder that is not a listed regular file.

    Readers of ``data/`` take whatever it holds, so nothing may hide there unnoticed: a symbolic
    link (a linked folder's files would be read with the data, and a link's target can change
    after verification), a FIFO or device, an empty folder, a folder that cannot be read. The
    walk never follows links.
    """
    problems: list[str] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename).relative_to(folder) if exc.filename else Path(".")
        problems.append(f"{where}/: folder not readable ({exc.strerror or exc})")

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        base = Path(root).relative_to(folder)
        if not dirs and not names and base != Path("."):
            problems.append(f"{base}/: an empty folder, not in the manifest")
        for name in sorted(dirs):
            if os.path.islink(Path(root) / name):  # os.walk lists linked folders but does not enter them
                problems.append(f"{(base / name).as_posix()}: a symbolic link to a folder, not in the manifest")
        for name in sorted(names):
            rel = (base / name).as_posix()
            try:
                mode = os.lstat(Path(root) / name).st_mode
            except OSError as exc:
                problems.append(f"{rel}: not readable ({exc.strerror or exc})")
                continue
            if rel == MANIFEST:  # read through a link, it could be swapped after verification
                if not stat.S_ISREG(mode):
                    problems.append(f"{MANIFEST}: {'a symbolic link' if stat.S_ISLNK(mode) else 'not a regular file'}, not a file")
                continue
            if stat.S_ISLNK(mode):
                if rel not in listed:  # a listed one is reported with the checksums
                    problems.append(f"{rel}: a symbolic link, not in the manifest")
            elif not stat.S_ISREG(mode):
                problems.append(f"{rel}: not a regular file, and not in the manifest")
            elif rel not in listed:
                problems.append(f"{rel}: not listed in the manifest")
    return problems


def _verdict_problems(folder: Path, manifest: dict[str, Any], files: dict[str, Any],
                      via_latest: Path | None) -> list[str]:
    """Mismatches between the manifest's verdict and identity and what backs them.

    The manifest cannot checksum itself: relabelling a failed run "pass" and moving it out of
    quarantine/ must not make it a release. Its verdict has to agree with its own gate record
    and with report.json (covered by the checksums). ``via_latest``: the dataset folder whose
    LATEST led here, if any.
    """
    problems: list[str] = []
    verdict = manifest.get("verdict")
    if verdict not in ("pass", "fail"):
        return [f"the manifest's verdict is {verdict!r}, neither 'pass' nor 'fail'"]
    passed = verdict == "pass"
    gate_passed = _dict(manifest.get("gate")).get("passed")
    if gate_passed is not passed:
        problems.append(f"the manifest's verdict is {verdict!r} but its gate record says passed={gate_passed!r}")

    if "report.json" not in files:
        problems.append("the manifest lists no report.json (the gate's checksummed verdict)")
    elif (folder / "report.json").is_file():
        try:
            report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = None
        if not isinstance(report, dict):
            problems.append("report.json is not a JSON object")
        else:
            if report.get("verdict") != verdict:
                problems.append(f"the manifest's verdict is {verdict!r} but report.json's is {report.get('verdict')!r}")
            if report.get("passed") is not passed:
                problems.append(f"the manifest's verdict is {verdict!r} but report.json says passed={report.get('passed')!r}")

    # A release or a dataset folder may be copied anywhere under any name (a hand-off), so folder
    # names are not checked against the manifest's dataset. But a passing verdict inside
    # quarantine/ is a quarantined run relabelled in place, and LATEST must name the release
    # whose folder it names.
    place = Path(os.path.abspath(folder))
    # <dataset>/quarantine/<run>: a dataset may itself be named "quarantine", and a receiver may
    # keep hand-offs in a folder of that name
    if passed and place.parent.name == QUARANTINE and place.parent.parent.name == manifest.get("dataset"):
        problems.append(f"the manifest says 'pass' but the folder sits in {QUARANTINE}/")
    if via_latest is not None and manifest.get("release_id") != place.name:
        problems.append(f"LATEST names {place.name}, but its manifest is release {manifest.get('release_id')!r}")
    return problems


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
