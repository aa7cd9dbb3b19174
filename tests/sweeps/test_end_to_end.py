"""CI's tiny sweep: `safes validate`, `safes sweep` (real plugins, worker processes), resume,
and `safes report`, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from safes_framework.cli import main
from safes_framework.sweeps import read_results

CONFIG = """
[sweep]
datasets = ["compas"]
epsilons = [0.3, 3.0]
repeats = 2
seed = 1

[sweep.etas]
compas = [0.15]

[synthesizer]
name = "mst"

[fairness]
name = "tot"
"""


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    out = tmp_path / "results"
    assert main(["validate", str(config)]) == 0
    assert "cells (dataset x setting x repeat): 11" in capsys.readouterr().out

    assert main(["sweep", str(config), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    assert "11 cells ok" in capsys.readouterr().out
    df = read_results(out)
    assert df["cell"].nunique() == 11 and (df["status"] == "ok").all()
    spent = df[(df["metric"] == "run") & (df["key"] == "epsilon_spent")]
    assert (spent["value"] <= spent["epsilon"] * (1 + 1e-9)).all()
    # SAFES moves the release's mean outcome difference towards the bound
    mod = df[(df["metric"] == "mean_outcome_difference") & (df["key"] == "mod[race]")]
    safes = mod[mod["setting"] == "safes"]["value"].abs()
    assert (safes <= 0.15 + 0.05).all()

    assert main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
    assert "0 units run" in capsys.readouterr().out  # resumed: nothing left

    assert main(["report", str(out)]) == 0
    md = (out / "report" / "report.md").read_text()
    assert "SAFES(eps=0.3, eta=0.15)" in md and "No failure recorded." in md
    assert (out / "report" / "figures" / "compas_panel.png").stat().st_size > 10_000
