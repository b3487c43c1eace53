"""Prefect tasks: thin wrappers that read and write tables by reference and call pure code."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from generators.registry import load_generator
from tasks.private import PRIVATE
from tasks.progress import ArtifactProgress
from tasks.sources import SourceSpec, read_source
from tasks.storage import TableRef, join, read_arrow, read_frame, read_text, write_arrow, write_frame, write_text
from validation.errors import InputError, SynthpipeError
from validation.gate import GateConfig, GateResult, run_gate
from validation.profile import MIN_ROWS, profile_table, require_finite_numbers
from validation.protect import fill_protected, real_values, training_view
from validation.schema import TableSchema
from validation.split import split_train_holdout
from validation.suppression import SuppressionConfig, suppress, suppressed_schema


_DETERMINISTIC_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


def is_transient(exc: BaseException) -> bool:
    """An IO hiccup worth retrying: a dropped connection, a timeout, a flaky object store.

    Never the user's own errors (a bad file stays bad), never deterministic ones (a cast that
    fails fails again; rerunning a production SQL query three times helps nobody), and not the
    OS errors that name a missing or forbidden path.
    """
    if isinstance(exc, SynthpipeError) or isinstance(exc, _DETERMINISTIC_OS_ERRORS):
        return False
    return isinstance(exc, (OSError, ConnectionError, TimeoutError))


def _retry_transient(task, task_run, state) -> bool:
    """Prefect retry condition: retry only :func:`is_transient` failures."""
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - classified, never swallowed: the state keeps it
        return is_transient(exc)
    return False


@task(name="ingest", retries=2, retry_delay_seconds=2, retry_condition_fn=_retry_transient, **PRIVATE)
def ingest(spec: SourceSpec, work_dir: str) -> TableRef:
    """Read the source once and keep a Parquet copy in the run's working folder."""
    table = read_source(spec)
    if table.num_rows < MIN_ROWS:
        raise InputError(
            f"source {spec.display} has {table.num_rows} rows; synthpipe needs at least {MIN_ROWS} real rows"
        )
    ref = write_arrow(table, join(work_dir, "source.parquet"))
    get_run_logger().info("read %s: %d rows x %d columns", spec.display, table.num_rows, table.num_columns)
    return ref


@task(name="profile", **PRIVATE)
def profile(source: TableRef, name: str, schema_file: str | None = None) -> TableSchema:
    """Detect column kinds, ranges, PII and keys; apply the user's schema file on top."""
    table = read_arrow(source)
    frame = table.to_pandas()
    schema = profile_table(frame, name, table.schema)
    if schema_file:
        schema = schema.apply_overrides(Path(schema_file))
    require_finite_numbers(frame, schema)
    if not schema.modeled_columns and not schema.released_columns:
        raise InputError("every column is dropped by the schema; nothing to synthesize")
    if not schema.modeled_columns:
        # keys, PII and free text are refilled with fresh fake values: with nothing else there is
        # nothing for a generator to learn, and an all-fake table is no synthetic copy of the data
        kinds = ", ".join(f"{c.name} ({c.kind.value})" for c in schema.released_columns[:5])
        raise InputError(
            f"no column is left for a generator to model: every released column is a key, PII or free text "
            f"({kinds}{', ...' if len(schema.released_columns) > 5 else ''}); give the columns to model a "
            "modeled kind (e.g. `kind: categorical`) in a schema file (synthpipe profile --write)"
        )
    return schema


@task(name="split-and-protect", **PRIVATE)
def split_and_protect(
    source: TableRef,
    schema: TableSchema,
    holdout_fraction: float,
    seed: int,
    work_dir: str,
    protections: SuppressionConfig | None = None,
) -> tuple[dict[str, TableRef], TableSchema]:
    """Seeded train/holdout split; the generator gets only protected modeled columns of train.

    Returns the table references and the schema the release must follow from now on (rare
    categories pooled, numeric ranges clipped), which also names no rare category.
    """
    frame = read_frame(source)
    train, holdout = split_train_holdout(frame, holdout_fraction, seed)
    protected, summary = suppress(training_view(train, schema), schema, protections, seed)
    model_schema = suppressed_schema(schema, summary, protected)
    get_run_logger().info(
        "protections: %d columns with pooled rare categories, %d clipped",
        len(summary["rare_categories"]), len(summary["clipped"]),
    )
    refs = {
        "train": write_frame(train, join(work_dir, "train.parquet")),
        "holdout": write_frame(holdout, join(work_dir, "holdout.parquet")),
        "train_model_view": write_frame(protected, join(work_dir, "train_model_view.parquet")),
    }
    return refs, model_schema


@task(name="sample", **PRIVATE)
def sample(model_dir: str, schema: TableSchema, n: int, seed: int, source: TableRef, work_dir: str) -> TableRef:
    """Draw rows from the trained model and refill keys, PII and text with fresh values."""
    generator = load_generator(model_dir)
    rows = generator.sample(n, seed=seed, progress=ArtifactProgress("sample"))
    avoid = real_values(read_frame(source), schema)
    synthetic = fill_protected(rows, schema, seed=seed, avoid=avoid)
    return write_frame(synthetic, join(work_dir, "synthetic.parquet"))


@task(name="validate", **PRIVATE)
def validate(
    refs: dict[str, TableRef], synthetic: TableRef, schema: TableSchema, gate: GateConfig, rows: int, work_dir: str
) -> GateResult:
    """Run the gate (schema expectations, fidelity, privacy) and render the HTML report.

    The report (megabytes of embedded plots) is written to ``<work_dir>/report.html`` and only its
    location travels on, as ``artifacts["report_html_uri"]``; :func:`publish` reads it.
    """
    from validation.report import render_html

    train, holdout, synth = read_frame(refs["train"]), read_frame(refs["holdout"]), read_frame(synthetic)
    result = run_gate(train, holdout, synth, schema, gate, expected_rows=rows)
    html = render_html(result, train, holdout, synth, schema, title=schema.name)
    result.artifacts["report_html_uri"] = write_text(html, join(work_dir, "report.html"))
    return result


@task(name="publish", retries=2, retry_delay_seconds=2, retry_condition_fn=_retry_transient, **PRIVATE)
def publish(
    out: str,
    dataset: str,
    synthetic: TableRef,
    schema: TableSchema,
    gate: GateResult,
    manifest: dict[str, Any],
    release_id: str,
) -> str:
    """Write the release (or the quarantine) atomically; LATEST moves only on a pass. The HTML
    report is read from where :func:`validate` left it, ``gate.artifacts["report_html_uri"]``.

    Safe to retry: when the release folder of ``release_id`` is already in place (an earlier
    attempt renamed it there and then failed, e.g. moving LATEST), its path is returned instead
    of refusing to overwrite it.
    """
    from tasks.release import to_release_arrow, write_release
    from validation.report import build_report_json

    report_html_uri = gate.artifacts.get("report_html_uri")
    table = to_release_arrow(read_frame(synthetic), schema)
    files = {
        "report.html": read_text(report_html_uri) if report_html_uri else "",
        "report.json": json.dumps(build_report_json(gate, dataset, extra=_report_extra(manifest)), indent=2, default=str),
        "great_expectations.json": json.dumps(gate.artifacts.get("great_expectations", {}), indent=2, default=str),
    }
    path = write_release(out, dataset, table, manifest, files, passed=gate.passed, release_id=release_id, reuse_existing=True)
    return str(path)


def _report_extra(manifest: dict[str, Any]) -> dict[str, Any]:
    """What report.json carries besides the gate: the manifest, and auto's candidate comparison on top."""
    extra: dict[str, Any] = {"manifest": manifest}
    for key in ("candidates", "selection"):
        if key in manifest:
            extra[key] = manifest[key]
    return extra
