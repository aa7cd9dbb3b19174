"""The sweep report: summaries, failure counts, Markdown/HTML and figures."""

from __future__ import annotations

import builtins
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safes_framework.cli import main
from safes_framework.errors import ConfigError
from safes_framework.evaluation import ROW_COLUMNS, Setting, cell_key
from safes_framework.report import failures, summarize, write_report


def _rows() -> pd.DataFrame:
    """Hand-made results: Original, Fair(0.1), DP and SAFES at two epsilons, 3 repeats."""
    rng = np.random.default_rng(0)
    settings = [Setting("original"), Setting("fair", None, 0.1)]
    settings += [Setting(k, e, t) for e in (0.1, 1.0) for k, t in (("dp", None), ("safes", 0.1))]
    rows = []
    for s in settings:
        for r in range(1 if s.kind == "original" else 3):
            cell = cell_key("toy", s, r)
            common = {
                "cell": cell,
                "dataset": "toy",
                "setting": s.kind,
                "epsilon": s.epsilon if s.epsilon else math.nan,
                "log10_epsilon": math.log10(s.epsilon) if s.epsilon else math.nan,
                "eta": s.eta if s.eta else math.nan,
                "repeat": r,
                "seed": r,
                "synthesizer": "x",
                "fairness": "",
                "reason": "",
                "measured_on": "m",
            }
            if s.kind == "safes" and s.epsilon == 0.1 and r == 2:
                rows.append(
                    {
                        **common,
                        "metric": "*",
                        "key": "*",
                        "value": math.nan,
                        "status": "failed",
                        "reason": "fairness: InfeasibleError: eta",
                    }
                )
                continue
            acc = 0.8 - (0.05 if s.epsilon == 0.1 else 0) + rng.normal(0, 0.01)
            for metric, key, value in (
                ("model_utility", "accuracy", acc),
                ("model_fairness", "spd[sex]", -0.2 + 0.1 * (s.fair)),
                ("model_fairness", "spd[race]", -0.1),
            ):
                rows.append(
                    {**common, "metric": metric, "key": key, "value": value, "status": "ok"}
                )
    df = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    df["cell_rows"] = df.groupby("cell")["cell"].transform("size")
    return df


def test_summary_has_mean_spread_and_count_per_setting() -> None:
    s = summarize(_rows())
    acc = s[(s["key"] == "accuracy")]
    assert acc["setting"].tolist()[:2] == ["original", "fair"]
    safes = acc[(acc["setting"] == "safes") & (acc["epsilon"] == 0.1)].iloc[0]
    assert safes["n"] == 2 and safes["mean"] == pytest.approx(0.75, abs=0.02)
    assert acc[acc["setting"] == "original"]["n"].iloc[0] == 1


def test_failures_are_counted_with_their_reasons() -> None:
    f = failures(_rows())
    bad = f[f["failed"] > 0]
    assert len(bad) == 1
    row = bad.iloc[0]
    assert (row["setting"], row["epsilon"], row["failed"], row["cells"]) == ("safes", 0.1, 1, 3)
    assert row["release_failed"] == 1 and "1x fairness: InfeasibleError" in row["reasons"]


def test_write_report_markdown_html_and_tables(tmp_path: Path) -> None:
    path = write_report(_rows(), tmp_path, figures=False)
    md = path.read_text()
    assert "| SAFES(eps=0.1, eta=0.1) | 2 |" in md
    assert "| Original | 1 | 0.8" in md
    assert "1 / 3" in md and "InfeasibleError" in md  # the failure table
    assert md.index("spd[sex]") < md.index("spd[race]")  # the metric's own order
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")
    assert {"summary.csv", "failures.csv"} <= {p.name for p in tmp_path.iterdir()}


def test_write_report_draws_a_panel_per_dataset(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    write_report(_rows(), tmp_path, keys=[("model_utility", "accuracy")], single_figures=True)
    names = {p.name for p in (tmp_path / "figures").iterdir()}
    assert "toy_panel.png" in names and "toy__model_utility__accuracy.png" in names
    assert "figures/toy_panel.png" in (tmp_path / "report.md").read_text()


def test_missing_matplotlib_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ConfigError, match=r"safes-framework\[report\]"):
        write_report(_rows(), tmp_path)


def test_safes_report_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "sweep"
    results.mkdir()
    _rows().to_csv(results / "results.csv", index=False)
    assert main(["report", str(results), "--no-figures", "--values", "model_utility:accuracy"]) == 0
    md = (results / "report" / "report.md").read_text()
    assert "accuracy" in md and "spd[sex]" not in md
    assert "wrote" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no sweep results" in capsys.readouterr().err


LONG_REASON = (
    "fairness: InfeasibleError: tot: infeasible (HiGHS 1.16.0: Infeasible): no map meets the "
    "discrimination bound eta=0.05 (difference: |P(y'|d) - P(y'|d')| <= eta) together with the "
    "excess-distortion bounds clist=[0.99, 1.99, 2.99], dlist=[0.1, 0.05, 0.0]. The "
    "discrimination constraint binds: with these distortion bounds the smallest feasible eta is "
    "0.0687507; use eta >= 0.0687507, or raise the non-zero dlist bounds"
)


def test_failure_reasons_are_never_cut(tmp_path: Path) -> None:
    rows = _rows()
    rows.loc[rows["status"] == "failed", "reason"] = LONG_REASON
    write_report(rows, tmp_path, figures=False)
    tail = "use eta >= 0.0687507, or raise the non-zero dlist bounds"
    assert tail in (tmp_path / "report.md").read_text()
    assert tail in pd.read_csv(tmp_path / "failures.csv")["reasons"].str.cat()
    assert "…" not in (tmp_path / "report.md").read_text()


def test_html_has_code_not_backticks_and_says_when_nothing_failed(tmp_path: Path) -> None:
    rows = _rows()
    rows.loc[rows["status"] == "failed", "reason"] = "fairness: InfeasibleError: use `eta`"
    clean = rows[rows["status"] == "ok"].assign(dataset="clean")
    write_report(pd.concat([rows, clean], ignore_index=True), tmp_path, figures=False)
    page = (tmp_path / "report.html").read_text()
    assert "`" not in page
    assert "use <code>eta</code>" in page  # in the failure table
    assert "<code>summary.csv</code>" in page
    assert "<h2>clean: failures</h2>\n<p>No failure recorded.</p>" in page
    assert "<h2>toy: failures</h2>\n<table" in page
