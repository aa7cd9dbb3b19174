"""Hand-checked counts: the shipped tables against the raw source files (skipped without them).

The expected numbers are recomputed here with the standard csv module, independently of
scripts/build_datasets.py and of pandas.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
from collections import Counter
from pathlib import Path

import pytest

import safes_framework.datasets as ds

REPO = Path(__file__).resolve().parents[2]
DATA = Path(ds.__file__).resolve().parent / "data"


def _uci_rows(shared: Path) -> list[list[str]]:
    rows: list[list[str]] = []
    for fname, skip in (("adult.data", 0), ("adult.test", 1)):
        with open(shared / "adult_uci" / fname, newline="") as fh:
            lines = fh.read().splitlines()[skip:]
        rows += [[f.strip() for f in line.split(",")] for line in lines if line.strip()]
    return rows


def _compas_rows(shared: Path) -> list[dict[str, str]]:
    """Only the non-personal fields the checks need (names and dates are discarded at once)."""
    keep = (
        "sex",
        "race",
        "age",
        "age_cat",
        "c_charge_degree",
        "priors_count",
        "two_year_recid",
        "days_b_screening_arrest",
        "is_recid",
        "score_text",
    )
    with open(shared / "compas" / "compas-scores-two-years.csv", newline="") as fh:
        return [{k: r[k] for k in keep} for r in csv.DictReader(fh)]


def test_adult_against_uci(shared_data: Path) -> None:
    rows = _uci_rows(shared_data)
    assert len(rows) == 48_842
    df, _ = ds.load("adult")
    age = [int(r[0]) for r in rows]
    edu = [int(r[4]) for r in rows]
    income = [r[14].rstrip(".") for r in rows]
    assert Counter(income) == {"<=50K": 37_155, ">50K": 11_687}
    assert df["income>50K"].tolist() == [int(v == ">50K") for v in income]
    assert df["race"].tolist() == [int(r[8] == "White") for r in rows]
    assert df["sex"].tolist() == [int(r[9] == "Male") for r in rows]
    # hand-checked buckets: the youngest and oldest decades, the education extremes
    assert int((df["age-decade"] == 0).sum()) == sum(17 <= a <= 26 for a in age)
    assert int((df["age-decade"] == 70).sum()) == sum(a >= 87 for a in age)
    assert int((df["education-reduced"] == 0).sum()) == sum(e <= 6 for e in edu)
    assert int((df["education-reduced"] == 8).sum()) == sum(e >= 14 for e in edu)
    assert int((df["education-reduced"] == 3).sum()) == sum(e == 9 for e in edu)  # HS-grad
    # first rows by hand: 39 / Bachelors(13) / White / Male / <=50K, then 50, 38 ...
    assert df.iloc[0].tolist() == [20, 7, 1, 1, 0]
    assert df.iloc[1].tolist() == [30, 7, 1, 1, 0]
    # first test row: 25, 11th (7), Black, Male, <=50K.
    assert df.iloc[32_561].tolist() == [0, 1, 0, 1, 0]


def test_compas_against_propublica(shared_data: Path) -> None:
    raw = _compas_rows(shared_data)
    assert len(raw) == 7_214

    def kept(r: dict[str, str]) -> bool:
        d = r["days_b_screening_arrest"]
        return (
            d != "" and -30 <= float(d) <= 30 and r["is_recid"] != "-1"
            and r["c_charge_degree"] != "O" and r["score_text"] not in ("N/A", "")
        )  # fmt: skip

    filtered = [r for r in raw if kept(r)]
    assert len(filtered) == 6_172
    two = [r for r in filtered if r["race"] in ("African-American", "Caucasian")]
    assert len(two) == 5_278
    df, _ = ds.load("compas")
    assert df["sex"].tolist() == [int(r["sex"] == "Female") for r in two]
    assert df["race"].tolist() == [int(r["race"] == "Caucasian") for r in two]
    assert df["two_year_recid"].tolist() == [int(r["two_year_recid"]) for r in two]
    assert df["c_charge_degree"].tolist() == [int(r["c_charge_degree"] == "F") for r in two]
    ages = {"Less than 25": 0, "25 - 45": 1, "Greater than 45": 2}
    assert df["age_cat"].tolist() == [ages[r["age_cat"]] for r in two]
    priors = [int(r["priors_count"]) for r in two]
    assert int((df["priors_count"] == 0).sum()) == sum(p == 0 for p in priors)
    assert int((df["priors_count"] == 1).sum()) == sum(1 <= p <= 3 for p in priors)
    assert int((df["priors_count"] == 2).sum()) == sum(p > 3 for p in priors)
    # age_cat agrees with age (a consistency check on the raw file itself)
    assert all((int(r["age"]) < 25) == (r["age_cat"] == "Less than 25") for r in two)


def test_adult_full_is_private_pgm_unchanged(shared_data: Path) -> None:
    shipped = gzip.decompress((DATA / "adult-full.csv.gz").read_bytes())
    raw = (shared_data / "adult_pgm" / "adult.csv").read_bytes()
    assert hashlib.md5(shipped).hexdigest() == hashlib.md5(raw).hexdigest()


@pytest.mark.slow
def test_build_script_reproduces_shipped_files(shared_data: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "build_datasets", REPO / "scripts" / "build_datasets.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--source", str(shared_data), "--out", str(tmp_path)]) == 0
    for name in ds.names():
        fname = ds.info(name).filename
        built = gzip.decompress((tmp_path / fname).read_bytes())
        shipped = gzip.decompress((DATA / fname).read_bytes())
        assert built == shipped, fname
