"""The `safes schema` commands: draft a schema from a table, check a table against a schema."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import warnings
from pathlib import Path

from .errors import ConfigError
from .io import read_table
from .schema import NonPrivateDomainWarning, Scalar
from .schema_files import (
    DRAFT_NOTICE,
    draft_schema,
    is_draft,
    read_schema,
    read_schema_document,
    schema_to_toml,
)


def build_schema_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="schema_command", required=True, parser_class=type(p))
    d = sub.add_parser(
        "draft",
        help="write a draft schema read from a table (NOT private: review it)",
        description="Write a draft schema read from DATA, for the data owner to review. The "
        "draft is read from the data and is not private: its categories and bounds must be "
        "made public knowledge before the file is used.",
    )
    d.add_argument("data", metavar="DATA", help="the table (CSV or Parquet)")
    d.add_argument("--protected", required=True, metavar="COL[,COL]",
                   help="protected column(s), comma-separated")
    d.add_argument("--label", required=True, metavar="COL", help="the binary outcome column")
    d.add_argument("--favorable", required=True, metavar="VALUE",
                   help="the favourable value of the label")
    d.add_argument("--privileged", action="append", default=[], metavar="COL=VALUE",
                   help="a privileged value of a protected column (repeatable)")
    d.add_argument("--out", required=True, metavar="FILE", help="the draft (.toml or .json)")
    d.add_argument("--overwrite", action="store_true")
    c = sub.add_parser(
        "check",
        help="check that a table fits a schema",
        description="Check that every row of DATA fits the schema FILE (TOML or JSON).",
    )
    c.add_argument("data", metavar="DATA", help="the table (CSV or Parquet)")
    c.add_argument("schema", metavar="FILE", help="the schema (.toml or .json)")


def cmd_schema(args: argparse.Namespace) -> int:
    if args.schema_command == "draft":
        return _draft(args)
    return _check(args)


def _draft(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".toml", ".json"):
        raise ConfigError(f"--out {str(out)!r}: a schema file ends in .toml or .json")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{str(out)!r} exists (add --overwrite)")
    if out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a directory")
    protected = [c.strip() for c in args.protected.split(",") if c.strip()]
    privileged: dict[str, list[Scalar]] = {}
    for item in args.privileged:
        if "=" not in item:
            raise ConfigError(f"--privileged {item!r} must look like COL=VALUE")
        col, value = item.split("=", 1)
        privileged.setdefault(col.strip(), []).append(value)
    df = read_table(args.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPrivateDomainWarning)  # said below, in full
        schema, notes = draft_schema(
            df, protected=protected, label=args.label, favorable=args.favorable,
            privileged=privileged,
        )
    del df
    if out.suffix.lower() == ".json":
        text = json.dumps({"draft": True, **schema.to_dict()}, indent=2) + "\n"
    else:
        header = [
            f"DRAFT schema read from {Path(args.data).name} by `safes schema draft`.",
            *textwrap.wrap(DRAFT_NOTICE, 96),
            "Format: docs/data.md.",
        ]
        text = schema_to_toml(schema, header=header, notes=notes, draft=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out} ({len(schema.columns)} columns)")
    print(f"safes: warning: {DRAFT_NOTICE}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    draft = is_draft(read_schema_document(args.schema))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPrivateDomainWarning)  # a draft is said below
        schema = read_schema(args.schema)
    df = read_table(args.data, schema=schema)
    extra = [str(c) for c in df.columns if c not in schema.names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # extra columns are reported below
        schema.validate(df)
    del df
    dp = [c.name for c in schema.dp_binned]
    print(
        f"ok: every row of {args.data} fits {args.schema} ({len(schema.columns)} columns"
        + (f"; DP bin edges for {', '.join(map(repr, dp))}, checked against their bounds"
           if dp else "")
        + ")"
    )
    if extra:
        print(f"safes: warning: columns {extra} are not in the schema and are ignored",
              file=sys.stderr)
    if draft:
        print(
            f"safes: warning: {args.schema} is still a draft (draft = true): `safes run` "
            "refuses it until it is reviewed",
            file=sys.stderr,
        )
    return 0

