"""``synthpipe check``: the gate on any three tables, whatever tool made the synthetic one.

A plain function (no Prefect) so the CLI can call it directly. It reads the real train split,
the holdout and the synthetic table (CSV or Parquet, with the pipeline's own reader), profiles
the real rows, runs the same gate as the pipeline and writes ``report.html``, ``report.json``
and ``great_expectations.json`` into the report folder.

Exit codes: 0 the gate passed, 1 it failed (the report says why), 2 the input is unusable or
the report cannot be written, 3 an unexpected internal error (never read as a gate failure).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from tasks.storage import arrow_to_frame
from validation.errors import INTERNAL_ERROR, InputError, OutputError, SynthpipeError, debug_enabled, internal_error_line
from validation.gate import GateConfig, jsonable, run_gate
from validation.profile import MIN_ROWS, profile_table

DEFAULT_REPORT_DIR = Path("synthpipe-check-report")


def _read(path: str | Path, role: str) -> pa.Table:
    from tasks.sources import read_table_file

    p = Path(path)
    if not p.exists():
        raise InputError(f"{role} table not found: {p}")
    table = read_table_file(p)
    if table.num_rows == 0:
        raise InputError(f"{role} table {p} has no rows")
    return table


def _decoded(table: pa.Table) -> pa.Table:
    """``table`` with dictionary-encoded columns cast to their value type."""
    fields = [pa.field(f.name, f.type.value_type, f.nullable) if pa.types.is_dictionary(f.type) else f
              for f in table.schema]
    return table.cast(pa.schema(fields)) if fields != list(table.schema) else table


def _dates_as_timestamps(table: pa.Table, other: pa.Table) -> pa.Table:
    """``table`` with each date column that is a timestamp in ``other`` cast to that timestamp
    type: a CSV reads ``2020-01-04`` as a date, pandas writes it to Parquet as a timestamp."""
    for i, field in enumerate(table.schema):
        theirs = other.schema.field(field.name).type if field.name in other.column_names else None
        if pa.types.is_date(field.type) and theirs is not None and pa.types.is_timestamp(theirs):
            naive = table.column(i).cast(pa.timestamp(theirs.unit))
            # a date is midnight where it was written: local midnight in a zoned column, not UTC's
            # (a midnight skipped or repeated by a clock change: the first valid instant)
            cast = pc.assume_timezone(naive, theirs.tz, nonexistent="latest", ambiguous="earliest") if theirs.tz else naive
            table = table.set_column(i, pa.field(field.name, theirs, field.nullable), cast)
    return table


def _real_table(train: pa.Table, holdout: pa.Table) -> pa.Table:
    """Train and holdout as one table (the real table the pipeline would have profiled)."""
    if train.column_names != holdout.column_names:
        missing = [c for c in train.column_names if c not in holdout.column_names]
        extra = [c for c in holdout.column_names if c not in train.column_names]
        why = []
        if missing:
            why.append(f"missing {', '.join(missing)}")
        if extra:
            why.append(f"extra {', '.join(extra)}")
        raise InputError(
            "the holdout must have the real table's columns in the same order"
            + (f" ({'; '.join(why)})" if why else " (the order differs)")
        )
    try:
        # a CSV column that is all-null in one file reads as type null: widen it; a Parquet file
        # written from a pandas category column holds it dictionary-encoded: read its values
        train, holdout = (_decoded(t) for t in (train, holdout))
        train, holdout = _dates_as_timestamps(train, holdout), _dates_as_timestamps(holdout, train)
        return pa.concat_tables([train, holdout], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"the real table and the holdout have incompatible column types: {exc}") from None


def run_check(
    real_path: str | Path,
    holdout_path: str | Path,
    synthetic_path: str | Path,
    report_dir: str | Path | None = None,
    gate_config: GateConfig | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Run the gate on three files and write the report; returns the exit code (0, 1, 2 or 3).

    The schema (column kinds, ranges, category sets, PII, keys) is the profile of the real train
    split and the holdout together: the pipeline profiles the whole real table before it splits
    it, so ``check`` on the pipeline's own splits gives the pipeline's verdict. No expected row
    count is imposed on the synthetic table.
    """
    report_dir = Path(report_dir) if report_dir is not None else DEFAULT_REPORT_DIR
    try:
        return _run_check(real_path, holdout_path, synthetic_path, report_dir, gate_config, echo)
    except SynthpipeError as exc:
        echo(f"error: {exc}")
        return exc.exit_code
    except Exception as exc:  # a bug or a broken environment: exit 1 would read as "the gate failed"
        if debug_enabled():
            raise
        echo(internal_error_line(exc))
        return INTERNAL_ERROR


def _run_check(
    real_path: str | Path,
    holdout_path: str | Path,
    synthetic_path: str | Path,
    report_dir: Path,
    gate_config: GateConfig | None,
    echo: Callable[[str], None],
) -> int:
    """:func:`run_check` without its error handling."""
    train_t = _read(real_path, "real")
    holdout_t = _read(holdout_path, "holdout")
    synthetic_t = _read(synthetic_path, "synthetic")
    real_t = _real_table(train_t, holdout_t)
    if real_t.num_rows < MIN_ROWS:
        raise InputError(
            f"the real table and holdout have {real_t.num_rows} rows together; the gate needs at least {MIN_ROWS}"
        )
    real_df = arrow_to_frame(real_t)
    train = real_df.iloc[: train_t.num_rows].reset_index(drop=True)
    holdout = real_df.iloc[train_t.num_rows:].reset_index(drop=True)
    synthetic = arrow_to_frame(synthetic_t)
    name = Path(str(real_path)).name.split(".")[0] or "table"
    schema = profile_table(real_df, name, real_t.schema)
    result = run_gate(train, holdout, synthetic, schema, gate_config or GateConfig())

    from validation.report import write_report

    extra = {
        "real": str(real_path),
        "holdout": str(holdout_path),
        "synthetic": str(synthetic_path),
        "schema": "profile of the real train split and holdout together",
    }
    try:
        paths = write_report(result, train, holdout, synthetic, schema, report_dir,
                             title=f"synthpipe check: {name}", extra=extra)
        ge_path = report_dir / "great_expectations.json"
        ge_path.write_text(json.dumps(jsonable(result.artifacts.get("great_expectations", {})), indent=2), encoding="utf-8")
    except OSError as exc:  # an unwritable report folder is bad input (exit 2), not a crash
        raise OutputError(f"cannot write the report to {report_dir}: {exc.strerror or exc}") from None
    echo(result.summary())
    echo(f"report: {paths['html']}")
    return 0 if result.passed else 1
