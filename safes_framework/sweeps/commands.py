"""The `safes sweep` and `safes validate` commands: grid arguments, config from flags."""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib
from typing import Any

from ..arguments import parse_param
from ..errors import ConfigError
from ..evaluation import (
    RESEARCH_NOTE,
)
from ..outputs import check_output_dir
from .config import EXECUTORS, FORMATS, SweepConfig
from .running import run_sweep
from .summary import _ProgressLine

logger = logging.getLogger(__name__)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"expected numbers separated by commas, got {text!r}") from None


def add_grid_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by `safes sweep` and `safes validate`: the config and its overrides."""
    p.add_argument("config", nargs="?", help="TOML sweep config (default: the paper's grid)")
    g = p.add_argument_group("grid overrides (take precedence over the config)")
    g.add_argument(
        "--dataset", action="append", default=None, metavar="NAME", help="dataset (repeatable)"
    )
    g.add_argument("--epsilons", help="comma-separated epsilons, e.g. 0.1,1")
    g.add_argument("--log10-epsilons", help="comma-separated log10 epsilons, e.g. -1,0")
    g.add_argument("--etas", help="comma-separated etas for every dataset")
    g.add_argument(
        "--no-dp-column", action="store_true", help="skip the no-DP column (Original, Fair)"
    )
    g.add_argument("--repeats", type=int)
    g.add_argument("--original-repeats", type=int)
    g.add_argument("--seed", type=int, help="sweep seed")
    g.add_argument("--delta", type=float)
    g.add_argument("--synthesizer", help="registered synthesizer (the paper: aim)")
    g.add_argument("--synth-param", action="append", default=[], metavar="KEY=VALUE")
    g.add_argument("--fairness", help="registered fairness transformer, or none (the paper: tot)")
    g.add_argument("--fairness-param", action="append", default=[], metavar="KEY=VALUE")
    g.add_argument("--metrics", help="comma-separated metric names")


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    """The config file (or the paper's defaults) with the command line's overrides."""

    data: dict[str, Any] = {}
    if args.config:
        try:
            with open(args.config, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read sweep config {args.config!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"sweep config {args.config!r} is not valid TOML: {exc}") from None
    sweep = data.setdefault("sweep", {})
    if args.dataset:
        sweep["datasets"] = args.dataset
    if args.epsilons is not None or args.log10_epsilons is not None:
        sweep.pop("epsilons", None)
        sweep.pop("log10_epsilons", None)
        if args.epsilons is not None:
            sweep["epsilons"] = _floats(args.epsilons)
        if args.log10_epsilons is not None:
            sweep["log10_epsilons"] = _floats(args.log10_epsilons)
    if args.etas is not None:
        sweep["etas"] = _floats(args.etas)
    if args.no_dp_column:
        sweep["no_dp"] = False
    for key in ("repeats", "original_repeats", "seed", "delta"):
        if getattr(args, key) is not None:
            sweep[key] = getattr(args, key)
    if args.synthesizer or args.synth_param:
        synth = data.setdefault("synthesizer", {})
        if args.synthesizer:
            if args.synthesizer != synth.get("name", args.synthesizer):
                synth.clear()  # another synthesizer: the config's parameters were for the old one
            synth["name"] = args.synthesizer
        synth.update(dict(parse_param(x) for x in args.synth_param))
    if args.fairness or args.fairness_param:
        fair = data.setdefault("fairness", {})
        if args.fairness:
            if args.fairness != fair.get("name", args.fairness):
                fair.clear()
            fair["name"] = args.fairness
        fair.update(dict(parse_param(x) for x in args.fairness_param))
    if args.metrics:
        metrics = data.setdefault("metrics", {})
        use = [m.strip() for m in args.metrics.split(",") if m.strip()]
        metrics["use"] = use
        for alias in [k for k in metrics if k != "use" and k not in use]:
            del metrics[alias]
    return SweepConfig.from_dict(data, source=args.config or "command line")


def build_sweep_parser(p: argparse.ArgumentParser) -> None:
    add_grid_arguments(p)
    r = p.add_argument_group("running")
    r.add_argument("--out", required=True, help="results directory (resumed if it exists)")
    r.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local process pool (default), dask (Dask distributed) or serial",
    )
    r.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: all cores)"
    )
    r.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --executor dask; "
        "default $DASK_SCHEDULER_ADDRESS, else a LocalCluster)",
    )
    r.add_argument("--format", choices=FORMATS, default=None, help="csv (default) or parquet")
    r.add_argument("--fresh", action="store_true", help="discard earlier results in --out")
    r.add_argument("--strict", action="store_true", help="stop at the first failure")
    r.add_argument("--quiet", action="store_true", help="no progress on stderr")


def cmd_sweep(args: argparse.Namespace) -> int:
    check_output_dir(args.out, overwrite=True)  # an existing sweep directory is resumed
    config = config_from_args(args)
    printer = None if args.quiet else _ProgressLine(sys.stderr)
    try:
        summary = run_sweep(
            config,
            args.out,
            executor=args.executor,
            workers=args.workers,
            scheduler=args.scheduler,
            fmt=args.format,
            fresh=args.fresh,
            progress=printer,
            strict=args.strict,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; finished units are stored in {args.out}; rerun the same "
            "command to resume",
            file=sys.stderr,
        )
        return 130
    print(
        f"sweep: {summary.units_done} units run in {summary.seconds:.1f} s "
        f"({summary.cells_ok} cells ok, {summary.cells_failed} with a failure recorded, "
        f"{summary.cells_skipped} already stored); results in {args.out}"
    )
    print(f"sweep: {RESEARCH_NOTE}")
    if summary.units_lost:
        print(
            f"sweep: {summary.units_lost} units were lost by the executor (first: "
            f"{summary.errors[0]}); rerun to resume",
            file=sys.stderr,
        )
        return 1
    return 0


def build_validate_parser(p: argparse.ArgumentParser) -> None:
    add_grid_arguments(p)


def cmd_validate(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config.validate()
    print(config.describe())
    print("config OK")
    return 0


