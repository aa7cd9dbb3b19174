"""Benchmark: sweep wall time and how it scales with workers (local process pool, Dask).

Usage:
    python benchmarks/bench_sweep.py [--grid small|paper] [--workers 1 2] \
        [--executors local dask] [--repeats N] [--json]

Each (executor, workers) pair runs the grid from scratch into a temporary directory and
reports the wall time, units per second, the speed-up over the first configuration, and the
work inside the units (the sums of the stored `seconds_*` rows: synthesis once per unit,
fairness and metrics per cell). Wall time minus work / workers is the executor's overhead
(worker start-up: each process imports the package, JAX and the plugins, and compiles its JAX
functions once).

`--grid small` (default): both datasets, epsilon in {0.1, 1} plus no DP, the paper's etas,
AIM + TOT, 4 repeats: 24 units, 68 cells. `--grid paper`: the full paper grid (560 units, 1,612
cells; about 20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

from safes_framework.sweeps import SweepConfig, read_results, run_sweep


def grid(name: str, repeats: int | None) -> SweepConfig:
    config = SweepConfig()
    if name == "small":
        config = config.with_overrides(epsilons=(0.1, 1.0), repeats=4)
    if repeats is not None:
        config = config.with_overrides(repeats=repeats)
    return config


def run(config: SweepConfig, executor: str, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as out:
        start = time.perf_counter()
        summary = run_sweep(config, out, executor=executor, workers=workers)
        wall = time.perf_counter() - start
        df = read_results(out)
    run_rows = df[df["metric"] == "run"]
    synth = (
        run_rows[run_rows["key"] == "seconds_synthesizer"]
        .drop_duplicates(["dataset", "epsilon", "repeat"])["value"]
        .sum()
    )
    fair = run_rows[run_rows["key"] == "seconds_fairness"]["value"].sum()
    metrics = run_rows[run_rows["key"] == "seconds_metrics"]["value"].sum()
    work = synth + fair + metrics
    return {
        "executor": executor,
        "workers": workers,
        "units": summary.units_done,
        "cells": summary.cells_ok + summary.cells_failed,
        "failed_cells": summary.cells_failed,
        "wall_s": round(wall, 1),
        "units_per_s": round(summary.units_done / wall, 3),
        "work_s": round(work, 1),
        "synth_s": round(synth, 1),
        "fairness_s": round(fair, 1),
        "metrics_s": round(metrics, 1),
        "overhead_s": round(wall - work / workers, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grid", choices=("small", "paper"), default="small")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument(
        "--executors", nargs="+", default=["local", "dask"], choices=("local", "dask", "serial")
    )
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    config = grid(args.grid, args.repeats)
    config.validate()
    results = []
    for executor in args.executors:
        for workers in args.workers if executor != "serial" else [1]:
            r = run(config, executor, workers)
            results.append(r)
            if not args.json:
                base = results[0]["wall_s"]
                print(
                    f"{executor:>6} workers={workers}: {r['wall_s']:7.1f} s wall, "
                    f"{r['units_per_s']:.2f} units/s, speed-up {base / r['wall_s']:.2f}x; "
                    f"work {r['work_s']:.1f} s (synthesis {r['synth_s']:.1f}, fairness "
                    f"{r['fairness_s']:.1f}, metrics {r['metrics_s']:.1f}); overhead "
                    f"{r['overhead_s']:.1f} s; {r['units']} units, {r['cells']} cells, "
                    f"{r['failed_cells']} failed",
                    flush=True,
                )
    if args.json:
        print(
            json.dumps(
                {
                    "grid": args.grid,
                    "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg(),
                    "results": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
