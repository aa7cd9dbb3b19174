"""Tests of schema files: the TOML format of every column kind, JSON, strict keys, drafts."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safes_framework import Categorical, Continuous, Integer, Schema
from safes_framework.errors import ConfigError, DataError, SchemaError
from safes_framework.schema import NonPrivateDomainWarning, QuantileBinned
from safes_framework.schema_files import (
    draft_schema,
    is_draft,
    read_schema,
    read_schema_document,
    schema_to_toml,
)

EVERY_KIND = """
protected = ["group"]
label = "approved"
favorable = "yes"

[privileged]
group = ["A"]

[[columns]]
name = "group"
kind = "categorical"
categories = ["A", "B", "C"]

[[columns]]
name = "education"
kind = "categorical"
categories = ["none", "school", "college"]
ordered = true

[[columns]]
name = "children"
kind = "integer"
low = 0
high = 6

[[columns]]
name = "age"
kind = "continuous"
integer = true
edges = [18, 30, 50, 80]

[[columns]]
name = "hours"
kind = "continuous"
low = 0
high = 100
bins = 4
draw = "midpoint"

[[columns]]
name = "income"
kind = "continuous"
low = 0
high = 200000
bins = 5
edges = "dp"
grid = 400

[[columns]]
name = "approved"
kind = "categorical"
categories = ["no", "yes"]
"""


@pytest.fixture
def toml_file(tmp_path: Path) -> Path:
    path = tmp_path / "loans.toml"
    path.write_text(EVERY_KIND)
    return path


def test_toml_declares_every_column_kind(toml_file: Path) -> None:
    s = read_schema(toml_file)
    assert s["group"] == Categorical("group", ("A", "B", "C"))
    assert s["education"] == Categorical("education", ("none", "school", "college"), ordered=True)
    assert s["children"] == Integer("children", 0, 6)
    assert s["age"] == Continuous("age", (18, 30, 50, 80), integer=True)
    assert s["hours"] == Continuous("hours", (0, 25, 50, 75, 100), draw="midpoint")
    assert s["income"] == QuantileBinned("income", 0, 200000, 5, grid=400)
    assert s.protected == ("group",) and s.label == "approved" and s.favorable == "yes"
    assert s.privileged == {"group": ("A",)}
    assert s.sizes == {
        "group": 3, "education": 3, "children": 7, "age": 3, "hours": 4, "income": 5,
        "approved": 2,
    }


def test_toml_and_json_round_trip(toml_file: Path, tmp_path: Path) -> None:
    s = read_schema(toml_file)
    again = tmp_path / "again.toml"
    again.write_text(s.to_toml())
    assert read_schema(again) == s
    as_json = tmp_path / "s.json"
    as_json.write_text(s.to_json())
    assert Schema.from_file(as_json) == s


def test_the_json_of_earlier_releases_is_still_read(tmp_path: Path) -> None:
    old = {
        "columns": [
            {"name": "sex", "kind": "categorical", "categories": [0, 1]},
            {"name": "age", "kind": "integer", "low": 17, "high": 90},
            {"name": "hours", "kind": "continuous", "edges": [0.0, 40.0, 100.0]},
            {"name": "y", "kind": "categorical", "categories": [0, 1]},
        ],
        "protected": ["sex"], "label": "y", "favorable": 1, "privileged": {"sex": [1]},
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    s = read_schema(path)
    assert s["hours"] == Continuous("hours", (0.0, 40.0, 100.0))
    assert s.to_dict() == old


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('kind = "categorical"\ncategories = ["A"]\ncolour = "red"', "unknown key 'colour'"),
        ('kind = "integer"\nlow = 0', "missing key 'high'"),
        ('kind = "continuous"\nedges = [0, 1]\nbins = 3', "not both"),
        ('kind = "continuous"\nedges = "quantiles"', "list of numbers or \"dp\""),
        ('kind = "continuous"\nedges = [0, 1]\ngrid = 10', "grid goes with"),
        ('kind = "continuous"\nlow = 0\nhigh = 10\nbins = 20\nedges = "dp"\ngrid = 10',
         "need at least 20 grid cells"),
        ('kind = "continuous"\nedges = [1.2, 1.5, 3]\ninteger = true', "holds no integer"),
        ('kind = "ordinal"', "kind must be one of"),
    ],
)
def test_bad_column_tables_name_the_column_and_the_key(
    tmp_path: Path, change: str, message: str
) -> None:
    text = EVERY_KIND.replace(
        'name = "children"\nkind = "integer"\nlow = 0\nhigh = 6', f'name = "children"\n{change}'
    )
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SchemaError, match=message) as info:
        read_schema(path)
    assert "'children'" in str(info.value) and "bad.toml" in str(info.value)


def test_unknown_top_level_key_and_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('lable = "approved"\n' + EVERY_KIND)
    with pytest.raises(SchemaError, match="unknown key 'lable'"):
        read_schema(path)
    with pytest.raises(ConfigError, match="not valid TOML"):
        (tmp_path / "broken.toml").write_text("columns = [")
        read_schema(tmp_path / "broken.toml")
    with pytest.raises(ConfigError, match=r"expected a \.toml or \.json file"):
        read_schema(tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match="cannot read schema file"):
        read_schema(tmp_path / "missing.toml")


def test_dp_binned_columns_resolve_to_public_edges() -> None:
    col = QuantileBinned("income", 0, 1000, 4, grid=10)
    assert col.grid_edges() == tuple(float(x) for x in range(0, 1001, 100))
    assert col.fine().size == 10 and col.size == 4
    resolved = col.resolve((0, 100, 300, 600, 1000))
    assert resolved == Continuous("income", (0, 100, 300, 600, 1000))
    with pytest.raises(SchemaError, match="expected 5 edges"):
        col.resolve((0, 500, 1000))
    with pytest.raises(SchemaError, match="DP quantiles"):
        col.encode(pd.Series([5.0]))
    ints = QuantileBinned("age", 18, 80, 6, integer=True)
    assert ints.grid_edges() == tuple(float(a) for a in range(18, 81))  # one cell per year
    coarse = QuantileBinned("n", 0, 10_000, 3, grid=100, integer=True)
    assert np.diff(coarse.grid_edges()).max() == 100


def test_protected_and_label_columns_cannot_have_dp_edges() -> None:
    income = QuantileBinned("income", 0, 10, 2)
    y = Categorical("y", (0, 1))
    with pytest.raises(SchemaError, match="cannot have DP bin edges"):
        Schema((income, y), ("income",), "y", 1)
    with pytest.raises(SchemaError, match="must be categorical or integer"):
        Schema((Categorical("g", (0, 1)), income), ("g",), "income", 1)


def test_validate_checks_dp_binned_columns_against_their_bounds(toml_file: Path) -> None:
    s = read_schema(toml_file)
    row = {
        "group": "A", "education": "none", "children": 2, "age": 40, "hours": 35.5,
        "income": 52_000.0, "approved": "yes",
    }
    s.validate(pd.DataFrame([row]))
    with pytest.raises(DataError, match="'income'") as info:
        s.validate(pd.DataFrame([{**row, "income": 250_000.0}]))
    assert info.value.value == 250_000.0


@pytest.fixture
def people() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 300
    return pd.DataFrame(
        {
            "group": rng.choice(["A", "B", "C"], n),
            "age": rng.integers(18, 81, n),
            "visits": rng.integers(0, 500, n),
            "job": rng.choice(["clerk", "nurse"], n),
            "score": rng.normal(50, 10, n),
            "member": rng.random(n) < 0.5,
            "approved": rng.choice(["no", "yes"], n),
        }
    )


def test_draft_reads_every_kind_from_the_data_and_warns(people: pd.DataFrame) -> None:
    with pytest.warns(NonPrivateDomainWarning, match="NOT private"):
        s, notes = draft_schema(
            people, protected=["group"], label="approved", favorable="yes",
            privileged={"group": ["A"]},
        )
    assert s["group"] == Categorical("group", ("A", "B", "C"))
    assert s["age"] == Integer("age", int(people.age.min()), int(people.age.max()))
    visits = s["visits"]
    assert isinstance(visits, Continuous) and visits.integer and visits.size == 10
    assert s["job"] == Categorical("job", ("clerk", "nurse"))
    score = s["score"]
    assert isinstance(score, Continuous) and not score.integer
    assert score.edges[0] <= people.score.min() and score.edges[-1] >= people.score.max()
    assert s["member"] == Categorical("member", (False, True))
    assert s.favorable == "yes" and s.privileged == {"group": ("A",)}
    assert "read from the data" in notes["age"]
    s.validate(people)


def test_draft_matches_command_line_values_to_the_columns_type(people: pd.DataFrame) -> None:
    people = people.assign(approved=(people.approved == "yes").astype(int))
    with pytest.warns(NonPrivateDomainWarning):
        s, _ = draft_schema(people, protected=["member"], label="approved", favorable="1",
                            privileged={"member": ["true"]})
    assert s.favorable == 1 and s.privileged == {"member": (True,)}
    with pytest.warns(NonPrivateDomainWarning), pytest.raises(SchemaError, match="'2'"):
        draft_schema(people, protected=["member"], label="approved", favorable="2")


def test_draft_refuses_missing_values_and_unknown_columns(people: pd.DataFrame) -> None:
    people.loc[5, "score"] = np.nan
    with pytest.warns(NonPrivateDomainWarning), pytest.raises(DataError, match="'score'"):
        draft_schema(people, protected=["group"], label="approved", favorable="yes")
    with pytest.warns(NonPrivateDomainWarning), pytest.raises(DataError, match="'race'"):
        draft_schema(people, protected=["race"], label="approved", favorable="yes")


def test_draft_file_is_marked_and_still_parses(people: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.warns(NonPrivateDomainWarning):
        s, notes = draft_schema(people, protected=["group"], label="approved", favorable="yes")
    path = tmp_path / "draft.toml"
    path.write_text(schema_to_toml(s, header=["DRAFT"], notes=notes, draft=True))
    doc = read_schema_document(path)
    assert is_draft(doc) and tomllib.loads(path.read_text())["draft"] is True
    with pytest.warns(NonPrivateDomainWarning, match="is a draft"):
        assert read_schema(path) == s
    assert "# DRAFT" in path.read_text() and "# bounds" in path.read_text()


def test_toml_writer_quotes_names_and_escapes_strings(tmp_path: Path) -> None:
    s = Schema(
        (
            Categorical("income>50K", (0, 1)),
            Categorical('job "title"', ('a\\b', "ü", "x\ny")),
        ),
        protected=('job "title"',),
        label="income>50K",
        favorable=1,
        privileged={'job "title"': ("ü",)},
    )
    path = tmp_path / "q.toml"
    path.write_text(s.to_toml())
    assert read_schema(path) == s
