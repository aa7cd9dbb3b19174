"""Build the bundled dataset files of safes_framework/datasets/data/ from the raw sources."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "safes_framework" / "datasets" / "data"

#: md5 of the raw inputs (as documented in the READMEs of shared/data).
SOURCE_MD5 = {
    "adult_uci/adult.data": "5d7c39d7b8804f071cdd1f2a7c460872",
    "adult_uci/adult.test": "35238206dfdf7f1fe215bbb874adecdc",
    "compas/compas-scores-two-years.csv": "9165d40c400bba93a8cffece2b74622b",
    "adult_pgm/adult.csv": "f0915652bd382dc3241698bf085d5e5f",
    "adult_pgm/adult-domain.json": "0c481e52bdd1c47e8c363ae70ebd25dd",
}

UCI_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country", "income",
]  # fmt: skip

#: The only COMPAS columns ever read. Personal columns (name, first, last, dob, case
#: numbers, id) are never loaded, so they cannot leak into the output or the logs.
COMPAS_READ = [
    "sex", "race", "age_cat", "c_charge_degree", "priors_count", "two_year_recid",
    "days_b_screening_arrest", "is_recid", "score_text",
]  # fmt: skip


def md5(path: Path) -> str:
    """Hex md5 of a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise SystemExit(f"build_datasets: check failed: {message}")


def _map(series: pd.Series, mapping: dict[str, int], what: str) -> pd.Series:
    """Map string values to integers; every value must be a key of `mapping`."""
    unknown = sorted(set(series.unique()) - set(mapping))
    _check(not unknown, f"{what}: unexpected values {unknown}")
    return series.map(mapping).astype(np.int64)


def read_uci_adult(source: Path) -> pd.DataFrame:
    """adult.data followed by adult.test, as strings/integers, trailing dot of test labels cut."""
    opts = dict(header=None, names=UCI_COLUMNS, skipinitialspace=True, keep_default_na=False)
    train = pd.read_csv(source / "adult_uci" / "adult.data", **opts)
    test = pd.read_csv(source / "adult_uci" / "adult.test", skiprows=1, **opts)  # junk line 1
    _check((len(train), len(test)) == (32_561, 16_281), f"UCI sizes {len(train)}, {len(test)}")
    raw = pd.concat([train, test], ignore_index=True)
    raw["income"] = raw["income"].astype(str).str.rstrip(".")
    return raw


def build_adult(source: Path) -> pd.DataFrame:
    """The SAFES paper's Adult: age-decade, education-reduced, race, sex, income>50K."""
    raw = read_uci_adult(source)
    age = raw["age"].astype(np.int64)
    edu = raw["education-num"].astype(np.int64)
    _check(age.between(17, 90).all() and edu.between(1, 16).all(), "age/education range")
    races = ["White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"]
    out = pd.DataFrame(
        {
            "age-decade": ((age - 17) // 10) * 10,
            "education-reduced": edu.clip(6, 14) - 6,
            "race": _map(raw["race"], {r: int(r == "White") for r in races}, "race"),
            "sex": _map(raw["sex"], {"Male": 1, "Female": 0}, "sex"),
            "income>50K": _map(raw["income"], {">50K": 1, "<=50K": 0}, "income"),
        }
    )
    _check(len(out) == 48_842, f"adult rows {len(out)}")
    _check(int(out["income>50K"].sum()) == 11_687, "adult: 11,687 rows with income >50K")
    return out


def build_compas(source: Path) -> pd.DataFrame:
    """ProPublica's two-year COMPAS, filtered and recoded as in AIF360 and the SAFES paper."""
    path = source / "compas" / "compas-scores-two-years.csv"
    header = list(pd.read_csv(path, nrows=0).columns)  # names only, no values
    # priors_count appears twice in the file; check that both copies agree.
    dup = [i for i, c in enumerate(header) if c.split(".")[0] == "priors_count"]
    pri = pd.read_csv(path, usecols=dup)
    _check(len(dup) == 2 and (pri.iloc[:, 0] == pri.iloc[:, 1]).all(), "priors_count copies")
    raw = pd.read_csv(path, usecols=COMPAS_READ)[COMPAS_READ]
    _check(len(raw) == 7_214, f"COMPAS rows {len(raw)}")
    # ProPublica's filters. pandas reads the literal "N/A" as NaN, so both count as N/A.
    days = raw["days_b_screening_arrest"]
    keep = (
        days.between(-30, 30)  # NaN (307 rows) is dropped, as in ProPublica's analysis
        & (raw["is_recid"] != -1)
        & (raw["c_charge_degree"] != "O")
        & raw["score_text"].notna()
        & (raw["score_text"] != "N/A")
    )
    _check(int(keep.sum()) == 6_172, f"ProPublica filters keep {int(keep.sum())} rows")
    df = raw[keep & raw["race"].isin(["African-American", "Caucasian"])]
    priors = df["priors_count"].astype(np.int64)
    _check(bool((priors >= 0).all()), "priors_count >= 0")
    out = pd.DataFrame(
        {
            "sex": _map(df["sex"], {"Female": 1, "Male": 0}, "sex"),
            "race": _map(df["race"], {"Caucasian": 1, "African-American": 0}, "race"),
            "age_cat": _map(
                df["age_cat"], {"Less than 25": 0, "25 - 45": 1, "Greater than 45": 2}, "age_cat"
            ),
            "c_charge_degree": _map(df["c_charge_degree"], {"F": 1, "M": 0}, "charge degree"),
            "priors_count": np.select([priors == 0, priors <= 3], [0, 1], 2).astype(np.int64),
            "two_year_recid": df["two_year_recid"].astype(np.int64),
        }
    ).reset_index(drop=True)
    _check(len(out) == 5_278, f"compas rows {len(out)}")
    _check(set(out["two_year_recid"].unique()) <= {0, 1}, "two_year_recid is binary")
    return out


def build_adult_full(source: Path) -> pd.DataFrame:
    """private-pgm's discretised Adult, unchanged, checked against its domain file."""
    import json

    domain = json.loads((source / "adult_pgm" / "adult-domain.json").read_text())
    df = pd.read_csv(source / "adult_pgm" / "adult.csv", dtype=np.int64)
    _check(list(df.columns) == list(domain), "adult-full columns follow adult-domain.json")
    for col, size in domain.items():
        _check(bool(df[col].between(0, size - 1).all()), f"adult-full {col} in 0..{size - 1}")
    _check(len(df) == 48_842, f"adult-full rows {len(df)}")
    return df


def cross_check(adult: pd.DataFrame, full: pd.DataFrame) -> None:
    """`adult` and `adult-full` are row-aligned views of the same UCI rows."""
    _check(((full["age"] + 16 - 17) // 10 * 10).equals(adult["age-decade"]), "age vs pgm")
    _check(
        ((full["education-num"] + 1).clip(6, 14) - 6).equals(adult["education-reduced"]),
        "education vs pgm",
    )
    _check((full["race"] == 0).astype(np.int64).equals(adult["race"]), "race vs pgm")
    _check(full["sex"].equals(adult["sex"]), "sex vs pgm")
    _check(full["income>50K"].equals(adult["income>50K"]), "income vs pgm")


def to_gzip_csv(df: pd.DataFrame) -> bytes:
    """CSV (header, integers, "\\n" line ends) gzipped with a fixed header: reproducible bytes."""
    text = df.to_csv(index=False, lineterminator="\n").encode("ascii")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text)
    return buf.getvalue()


BUILDERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "adult": build_adult,
    "compas": build_compas,
    "adult-full": build_adult_full,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help=f"folder holding adult_uci/, compas/, adult_pgm/ (default: {DEFAULT_SOURCE})",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--no-verify-source",
        action="store_true",
        help="build even if the raw files' md5 differ from the documented ones",
    )
    args = parser.parse_args(argv)
    source: Path = args.source.resolve()

    for rel, expected in SOURCE_MD5.items():
        path = source / rel
        if not path.is_file():
            raise SystemExit(f"build_datasets: missing source file {path} (see --source)")
        got = md5(path)
        if got != expected and not args.no_verify_source:
            raise SystemExit(
                f"build_datasets: {rel} has md5 {got}, expected {expected}; "
                "pass --no-verify-source to build anyway"
            )

    tables = {name: build(source) for name, build in BUILDERS.items()}
    cross_check(tables["adult"], tables["adult-full"])

    sys.path.insert(0, str(REPO))
    from safes_framework.datasets._catalog import CATALOG

    args.out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        meta, make_schema = CATALOG[name]
        sch = make_schema()
        _check(tuple(df.columns) == sch.names, f"{name}: columns match the schema")
        sch.validate(df)
        blob = to_gzip_csv(df.astype(np.int64))
        target = args.out / meta.filename
        target.write_bytes(blob)
        print(
            f"{hashlib.md5(blob).hexdigest()}  {meta.filename}  "
            f"({len(df):,} rows, {len(blob):,} bytes)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
