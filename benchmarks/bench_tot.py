"""Benchmark: TOT fit time on the paper's tables, and how far it scales with more attributes.

Usage: python benchmarks/bench_tot.py [--repeats 7] [--scale 0 1 2 3] [--workclass-cost 3]
       [--aif360] [--json]

Part 1 fits TOT on the SAFES paper's training splits (75/25, random_state=50) of `adult`
(eta=0.025, difference form, the paper's distortion) and `compas` (eta=0.1) and reports the
median and best fit time of `--repeats` fits (after one warm-up), the optimum and the LP size.
With `--aif360` (AIF360 installed; not a dependency of this project) it also times AIF360's
OptimPreproc on the same adult split.

Part 2 adds attributes of the raw Adult data (row-aligned from the bundled `adult-full`) to
`adult`: marital-status (7 values), hours-per-week in 5 public bins (<25, 25-39, 40, 41-49,
50+) and workclass (9 values), with declared costs: hours-per-week one bin up or down 1, more 3
(forbidden); marital-status and workclass any change 3 (forbidden; `--workclass-cost 2` lets
workclass move, bounded by 0.05, which is where the LP outgrows a minute). The adult rules
stay; costs combine by max; eta=0.025.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd
from safes_plugins.fairness.tot import TOT
from safes_plugins.fairness.tot.distortion import ADULT, Distortion, Moves, Ordinal

from safes_framework import datasets
from safes_framework.schema import Categorical, Schema

HOURS_EDGES = (25, 40, 41, 50)  # codes of adult-full are hours - 1

EXTRA: dict[str, tuple[Categorical, Any]] = {
    "marital-status": (
        Categorical("marital-status", tuple(range(7))),
        Moves("marital-status", change=3.0),
    ),
    "hours-bin": (Categorical("hours-bin", tuple(range(5))), Ordinal("hours-bin", up=(1.0, 3.0))),
    "workclass": (Categorical("workclass", tuple(range(9))), Moves("workclass", change=3.0)),
}


def adult_plus(k: int, workclass_cost: float = 3.0) -> tuple[pd.DataFrame, Schema, Distortion]:
    """`adult` with the first `k` extra attributes, its schema and distortion."""
    df, schema = datasets.load("adult")
    full, _ = datasets.load("adult-full")
    names = list(EXTRA)[:k]
    extra = {
        "marital-status": full["marital-status"],
        "hours-bin": np.searchsorted(
            HOURS_EDGES, full["hours-per-week"].to_numpy() + 1, side="right"
        ),
        "workclass": full["workclass"],
    }
    for n in names:
        df.insert(len(df.columns) - 1, n, np.asarray(extra[n], dtype=np.int64))
    cols = list(schema.columns)
    cols[-1:-1] = [EXTRA[n][0] for n in names]
    schema = Schema(
        columns=tuple(cols),
        protected=schema.protected,
        label=schema.label,
        favorable=schema.favorable,
        privileged=schema.privileged,
    )
    terms = [EXTRA[n][1] for n in names]
    if "workclass" in names:
        terms[names.index("workclass")] = Moves("workclass", change=workclass_cost)
    dist = Distortion(ADULT.terms + tuple(terms), combine="max", name=f"adult+{k}")
    return df, schema, dist


def time_fits(make: Any, df: pd.DataFrame, schema: Schema, repeats: int) -> dict[str, Any]:
    make().fit(df, schema)  # warm-up: imports, first solver construction
    times, cpu, last = [], [], None
    for _ in range(repeats):
        start = time.process_time()
        last = make().fit(df, schema)
        cpu.append(time.process_time() - start)
        times.append(last.fit_seconds_)
    assert last is not None
    return {
        "fit_median_s": statistics.median(times),
        "fit_best_s": min(times),
        "fit_cpu_median_s": statistics.median(cpu),
        "centre_median_s": last.centre_seconds_,
        "choice": last.choice_,
        "solve_median_s": last.solve_seconds_,
        "objective": last.objective_value_,
        "status": last.status_,
        "solver": last.solver_,
        "variables": last.n_variables_,
        "constraints": last.n_constraints_,
        "rows_in_lp": len(last.program_.cells.row_key),
        "discrimination": last.discrimination_,
    }


def aif360_adult(train: pd.DataFrame, schema: Schema, eta: float) -> dict[str, Any]:
    """AIF360's OptimPreproc on the same split (only when AIF360 is installed)."""
    from aif360.algorithms.preprocessing.optim_preproc import OptimPreproc
    from aif360.algorithms.preprocessing.optim_preproc_helpers.opt_tools import OptTools
    from aif360.datasets import BinaryLabelDataset

    ds = BinaryLabelDataset(
        df=train.astype(float),
        label_names=[schema.label],
        protected_attribute_names=list(schema.protected),
        favorable_label=1.0,
        unfavorable_label=0.0,
    )
    sizes = [schema[c].size for c in XY]
    matrix = ADULT.matrix(schema, XY)  # the same metric, looked up per pair

    lookup = [
        {float(v): k for k, v in enumerate(schema[c].decode(np.arange(schema[c].size)))} for c in XY
    ]

    def _cell(v: dict) -> int:
        codes = [lookup[j][float(v[c])] for j, c in enumerate(XY)]
        return int(np.ravel_multi_index(codes, sizes))

    def distortion(old: dict, new: dict) -> float:
        return float(matrix[_cell(old), _cell(new)])

    opts = {
        "distortion_fun": distortion,
        "epsilon": eta,
        "clist": [0.99, 1.99, 2.99],
        "dlist": [0.1, 0.05, 0],
    }
    start = time.perf_counter()
    op = OptimPreproc(OptTools, opts, verbose=False).fit(ds)
    return {"fit_s": time.perf_counter() - start, "objective": float(op.OpT.optimum)}


XY = ("age-decade", "education-reduced", "income>50K")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument(
        "--scale",
        type=int,
        nargs="*",
        default=[0, 1, 2, 3],
        help="numbers of extra attributes to try (0-3)",
    )
    ap.add_argument(
        "--workclass-cost",
        type=float,
        default=3.0,
        help="cost of any workclass change (3 = forbidden, the default; 2 lets it move)",
    )
    ap.add_argument("--aif360", action="store_true", help="also time AIF360 (if installed)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    report: dict[str, Any] = {"paper": {}, "scale": []}

    for name, eta in (("adult", 0.025), ("compas", 0.1)):
        train, _ = datasets.train_test_split(name)
        schema = datasets.schema(name)
        r = time_fits(
            lambda name=name, eta=eta: TOT(eta, distortion=name), train, schema, args.repeats
        )
        report["paper"][name] = {"eta": eta, "train_rows": len(train), **r}
        if not args.json:
            print(
                f"{name:7s} eta={eta:<6g} fit median {r['fit_median_s']:.3f} s (best "
                f"{r['fit_best_s']:.3f}; CPU median {r['fit_cpu_median_s']:.3f} s), "
                f"choice {r['choice']}, TV = {r['objective']:.7f}, {r['variables']} vars, "
                f"{r['constraints']} rows [{r['solver']}]"
            )
        if name == "adult" and args.aif360:
            a = aif360_adult(train, schema, eta)
            report["paper"]["adult_aif360"] = a
            if not args.json:
                print(
                    f"AIF360 OptimPreproc on the same split: {a['fit_s']:.2f} s, "
                    f"TV = {a['objective']:.7f}"
                )

    for k in args.scale:
        df, schema, dist = adult_plus(k, args.workclass_cost)
        train, _ = datasets.train_test_split(df)
        cells = int(np.prod([schema[c].size for c in schema.names]))
        start, cpu = time.perf_counter(), time.process_time()
        tot = TOT(0.025, distortion=dist).fit(train, schema)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        row = {
            "extra": list(EXTRA)[:k],
            "domain_cells": cells,
            "nonempty_dxy": len(tot.program_.cells.row_key),
            "moves": len(tot.program_.targets.cell),
            "variables": tot.n_variables_,
            "constraints": tot.n_constraints_,
            "fit_s": wall,
            "fit_cpu_s": cpu,
            "solve_s": tot.solve_seconds_,
            "centre_s": tot.centre_seconds_,
            "choice": tot.choice_,
            "objective": tot.objective_value_,
        }
        report["scale"].append(row)
        if not args.json:
            print(
                f"adult+{k} {row['extra']}: {cells:,} cells, {row['nonempty_dxy']:,} "
                f"non-empty (d,x,y), {row['variables']:,} vars, {row['constraints']:,} rows: "
                f"fit {wall:.2f} s (CPU {cpu:.2f}; solve {tot.solve_seconds_:.2f}, centre "
                f"{tot.centre_seconds_:.2f}, choice {tot.choice_}), TV = "
                f"{tot.objective_value_:.6f}"
            )
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
