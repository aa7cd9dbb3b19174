"""Tests of Release.load: a saved release comes back as it was, in its declared dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safes_framework import Categorical, Continuous, Integer, Schema
from safes_framework.errors import ConfigError, DataError
from safes_framework.release import PrivacyReport, Release, RunInfo

SCHEMA = Schema(
    (
        Categorical("code", ("007", "12", "x")),
        Categorical("member", (False, True)),
        Integer("n", 0, 5),
        Continuous("age", (18, 40, 80), integer=True),
        Continuous("income", (0.0, 10.0, 100.0)),
        Categorical("y", (0, 1)),
    ),
    protected=("code",), label="y", favorable=1, privileged={"code": ("007",)},
)


def _release(weights: bool) -> Release:
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, c.size, 50) for c in SCHEMA.columns], axis=1)
    data = SCHEMA.decode(codes, rng)
    privacy = PrivacyReport(
        epsilon=0.9, delta=1e-9, budget=(1.0, 1e-9),
        ledger=({"stage": "synthesizer", "label": "m", "count": 1, "epsilon_after": 0.9,
                 "event": {"type": "Gaussian", "noise_multiplier": 3.0}},),
        noise={"source": "secure"}, release_size="chosen", assumptions=("a",),
    )
    run = RunInfo("abc", "mst", {"epsilon": 1.0}, "reweighing" if weights else None,
                  {}, binning={"share": 0.1})
    return Release(data, rng.random(50) if weights else None, privacy, SCHEMA, run,
                   {"sample": 5}, {"python": "3"})


@pytest.mark.parametrize("weights", [False, True])
def test_a_saved_release_loads_as_it_was(tmp_path: Path, weights: bool) -> None:
    release = _release(weights)
    loaded = Release.load(release.save(tmp_path / "r"))
    assert loaded.privacy == release.privacy
    assert loaded.run == release.run and loaded.schema == release.schema
    assert loaded.seeds == {"sample": 5}
    assert loaded.data["code"].tolist() == release.data["code"].tolist()  # "007" stays a string
    assert loaded.data["member"].dtype == bool and loaded.data["age"].dtype == np.int64
    assert loaded.data["income"].dtype == np.float64
    np.testing.assert_allclose(loaded.data["income"], release.data["income"])
    if weights:
        np.testing.assert_allclose(loaded.weights, release.weights)  # type: ignore[arg-type]
    else:
        assert loaded.weights is None
    assert not loaded.metrics and not loaded.timings


def test_loading_refuses_what_is_not_a_release(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Release.load(tmp_path / "none")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "release.csv").write_text("a\n1\n")
    with pytest.raises(ConfigError, match="privacy.json is missing"):
        Release.load(tmp_path / "half")
    out = _release(False).save(tmp_path / "r")
    table = pd.read_csv(out / "release.csv")
    table.loc[0, "n"] = 9
    table.to_csv(out / "release.csv", index=False)
    with pytest.raises(DataError, match="'n'"):
        Release.load(out)
    (out / "run.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot read run.json"):
        Release.load(out)
