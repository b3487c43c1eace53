"""The hand-off: `synthpipe releases` lists what an output root holds, `synthpipe verify` checks
one release against its manifest. No Prefect involved: a receiving team has only the folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.release import sha256_file, to_release_arrow, write_release
from tasks.releases_index import list_releases, verify_release
from tests.tables import real_table
from validation.errors import InputError
from validation.protect import fill_protected, training_view

MANIFEST = {
    "created_at": "2026-01-02T03:04:05Z",
    "source": {"location": "planes.csv", "fingerprint": "f" * 64, "rows": 3322},
    "generator": {"family": "copula", "options": {}, "seed": 7},
    "code_version": {"synthpipe": "0.1.0"},
    "gate": {"passed": True, "summary": "PASS: 3 checks"},
}


@pytest.fixture(scope="module")
def table() -> pa.Table:
    df, schema = real_table("planes", rows=300)
    rows = training_view(df, schema).sample(300, replace=True, random_state=2).reset_index(drop=True)
    return to_release_arrow(fill_protected(rows, schema, seed=2), schema)


def _release(out: Path, table: pa.Table, dataset: str = "planes", passed: bool = True, release_id: str | None = None) -> Path:
    """A release as the pipeline writes it: the gate record and report.json agree with the verdict."""
    manifest = {**MANIFEST, "gate": {"passed": passed, "summary": "PASS: 3 checks" if passed else "FAIL: dcr_share"}}
    report = json.dumps({"verdict": "pass" if passed else "fail", "passed": passed})
    return write_release(out, dataset, table, manifest, {"report.json": report}, passed=passed, release_id=release_id)


def _edit_manifest(release: Path, **changes) -> None:
    manifest = json.loads((release / "manifest.json").read_text())
    manifest.update(changes)
    (release / "manifest.json").write_text(json.dumps(manifest))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120)


def test_an_intact_release_verifies_with_its_provenance(tmp_path, table):
    release = _release(tmp_path, table)
    result = verify_release(release)
    assert result.ok, result.problems
    assert result.checked_files == len(json.loads((release / "manifest.json").read_text())["files"]) == 2
    prov = result.provenance()
    assert prov["source_fingerprint"] == "f" * 64 and prov["generator"] == "copula" and prov["seed"] == 7
    assert prov["rows"] == 300 and prov["code_version"] == {"synthpipe": "0.1.0"}
    assert result.manifest_sha256 == sha256_file(release / "manifest.json")
    # a dataset folder means its LATEST release
    assert verify_release(tmp_path / "planes").path == release


def test_cli_verify_exit_codes_and_output(tmp_path, table):
    release = _release(tmp_path, table)
    ok = _cli("verify", str(release))
    assert ok.returncode == 0, ok.stderr
    assert "f" * 64 in ok.stdout and "copula" in ok.stdout and "OK: 2 files match" in ok.stdout

    part = release / "data" / "part-00000.parquet"
    blob = bytearray(part.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped bit in the middle of the data
    part.write_bytes(bytes(blob))
    bad = _cli("verify", str(release))
    assert bad.returncode == 1
    assert "data/part-00000.parquet: sha256" in bad.stderr and "FAILED" in bad.stderr

    missing = _cli("verify", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "release not found" in missing.stderr and "Traceback" not in missing.stderr


def test_missing_extra_and_renamed_files_are_mismatches(tmp_path, table):
    release = _release(tmp_path, table)
    (release / "report.json").unlink()
    (release / "notes.txt").write_text("added after publishing")
    problems = verify_release(release).problems
    assert "report.json: missing" in problems
    assert "notes.txt: not listed in the manifest" in problems


def test_rewritten_data_with_updated_checksums_still_fails_on_schema_and_rows(tmp_path, table):
    """Someone regenerates the part file and patches the checksum: the manifest's schema and row
    count still catch it."""
    release = _release(tmp_path, table)
    part = release / "data" / "part-00000.parquet"
    year = table.schema.field("year")
    assert pa.types.is_integer(year.type)
    part_table = table.slice(0, 250)
    changed = part_table.set_column(part_table.schema.get_field_index("year"), "year", part_table["year"].cast(pa.float64()))
    pq.write_table(changed, part)
    manifest = json.loads((release / "manifest.json").read_text())
    manifest["files"]["data/part-00000.parquet"] = sha256_file(part)
    (release / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_release(release).problems
    assert any("schema differs" in p and "'year' is double" in p for p in problems), problems
    assert "data has 250 rows; the manifest says 300" in problems
    assert not any("sha256" in p for p in problems)


def test_quarantined_run_is_intact_but_not_a_release(tmp_path, table):
    bad = _release(tmp_path, table, passed=False)
    assert verify_release(bad).ok
    proc = _cli("verify", str(bad))
    assert proc.returncode == 1 and "INTACT BUT NOT A RELEASE" in proc.stderr and "'fail'" in proc.stderr


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not valid JSON"), (json.dumps({"rows": 3}), "lists no file checksums"), ("[1, 2]", "lists no file checksums")],
)
def test_unusable_manifests_are_bad_input(tmp_path, content, message):
    folder = tmp_path / "rel"
    folder.mkdir()
    (folder / "manifest.json").write_text(content)
    with pytest.raises(InputError, match=message):
        verify_release(folder)


def test_manifest_paths_cannot_escape_the_release(tmp_path, table):
    release = _release(tmp_path, table)
    (tmp_path / "secret.txt").write_text("outside")
    manifest = json.loads((release / "manifest.json").read_text())
    manifest["files"]["../../secret.txt"] = sha256_file(tmp_path / "secret.txt")
    (release / "manifest.json").write_text(json.dumps(manifest))
    assert "../../secret.txt: path leaves the release folder" in verify_release(release).problems


def test_releases_lists_verdicts_latest_and_skips_private_folders(tmp_path, table):
    # explicit ids: ids made within one second do not sort in the order they were made
    first = _release(tmp_path, table, release_id="20260101T000000Z-ffffff")
    quarantined = _release(tmp_path, table, passed=False, release_id="20260101T000001Z-000000")
    second = _release(tmp_path, table, release_id="20260101T000002Z-000000")
    other = _release(tmp_path, table, dataset="weather")
    # the run's work folder and the model store are private: never listed, even with a manifest
    for private in (tmp_path / ".work" / "run", tmp_path / ".models" / "copula-abc"):
        private.mkdir(parents=True)
        (private / "manifest.json").write_text(json.dumps({"verdict": "pass"}))
    found = list_releases(tmp_path)
    by_id = {r.release_id: r for r in found}
    assert set(by_id) == {first.name, quarantined.name, second.name, other.name}
    assert [r.release_id for r in found if r.latest] == sorted([second.name, other.name], key=lambda n: by_id[n].dataset)
    assert by_id[quarantined.name].quarantined and by_id[quarantined.name].verdict == "fail"
    assert by_id[first.name].verdict == "pass" and not by_id[first.name].latest
    assert by_id[first.name].rows == 300 and by_id[first.name].generator == "copula"

    proc = _cli("releases", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert {r["release_id"] for r in listed if r["latest"]} == {second.name, other.name}
    table_out = _cli("releases", str(tmp_path))
    assert second.name in table_out.stdout and "LATEST" in table_out.stdout and "quarantined" in table_out.stdout
    assert _cli("releases", str(tmp_path / "missing")).returncode == 2


def _relabel_as_latest(tmp_path: Path, table: pa.Table) -> Path:
    """The reviewer's forgery: a quarantined run moved out of quarantine/, its manifest verdict
    changed to "pass", LATEST pointed at it. The manifest cannot checksum itself."""
    failed = _release(tmp_path, table, passed=False)
    moved = tmp_path / "planes" / failed.name
    failed.rename(moved)
    _edit_manifest(moved, verdict="pass")
    (tmp_path / "planes" / "LATEST").write_text(moved.name + "\n")
    return moved


def test_a_failed_run_relabelled_as_a_pass_does_not_verify(tmp_path, table):
    forged = _relabel_as_latest(tmp_path, table)
    problems = verify_release(tmp_path / "planes").problems
    assert "the manifest's verdict is 'pass' but its gate record says passed=False" in problems
    assert "the manifest's verdict is 'pass' but report.json's is 'fail'" in problems
    assert not any("sha256" in p for p in problems), "every checksum still matches: only the verdicts disagree"
    proc = _cli("verify", str(tmp_path / "planes"))
    assert proc.returncode == 1 and "FAILED" in proc.stderr and "OK:" not in proc.stdout, proc.stdout + proc.stderr
    assert "verdict" in proc.stdout, "the provenance is still printed"

    # patching the gate record too: report.json (checksummed) still says fail
    _edit_manifest(forged, gate={"passed": True, "summary": "PASS: 3 checks"})
    assert verify_release(forged).problems == [
        "the manifest's verdict is 'pass' but report.json's is 'fail'",
        "the manifest's verdict is 'pass' but report.json says passed=False",
    ]
    # and rewriting report.json breaks its checksum
    (forged / "report.json").write_text(json.dumps({"verdict": "pass", "passed": True}))
    assert any(p.startswith("report.json: sha256") for p in verify_release(forged).problems)


def test_the_verdict_must_be_backed_by_a_report(tmp_path, table):
    release = write_release(tmp_path, "planes", table, dict(MANIFEST), {}, passed=True)
    assert "the manifest lists no report.json (the gate's checksummed verdict)" in verify_release(release).problems
    _edit_manifest(release, verdict="ok")
    assert "the manifest's verdict is 'ok', neither 'pass' nor 'fail'" in verify_release(release).problems


def test_a_copied_release_verifies_but_not_relabelled_in_quarantine_or_under_another_dataset(tmp_path, table):
    good = _release(tmp_path, table)
    assert verify_release(good).ok
    # handed off: copied to another team's folder under another name
    import shutil

    assert verify_release(shutil.copytree(good, tmp_path / "handoff" / "planes-synthetic")).ok
    # a passing release moved into quarantine/
    (tmp_path / "planes" / "quarantine").mkdir()
    hidden = good.rename(tmp_path / "planes" / "quarantine" / good.name)
    (problem,) = verify_release(hidden).problems
    assert problem == "the manifest says 'pass' but the folder sits in quarantine/"
    # LATEST naming a folder that holds another release
    hidden.rename(tmp_path / "planes" / "20990101T000000Z-ffffff")
    (tmp_path / "planes" / "LATEST").write_text("20990101T000000Z-ffffff\n")
    (problem,) = verify_release(tmp_path / "planes").problems
    assert problem == f"LATEST names 20990101T000000Z-ffffff, but its manifest is release {good.name!r}"


def test_a_dataset_folder_verifies_through_dot_and_symlinks(tmp_path, table, monkeypatch):
    good = _release(tmp_path, table)
    assert verify_release(tmp_path / "planes").ok
    monkeypatch.chdir(tmp_path / "planes")
    assert verify_release(".").ok
    (tmp_path / "current").symlink_to(tmp_path / "planes")
    assert verify_release(tmp_path / "current").ok and good.exists()


def test_latest_names_a_release_beside_it(tmp_path, table):
    failed = _release(tmp_path, table, passed=False)
    (tmp_path / "planes" / "LATEST").write_text(f"quarantine/{failed.name}\n")
    with pytest.raises(InputError, match="not a release id"):
        verify_release(tmp_path / "planes")


def _broken_release(tmp_path: Path, manifest) -> Path:
    broken = tmp_path / "planes" / "20200101T000000Z-000000"
    broken.mkdir()
    (broken / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return broken


@pytest.mark.parametrize(
    "manifest, why",
    [
        ([1, 2], "is not a JSON object"),
        ({"release_id": "x", "generator": "vae"}, "field 'generator' is not an object"),
        ({"release_id": "x", "gate": ["passed"]}, "field 'gate' is not an object"),
        ("{not json", "is not readable JSON"),
    ],
)
def test_releases_skips_and_reports_malformed_manifests(tmp_path, table, manifest, why):
    good = _release(tmp_path, table)
    broken = _broken_release(tmp_path, manifest)
    unreadable: list = []
    assert [r.release_id for r in list_releases(tmp_path, unreadable)] == [good.name]
    assert unreadable == [(broken, f"manifest.json {why}; not listed (`synthpipe verify {broken}` says more)")]
    assert [r.release_id for r in list_releases(tmp_path)] == [good.name]


def test_cli_releases_reports_a_malformed_manifest_on_one_line(tmp_path, table):
    good = _release(tmp_path, table)
    broken = _broken_release(tmp_path, {"release_id": "x", "generator": "vae"})
    for args in (["--json"], []):
        proc = _cli("releases", str(tmp_path), *args)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"warning: {broken}: manifest.json field 'generator' is not an object; not listed (`synthpipe verify {broken}` says more)"
        ]
    assert [r["release_id"] for r in json.loads(_cli("releases", str(tmp_path), "--json").stdout)] == [good.name]


def test_nothing_hides_in_a_release_folder_not_even_behind_links(tmp_path, table):
    """Readers of data/ take whatever it holds: a linked folder of extra parts, a dangling link,
    a FIFO or an empty folder are all mismatches (os.walk and rglob skip some of them)."""
    import os

    release = _release(tmp_path, table)
    extra = tmp_path / "extra"
    extra.mkdir()
    pq.write_table(table.slice(0, 5), extra / "part-00000.parquet")
    (release / "data" / "more").symlink_to(extra, target_is_directory=True)
    (release / "gone").symlink_to(tmp_path / "nowhere")
    os.mkfifo(release / "data" / "pipe")
    (release / "data" / "empty").mkdir()
    (release / "report.json").rename(tmp_path / "report.json")
    (release / "report.json").symlink_to(tmp_path / "report.json")  # same bytes, but a link
    assert sorted(verify_release(release).problems) == [
        "data/empty/: an empty folder, not in the manifest",
        "data/more: a symbolic link to a folder, not in the manifest",
        "data/pipe: not a regular file, and not in the manifest",
        "gone: a symbolic link, not in the manifest",
        "report.json: a symbolic link, not a file",
    ]


def test_an_unreadable_file_is_a_mismatch_not_a_crash(tmp_path, table, monkeypatch):
    import tasks.releases_index

    release = _release(tmp_path, table)
    real = tasks.releases_index.sha256_file

    def sha256_file(path):
        if path.name == "report.json":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(tasks.releases_index, "sha256_file", sha256_file)
    assert verify_release(release).problems == ["report.json: not readable (Permission denied)"]


def test_a_dataset_named_quarantine_verifies_and_a_receiver_may_keep_hand_offs_in_quarantine(tmp_path, table):
    import shutil

    assert verify_release(_release(tmp_path, table, dataset="quarantine")).ok
    assert verify_release(tmp_path / "quarantine").ok
    inbox = shutil.copytree(_release(tmp_path, table), tmp_path / "inbox" / "quarantine" / "planes-2026")
    assert verify_release(inbox).ok


def test_a_latest_naming_no_release_is_replaced_by_the_next_and_listed_with_a_warning(tmp_path, table):
    _release(tmp_path, table)
    latest = tmp_path / "planes" / "LATEST"
    for damaged in (b"20991231T000000Z-ffffff\n", b"\xff\xfe"):  # a deleted release from a wrong clock; not text
        latest.write_bytes(damaged)
        notes: list = []
        listed = list_releases(tmp_path, notes)
        assert not any(r.latest for r in listed)
        assert notes == [(latest, "names no release in this folder; the next passing run replaces it")]
        newer = _release(tmp_path, table)
        assert latest.read_text() == newer.name + "\n" and verify_release(tmp_path / "planes").path == newer
    latest.write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="LATEST is not readable as text"):
        verify_release(tmp_path / "planes")


def test_names_and_values_are_printed_as_they_are_not_as_markup(tmp_path, table):
    release = _release(tmp_path, table, dataset="[red]planes")
    (release / "[conceal]backdoor.py").write_text("print(1)")
    bad = _cli("verify", str(release))
    assert bad.returncode == 1
    assert "mismatch: [conceal]backdoor.py: not listed in the manifest" in bad.stderr
    listing = _cli("releases", str(tmp_path))
    assert listing.returncode == 0 and "[red]planes" in listing.stdout, listing.stderr


def test_a_linked_manifest_is_a_mismatch(tmp_path, table):
    release = _release(tmp_path, table)
    outside = tmp_path / "manifest-copy.json"
    (release / "manifest.json").rename(outside)
    (release / "manifest.json").symlink_to(outside)  # the same bytes, swappable after verification
    assert verify_release(release).problems == ["manifest.json: a symbolic link, not a file"]
