"""Benchmark: DP-CTGAN (or AIM) on the SAFES training splits: time, marginal TVD, downstream model.

Each (dataset, epsilon, seed) runs in a fresh Python process, so the time includes every
one-time cost of a run; imports are timed apart. TVD is the mean over all k-way marginals on
the full declared domain against the training split the synthesizer read; accuracy and ROC AUC
are those of the `model_utility` metric (a logistic regression trained on the release, tested
on the real test split). The machine is shared: the load average is recorded beside the times.

Usage:
    python benchmarks/bench_dpctgan.py --epsilons 1 10 --seeds 0 1 2 --markdown
    python benchmarks/bench_dpctgan.py --synthesizer aim --epsilons 1 10 --seeds 0 1 2
    python benchmarks/bench_dpctgan.py --epsilons 1 --param epochs=3 --param batch_size=8192
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

DELTA = 1e-9


def mean_tvd(real: np.ndarray, synth: np.ndarray, sizes: list[int], order: int) -> float:
    """Mean total-variation distance over all marginals on `order` columns (full domain)."""
    from safes_plugins.metrics.utility import marginal_tvds

    cliques = [list(c) for c in itertools.combinations(range(len(sizes)), order)]
    return float(np.mean(marginal_tvds(real, None, synth, None, sizes, cliques)))


def run_one(synthesizer: str, dataset: str, epsilon: float, seed: int, extra: dict) -> dict:
    """One cold run (call in a fresh process)."""
    start = time.perf_counter()
    import safes_framework
    from safes_framework import MetricInputs, SafesChain, datasets
    from safes_framework.plugins import PluginManager

    import_s = time.perf_counter() - start
    df, schema = datasets.load(dataset)
    train, test = datasets.train_test_split(df)
    real = schema.encode_array(train)
    sizes = list(schema.sizes.values())
    pm = PluginManager(load_entrypoints=False)
    synth = pm.synthesizers.create(synthesizer, epsilon=epsilon, delta=DELTA, **extra)
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    release = SafesChain(synth, seed=seed, plugin_manager=pm).run(train, schema)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    fake = schema.encode_array(release.data)
    utility = safes_framework.metric("model_utility").compute(
        MetricInputs(release=release.data, schema=schema, train=train, test=test, seed=0)
    )
    return {
        "synthesizer": synthesizer, "dataset": dataset, "epsilon": epsilon, "seed": seed,
        "rows": len(train), "params": extra,
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "import_s": round(import_s, 2),
        "stages_s": {k: round(v, 2) for k, v in release.timings.items()},
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        "epsilon_spent": release.privacy.epsilon,
        "plan": getattr(synth, "plan_", None),
        **{f"tvd{k}": round(mean_tvd(real, fake, sizes, k), 4) for k in (1, 2, 3)},
        "accuracy": round(utility.values["accuracy"], 4),
        "roc_auc": round(utility.values["roc_auc"], 4),
    }


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    keys = dict.fromkeys((r["synthesizer"], r["dataset"], r["epsilon"]) for r in rows)
    for synth, dataset, eps in keys:
        key = (synth, dataset, eps)
        rs = [r for r in rows if (r["synthesizer"], r["dataset"], r["epsilon"]) == key]
        out.append({
            "synthesizer": synth, "dataset": dataset, "epsilon": eps, "runs": len(rs),
            "median_wall_s": float(np.median([r["wall_s"] for r in rs])),
            "max_wall_s": max(r["wall_s"] for r in rs),
            **{f"mean_{k}": round(float(np.mean([r[k] for r in rs])), 4)
               for k in ("tvd1", "tvd2", "tvd3", "accuracy", "roc_auc")},
            "max_epsilon_spent": max(r["epsilon_spent"] for r in rs),
            "mean_load": round(float(np.mean([r["load_before"] for r in rs])), 2),
        })
    return out


def markdown(summary: list[dict]) -> str:
    lines = [
        "| synthesizer | dataset | ε | wall (median / max) | TVD 1-way | TVD 2-way | TVD 3-way | "
        "accuracy | ROC AUC | runs | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['synthesizer']} | {s['dataset']} | {s['epsilon']:g} | "
            f"{s['median_wall_s']:.1f} s / {s['max_wall_s']:.1f} s | {s['mean_tvd1']:.4f} | "
            f"{s['mean_tvd2']:.4f} | {s['mean_tvd3']:.4f} | {s['mean_accuracy']:.3f} | "
            f"{s['mean_roc_auc']:.3f} | {s['runs']} | {s['mean_load']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthesizer", default="dpctgan")
    ap.add_argument("--datasets", nargs="+", default=["adult"])
    ap.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="extra synthesizer parameter (Python literal), e.g. epochs=3")
    ap.add_argument("--markdown", action="store_true", help="also print a markdown table")
    ap.add_argument("--one", nargs=4, metavar=("SYNTH", "DATASET", "EPS", "SEED"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    extra = {}
    for p in args.param:
        key, value = p.split("=", 1)
        extra[key] = ast.literal_eval(value)
    if args.one:
        synth, dataset, eps, seed = args.one
        print(json.dumps(run_one(synth, dataset, float(eps), int(seed), extra)))
        return
    print(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                      "cpus": os.cpu_count()}), flush=True)
    rows = []
    for dataset, eps, seed in itertools.product(args.datasets, args.epsilons, args.seeds):
        cmd = [sys.executable, __file__, "--one", args.synthesizer, dataset, str(eps), str(seed)]
        cmd += [f"--param={p}" for p in args.param]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"{args.synthesizer} {dataset} eps={eps} seed {seed} failed")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    summary = summarise(rows)
    for s in summary:
        print(json.dumps(s), flush=True)
    if args.markdown:
        print(markdown(summary))


if __name__ == "__main__":
    main()
