"""Benchmark: MST on adult-full (wall time and mean 2-way TVD against the real data).

Usage: python benchmarks/bench_mst.py [--epsilon 1] [--delta 1e-9] [--seeds 0 1 2] [--noise secure]

`--noise seeded` (default) seeds each run (floating-point noise, for experiments); `--noise
secure` runs the release path (exact noise from OS entropy; `--seeds` then only counts runs).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from safes_plugins.metrics.utility import marginal_tvds

import safes_framework
from safes_framework import SafesChain, datasets
from safes_framework.plugins import PluginManager


def mean_tvd(real: np.ndarray, synth: np.ndarray, sizes: list[int], order: int) -> float:
    """Mean total-variation distance over all marginals on `order` columns (full domain)."""
    cliques = [list(c) for c in itertools.combinations(range(len(sizes)), order)]
    return float(np.mean(marginal_tvds(real, None, synth, None, sizes, cliques)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="adult-full")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-9)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--noise", choices=["seeded", "secure"], default="seeded")
    args = ap.parse_args()
    df, schema = datasets.load(args.dataset)
    real = schema.encode_array(df)
    sizes = list(schema.sizes.values())
    pm = PluginManager(load_entrypoints=False)
    rows = []
    for seed in args.seeds:
        start, cpu = time.perf_counter(), time.process_time()
        synth = safes_framework.synthesizer("mst", epsilon=args.epsilon, delta=args.delta)
        release = SafesChain(
            synth, seed=seed if args.noise == "seeded" else None, rows=len(df), plugin_manager=pm
        ).run(df, schema)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        fake = schema.encode_array(release.data)
        rows.append(
            {
                "seed": seed,
                "noise": args.noise,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "stages_s": {k: round(v, 2) for k, v in release.timings.items()},
                "epsilon_spent": release.privacy.epsilon,
                **{f"tvd{k}": round(mean_tvd(real, fake, sizes, k), 4) for k in (1, 2)},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "epsilon": args.epsilon,
                "delta": args.delta,
                "median_wall_s": float(np.median([r["wall_s"] for r in rows])),
                "median_cpu_s": float(np.median([r["cpu_s"] for r in rows])),
                "mean_tvd2": round(float(np.mean([r["tvd2"] for r in rows])), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
