"""Tests of the public schema: declarations, encoding, decoding, errors, JSON, infer."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safes_framework import Categorical, Continuous, Integer, Schema
from safes_framework.errors import (
    DataError,
    DomainError,
    DtypeError,
    EmptyDataError,
    MissingColumnError,
    SafesError,
    SchemaError,
)
from safes_framework.schema import NonPrivateDomainWarning


@pytest.fixture
def schema() -> Schema:
    return Schema(
        columns=(
            Categorical("sex", ("F", "M")),
            Integer("age", 17, 90),
            Continuous("hours", (0.0, 20.0, 40.0, 100.0)),
            Categorical("race", (0, 1)),
            Categorical("income", (0, 1)),
        ),
        protected=("sex", "race"),
        label="income",
        favorable=1,
        privileged={"sex": "M", "race": (1,)},
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sex": ["F", "M", "M"],
            "age": [17, 45, 90],
            "hours": [0.0, 39.5, 100.0],
            "race": [0, 1, 1],
            "income": [1, 0, 1],
        }
    )


def test_encode_gives_codes_in_schema_order(schema: Schema, frame: pd.DataFrame) -> None:
    codes = schema.encode(frame[list(reversed(frame.columns))])
    assert list(codes.columns) == list(schema.names)
    assert codes["sex"].tolist() == [0, 1, 1]
    assert codes["age"].tolist() == [0, 28, 73]
    assert codes["hours"].tolist() == [0, 1, 2]  # last bin holds its upper edge
    assert schema.sizes == {"sex": 2, "age": 74, "hours": 3, "race": 2, "income": 2}


def test_decode_inverts_encode_for_discrete_columns(schema: Schema, frame: pd.DataFrame) -> None:
    back = schema.decode(schema.encode(frame))
    for col in ("sex", "age", "race", "income"):
        assert back[col].tolist() == frame[col].tolist()
    assert back["hours"].tolist() == [10.0, 30.0, 70.0]  # bin midpoints


def test_continuous_decode_with_rng_stays_inside_bin(schema: Schema) -> None:
    rng = np.random.default_rng(0)
    codes = np.array([0, 1, 2] * 100)
    values = schema["hours"].decode(codes, rng)
    edges = np.asarray(schema["hours"].edges)
    assert ((values >= edges[codes]) & (values < edges[codes + 1])).all()


def test_integer_valued_bins_decode_to_integers_of_their_bin() -> None:
    age = Continuous("age", (18, 25, 35, 45, 55, 65, 80), integer=True)
    rng = np.random.default_rng(1)
    codes = np.repeat(np.arange(6), 2000)
    values = age.decode(codes, rng)
    assert values.dtype == np.int64
    assert (age.encode(pd.Series(values)) == codes).all()  # every draw lies in its own bin
    assert len(np.unique(values)) == 80 - 18 + 1  # every age drawn, not 6 midpoints
    assert values[codes == 5].max() == 80  # the last bin holds its upper edge
    mids = age.decode(np.arange(6))
    assert mids.dtype == np.int64 and (age.encode(pd.Series(mids)) == np.arange(6)).all()
    with pytest.raises(DtypeError, match="'age'.*not an integer"):
        age.encode(pd.Series([30.5]))


def test_uniform_draws_never_land_on_an_excluded_upper_edge() -> None:
    col = Continuous("x", (0.0, 1e-300, 1.0))
    values = col.decode(np.zeros(10_000, dtype=np.int64), np.random.default_rng(2))
    assert (values < 1e-300).all() and (col.encode(pd.Series(values)) == 0).all()


def test_midpoint_draw_ignores_the_generator() -> None:
    col = Continuous("x", (0.0, 2.0, 10.0), draw="midpoint")
    rng = np.random.default_rng(0)
    assert col.decode(np.array([0, 1]), rng).tolist() == [1.0, 6.0]
    assert rng.random() == np.random.default_rng(0).random()  # nothing drawn


def test_decode_gives_the_declared_dtypes() -> None:
    schema = Schema(
        (
            Categorical("g", ("a", "b")),
            Categorical("flag", (False, True)),
            Categorical("y", (0, 1)),
            Integer("n", 0, 3),
            Continuous("age", (18, 40, 80), integer=True),
            Continuous("income", (0.0, 1.0, 2.0)),
        ),
        protected=("g",), label="y", favorable=1,
    )
    out = schema.decode(np.array([[0, 1, 1, 2, 1, 0]] * 3), np.random.default_rng(0))
    assert pd.api.types.is_string_dtype(out["g"]) and out["g"].tolist() == ["a"] * 3
    assert out.drop(columns="g").dtypes.to_dict() == {
        "flag": np.dtype(bool), "y": np.dtype(np.int64), "n": np.dtype(np.int64),
        "age": np.dtype(np.int64), "income": np.dtype(np.float64),
    }


def test_ordered_categories_are_declared_and_recorded() -> None:
    edu = Categorical("edu", ("none", "school", "college"), ordered=True)
    assert edu.to_dict()["ordered"] is True
    assert "ordered" not in Categorical("job", ("a", "b")).to_dict()
    with pytest.raises(SchemaError, match="categories must be a list"):
        Categorical("edu", "abc")


@pytest.mark.parametrize(
    ("column", "values", "error", "named"),
    [
        ("age", [16, 30, 40], DomainError, "16"),
        ("sex", ["F", "X", "M"], DomainError, "'X'"),
        ("hours", [1.0, np.nan, 3.0], DomainError, "nan"),
        ("hours", [1.0, 200.0, 3.0], DomainError, "200"),
        ("age", [20.5, 30, 40], DtypeError, "20.5"),
        ("age", ["a", "b", "c"], DtypeError, "'a'"),
        ("age", ["28", "forty", "30"], DtypeError, "value 'forty' is not"),
        ("age", pd.Series(["28", "30", "forty"], dtype="str"), DtypeError, "value 'forty'"),
        ("hours", pd.Series([1.5, "x", 3.0], dtype=object), DtypeError, "value 'x'"),
        ("age", pd.Series([20, True, 30], dtype=object), DtypeError, "value True"),
        ("race", [0, 2, 1], DomainError, "2"),
        ("race", [0, None, 1], DomainError, "nan"),
    ],
)
def test_bad_value_names_column_and_value(
    schema: Schema, frame: pd.DataFrame, column: str, values: list, error: type, named: str
) -> None:
    bad = frame.assign(**{column: values})
    with pytest.raises(error) as info:
        schema.encode(bad)
    assert repr(column) in str(info.value)
    assert named in str(info.value)
    assert info.value.column == column


def test_numbers_written_as_text_are_read(schema: Schema, frame: pd.DataFrame) -> None:
    codes = schema.encode(frame.assign(age=pd.Series(["17", "45", "90"], dtype="str")))
    assert codes["age"].tolist() == [0, 28, 73]


@pytest.mark.parametrize("column", ["age", "sex"])
def test_a_repeated_column_name_is_refused_naming_it(
    schema: Schema, frame: pd.DataFrame, column: str
) -> None:
    twice = pd.concat([frame, frame[[column]]], axis=1)
    with pytest.raises(DataError, match=f"column '{column}' appears twice") as info:
        schema.encode(twice)
    assert info.value.column == column


def test_missing_column_and_empty_table(schema: Schema, frame: pd.DataFrame) -> None:
    with pytest.raises(MissingColumnError, match="'age'"):
        schema.encode(frame.drop(columns="age"))
    with pytest.raises(EmptyDataError):
        schema.encode(frame.iloc[:0])


def test_extra_columns_are_ignored_with_a_warning(schema: Schema, frame: pd.DataFrame) -> None:
    with pytest.warns(UserWarning, match="name"):
        codes = schema.encode(frame.assign(name=["a", "b", "c"]))
    assert "name" not in codes.columns


def test_json_round_trip(schema: Schema) -> None:
    again = Schema.from_json(schema.to_json())
    assert again == schema
    assert again.privileged == {"sex": ("M",), "race": (1,)}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"label": "nope"},
        {"protected": ("income",)},
        {"favorable": 3},
        {"protected": ()},
        {"privileged": {"age": (20,)}},
        {"privileged": {"sex": ("X",)}},
    ],
)
def test_inconsistent_declarations_raise_schema_error(schema: Schema, kwargs: dict) -> None:
    spec = {
        "columns": schema.columns,
        "protected": schema.protected,
        "label": schema.label,
        "favorable": schema.favorable,
        **kwargs,
    }
    with pytest.raises(SchemaError):
        Schema(**spec)


def test_bad_column_declarations() -> None:
    with pytest.raises(SchemaError):
        Categorical("c", ("a", "a"))
    with pytest.raises(SchemaError):
        Integer("i", 5, 4)
    with pytest.raises(SchemaError):
        Continuous("x", (0.0, 0.0))
    with pytest.raises(SchemaError):
        Schema((Categorical("a", (0, 1)), Categorical("a", (0, 1))), ("a",), "a", 1)


def test_infer_warns_that_it_is_not_private(frame: pd.DataFrame) -> None:
    with pytest.warns(NonPrivateDomainWarning, match="not differentially private"):
        s = Schema.infer(frame, protected="sex", label="income", favorable=1)
    assert s["age"] == Integer("age", 17, 90)
    assert s["sex"] == Categorical("sex", ("F", "M"))
    assert isinstance(s["hours"], Continuous)
    s.encode(frame)


def test_errors_are_safes_errors() -> None:
    assert issubclass(DomainError, SafesError)
    assert issubclass(SchemaError, SafesError)


@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    n=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_encode_decode_round_trip_property(sizes: list[int], n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cols = [Categorical(f"c{i}", tuple(f"v{j}" for j in range(k))) for i, k in enumerate(sizes)]
    cols.append(Categorical("y", (0, 1)))
    schema = Schema(tuple(cols), (cols[0].name,), "y", 1)
    codes = np.stack([rng.integers(0, c.size, n) for c in cols], axis=1)
    df = schema.decode(codes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (schema.encode_array(df) == codes).all()
