"""Benchmark our generators against SDV's reference synthesizers on real public tables.

    .venv/bin/python -m bench.run                      # full run (make bench)
    .venv/bin/python -m bench.run --quick              # smoke run, a minute or two
    .venv/bin/python -m bench.run --generators vae,gan,sdv-tvae --tables planes --epochs 50

Everything runs in one process, one contender after another, on the same train/holdout split
and the same epochs for vae/gan and SDV TVAE/CTGAN (other families run with their own defaults).
Writes ``bench/results/latest.json`` and ``latest.md`` and prints the Markdown.

Besides the per-table rows it measures, for the epoch-compared families: sampling 1,000,000 rows
from a fitted model, and training on a table with a 50,000-distinct-value categorical column.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import traceback
from pathlib import Path
from typing import Any

import torch

from bench.contenders import EPOCH_FAMILIES, SDV_NAMES, available_families, build
from bench.datasets import TABLES, load_table, wide_categorical_table
from bench.measures import dcr_share, finish_meta, machine_line, measured, quality, run_meta, write_results
from validation.split import split_train_holdout

RESULTS = Path(__file__).parent / "results"
# (ours, SDV reference) compared epoch for epoch on fit time; every name in a pair gets repeated fits
SPEED_PAIRS = [("vae", "sdv-tvae"), ("gan", "sdv-ctgan")]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--generators", help="comma list; default: every family that imports + sdv-copula,sdv-tvae,sdv-ctgan")
    p.add_argument("--tables", default=",".join(TABLES), help=f"comma list of {', '.join(TABLES)}")
    p.add_argument("--rows", type=int, default=None, help="rows per table (seeded sample) before the 80/20 split (5000)")
    p.add_argument("--epochs", type=int, default=None, help="epochs for vae, gan, sdv-tvae, sdv-ctgan (100)")
    p.add_argument("--sample-rows", type=int, default=None, help="rows drawn to time sampling (20000)")
    p.add_argument("--scale-rows", type=int, default=None, help="rows for the large sampling check (1000000; 0: skip)")
    p.add_argument("--wide-rows", type=int, default=None, help="rows of the wide-category table (100000; 0: skip)")
    p.add_argument("--wide-distinct", type=int, default=None)
    p.add_argument("--wide-epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)),
                   help="torch CPU threads for every contender (default: all cores; SDV's TVAE and CTGAN fit "
                        "15-30 %% faster on two threads than on one)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed fits of each speed-compared contender (vae, gan, SDV TVAE/CTGAN); the median "
                        "is reported, the first fit is the one sampled and scored (3; --quick 1)")
    p.add_argument("--set", action="append", default=[], metavar="FAMILY.FIELD=VALUE",
                   help="extra config of one of our families, e.g. --set diffusion.min_steps=500 (JSON values)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--quick", action="store_true", help="tiny smoke run: few rows and epochs, small scale checks")
    args = p.parse_args(argv)
    args.family_options = _family_options(args.set)
    # defaults of a full run, and of --quick (where every family with `epochs` gets --epochs);
    # options given explicitly win over both
    full = dict(rows=5000, epochs=100, sample_rows=20_000, scale_rows=1_000_000, wide_rows=100_000,
                wide_distinct=50_000, wide_epochs=5, repeats=3)
    quick = dict(rows=600, epochs=3, sample_rows=2000, scale_rows=100_000, wide_rows=20_000,
                 wide_distinct=5_000, wide_epochs=1, repeats=1)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick and args.tables == ",".join(TABLES):
        args.tables = "planes,weather"
    return args


def _family_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["diffusion.min_steps=500"]`` -> ``{"diffusion": {"min_steps": 500}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, _, raw = item.partition("=")
        family, _, field = key.partition(".")
        if not (family and field and raw):
            raise SystemExit(f"--set expects FAMILY.FIELD=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(family, {})[field] = value
    return out


def _build(name: str, epochs: int | None, args: argparse.Namespace):
    return build(name, epochs, args.seed, args.family_options.get(name), epochs_for_all=args.quick)


def _contender_names(arg: str | None) -> list[str]:
    if arg:
        return [g.strip() for g in arg.split(",") if g.strip()]
    return available_families() + list(SDV_NAMES)


def _warm_up(names: list[str], table_name: str, args: argparse.Namespace) -> None:
    """Fit the speed-compared contenders (vae, gan, SDV) once for 1 epoch on 200 rows, untimed,
    so that one-off costs (lazy imports, first-call kernel setup) are not charged to whichever
    of them runs first."""
    table = load_table(table_name, rows=200, seed=args.seed)
    for name in [n for n in names if n in EPOCH_FAMILIES or n in SDV_NAMES]:
        try:
            contender = build(name, 1, args.seed, args.family_options.get(name), epochs_for_all=True)
            contender.fit(table.data, table.schema)
            contender.sample(100, args.seed)
        except Exception:  # the timed run reports the error
            pass


def run_table(table_name: str, names: list[str], args: argparse.Namespace, keep: dict[str, Any]) -> list[dict]:
    """Fit, sample and score every contender on one table."""
    table = load_table(table_name, rows=args.rows, seed=args.seed)
    train, holdout = split_train_holdout(table.data, 0.2, seed=args.seed)
    eval_rows = min(len(train), 5000)
    rows: list[dict] = []
    ceiling = quality(train, holdout, table.schema)
    rows.append({"table": table_name, "generator": "holdout (ceiling)", **ceiling,
                 "train_rows": len(train), "holdout_rows": len(holdout), "columns": train.shape[1]})
    print(f"[{table_name}] {len(train)} train / {len(holdout)} holdout rows, {train.shape[1]} columns; "
          f"holdout quality {ceiling['quality']:.3f}", flush=True)
    for name in names:
        row: dict[str, Any] = {"table": table_name, "generator": name}
        try:
            contender = _build(name, args.epochs, args)
            row["options"] = contender.options
            row["epochs"] = contender.options.get("epochs")
            with measured() as fit_m:
                contender.fit(train, table.schema)
            with measured() as sample_m:
                synthetic = contender.sample(args.sample_rows, args.seed)
            scored = synthetic.iloc[:eval_rows].reset_index(drop=True)
            row.update({
                "fit_s": fit_m.seconds,
                "fit_cpu_s": fit_m.cpu_seconds,
                "sample_s_per_100k": sample_m.seconds * 100_000 / args.sample_rows,
                "peak_mb": max(fit_m.peak_mb, sample_m.peak_mb),
                **quality(train, scored, table.schema),
                "dcr_share": dcr_share(train, holdout, scored, table.schema, seed=args.seed),
            })
            if name in EPOCH_FAMILIES and name not in keep:
                keep[name] = contender
        except Exception as exc:  # one failing contender must not end the run
            row["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        rows.append(row)
        print(f"[{table_name}] {_fmt_row(row)}", flush=True)
    _repeat_fits(rows, train, table.schema, args)
    return rows


def _repeat_fits(rows: list[dict], train, schema, args: argparse.Namespace) -> None:
    """Fit the speed-compared contenders ``repeats - 1`` more times and report each one's median.

    The comparison is a ratio of two fit times on a shared host, where a single fit can stretch by a
    fifth. The extra fits run in rounds over all contenders (not all of one contender's fits in a
    row), so a slow spell on the host lands on several contenders' samples instead of all of one's.
    """
    compared = {name for pair in SPEED_PAIRS for name in pair}
    timed = [r for r in rows if "fit_s" in r and r["generator"] in compared]
    runs = [[(r["fit_s"], r["fit_cpu_s"])] for r in timed]  # (wall, CPU) of each fit, parallel to `timed`
    for _ in range(args.repeats - 1):
        for r, fits in zip(timed, runs):
            with measured() as m:
                _build(r["generator"], args.epochs, args).fit(train, schema)
            fits.append((m.seconds, m.cpu_seconds))
    for r, fits in zip(timed, runs):
        wall, cpu = zip(*fits)
        r.update(fit_s=statistics.median(wall), fit_cpu_s=statistics.median(cpu), fit_s_runs=[round(x, 2) for x in wall])
        if len(wall) > 1:
            print(f"[repeat] {r['table']} {r['generator']}: fits {', '.join(f'{x:.1f}' for x in wall)} s, "
                  f"median {r['fit_s']:.1f} s", flush=True)


def run_scale(keep: dict[str, Any], args: argparse.Namespace) -> list[dict]:
    """Sampling ``scale_rows`` rows, and training on the 50k-category table."""
    out: list[dict] = []
    for name, contender in keep.items():
        if args.scale_rows:
            with measured() as m:
                big = contender.sample(args.scale_rows, args.seed + 1)
            out.append({"check": f"sample {args.scale_rows:,} rows", "generator": name, "seconds": m.seconds,
                        "peak_mb": m.peak_mb, "rows": len(big), "target": "< 30 s"})
            print(f"[scale] {name}: {out[-1]}", flush=True)
            del big
    if args.wide_rows:
        wide = wide_categorical_table(args.wide_rows, args.wide_distinct, seed=args.seed)
        for name in keep:
            contender = _build(name, args.wide_epochs, args)
            try:
                with measured() as m:
                    contender.fit(wide.data, wide.schema)
                synthetic = contender.sample(10_000, args.seed)
                encoder = contender.model.encoder
                out.append({
                    "check": f"train {args.wide_rows:,} rows with a {args.wide_distinct:,}-value column",
                    "generator": name, "seconds": m.seconds, "peak_mb": m.peak_mb,
                    "epochs": args.wide_epochs, "encoded_width": encoder.width,
                    "distinct_codes_in_10k_sample": int(synthetic["code"].nunique()),
                })
            except Exception as exc:
                out.append({"check": "wide categorical", "generator": name, "error": f"{type(exc).__name__}: {exc}"})
            print(f"[scale] {name}: {out[-1]}", flush=True)
    return out


def _f(v: Any, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def _fmt_row(row: dict) -> str:
    if "error" in row:
        return f"{row['generator']}: ERROR {row['error']}"
    return (f"{row['generator']}: fit {row['fit_s']:.1f}s (CPU {row['fit_cpu_s']:.1f}s), sample {row['sample_s_per_100k']:.2f}s/100k, "
            f"peak {row['peak_mb']:.0f} MB, quality {row['quality']:.3f} "
            f"(shapes {row['column_shapes']:.3f}, pairs {row['pair_trends']:.3f}), DCR share {row['dcr_share']:.3f}")


def _speedups(rows: list[dict]) -> list[dict]:
    """Fit-time ratio and quality difference of vae vs SDV TVAE and gan vs SDV CTGAN per table."""
    out = []
    by_key = {(r["table"], r["generator"]): r for r in rows if "fit_s" in r}
    for table in dict.fromkeys(r["table"] for r in rows):
        for ours_name, ref in SPEED_PAIRS:
            a, b = by_key.get((table, ours_name)), by_key.get((table, ref))
            if a and b:
                out.append({"table": table, "ours": ours_name, "reference": ref,
                            "ours_fits": a.get("fit_s_runs", []),
                            "reference_fits": b.get("fit_s_runs", []),
                            "fit_speedup": b["fit_s"] / a["fit_s"],
                            "fit_cpu_speedup": b["fit_cpu_s"] / a["fit_cpu_s"] if a.get("fit_cpu_s") else None,
                            "quality_diff": a["quality"] - b["quality"]})
    return out


def to_markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        "# Benchmark: synthpipe generators vs SDV",
        "",
        f"Command: `{meta['command']}`  ",
        f"{machine_line(meta)}, sdv {meta['sdv']}; "
        f"native bf16 matrix products on this CPU: {'yes, so our torch families run them in bf16 (precision auto; SDV runs float32)' if meta.get('cpu_bf16') else 'no, every contender runs float32'}.",
        f"Rows per table {meta['rows']} (seeded sample, 80/20 train/holdout), epochs {meta['epochs']} for "
        "vae / gan / sdv-tvae / sdv-ctgan; other families use their defaults. Quality: SDMetrics "
        "QualityReport against the train split (5,000 synthetic rows at most); DCR share: the gate's "
        "metric against an equal-size holdout (0.5 ideal). "
        f"Fit times of vae / gan / sdv-tvae / sdv-ctgan: the median of {meta.get('repeats', 1)} fits, in rounds "
        "over the contenders (the first fit is the one sampled and scored).",
        "",
        "| table | generator | epochs | fit s | fit CPU s | sample s / 100k rows | peak MB | quality | column shapes | pair trends | DCR share |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['table']} | {r['generator']} | {_f(r.get('epochs'), 'd')} | error: {r['error'][:80]} ||||||||")
            continue
        lines.append(
            f"| {r['table']} | {r['generator']} | {_f(r.get('epochs'), 'd')} | {_f(r.get('fit_s'), '.1f')} | "
            f"{_f(r.get('fit_cpu_s'), '.1f')} | "
            f"{_f(r.get('sample_s_per_100k'), '.2f')} | {_f(r.get('peak_mb'), '.0f')} | {r['quality']:.3f} | "
            f"{r['column_shapes']:.3f} | {r['pair_trends']:.3f} | {_f(r.get('dcr_share'), '.3f')} |"
        )
    if result["speedups"]:
        lines += ["", "Same epochs, ours vs SDV:", "",
                  "| table | ours | reference | our fits s | reference fits s | fit speed-up (wall, medians) | fit speed-up (CPU time) | quality difference |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in result["speedups"]:
            cpu = f"{s['fit_cpu_speedup']:.1f}x" if s.get("fit_cpu_speedup") else "—"
            fits = [" / ".join(f"{x:.1f}" for x in s.get(key, [])) or "—" for key in ("ours_fits", "reference_fits")]
            lines.append(f"| {s['table']} | {s['ours']} | {s['reference']} | {fits[0]} | {fits[1]} | "
                         f"{s['fit_speedup']:.1f}x | {cpu} | {s['quality_diff']:+.3f} |")
    if result["scale"]:
        lines += ["", "Scale checks:", "", "| check | generator | seconds | peak MB | detail |", "|---|---|---|---|---|"]
        for s in result["scale"]:
            detail = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("check", "generator", "seconds", "peak_mb"))
            lines.append(f"| {s['check']} | {s['generator']} | {_f(s.get('seconds'), '.1f')} | {_f(s.get('peak_mb'), '.0f')} | {detail} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    names = _contender_names(args.generators)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    import sdv

    meta = run_meta("bench.run", argv, args.threads, sdv=sdv.__version__, rows=args.rows, epochs=args.epochs,
                    repeats=args.repeats, generators=names, tables=tables)
    rows: list[dict] = []
    keep: dict[str, Any] = {}
    _warm_up(names, tables[0], args)
    for table in tables:
        rows += run_table(table, names, args, keep)
    scale = run_scale(keep, args)
    finish_meta(meta)
    result = {"meta": meta, "rows": rows, "speedups": _speedups(rows), "scale": scale}
    print(write_results(args.out, "latest", result, to_markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
