"""The SAFES v3 comparison table: AIM against DP-CTGAN, each with TOT and with reweighing.

Reads the four sweep directories made from the configs in docs/results/v3/ and prints one
markdown table per dataset: mean ± sd over repeats of accuracy, ROC AUC, the model's
statistical parity difference by each protected attribute, and the release's mean 2-way TVD.

Usage:
    for c in aim_tot aim_reweighing dpctgan_tot dpctgan_reweighing; do
        safes sweep --config docs/results/v3/$c.toml --out runs/v3/$c --workers 1
    done
    python benchmarks/v3_comparison.py runs/v3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from safes_framework.sweeps import read_results

RUNS = ("aim_tot", "aim_reweighing", "dpctgan_tot", "dpctgan_reweighing")
VALUES = {
    ("model_utility", "accuracy"): "accuracy",
    ("model_utility", "roc_auc"): "ROC AUC",
    ("model_fairness", "spd[sex]"): "SPD sex",
    ("model_fairness", "spd[race]"): "SPD race",
    ("tvd", "tvd_2way"): "TVD 2-way",
}


def _cell(values: pd.Series) -> str:
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std():.3f}"


def table(root: Path) -> str:
    frames = []
    for run in RUNS:
        df = read_results(root / run)
        synth, fairness = run.split("_", 1)
        frames.append(df.assign(synth=synth, fair=fairness))
    data = pd.concat(frames, ignore_index=True)
    data = data[data["status"] == "ok"]
    out = []
    for dataset in sorted(data["dataset"].unique()):
        d = data[data["dataset"] == dataset]
        lines = [
            f"**{dataset}**", "",
            "| ε | synthesizer | fairness | setting | " + " | ".join(VALUES.values()) + " |",
            "|---|---|---|---|" + "---|" * len(VALUES),
        ]
        # Settings without fairness (Original, DP(ε)) are the same in both fairness runs of a
        # synthesizer (same sweep seed), and Original and Fair(η) do not depend on it: show
        # each once.
        d = d[~d["setting"].isin(["original", "dp"]) | (d["fair"] == "tot")]
        d = d[d["epsilon"].notna() | (d["synth"] == "aim")]
        keys = d[["epsilon", "synth", "fair", "setting"]].drop_duplicates()
        keys = keys.sort_values(["epsilon", "synth", "setting", "fair"], na_position="first")
        for _, k in keys.iterrows():
            eps = k["epsilon"]
            rows = d[
                (d["synth"] == k["synth"]) & (d["fair"] == k["fair"])
                & (d["setting"] == k["setting"])
                & ((d["epsilon"] == eps) if not pd.isna(eps) else d["epsilon"].isna())
            ]
            cells = [
                _cell(rows[(rows["metric"] == m) & (rows["key"] == key)]["value"])
                for m, key in VALUES
            ]
            synth = "–" if pd.isna(eps) else k["synth"]
            fair = "–" if k["setting"] in ("original", "dp") else k["fair"]
            lines.append(
                f"| {'no DP' if pd.isna(eps) else f'{eps:g}'} | {synth} | {fair} | "
                f"{k['setting']} | " + " | ".join(cells) + " |"
            )
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="directory holding the four sweep directories")
    print(table(ap.parse_args().root))


if __name__ == "__main__":
    main()
