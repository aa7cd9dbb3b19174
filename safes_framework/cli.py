"""The `safes` command line: the subcommands, their parser, `safes plugins`, and `main`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import __version__
from . import release_commands as _release_cmd
from . import schema_commands as _schema_cmd
from .errors import ConfigError, DataError, PluginError, SafesError, SchemaError
from .plugins import DISABLE_ENV, get_plugin_manager, reset_plugin_manager
from .release_commands import EXIT_FAIRNESS_FAILED, EXIT_METRICS_FAILED, ProgressPrinter

__all__ = [
    "COMMANDS",
    "EXIT_FAIRNESS_FAILED",
    "EXIT_METRICS_FAILED",
    "USAGE_ERRORS",
    "ProgressPrinter",
    "build_parser",
    "main",
    "show_warning",
]

logger = logging.getLogger(__name__)

#: Errors that mean "the user asked for something wrong": one line, exit code 2.
USAGE_ERRORS = (ConfigError, DataError, PluginError, SchemaError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """`warnings.showwarning` for the command line: one `safes: warning: ...` line."""
    text = " ".join(str(message).split())
    print(f"safes: warning: {text}", file=file or sys.stderr, flush=True)


def _cmd_plugins(args: argparse.Namespace) -> int:
    pm = get_plugin_manager()
    rows: list[dict[str, Any]] = []
    for kind, registry in (
        ("synthesizer", pm.synthesizers),
        ("fairness", pm.fairness_transformers),
        ("metric", pm.metrics),
    ):
        for e in registry:
            reason = e.unavailable_reason()
            rows.append(
                {
                    "kind": kind,
                    "name": e.name,
                    "plugin": e.plugin,
                    "origin": pm.origin(e.plugin),
                    "description": e.description,
                    "available": reason is None,
                    "unavailable_reason": reason,
                }
            )
    for u in pm.unavailable():
        rows.append(
            {"kind": u.status, "name": u.name, "plugin": u.name, "origin": u.origin,
             "description": u.reason, "available": False, "unavailable_reason": None}
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        reason = r["unavailable_reason"]
        note = f" [unavailable: {reason}]" if reason else ""
        print(
            f"{r['kind']:<12} {r['name']:<{width}}  {r['origin']:<28} {r['description']}{note}"
        )
    return 0


#: Subcommands: name -> (builder of its arguments, handler, help).
COMMANDS: dict[
    str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]
] = {}


def _build_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


COMMANDS["run"] = (
    _release_cmd.build_run_parser,
    _release_cmd.cmd_run,
    "run a chain on a dataset or your own table and write a release",
)
COMMANDS["fair"] = (
    _release_cmd.build_fair_parser,
    _release_cmd.cmd_fair,
    "apply a fairness transformer to a saved release (reads no original data, spends no "
    "budget)",
)
COMMANDS["schema"] = (
    _schema_cmd.build_schema_parser,
    _schema_cmd.cmd_schema,
    "draft a schema from a table (not private), or check a table against a schema",
)
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
    parser.add_argument(
        "--disable-plugin", action="append", default=[], metavar="NAME",
        help=f"skip an installed plugin by its entry-point name (repeatable; adds to "
        f"${DISABLE_ENV})",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (build, _handler, help_text) in COMMANDS.items():
        build(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.disable_plugin:
        # Through the environment, so that sweep workers skip the plugins too.
        names = [n for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        os.environ[DISABLE_ENV] = ",".join([*names, *args.disable_plugin])
        reset_plugin_manager()
    handler = COMMANDS[args.command][1]
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            return handler(args)
        except USAGE_ERRORS as exc:
            print(f"safes: error: {exc}", file=sys.stderr)
            return 2
        except SafesError as exc:
            print(f"safes: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            note = _INTERRUPTED.get(args.command)
            print(f"safes: interrupted{f'; {note}' if note else ''}", file=sys.stderr)
            return 130


#: What an interrupted command leaves behind.
_INTERRUPTED = {
    "run": "a release is written whole or not at all, so --out holds no partial release",
    "report": "the report may be incomplete; rerun the command",
}


if __name__ == "__main__":
    raise SystemExit(main())
