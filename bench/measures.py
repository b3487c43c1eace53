"""What the benchmark measures: wall time, peak memory, SDMetrics quality, DCR share.

* Time is wall-clock seconds and process CPU seconds. On a shared virtual machine wall time
  stretches by 10–20 % when the host is busy; CPU time does not, so the speed-ups are given on both.
* Peak memory is the peak resident set size (RSS, Linux ``/proc/self/statm``) above the RSS at
  the start of the measured block, polled every 5 ms by a background thread. RSS, unlike
  tracemalloc, also sees PyTorch's tensors. Allocator caching means a block that reuses memory
  freed by an earlier block reads low; each figure is an "extra memory needed" estimate.
* Quality is SDMetrics' QualityReport (column shapes: KS / TV complement; column pair trends:
  correlation / contingency similarity) of the synthetic rows against the real train split,
  with the column types of our profile.
* DCR share is the project's own metric from :mod:`validation.privacy` (the gate uses the same
  code): share of synthetic rows closer to the train split than to an equal-size holdout, on the
  gate's encoded matrix with scikit-learn nearest neighbours; 0.5 is ideal, 1.0 means copies.
"""
from __future__ import annotations

import ctypes
import datetime as dt
import gc
import json
import os
import platform
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
import torch

from generators.training import cpu_has_bf16
from validation.columns import prepare_tables
from validation.privacy import distance_metrics, encode
from validation.schema import ColumnKind, TableSchema

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except OSError:  # not Linux: fall back to the process's lifetime peak
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Measurement:
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time: unlike wall time, not stretched by a busy host
    peak_mb: float = 0.0


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so that a block's peak
    is not hidden by memory an earlier block freed but the allocator kept."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@contextmanager
def measured() -> Iterator[Measurement]:
    """Time a block and record its peak RSS above the RSS at entry."""
    _release_free_memory()
    result = Measurement()
    base = _rss_bytes()
    peak = [base]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(0.005)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start
        result.cpu_seconds = time.process_time() - cpu_start
        stop.set()
        thread.join()
        peak[0] = max(peak[0], _rss_bytes())
        result.peak_mb = (peak[0] - base) / 2**20


def run_meta(module: str, argv: list[str] | None, threads: int, **extra) -> dict:
    """What every bench result records about its run: command, time, machine, load before."""
    return {
        "command": f"python -m {module} " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform(),
        "torch": torch.__version__, "cpu_bf16": cpu_has_bf16(),
        "load_before": [round(x, 1) for x in os.getloadavg()],
        **extra,
    }


def finish_meta(meta: dict) -> None:
    """Record the load average after the run."""
    meta["load_after"] = [round(x, 1) for x in os.getloadavg()]


def machine_line(meta: dict) -> str:
    """The Markdown line that says when and on what a result was measured."""
    return (f"Date: {meta['date']}; {meta['cpu_count']} CPU cores, torch threads {meta['threads']}, "
            f"load average {meta['load_before']} before / {meta['load_after']} after "
            f"(the machine is shared; timings are under that load); torch {meta['torch']}")


def sdmetrics_metadata(schema: TableSchema, columns: list[str]) -> dict:
    """SDMetrics metadata from our profile."""
    sdtypes = {
        ColumnKind.INTEGER: "numerical",
        ColumnKind.FLOAT: "numerical",
        ColumnKind.DATETIME: "datetime",
        ColumnKind.BOOLEAN: "boolean",
        ColumnKind.CATEGORICAL: "categorical",
    }
    meta: dict = {"columns": {}}
    for col in schema.modeled_columns:
        if col.name in columns:
            entry = {"sdtype": sdtypes[col.kind]}
            if col.kind == ColumnKind.DATETIME and col.datetime_format:
                entry["datetime_format"] = col.datetime_format
            meta["columns"][col.name] = entry
    return meta


def quality(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> dict[str, float]:
    """SDMetrics QualityReport: overall score, column shapes, column pair trends."""
    from sdmetrics.reports import QualityReport

    columns = [c for c in real.columns if c in synthetic.columns]
    report = QualityReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the unified report takes SDV-2-style dicts: {table: df} and {"tables": {table: meta}}
        report.generate({schema.name: real[columns]}, {schema.name: synthetic[columns]},
                        {"tables": {schema.name: sdmetrics_metadata(schema, columns)}}, verbose=False)
    props = dict(zip(report.get_properties()["Property"], report.get_properties()["Score"]))
    return {
        "quality": float(report.get_score()),
        "column_shapes": float(props.get("Column Shapes", float("nan"))),
        "pair_trends": float(props.get("Column Pair Trends", float("nan"))),
    }


def dcr_share(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema,
              seed: int = 0) -> float:
    """The gate's DCR share (0.5 ideal) of ``synthetic`` against ``train`` and ``holdout``."""
    prep = prepare_tables({"train": train, "holdout": holdout, "synthetic": synthetic}, schema)
    result = distance_metrics(encode(prep), seed=seed)
    return float(result.metrics["dcr_share"])


def write_results(out: Path, stem: str, result: dict, to_markdown: Callable[[dict], str]) -> str:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out``; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str))
    markdown = to_markdown(result)
    (out / f"{stem}.md").write_text(markdown)
    return markdown
