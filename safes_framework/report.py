"""The sweep report: tables of means and spreads per setting, failures, and matplotlib figures of
each metric against log10 epsilon (`safes report`)."""

from __future__ import annotations

import argparse
import html
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError
from .evaluation import KINDS, RESEARCH_NOTE
from .outputs import check_output_dir
from .sweeps import read_results

logger = logging.getLogger(__name__)

#: Headline values: (metric alias, key or key prefix ending in "["), in report order.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("model_utility", "accuracy"),
    ("model_utility", "roc_auc"),
    ("model_utility", "f1"),
    ("propensity_ks", "ks"),
    ("tvd", "tvd_1way"),
    ("tvd", "tvd_2way"),
    ("tvd", "tvd_3way"),
    ("mean_outcome_difference", "mod["),
    ("model_fairness", "spd["),
    ("model_fairness", "aod["),
)

_STATS = ("n", "mean", "std", "min", "max")

#: What the failures section of a dataset says when no cell failed.
NO_FAILURES = "No failure recorded."


@dataclass
class Section:
    """One section of the HTML page: a heading, and a paragraph, a table or images."""

    name: str
    table: pd.DataFrame | None = None
    text: str = ""
    images: list[Path] = field(default_factory=list)


def _matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "the report's figures need matplotlib: pip install "
            "'safes-framework[report]' (or pass --no-figures)"
        ) from None
    return Figure


# -- tables -------------------------------------------------------------------------------------


def setting_label(kind: str, epsilon: float, eta: float) -> str:
    """ "SAFES(eps=0.1, eta=0.025)" from a row's setting columns (NaN = absent)."""
    parts = []
    if not math.isnan(epsilon):
        parts.append(f"eps={epsilon:.3g}")
    if not math.isnan(eta):
        parts.append(f"eta={eta:g}")
    name = {"original": "Original", "dp": "DP", "fair": "Fair", "safes": "SAFES"}[kind]
    return f"{name}({', '.join(parts)})" if parts else name


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean, spread and count of every value per (dataset, setting, epsilon, eta)."""
    ok = rows[(rows["status"] == "ok")]
    keys = ["dataset", "setting", "epsilon", "eta", "metric", "key"]
    g = ok.groupby(keys, dropna=False)["value"]
    out = g.agg(n="count", mean="mean", std="std", min="min", max="max").reset_index()
    out["order"] = out["setting"].map({k: i for i, k in enumerate(KINDS)})
    return (
        out.sort_values(
            ["dataset", "order", "epsilon", "eta", "metric", "key"], na_position="first"
        )
        .drop(columns="order")
        .reset_index(drop=True)
    )


def failures(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, setting, epsilon, eta): cells run, cells with a failure, and reasons."""
    keys = ["dataset", "setting", "epsilon", "eta"]
    cells = rows.groupby(keys, dropna=False)["cell"].nunique().rename("cells")
    bad = rows[rows["status"] == "failed"]
    failed = bad.groupby(keys, dropna=False)["cell"].nunique().rename("failed")
    release = bad[bad["metric"] == "*"].groupby(keys, dropna=False)["cell"].nunique()
    reasons = bad.groupby(keys, dropna=False)["reason"].agg(_reasons)
    out = pd.concat(
        [cells, failed, release.rename("release_failed"), reasons.rename("reasons")], axis=1
    ).reset_index()
    out[["failed", "release_failed"]] = out[["failed", "release_failed"]].fillna(0).astype(int)
    out["reasons"] = out["reasons"].fillna("")
    out["order"] = out["setting"].map({k: i for i, k in enumerate(KINDS)})
    return (
        out.sort_values(["dataset", "order", "epsilon", "eta"], na_position="first")
        .drop(columns="order")
        .reset_index(drop=True)
    )


def _reasons(reasons: pd.Series) -> str:
    """The most frequent kinds of failure ("stage: ExceptionType") with counts and an example.

    The example is the whole stored reason: its end is often the useful part (TOT's smallest
    feasible eta), so it is never cut.
    """
    kinds = reasons.str.split(": ", n=2).str[:2].str.join(": ")
    out = []
    for kind, n in kinds.value_counts().head(3).items():
        example = reasons[kinds == kind].iloc[0]
        detail = " ".join(example[len(kind) + 2 :].split())
        out.append(f"{n}x {kind}" + (f" (e.g. {detail})" if detail else ""))
    return "; ".join(out)


def headline_keys(
    rows: pd.DataFrame, wanted: Sequence[tuple[str, str]] = HEADLINE
) -> list[tuple[str, str]]:
    """The (metric, key) pairs of `wanted` present in `rows` (prefixes expanded, in the order
    the metric reported them)."""
    present = rows[["metric", "key"]].drop_duplicates()
    out: list[tuple[str, str]] = []
    for metric, key in wanted:
        keys = present.loc[present["metric"] == metric, "key"].tolist()
        if key.endswith("["):
            out += [(metric, k) for k in keys if k.startswith(key)]
        elif key in keys:
            out.append((metric, key))
    return out


def _fmt(mean: float, std: float, n: int) -> str:
    if n == 0 or math.isnan(mean):
        return "–"
    if n == 1 or math.isnan(std):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {std:.3f}"


def wide_table(
    summary: pd.DataFrame, dataset: str, keys: Sequence[tuple[str, str]]
) -> pd.DataFrame:
    """One row per setting, one column per (metric, key): "mean ± sd" over repeats."""
    sub = summary[summary["dataset"] == dataset]
    settings = sub[["setting", "epsilon", "eta"]].drop_duplicates()
    table = []
    for _, s in settings.iterrows():
        at = sub[
            (sub["setting"] == s["setting"])
            & _same(sub["epsilon"], s["epsilon"])
            & _same(sub["eta"], s["eta"])
        ]
        n = int(at["n"].max()) if len(at) else 0
        row = {"setting": setting_label(s["setting"], s["epsilon"], s["eta"]), "n": n}
        for metric, key in keys:
            hit = at[(at["metric"] == metric) & (at["key"] == key)]
            row[key] = (
                _fmt(hit["mean"].iloc[0], hit["std"].iloc[0], int(hit["n"].iloc[0]))
                if len(hit)
                else "–"
            )
        table.append(row)
    return pd.DataFrame(table)


def _same(col: pd.Series, value: float) -> pd.Series:
    return col.isna() if math.isnan(value) else col == value


def markdown_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]).replace("|", "\\|") for c in df.columns) + " |")
    return "\n".join(lines)


# -- figures ------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def plot_metric(ax: Any, summary: pd.DataFrame, dataset: str, metric: str, key: str) -> None:
    """One panel: the value against log10 epsilon; DP and one SAFES line per eta with a
    +-1 sd band; Original and Fair(eta) as horizontal reference lines."""
    sub = summary[
        (summary["dataset"] == dataset) & (summary["metric"] == metric) & (summary["key"] == key)
    ]
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    etas = sorted(sub.loc[sub["setting"].isin(["fair", "safes"]), "eta"].dropna().unique())
    color = {e: colors[(i + 1) % len(colors)] for i, e in enumerate(etas)}
    lines = [("dp", math.nan, "DP (no fairness)", "tab:gray")]
    lines += [("safes", e, f"SAFES eta={e:g}", color[e]) for e in etas]
    if sub.loc[sub["setting"] == "safes", "eta"].isna().any():  # transformer without a bound
        lines.append(("safes", math.nan, "SAFES", colors[1]))
    for kind, eta, label, c in lines:
        part = sub[(sub["setting"] == kind) & _same(sub["eta"], eta)].sort_values("epsilon")
        if part.empty:
            continue
        x = np.log10(part["epsilon"].to_numpy())
        m, s = part["mean"].to_numpy(), part["std"].fillna(0).to_numpy()
        ax.plot(x, m, marker="o", ms=3, color=c, label=label)
        ax.fill_between(x, m - s, m + s, color=c, alpha=0.15, linewidth=0)
    orig = sub[sub["setting"] == "original"]
    if len(orig):
        ax.axhline(orig["mean"].iloc[0], color="black", ls="--", lw=1, label="Original")
    for _, r in sub[sub["setting"] == "fair"].iterrows():
        c = color.get(r["eta"], colors[1])
        name = f"Fair eta={r['eta']:g}" if not math.isnan(r["eta"]) else "Fair"
        ax.axhline(r["mean"], color=c, ls=":", lw=1.2, label=name)
    ax.set_xlabel("log10 epsilon")
    ax.set_title(f"{key}", fontsize=9)
    ax.grid(alpha=0.3)


def write_figures(
    summary: pd.DataFrame,
    out: Path,
    keys_by_dataset: dict[str, list[tuple[str, str]]],
    *,
    single: bool = False,
) -> dict[str, list[Path]]:
    """A panel per dataset (every headline value), and with `single` one figure per value;
    the PNG paths, panel first."""
    figure_cls = _matplotlib()
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for dataset, keys in keys_by_dataset.items():
        paths: list[Path] = []
        if not keys:
            written[dataset] = paths
            continue
        ncols = 4
        nrows = math.ceil(len(keys) / ncols)
        fig = figure_cls(figsize=(4 * ncols, 3.1 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (metric, key) in zip(axes, keys, strict=False):
            plot_metric(ax, summary, dataset, metric, key)
        for ax in axes[len(keys) :]:
            ax.set_visible(False)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8
        )
        fig.suptitle(f"{dataset}: mean ± 1 sd over repeats")
        panel = out / f"{_slug(dataset)}_panel.png"
        fig.savefig(panel, dpi=110)
        paths.append(panel)
        for metric, key in keys if single else ():
            fig = figure_cls(figsize=(5, 3.6), layout="constrained")
            ax = fig.subplots()
            plot_metric(ax, summary, dataset, metric, key)
            ax.set_title(f"{dataset}: {metric} {key}", fontsize=9)
            ax.legend(fontsize=7)
            path = out / f"{_slug(dataset)}__{_slug(metric)}__{_slug(key)}.png"
            fig.savefig(path, dpi=110)
            paths.append(path)
        written[dataset] = paths
    return written


# -- the report ---------------------------------------------------------------------------------


def write_report(
    results: str | os.PathLike[str] | pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    keys: Sequence[tuple[str, str]] = HEADLINE,
    figures: bool = True,
    single_figures: bool = False,
    html_page: bool = True,
    title: str = "SAFES sweep report",
) -> Path:
    """Write `report.md` (and `report.html`), `summary.csv`, `failures.csv` and figures.

    Args:
        results: a sweep directory (or results file), or the rows themselves.
        out: output directory.
        keys: (metric, key) pairs to tabulate and plot; a key ending in "[" is a prefix.
        figures: draw a panel of figures per dataset (needs the `report` extra).
        single_figures: also one figure file per value.
        html_page: also write a self-contained-ish HTML page (tables + images).
        title: the page title.

    Returns:
        The path of report.md.
    """
    out = check_output_dir(out, overwrite=True)  # a report directory is rewritten
    rows = results if isinstance(results, pd.DataFrame) else read_results(results)
    if rows.empty:
        raise ConfigError("the results hold no complete cell yet; nothing to report")
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    fails = failures(rows)
    summary.to_csv(out / "summary.csv", index=False, float_format="%.6g")
    fails.to_csv(out / "failures.csv", index=False)
    datasets = list(dict.fromkeys(rows["dataset"]))
    chosen = {
        d: headline_keys(rows[(rows["dataset"] == d) & (rows["status"] == "ok")], keys)
        for d in datasets
    }
    figs = write_figures(summary, out / "figures", chosen, single=single_figures) if figures else {}

    md = [f"# {title}", ""]
    cells, failed = int(fails["cells"].sum()), int(fails["failed"].sum())
    md += [
        f"{len(rows['cell'].unique())} cells (dataset x setting x repeat), "
        f"{failed} of {cells} with a failure recorded. Values are mean ± sd over repeats "
        "(n = repeats with a value); differences are unprivileged minus privileged. "
        "`summary.csv` has every value with n, mean, sd, min, max; `failures.csv` every "
        "failure count with its most frequent reasons. This is "
        f"{RESEARCH_NOTE}.",
        "",
    ]
    sections: list[Section] = []
    for d in datasets:
        utility = [
            k for k in chosen[d] if k[0] not in ("mean_outcome_difference", "model_fairness")
        ]
        fairness = [k for k in chosen[d] if k not in utility]
        md += [f"## {d}", ""]
        for name, part in (("Utility", utility), ("Fairness", fairness)):
            if part:
                table = wide_table(summary, d, part)
                md += [f"### {d}: {name.lower()}", "", markdown_table(table), ""]
                sections.append(Section(f"{d}: {name.lower()}", table))
        f = fails[(fails["dataset"] == d) & (fails["failed"] > 0)]
        md += [f"### {d}: failures", ""]
        if f.empty:
            md += [NO_FAILURES, ""]
            sections.append(Section(f"{d}: failures", text=NO_FAILURES))
        else:
            ft = pd.DataFrame(
                {
                    "setting": [
                        setting_label(s, e, t)
                        for s, e, t in zip(f["setting"], f["epsilon"], f["eta"], strict=True)
                    ],
                    "failed / cells": [
                        f"{a} / {b}" for a, b in zip(f["failed"], f["cells"], strict=True)
                    ],
                    "release failed": f["release_failed"],
                    "reasons": f["reasons"],
                }
            )
            md += [markdown_table(ft), ""]
            sections.append(Section(f"{d}: failures", ft))
        if d in figs and figs[d]:
            rel = [p.relative_to(out) for p in figs[d]]
            md += [f"![{d}]({rel[0].as_posix()})", ""]
            if rel[1:]:
                md += [
                    "Single figures: "
                    + ", ".join(f"[{p.stem.split('__', 1)[-1]}]({p.as_posix()})" for p in rel[1:]),
                    "",
                ]
            sections.append(Section(f"{d}: figures", images=[figs[d][0]]))
    path = out / "report.md"
    path.write_text("\n".join(md))
    if html_page:
        _write_html(out / "report.html", title, md[2], sections, out)
    return path


def _inline(text: str) -> str:
    """HTML of one line of the report's Markdown: escaped, with `code` spans as <code>."""
    parts = html.escape(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick stays literal
        parts[-2] += "`" + parts.pop()
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{_inline(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_inline(str(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _write_html(
    path: Path, title: str, intro: str, sections: list[Section], base: Path
) -> None:
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
        "</style>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{_inline(intro)}</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.name)}</h2>")
        if section.text:
            parts.append(f"<p>{_inline(section.text)}</p>")
        if section.table is not None:
            parts.append(_table_html(section.table))
        for img in section.images:
            parts.append(f"<img src='{html.escape(img.relative_to(base).as_posix())}'>")
    path.write_text("\n".join(parts))


# -- command line ---------------------------------------------------------------------------------


def build_report_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", help="sweep results directory (or results.csv / results.parquet)")
    p.add_argument("--out", default=None, help="report directory (default RESULTS/report)")
    p.add_argument(
        "--values",
        default=None,
        help="comma-separated metric:key pairs to show (a key ending in '[' is a "
        "prefix), e.g. model_utility:accuracy,model_fairness:spd[",
    )
    p.add_argument("--title", default="SAFES sweep report")
    p.add_argument("--no-figures", action="store_true", help="tables only (no matplotlib)")
    p.add_argument(
        "--single-figures", action="store_true", help="also one figure file per value (slower)"
    )
    p.add_argument("--no-html", action="store_true", help="Markdown only")


def cmd_report(args: argparse.Namespace) -> int:
    keys: Sequence[tuple[str, str]] = HEADLINE
    if args.values:
        keys = []
        for item in args.values.split(","):
            metric, sep, key = item.strip().partition(":")
            if not sep or not metric or not key:
                raise ConfigError(f"--values: {item!r} must look like metric:key")
            keys.append((metric, key))
    results = Path(args.results)
    out = (
        Path(args.out) if args.out else (results if results.is_dir() else results.parent) / "report"
    )
    check_output_dir(out, overwrite=True)  # before reading anything
    path = write_report(
        results,
        out,
        keys=keys,
        figures=not args.no_figures,
        single_figures=args.single_figures,
        html_page=not args.no_html,
        title=args.title,
    )
    print(f"wrote {path}" + ("" if args.no_html else f" and {path.with_suffix('.html')}"))
    return 0


__all__ = ["HEADLINE", "failures", "summarize", "write_report"]
