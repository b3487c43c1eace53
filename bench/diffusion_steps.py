"""Quality / speed trade-off of the diffusion family's sampling step count, and its 100k-row timing.

    .venv/bin/python -m bench.diffusion_steps                       # planes, weather, flights
    .venv/bin/python -m bench.diffusion_steps --tables planes --steps 10,25,50,100

For each bench table (same seeded sample and 80/20 split as ``bench.run``), the diffusion
generator is trained once with its defaults; then, for every DDIM step count, it samples
``--sample-rows`` rows and the first 5,000 are scored with the same SDMetrics quality and DCR
share as ``bench.run``. Finally it times sampling ``--big-rows`` rows (100,000 by default) with the
default step count, the issue's speed target (under 60 s on two CPU cores).

Writes ``bench/results/diffusion_steps.json`` and ``.md`` and prints the Markdown.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from bench.datasets import TABLES, load_table
from bench.measures import dcr_share, finish_meta, machine_line, measured, quality, run_meta, write_results
from generators.diffusion import DiffusionConfig, DiffusionGenerator
from validation.split import split_train_holdout

RESULTS = Path(__file__).parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.diffusion_steps", description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", default=",".join(TABLES))
    p.add_argument("--rows", type=int, default=5000, help="rows per table before the 80/20 split (as bench.run)")
    p.add_argument("--steps", default="10,25,50,100", help="comma list of DDIM step counts")
    p.add_argument("--sample-rows", type=int, default=20_000, help="rows drawn per step count (first 5,000 scored)")
    p.add_argument("--big-rows", type=int, default=100_000, help="rows for the default-steps timing (0: skip)")
    p.add_argument("--options", default="{}", help="JSON overrides of DiffusionConfig")
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)),
                   help="torch CPU threads (the speed target is for two cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def run_table(name: str, steps: list[int], args: argparse.Namespace) -> tuple[list[dict], dict | None]:
    """Fit once on ``name``; score every step count; time the big sample."""
    table = load_table(name, rows=args.rows, seed=args.seed)
    train, holdout = split_train_holdout(table.data, 0.2, seed=args.seed)
    config = DiffusionConfig.model_validate({"device": "cpu", "seed": args.seed, **json.loads(args.options)})
    gen = DiffusionGenerator(config)
    with measured() as fit_m:
        gen.fit(train, table.schema)
    print(f"[{name}] fit {fit_m.seconds:.1f}s on {len(train)} rows", flush=True)
    rows = []
    default_steps = config.sampling_steps
    for k in steps:
        gen.config = config.model_copy(update={"sampling_steps": k})
        with measured() as m:
            synthetic = gen.sample(args.sample_rows, seed=args.seed)
        scored = synthetic.iloc[:5000].reset_index(drop=True)
        row = {
            "table": name, "steps": k, "fit_s": fit_m.seconds,
            "sample_s_per_100k": m.seconds * 100_000 / args.sample_rows,
            **quality(train, scored, table.schema),
            "dcr_share": dcr_share(train, holdout, scored, table.schema, seed=args.seed),
        }
        rows.append(row)
        print(f"[{name}] {k} steps: quality {row['quality']:.3f} (shapes {row['column_shapes']:.3f}, "
              f"pairs {row['pair_trends']:.3f}), DCR share {row['dcr_share']:.3f}, "
              f"{row['sample_s_per_100k']:.1f}s / 100k rows", flush=True)
    big = None
    if args.big_rows:
        gen.config = config.model_copy(update={"sampling_steps": default_steps})
        with measured() as m:
            out = gen.sample(args.big_rows, seed=args.seed + 1)
        big = {"table": name, "rows": len(out), "steps": default_steps, "seconds": m.seconds,
               "cpu_seconds": m.cpu_seconds, "peak_mb": m.peak_mb,
               "encoded_width": gen.encoder.width if gen.encoder else None}
        print(f"[{name}] {len(out):,} rows with {default_steps} steps: {m.seconds:.1f}s "
              f"(process CPU {big['cpu_seconds']:.1f}s), peak {m.peak_mb:.0f} MB", flush=True)
    return rows, big


def to_markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        "# Diffusion: sampling steps vs quality",
        "",
        f"Command: `{meta['command']}`  ",
        f"{machine_line(meta)}. Rows per table "
        f"{meta['rows']} (80/20 split as bench.run); quality = SDMetrics QualityReport vs train on 5,000 "
        "synthetic rows; DCR share 0.5 ideal.",
        "",
        "| table | DDIM steps | quality | column shapes | pair trends | DCR share | sample s / 100k rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['table']} | {r['steps']} | {r['quality']:.3f} | {r['column_shapes']:.3f} | "
                     f"{r['pair_trends']:.3f} | {r['dcr_share']:.3f} | {r['sample_s_per_100k']:.1f} |")
    if result["big"]:
        lines += ["", "Sampling with the default step count:", "",
                  "| table | rows | steps | seconds | process CPU s | peak MB | encoded width |", "|---|---|---|---|---|---|---|"]
        for b in result["big"]:
            lines.append(f"| {b['table']} | {b['rows']:,} | {b['steps']} | {b['seconds']:.1f} | {b['cpu_seconds']:.1f} | "
                         f"{b['peak_mb']:.0f} | {b['encoded_width']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    meta = run_meta("bench.diffusion_steps", argv, args.threads, rows=args.rows, steps=steps, tables=tables,
                    options=json.loads(args.options))
    rows: list[dict] = []
    big: list[dict] = []
    for name in tables:
        table_rows, table_big = run_table(name, steps, args)
        rows += table_rows
        if table_big:
            big.append(table_big)
    finish_meta(meta)
    result = {"meta": meta, "rows": rows, "big": big}
    print(write_results(args.out, "diffusion_steps", result, to_markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
