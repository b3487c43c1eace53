"""Time per training epoch of the PyTorch families on CUDA against the CPU (one prepared check).

    .venv/bin/python -m bench.cuda_check                  # vae, gan, diffusion on weather
    .venv/bin/python -m bench.cuda_check --epochs 20 --families vae,gan

Fits each family on the same real table once on the CPU and once on CUDA (bf16 products on both
where the hardware has them, ``precision=auto``), and prints seconds per epoch, the speed-up, and
the SDMetrics quality of each model's rows, so a GPU run can be checked for speed and sanity in
one command. Exits with code 2 and one line when no CUDA device is present.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from bench.datasets import load_table
from bench.measures import quality
from generators.registry import make_generator
from validation.split import split_train_holdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cuda_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="vae,gan,diffusion")
    p.add_argument("--table", default="weather")
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the CPU runs")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device on this host: run this check on a GPU machine", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    table = load_table(args.table, rows=args.rows, seed=0)
    train, _ = split_train_holdout(table.data, 0.2, seed=0)
    print(f"{args.table}: {len(train)} train rows; GPU {torch.cuda.get_device_name(0)}; epochs {args.epochs}")
    print("| family | device | s / epoch | speed-up | quality |")
    print("|---|---|---|---|---|")
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        per_epoch: dict[str, float] = {}
        options = {"epochs": args.epochs}  # given epochs run as given (diffusion too), so seconds per epoch compare
        for device in ("cpu", "cuda"):
            gen = make_generator(family, options, device=device, seed=0)
            make_generator(family, {**options, "epochs": 1}, device=device, seed=0).fit(train.iloc[:300], table.schema)  # warm-up
            start = time.perf_counter()
            gen.fit(train, table.schema)
            if device == "cuda":
                torch.cuda.synchronize()
            per_epoch[device] = (time.perf_counter() - start) / args.epochs
            score = quality(train, gen.sample(len(train), seed=0), table.schema)["quality"]
            speedup = f"{per_epoch['cpu'] / per_epoch[device]:.1f}x" if device == "cuda" else "1.0x"
            print(f"| {family} | {device} | {per_epoch[device]:.3f} | {speedup} | {score:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
