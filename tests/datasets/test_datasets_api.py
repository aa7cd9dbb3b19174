"""The public dataset API: load, names, schema, info, train_test_split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split as sk_split

import safes_framework.datasets as ds
from safes_framework.errors import ConfigError, DataError
from safes_framework.schema import Categorical, Integer, Schema

ROWS = {"adult": 48_842, "compas": 5_278, "adult-full": 48_842}

COLUMNS = {
    "adult": ("age-decade", "education-reduced", "race", "sex", "income>50K"),
    "compas": ("sex", "race", "age_cat", "c_charge_degree", "priors_count", "two_year_recid"),
    "adult-full": (
        "age", "workclass", "fnlwgt", "education-num", "marital-status", "occupation",
        "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week",
        "native-country", "income>50K",
    ),
}  # fmt: skip

ADULT_FULL_SIZES = {
    "age": 85, "workclass": 9, "fnlwgt": 100, "education-num": 16, "marital-status": 7,
    "occupation": 15, "relationship": 6, "race": 5, "sex": 2, "capital-gain": 100,
    "capital-loss": 100, "hours-per-week": 99, "native-country": 42, "income>50K": 2,
}  # fmt: skip

#: Allowed values of every column (the integers stored in the table).
VALUES = {
    "adult": {
        "age-decade": set(range(0, 80, 10)),
        "education-reduced": set(range(9)),
        "race": {0, 1},
        "sex": {0, 1},
        "income>50K": {0, 1},
    },
    "compas": {
        "sex": {0, 1},
        "race": {0, 1},
        "age_cat": {0, 1, 2},
        "c_charge_degree": {0, 1},
        "priors_count": {0, 1, 2},
        "two_year_recid": {0, 1},
    },
    "adult-full": {c: set(range(n)) for c, n in ADULT_FULL_SIZES.items()},
}


@pytest.fixture(scope="module")
def tables() -> dict[str, tuple[pd.DataFrame, Schema]]:
    return {name: ds.load(name) for name in ds.names()}


def test_names() -> None:
    assert ds.names() == ("adult", "compas", "adult-full")


@pytest.mark.parametrize("name", list(ROWS))
def test_shape_columns_dtypes(tables: dict, name: str) -> None:
    df, sch = tables[name]
    assert len(df) == ROWS[name]
    assert tuple(df.columns) == COLUMNS[name]
    assert sch.names == COLUMNS[name]
    assert all(dt == np.int64 for dt in df.dtypes)
    assert isinstance(df.index, pd.RangeIndex) and df.index[0] == 0
    assert not df.isna().any().any()


@pytest.mark.parametrize("name", list(ROWS))
def test_value_ranges(tables: dict, name: str) -> None:
    df, _ = tables[name]
    for col, allowed in VALUES[name].items():
        assert set(df[col].unique()) <= allowed, col


@pytest.mark.parametrize("name", list(ROWS))
def test_encodes_with_its_schema(tables: dict, name: str) -> None:
    df, sch = tables[name]
    codes = sch.encode(df)
    sch.check_codes(codes.to_numpy())
    assert codes.shape == df.shape
    assert sch.decode(codes).equals(df)


def test_adult_schema(tables: dict) -> None:
    df, sch = tables["adult"]
    assert sch["age-decade"] == Categorical("age-decade", (0, 10, 20, 30, 40, 50, 60, 70))
    assert sch.protected == ("race", "sex")
    assert sch.label == "income>50K" and sch.favorable == 1
    assert sch.privileged == {"race": (1,), "sex": (1,)}
    assert sch.sizes == {
        "age-decade": 8,
        "education-reduced": 9,
        "race": 2,
        "sex": 2,
        "income>50K": 2,
    }
    # every value of a small domain actually occurs
    assert set(df["age-decade"]) == set(range(0, 80, 10))
    assert set(df["education-reduced"]) == set(range(9))


def test_adult_label_balance(tables: dict) -> None:
    df, _ = tables["adult"]
    assert int(df["income>50K"].sum()) == 11_687
    assert int((df["income>50K"] == 0).sum()) == 37_155


def test_compas_schema_and_counts(tables: dict) -> None:
    df, sch = tables["compas"]
    assert sch.protected == ("race", "sex")
    assert sch.label == "two_year_recid" and sch.favorable == 0
    assert sch.privileged == {"race": (1,), "sex": (1,)}  # Caucasian; Female (AIF360)
    assert df["two_year_recid"].value_counts().to_dict() == {0: 2_795, 1: 2_483}
    assert df["sex"].value_counts().to_dict() == {0: 4_247, 1: 1_031}
    assert df["age_cat"].value_counts().to_dict() == {1: 3_026, 0: 1_156, 2: 1_096}
    assert df["c_charge_degree"].value_counts().to_dict() == {1: 3_440, 0: 1_838}
    assert df["race"].value_counts().to_dict() == {0: 3_175, 1: 2_103}


def test_adult_full_schema(tables: dict) -> None:
    df, sch = tables["adult-full"]
    assert sch.sizes == {c: len(v) for c, v in VALUES["adult-full"].items()}
    for col in sch.columns:
        assert isinstance(col, (Integer, Categorical))
        codes = col.encode(pd.Series(range(col.size)))
        assert codes.tolist() == list(range(col.size))  # code == value
    assert sch.privileged == {"race": (0,), "sex": (1,)}
    assert sch.label == "income>50K" and sch.favorable == 1
    assert int(df["income>50K"].sum()) == 11_687
    assert int((df["sex"] == 1).sum()) == 32_650


def test_adult_and_adult_full_are_row_aligned(tables: dict) -> None:
    adult, _ = tables["adult"]
    full, _ = tables["adult-full"]
    assert (full["income>50K"].to_numpy() == adult["income>50K"].to_numpy()).all()
    assert (full["sex"].to_numpy() == adult["sex"].to_numpy()).all()
    assert ((full["race"] == 0).to_numpy() == (adult["race"] == 1).to_numpy()).all()
    assert (((full["age"] - 1) // 10 * 10).to_numpy() == adult["age-decade"].to_numpy()).all()


def test_schema_without_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(key: str) -> None:
        raise AssertionError("schema() must not read the data file")

    monkeypatch.setattr(ds, "_read", boom)
    for name in ds.names():
        assert ds.schema(name).names == COLUMNS[name]
        assert ds.info(name).rows == ROWS[name]


def test_schema_is_fresh_and_equal() -> None:
    a, b = ds.schema("adult"), ds.schema("adult")
    assert a == b and a is not b
    assert Schema.from_json(a.to_json()) == a


def test_load_returns_independent_copies() -> None:
    df, _ = ds.load("compas")
    df.iloc[:, :] = 7
    again, _ = ds.load("compas")
    assert set(again["race"].unique()) == {0, 1}


def test_name_spelling() -> None:
    assert ds.load(" Adult_Full ")[1].names == COLUMNS["adult-full"]


@pytest.mark.parametrize("bad", ["german", "", "adult.csv", None, 3])
def test_unknown_name(bad: object) -> None:
    for fn in (ds.load, ds.schema, ds.info):
        with pytest.raises(ConfigError, match="adult, compas, adult-full"):
            fn(bad)  # type: ignore[arg-type]


def test_split_sizes_and_determinism() -> None:
    train, test = ds.train_test_split("adult")
    assert (len(train), len(test)) == (36_631, 12_211)
    assert isinstance(train.index, pd.RangeIndex) and isinstance(test.index, pd.RangeIndex)
    train2, test2 = ds.train_test_split("adult")
    pd.testing.assert_frame_equal(train, train2)
    pd.testing.assert_frame_equal(test, test2)


@pytest.mark.parametrize("name", list(ROWS))
def test_split_is_the_paper_call(name: str) -> None:
    df, _ = ds.load(name)
    ref_train, ref_test = sk_split(df, test_size=0.25, random_state=50)
    train, test = ds.train_test_split(df)
    pd.testing.assert_frame_equal(train, ref_train.reset_index(drop=True))
    pd.testing.assert_frame_equal(test, ref_test.reset_index(drop=True))
    named_train, _ = ds.train_test_split(name)
    pd.testing.assert_frame_equal(train, named_train)
    # the paper calls train_test_split(X, y, random_state=50): the same test rows
    x_tr, x_te, _, _ = sk_split(df.iloc[:, :-1], df.iloc[:, -1], random_state=50)
    assert x_te.index.tolist() == ref_test.index.tolist()


def test_split_other_seed_differs_and_bad_input() -> None:
    a, _ = ds.train_test_split("compas")
    b, _ = ds.train_test_split("compas", random_state=1)
    assert not a.equals(b)
    with pytest.raises(ConfigError, match="available datasets"):
        ds.train_test_split("nope")
    with pytest.raises(ConfigError):
        ds.train_test_split(np.zeros((4, 2)))  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ds.train_test_split("compas", test_size=2.0)
    with pytest.raises(DataError):
        ds.train_test_split(pd.DataFrame({"a": [1]}))
