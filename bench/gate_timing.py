"""Time the whole gate on a 50,000-row x 20-column synthetic table (issue 6's target: < 20 s on
2 CPU cores).

The real table is drawn from a known generative process (correlated numerics, skewed integers,
nulls, a datetime, categoricals from 2 to 200 levels, a boolean, an e-mail PII column and a key)
so the benchmark needs no data files. Real rows: 62,500 split 80/20 into a 50,000-row train split
and a 12,500-row holdout; the synthetic table is an independent 50,000-row draw of the same
process (an honest generator), so every check runs to completion and the gate passes.

    .venv/bin/python -m bench.gate_timing [--rows 50000] [--repeat 3] [--report DIR]

Prints the wall time of ``run_gate`` per run and per stage, and optionally of ``write_report``.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd


def make_table(n: int, seed: int, id_offset: int = 0) -> pd.DataFrame:
    """``n`` rows, 20 columns, of a fixed generative process."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(np.zeros(4), [[1, .6, .3, 0], [.6, 1, .2, .1], [.3, .2, 1, -.4], [0, .1, -.4, 1]], n)
    regions = np.array(["north", "south", "east", "west", "centre"])
    plans = np.array([f"plan_{i:02d}" for i in range(12)])
    cities = np.array([f"city_{i:03d}" for i in range(200)])
    city_p = 1 / np.arange(1, 201) ** 1.1
    city_p /= city_p.sum()
    df = pd.DataFrame(
        {
            "customer_id": np.arange(id_offset, id_offset + n).astype(str),
            "email": [f"person{id_offset + i}@example.org" for i in range(n)],
            "age": np.clip(np.round(45 + 15 * z[:, 0]), 18, 95).astype("int64"),
            "income": np.round(np.exp(10.5 + 0.5 * z[:, 1]), 2),
            "balance": np.round(1000 * z[:, 2] + 200 * rng.standard_normal(n), 2),
            "score": np.round(600 + 80 * z[:, 3], 1),
            "n_orders": rng.poisson(np.exp(1 + 0.3 * z[:, 0])).astype("int64"),
            "tenure_days": rng.integers(0, 3650, n),
            "discount": np.where(rng.random(n) < 0.15, np.nan, np.round(rng.beta(2, 5, n), 3)),
            "latitude": np.round(40 + 5 * rng.random(n) + 0.5 * z[:, 2], 5),
            "longitude": np.round(-100 + 20 * rng.random(n), 5),
            "visits": rng.negative_binomial(3, 0.3, n).astype("int64"),
            "rating": np.where(rng.random(n) < 0.05, np.nan, rng.integers(1, 6, n).astype(float)),
            "signup": pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000 * 86400, n), unit="s"),
            "region": regions[(np.abs(z[:, 0]) * 2).astype(int) % 5],
            "plan": plans[rng.integers(0, 12, n)],
            "city": cities[rng.choice(200, n, p=city_p)],
            "channel": np.where(z[:, 1] > 0.5, "web", np.where(z[:, 1] > -0.5, "store", "phone")),
            "segment": np.where(rng.random(n) < 0.02, None, np.where(z[:, 3] > 0, "A", "B")),
            "active": z[:, 0] + rng.standard_normal(n) > 0,
        }
    )
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000, help="synthetic rows = train rows")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--report", default=None, help="also time write_report into this folder")
    args = ap.parse_args()

    from validation.gate import run_gate
    from validation.profile import profile_table

    n_train = args.rows
    n_hold = n_train // 4
    real = make_table(n_train + n_hold, seed=1)
    train, holdout = real.iloc[:n_train].reset_index(drop=True), real.iloc[n_train:].reset_index(drop=True)
    synthetic = make_table(args.rows, seed=2, id_offset=10_000_000)
    schema = profile_table(real, "bench")
    # An honest generator respects the schema's ranges (as SDV and ours do): clip the
    # independent draw into them so the schema checks pass and the timing is of a passing run.
    for col in schema.columns:
        if col.kind.value in ("integer", "float") and col.min is not None:
            synthetic[col.name] = synthetic[col.name].clip(col.min, col.max)
    print(f"train {train.shape}, holdout {holdout.shape}, synthetic {synthetic.shape}, "
          f"cpus available {len(os.sched_getaffinity(0))}")
    print("kinds:", {c.name: c.kind.value for c in schema.columns})
    times, cpu = [], []
    for i in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        result = run_gate(train, holdout, synthetic, schema)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        label = "cold (imports GE, sklearn)" if i == 0 else "warm"
        print(f"run {i + 1} [{label}]: wall {times[-1]:.2f} s, cpu {cpu[-1]:.2f} s  {result.summary()}  "
              f"stages {json.dumps(result.metrics['timing_s'])}")
    # The machine may be shared: CPU seconds / 2 is what two dedicated cores would need at best.
    print(f"run_gate wall time: first {times[0]:.2f} s, best {min(times):.2f} s; "
          f"cpu time: first {cpu[0]:.2f} s, best {min(cpu):.2f} s; "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.report:
        from validation.report import write_report

        t = time.perf_counter()
        write_report(result, train, holdout, synthetic, schema, args.report, title="gate timing bench")
        print(f"write_report: {time.perf_counter() - t:.2f} s -> {args.report}")


if __name__ == "__main__":
    main()
