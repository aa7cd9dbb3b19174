"""The `safes run` and `safes fair` commands: write a release, or apply fairness to a saved one."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .arguments import parse_param
from .binning import DEFAULT_BIN_SHARE
from .errors import ConfigError, SchemaError
from .outputs import check_output_dir
from .plugins import get_plugin_manager, hookimpl


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


#: Exit code of `safes run` when the fairness stage failed after synthesis: the DP synthetic
#: table was written as a release without fairness (0: success; 1: an error; 2: a usage error).
EXIT_FAIRNESS_FAILED = 3
#: Exit code of `safes run` when a metric failed: the release was written, the evaluation not.
EXIT_METRICS_FAILED = 4


def _schema_of(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The run's public schema and the input description, reading no data."""
    from . import datasets
    from .io import check_table_path
    from .schema import Schema
    from .schema_files import is_draft, read_schema_document

    if args.dataset and (args.data or args.schema):
        raise ConfigError("give either --dataset or --data with --schema, not both")
    if args.dataset:
        if args.test:
            raise ConfigError("--test goes with --data (a held-out table with the same schema)")
        return datasets.schema(args.dataset), {"dataset": args.dataset}
    if not (args.data and args.schema):
        raise ConfigError("give --dataset NAME, or --data TABLE with --schema FILE")
    doc = read_schema_document(args.schema)
    if is_draft(doc):
        raise ConfigError(
            f"schema {args.schema!r} is a draft read from the data (draft = true): review "
            "every category and bound, make sure they are public knowledge, then delete the "
            "line `draft = true` (docs/data.md)"
        )
    try:
        schema = Schema.from_dict(doc)
    except SchemaError as exc:
        raise SchemaError(f"schema file {args.schema!r}: {exc}") from None
    check_table_path(args.data)
    if args.test:
        check_table_path(args.test)
    return schema, {"data": str(args.data), "schema_file": str(args.schema)}


def _fairness_of(pm: Any, args: argparse.Namespace) -> Any:
    if not args.fairness:
        if args.eta is not None or args.fairness_param:
            raise ConfigError("--eta / --fairness-param need --fairness NAME")
        return None
    fparams = dict(parse_param(p) for p in args.fairness_param)
    if args.eta is not None:
        fparams["eta"] = args.eta
    return pm.fairness_transformers.create(args.fairness, **fparams)


def cmd_run(args: argparse.Namespace) -> int:
    from .chain import SafesChain
    from .errors import FairnessStageError, MetricsStageError
    from .streaming import release_file

    pm = get_plugin_manager()
    # Everything that needs no data comes first: no error may come after budget is spent.
    if args.out is None and not args.dry_run:
        raise ConfigError("--out DIR is required (the release directory), except with --dry-run")
    out = None if args.out is None else check_output_dir(args.out, overwrite=args.overwrite)
    if args.metric and not args.evaluation:
        raise ConfigError(
            "--metric needs --evaluation FILE: metrics read the real table, so they are not "
            "part of the release and go to a separate file"
        )
    evaluation = Path(args.evaluation) if args.evaluation else None
    if evaluation is not None:
        if out is not None and _inside(evaluation, out):
            raise ConfigError(
                f"--evaluation {str(evaluation)!r} lies inside the release directory "
                f"{str(out)!r}; it is not private: write it elsewhere"
            )
        if evaluation.exists() and not args.overwrite:
            raise ConfigError(f"evaluation file {str(evaluation)!r} exists (add --overwrite)")
        if evaluation.is_dir():
            raise ConfigError(f"--evaluation {str(evaluation)!r} is a directory, not a file")
        check_output_dir(evaluation.absolute().parent, overwrite=True)
    schema, source = _schema_of(args)
    synth_params = dict(parse_param(p) for p in args.synth_param)
    synth = pm.synthesizers.create(
        args.synthesizer, epsilon=args.epsilon, delta=args.delta, **synth_params
    )
    fairness = _fairness_of(pm, args)
    chain = SafesChain(
        synth, fairness, metrics=args.metric, seed=args.seed, rows=args.rows,
        bin_share=args.bin_share, plugin_manager=pm,
    )
    plan = chain.plan(schema, test=bool(args.test))
    if args.dry_run:
        _print_plan(plan, schema)
        return 0
    if args.seed is not None:
        _warn(
            "--seed makes the DP noise reproducible from that seed (floating-point noise, for "
            "experiments): the release is private only while the seed stays secret. The seed "
            "is not recorded. Leave --seed out for a release."
        )
    assert out is not None  # checked above: only --dry-run goes without --out
    df, test = _read_inputs(args, schema)
    printer = None if args.quiet else ProgressPrinter()
    if printer is not None:
        pm.register(printer, name="safes-cli-progress")
    extra = {"input": source, "command": _redacted_argv(sys.argv)}
    table_file = release_file(args.out_format)
    code = 0
    release = None
    try:
        if fairness is None and not args.metric and evaluation is None:
            # Nothing needs the whole synthetic table: sample and write it in chunks.
            streamed = chain.stream(
                df, schema, out, format=args.out_format, overwrite=args.overwrite,
                extra=extra, backend=args.backend, chunk_rows=args.chunk_rows,
            )
            p, rows = streamed.privacy, streamed.rows
        else:
            try:
                release = chain.run(
                    df, schema, test=test, backend=args.backend, chunk_rows=args.chunk_rows
                )
            except FairnessStageError as exc:
                release, code = exc.release, EXIT_FAIRNESS_FAILED
                _warn(str(exc.__cause__ or exc))
            except MetricsStageError as exc:
                release, code = exc.release, EXIT_METRICS_FAILED
                _warn(str(exc))
            release.save(out, overwrite=args.overwrite, extra=extra, format=args.out_format)
            p, rows = release.privacy, len(release.data)
    finally:
        if printer is not None:
            pm.unregister("safes-cli-progress")
    kind = "" if code == 0 else " (the DP synthetic table WITHOUT fairness)"
    print(
        f"wrote {out}/{table_file} ({rows} rows){kind}, privacy.json, run.json; "
        f"({p.epsilon:.6g}, {p.delta:.3g})-DP, budget ({p.budget[0]:.6g}, {p.budget[1]:.3g})"
    )
    if code == EXIT_FAIRNESS_FAILED:
        again = " ".join(
            ["safes fair", str(out), "--fairness", str(args.fairness), "--eta", "ETA"]
            + [f"--fairness-param {q}" for q in args.fairness_param]
            + ["--out", f"{out}-fair"]
        )
        _warn(
            f"the fairness stage failed, so the release has no fairness (run.json records "
            f"why). The DP synthetic data is kept: apply fairness to it again at no further "
            f"privacy cost, with settings that fit (e.g. a larger ETA): {again}"
        )
        if evaluation is not None:
            _warn("no evaluation was written: metrics run on a release with fairness only")
        return code
    if code == EXIT_METRICS_FAILED:
        _warn("no evaluation was written; the release is complete")
        return code
    if evaluation is not None:
        assert release is not None  # an evaluation needs the in-memory run
        release.save_evaluation(evaluation, overwrite=args.overwrite)
        print(f"wrote {evaluation} (metrics on the real table: NOT private, do not publish)")
    return code


def _read_inputs(args: argparse.Namespace, schema: Any) -> tuple[Any, Any]:
    """The sensitive table (and real test table), read only once every check has passed."""
    from . import datasets
    from .io import read_table

    if args.dataset:
        df, _ = datasets.load(args.dataset)
        return df, None
    test = read_table(args.test, schema=schema) if args.test else None
    if not args.metric:
        return args.data, test  # the chain reads and encodes it in chunks
    return read_table(args.data, schema=schema), test  # metrics need the real table whole


def _print_plan(plan: dict[str, Any], schema: Any) -> None:
    """`safes run --dry-run`: the plan, from public information only."""
    b = plan["budget"]
    print("plan (no data read):")
    print(f"  budget: ({b['epsilon']:g}, {b['delta']:g})-DP = zCDP rho {_g(b['rho'])} in all")
    bins = plan["binning"]
    if bins is not None:
        edges = ", ".join(f"{n!r}: {k}" for n, k in bins["edges"].items())
        print(
            f"  DP bin edges: {bins['share']:.3g} of rho = {bins['rho']:.6g}; inner edges "
            f"{edges}; each an exponential mechanism with epsilon "
            f"{bins['epsilon_per_edge']:.6g}"
        )
    synth = dict(plan["synthesizer"])
    name = synth.pop("name")
    print(f"  synthesizer {name}: zCDP rho {_g(b['synthesizer_rho'])} (what remains)")
    for key, value in synth.items():
        print(f"    {key}: {value}")
    sizes = schema.sizes
    print(f"  domain: {len(sizes)} columns, sizes {dict(sizes)}")
    fair = plan["fairness"]
    if fair is None:
        print("  fairness: none")
    else:
        fair = dict(fair)
        print(f"  fairness {fair.pop('name')}:")
        for key, value in fair.items():
            print(f"    {key}: {value}")
    if plan["metrics"]:
        print(f"  metrics (evaluation, not private): {', '.join(plan['metrics'])}")
    print(f"  release size: {plan['rows']}")


def _g(value: float | None) -> str:
    return "none (the budget is too small to certify)" if value is None else f"{value:.6g}"


def cmd_fair(args: argparse.Namespace) -> int:
    from .chain import fair_release
    from .release import Release

    source = Path(args.release)
    out = Path(args.out)
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise ConfigError("--out must differ from the source release directory")
    out = check_output_dir(out, overwrite=args.overwrite)
    pm = get_plugin_manager()
    fairness = _fairness_of(pm, args)
    if fairness is None:
        raise ConfigError("safes fair needs --fairness NAME")
    release = Release.load(source)
    if release.run.fairness is not None:
        _warn(
            f"the source release already had fairness {release.run.fairness!r}; the new "
            "transform is applied on top of it"
        )
    fair = fair_release(release, fairness, plugin_manager=pm)
    fair.save(
        out, overwrite=args.overwrite,
        extra={"input": {"release": str(source)}, "command": _redacted_argv(sys.argv)},
    )
    p = fair.privacy
    print(
        f"wrote {out}/release.csv ({len(fair.data)} rows), privacy.json, run.json; "
        f"{fair.run.fairness} applied to release {release.run.run_id} (no data read, no "
        f"budget spent); ({p.epsilon:.6g}, {p.delta:.3g})-DP as before"
    )
    return 0


def _warn(message: str) -> None:
    print(f"safes: warning: {message}", file=sys.stderr)


def build_run_parser(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "exit codes: 0 the release was written; 1 an error; 2 a usage error (bad arguments, "
        "schema, data or settings; nothing written); 3 the fairness stage failed after "
        "synthesis: the DP synthetic table "
        "was written as a release without fairness (apply fairness again with safes fair); "
        "4 a metric failed: the release was written, the evaluation was not"
    )
    src = p.add_argument_group("input")
    src.add_argument("--dataset", help="bundled dataset: adult, compas, adult-full")
    src.add_argument(
        "--data", help="the sensitive table: CSV or Parquet (with --schema); read in chunks"
    )
    src.add_argument(
        "--schema", help="schema of --data: a TOML or JSON file (docs/data.md)"
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
    p.add_argument(
        "--out", default=None,
        help="output directory (the release); checked before anything else is done",
    )
    p.add_argument(
        "--dry-run", action="store_true",
        help="check everything that needs no data and print the plan (budget split, model "
        "size, LP size); reads no data, spends nothing",
    )
    p.add_argument(
        "--bin-share", type=float, default=DEFAULT_BIN_SHARE, metavar="SHARE",
        help="share of the budget (as zCDP) for DP bin edges of columns declared with "
        f'edges = "dp" (default {DEFAULT_BIN_SHARE})',
    )
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
    p.add_argument(
        "--test", default=None, help="real held-out table (CSV or Parquet) for metrics"
    )
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def build_fair_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("release", metavar="RELEASE_DIR", help="a saved release directory")
    p.add_argument("--fairness", required=True, help="registered fairness transformer")
    p.add_argument("--eta", type=float, default=None, help="fairness bound of --fairness")
    p.add_argument("--fairness-param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="output directory (the new release)")
    p.add_argument("--overwrite", action="store_true")
