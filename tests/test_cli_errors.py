"""The CLI's exit codes: 1 the gate failed, 2 the run could not be done, 3 an internal error.

A crash must never read as "quarantined" (1) to a scheduler, and a refused run must leave no
folder behind. The CLI's ``main`` runs in-process with the flow replaced: no Prefect server.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from validation.errors import GateFailedError, InputError


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``synthpipe ARGS`` in this process; the exit code, stdout and stderr."""
    from flows.cli import main

    monkeypatch.setattr(sys, "argv", ["synthpipe", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _flow_raising(monkeypatch, exc: BaseException) -> list:
    """Replace the synthesize flow by one that raises ``exc``; the list records its calls."""
    import flows.synthesize

    calls = []

    def synthesize(params):
        calls.append(params)
        raise exc

    monkeypatch.setattr(flows.synthesize, "synthesize", synthesize)
    monkeypatch.setattr("flows.cli._start_local_server", lambda: False)  # no flow runs: no server either
    return calls


def test_an_unexpected_error_is_one_line_and_exit_3(monkeypatch, capsys, tmp_path):
    import tasks.releases_index

    def broken(*args, **kwargs):
        raise RuntimeError("index\nexploded")

    monkeypatch.delenv("SYNTHPIPE_DEBUG", raising=False)
    monkeypatch.setattr(tasks.releases_index, "list_releases", broken)
    code, _, err = _main(monkeypatch, capsys, "releases", str(tmp_path))
    assert code == 3
    assert err.strip().splitlines() == ["internal error: RuntimeError: index exploded (set SYNTHPIPE_DEBUG=1 for the traceback)"]


def test_synthpipe_debug_shows_the_traceback_and_keeps_exit_3(monkeypatch, capsys, tmp_path):
    import tasks.releases_index

    def broken(*args, **kwargs):
        raise KeyError("files")

    monkeypatch.setenv("SYNTHPIPE_DEBUG", "1")
    monkeypatch.setattr(tasks.releases_index, "list_releases", broken)
    code, _, err = _main(monkeypatch, capsys, "releases", str(tmp_path))
    assert code == 3
    assert "Traceback" in err and "KeyError" in err and "broken" in err


@pytest.mark.parametrize(
    "exc, code",
    [
        (ValueError("cannot reshape array of size 0"), 3),  # a bug: not "gate failed", not "bad input"
        (InputError("the source is empty"), 2),
        (GateFailedError("the gate failed: dcr_share"), 1),
    ],
)
def test_run_exit_codes(monkeypatch, capsys, tmp_path, exc, code):
    monkeypatch.delenv("SYNTHPIPE_DEBUG", raising=False)
    calls = _flow_raising(monkeypatch, exc)
    got, _, err = _main(monkeypatch, capsys, "run", "demo:planes", "--out", str(tmp_path / "out"))
    assert got == code and len(calls) == 1
    assert "Traceback" not in err and str(exc) in err
    if code == 3:
        assert "internal error: ValueError: cannot reshape array of size 0" in err


def test_check_internal_error_is_exit_3(monkeypatch, capsys, tmp_path):
    import tasks.checking

    rng = np.random.default_rng(0)
    for name in ("train", "holdout", "synth"):
        pd.DataFrame({"x": rng.normal(size=60), "y": rng.integers(0, 5, 60)}).to_csv(tmp_path / f"{name}.csv", index=False)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.delenv("SYNTHPIPE_DEBUG", raising=False)
    monkeypatch.setattr(tasks.checking, "run_gate", broken)
    files = [str(tmp_path / f"{n}.csv") for n in ("train", "holdout", "synth")]
    args = ["check", "--real", files[0], "--holdout", files[1], "--synthetic", files[2], "--report", str(tmp_path / "rep")]
    code, out, err = _main(monkeypatch, capsys, *args)
    assert code == 3 and "Traceback" not in out + err
    assert out.strip().splitlines() == ["internal error: ZeroDivisionError: division by zero (set SYNTHPIPE_DEBUG=1 for the traceback)"]

    # run_check itself, for callers without the CLI: a code, or the exception with SYNTHPIPE_DEBUG
    lines: list[str] = []
    assert tasks.checking.run_check(*files, tmp_path / "rep", echo=lines.append) == 3 and len(lines) == 1
    monkeypatch.setenv("SYNTHPIPE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        tasks.checking.run_check(*files, tmp_path / "rep", echo=lines.append)
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rows", "0"], "invalid rows"),
        (["--holdout", "0.9"], "invalid holdout_fraction"),
        (["--name", "../evil"], "invalid name"),
        (["--device", "gpu"], "invalid device"),
        (["--seed", "-1"], "invalid seed"),
    ],
)
def test_invalid_parameters_create_nothing(monkeypatch, capsys, tmp_path, args, message):
    calls = _flow_raising(monkeypatch, AssertionError("the flow must not start"))
    out = tmp_path / "out"
    code, _, err = _main(monkeypatch, capsys, "run", "demo:planes", "--out", str(out), *args)
    assert code == 2 and message in err and not calls
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not any(tmp_path.iterdir())


def test_a_failed_run_removes_only_the_empty_folders_it_created(monkeypatch, capsys, tmp_path):
    _flow_raising(monkeypatch, InputError("the source has 10 rows; at least 50 are needed"))
    code, _, _ = _main(monkeypatch, capsys, "run", "demo:planes", "--out", str(tmp_path / "a" / "b" / "out"))
    assert code == 2 and not (tmp_path / "a").exists()

    # an output root that was there before stays, and so does anything a run wrote
    existing = tmp_path / "releases"
    existing.mkdir()
    code, _, _ = _main(monkeypatch, capsys, "run", "demo:planes", "--out", str(existing))
    assert code == 2 and existing.is_dir()

    def writes_then_fails(params):
        (Path(params.out) / "planes" / "quarantine").mkdir(parents=True)
        raise GateFailedError("the gate failed")

    import flows.synthesize

    monkeypatch.setattr(flows.synthesize, "synthesize", writes_then_fails)
    code, _, _ = _main(monkeypatch, capsys, "run", "demo:planes", "--out", str(tmp_path / "new"))
    assert code == 1 and (tmp_path / "new" / "planes" / "quarantine").is_dir()


def test_a_finished_run_prints_the_manifest_sha256_to_announce(tmp_path, capsys):
    import hashlib
    from types import SimpleNamespace

    from flows import cli

    (tmp_path / "manifest.json").write_text('{"verdict": "pass"}')
    result = SimpleNamespace(dataset="planes", passed=True, verdict="pass", rows=10, release_path=str(tmp_path),
                             step_seconds={"train": 1.0})
    cli._print_result(result, 2.0)
    expected = hashlib.sha256((tmp_path / "manifest.json").read_bytes()).hexdigest()
    assert f"manifest sha256: {expected}\n" in capsys.readouterr().out  # on one line, to be copied whole


@pytest.mark.parametrize(
    "content, message",
    [
        ("min_dcr_p5_ratio: .nan\n", "min_dcr_p5_ratio: Input should be a finite number"),  # NaN passed the check
        ("max_identical_match_excess: .nan\n", "max_identical_match_excess: Input should be a finite number"),
        ("max_membership_auc: .inf\n", "max_membership_auc: Input should be a finite number"),  # switched it off
        ("max_dcr_share: [0.6\n", "is not valid YAML: "),
        (None, "cannot be read: "),  # a folder
        (b"max_dcr_share: 0.6 \xff\n", "cannot be read: "),  # not UTF-8
    ],
)
def test_a_bad_gate_config_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, content, message):
    config = tmp_path / "gate.yaml"
    if content is None:
        config.mkdir()
    elif isinstance(content, bytes):
        config.write_bytes(content)
    else:
        config.write_text(content)
    files = [str(tmp_path / f"{n}.csv") for n in ("train", "holdout", "synth")]
    for f in files:
        pd.DataFrame({"x": range(60)}).to_csv(f, index=False)
    code, out, err = _main(monkeypatch, capsys, "check", "--real", files[0], "--holdout", files[1],
                           "--synthetic", files[2], "--config", str(config))
    assert code == 2, out + err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_termination_handlers_respect_nohup_and_are_restored():
    import signal

    from flows.cli import _exit_on_termination, _restore_signals

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    try:
        previous = _exit_on_termination()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # closing the terminal must not abort the run
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL and set(previous) == {signal.SIGTERM}
        _restore_signals(previous)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, before)
