"""The `safes` command line: run a chain, list plugins."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .arguments import parse_param
from .errors import ConfigError, DataError, PluginError, SafesError, SchemaError
from .plugins import get_plugin_manager, hookimpl

logger = logging.getLogger(__name__)

#: Errors that mean "the user asked for something wrong": one line, exit code 2.
USAGE_ERRORS = (ConfigError, DataError, PluginError, SchemaError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class ProgressPrinter:
    """A lifecycle-hook plugin that writes a run's progress to a stream (stderr)."""

    def __init__(self, stream: Any = None, min_interval: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._last = 0.0

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    @hookimpl
    def safes_stage_started(self, run: Any, stage: str) -> None:
        self._say(f"[{stage}] started")

    @hookimpl
    def safes_stage_finished(self, run: Any, stage: str, seconds: float) -> None:
        self._say(f"[{stage}] finished in {seconds:.2f} s")

    @hookimpl
    def safes_progress(
        self, run: Any, stage: str, step: int, total: int | None, message: str
    ) -> None:
        now = time.monotonic()
        if total is not None and step < total and now - self._last < self.min_interval:
            return
        self._last = now
        of = f"{step}/{total}" if total is not None else str(step)
        self._say(f"[{stage}] {of} {message}".rstrip())


def _redacted_argv(argv: Sequence[str]) -> list[str]:
    """The command line with the value of --seed replaced: a seed is a secret."""
    out: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            out.append("<secret>")
            hide = False
        elif arg == "--seed":
            out.append(arg)
            hide = True
        elif arg.startswith("--seed="):
            out.append("--seed=<secret>")
        else:
            out.append(arg)
    return out


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def _cmd_run(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import datasets
    from .chain import SafesChain
    from .schema import Schema

    pm = get_plugin_manager()
    if args.dataset and (args.data or args.schema):
        raise ConfigError("give either --dataset or --data with --schema, not both")
    test = None
    if args.dataset:
        df, schema = datasets.load(args.dataset)
        source = {"dataset": args.dataset}
    elif args.data and args.schema:
        from .ingest import file_format

        try:
            schema = Schema.from_json(Path(args.schema).read_text())
            # The chain reads --data in chunks; metrics need the real table whole.
            fmt = file_format(args.data)
            df = args.data
            if args.metric:
                df = pd.read_parquet(args.data) if fmt == "parquet" else pd.read_csv(args.data)
            if args.test:
                test = pd.read_csv(args.test)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read input: {exc}") from None
        source = {"data": str(args.data), "schema_file": str(args.schema)}
    else:
        raise ConfigError("give --dataset NAME, or --data CSV with --schema JSON")
    if args.test and args.dataset:
        raise ConfigError("--test goes with --data (a held-out table with the same schema)")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ConfigError(f"output directory {str(out)!r} is not empty (add --overwrite)")
    if args.metric and not args.evaluation:
        raise ConfigError(
            "--metric needs --evaluation FILE: metrics read the real table, so they are not "
            "part of the release and go to a separate file"
        )
    evaluation = Path(args.evaluation) if args.evaluation else None
    if evaluation is not None:
        if _inside(evaluation, out):
            raise ConfigError(
                f"--evaluation {str(evaluation)!r} lies inside the release directory "
                f"{str(out)!r}; it is not private: write it elsewhere"
            )
        if evaluation.exists() and not args.overwrite:
            raise ConfigError(f"evaluation file {str(evaluation)!r} exists (add --overwrite)")
    synth_params = dict(parse_param(p) for p in args.synth_param)
    synth = pm.synthesizers.create(
        args.synthesizer, epsilon=args.epsilon, delta=args.delta, **synth_params
    )
    fairness = None
    if args.fairness:
        fparams = dict(parse_param(p) for p in args.fairness_param)
        if args.eta is not None:
            fparams["eta"] = args.eta
        fairness = pm.fairness_transformers.create(args.fairness, **fparams)
    elif args.eta is not None or args.fairness_param:
        raise ConfigError("--eta / --fairness-param need --fairness NAME")
    if args.seed is not None:
        _warn(
            "--seed makes the DP noise reproducible from that seed (floating-point noise, for "
            "experiments): the release is private only while the seed stays secret. The seed "
            "is not recorded. Leave --seed out for a release."
        )
    printer = None if args.quiet else ProgressPrinter()
    if printer is not None:
        pm.register(printer, name="safes-cli-progress")
    extra = {"input": source, "command": _redacted_argv(sys.argv)}
    from .streaming import release_file

    table_file = release_file(args.out_format)
    try:
        chain = SafesChain(
            synth, fairness, metrics=args.metric, seed=args.seed, rows=args.rows,
            plugin_manager=pm,
        )
        if fairness is None and not args.metric and evaluation is None:
            # Nothing needs the whole synthetic table: sample and write it in chunks.
            streamed = chain.stream(
                df, schema, out, format=args.out_format, overwrite=args.overwrite,
                extra=extra, backend=args.backend, chunk_rows=args.chunk_rows,
            )
            p, rows = streamed.privacy, streamed.rows
        else:
            release = chain.run(
                df, schema, test=test, backend=args.backend, chunk_rows=args.chunk_rows
            )
            release.save(out, overwrite=args.overwrite, extra=extra, format=args.out_format)
            p, rows = release.privacy, len(release.data)
    finally:
        if printer is not None:
            pm.unregister("safes-cli-progress")
    print(
        f"wrote {out}/{table_file} ({rows} rows), privacy.json, run.json; "
        f"({p.epsilon:.6g}, {p.delta:.3g})-DP, budget ({p.budget[0]:.6g}, {p.budget[1]:.3g})"
    )
    if evaluation is not None:
        release.save_evaluation(evaluation, overwrite=args.overwrite)
        print(f"wrote {evaluation} (metrics on the real table: NOT private, do not publish)")
    return 0


def _warn(message: str) -> None:
    print(f"safes: warning: {message}", file=sys.stderr)


def _cmd_plugins(args: argparse.Namespace) -> int:
    pm = get_plugin_manager()
    rows = []
    for kind, registry in (
        ("synthesizer", pm.synthesizers),
        ("fairness", pm.fairness_transformers),
        ("metric", pm.metrics),
    ):
        for e in registry:
            rows.append(
                {
                    "kind": kind,
                    "name": e.name,
                    "plugin": e.plugin,
                    "origin": pm.origin(e.plugin),
                    "description": e.description,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        print(f"{r['kind']:<12} {r['name']:<{width}}  {r['origin']:<28} {r['description']}")
    return 0


#: Subcommands: name -> (builder of its arguments, handler, help).
COMMANDS: dict[
    str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]
] = {}


def _build_run(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("input")
    src.add_argument("--dataset", help="bundled dataset: adult, compas, adult-full")
    src.add_argument(
        "--data", help="CSV or Parquet file of a sensitive table (with --schema); read in chunks"
    )
    src.add_argument(
        "--backend", default="auto", choices=("auto", "memory", "duckdb"),
        help="where marginals are counted: compact codes in memory, or DuckDB scanning the "
        "file in place (default auto: memory while the codes fit; see docs/scale.md)",
    )
    src.add_argument(
        "--chunk-rows", type=int, default=1 << 20, metavar="N",
        help="rows per chunk when reading the input and writing the release",
    )
    src.add_argument("--schema", help="JSON schema of --data (see Schema.to_json)")
    p.add_argument("--synthesizer", default="mst", help="registered synthesizer (default mst)")
    p.add_argument("--epsilon", type=float, required=True)
    p.add_argument("--delta", type=float, default=1e-9)
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="experiments only: reproducible floating-point noise from this secret seed "
        "(default: exact noise from OS entropy, never recorded)",
    )
    p.add_argument(
        "--rows",
        type=int,
        default=None,
        help="rows to release (default: the synthesizer's DP estimate of the number of records)",
    )
    p.add_argument("--synth-param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--fairness", default=None, help="registered fairness transformer")
    p.add_argument("--eta", type=float, default=None, help="fairness bound of --fairness")
    p.add_argument("--fairness-param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="output directory (the release)")
    p.add_argument(
        "--out-format", default="csv", choices=("csv", "parquet"),
        help="format of the released table (release.csv or release.parquet)",
    )
    p.add_argument(
        "--metric", action="append", default=[], metavar="NAME",
        help="a metric to compute (needs --evaluation; repeatable)",
    )
    p.add_argument(
        "--evaluation", default=None, metavar="FILE",
        help="JSON file for metrics and timings, outside --out: computed on the real table, "
        "NOT private",
    )
    p.add_argument("--test", default=None, help="real held-out CSV for metrics (with --data)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _build_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


COMMANDS["run"] = (_build_run, _cmd_run, "run a chain on a dataset and write a release")
COMMANDS["plugins"] = (_build_plugins, _cmd_plugins, "list installed plugins")

from . import report as _report  # noqa: E402
from .sweeps import commands as _sweep  # noqa: E402

COMMANDS["sweep"] = (
    _sweep.build_sweep_parser,
    _sweep.cmd_sweep,
    "run or resume a sweep over datasets x epsilon x eta x repeats",
)
COMMANDS["validate"] = (
    _sweep.build_validate_parser,
    _sweep.cmd_validate,
    "check a sweep config (plugins, parameters, grid) without running it",
)
COMMANDS["report"] = (
    _report.build_report_parser,
    _report.cmd_report,
    "write the Markdown/HTML report and figures of sweep results",
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="safes", description="Differentially private and fairer data (SAFES).")
    parser.add_argument("--version", action="version", version=f"safes {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (build, _handler, help_text) in COMMANDS.items():
        build(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = COMMANDS[args.command][1]
    try:
        return handler(args)
    except USAGE_ERRORS as exc:
        print(f"safes: error: {exc}", file=sys.stderr)
        return 2
    except SafesError as exc:
        print(f"safes: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
