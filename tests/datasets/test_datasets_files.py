"""The shipped data files: integers only, no personal columns, md5s as documented."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest

import safes_framework.datasets as ds

DATA = Path(ds.__file__).resolve().parent / "data"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"

PERSONAL = {
    "id",
    "name",
    "first",
    "last",
    "dob",
    "c_case_number",
    "r_case_number",
    "vr_case_number",
    "compas_screening_date",
}


def _csv(name: str) -> list[str]:
    text = gzip.decompress((DATA / ds.info(name).filename).read_bytes()).decode("ascii")
    return text.splitlines()


@pytest.mark.parametrize("name", ["adult", "compas", "adult-full"])
def test_file_is_integers_only(name: str) -> None:
    lines = _csv(name)
    assert tuple(lines[0].split(",")) == ds.schema(name).names
    assert len(lines) == ds.info(name).rows + 1
    body = "\n".join(lines[1:])
    assert re.fullmatch(r"[0-9,\n]+", body)


def test_compas_has_no_personal_columns() -> None:
    header = set(_csv("compas")[0].split(","))
    assert header == {"sex", "race", "age_cat", "c_charge_degree", "priors_count", "two_year_recid"}
    assert not header & PERSONAL


def test_only_the_documented_files_ship() -> None:
    shipped = {p.name for p in DATA.iterdir() if p.name.endswith(".gz")}
    assert shipped == {ds.info(n).filename for n in ds.names()}


def test_md5_match_the_docs() -> None:
    if not DOCS.is_file():
        pytest.skip("docs/datasets.md not present (installed package without the repo)")
    rows = {}
    for line in DOCS.read_text().splitlines():
        m = re.match(r"\| `([\w.-]+\.csv\.gz)` \|.*`([0-9a-f]{32})` \| `([0-9a-f]{32})` \|$", line)
        if m:
            rows[m.group(1)] = m.group(3)
    assert set(rows) == {ds.info(n).filename for n in ds.names()}
    for fname, csv_md5 in rows.items():
        data = gzip.decompress((DATA / fname).read_bytes())
        assert hashlib.md5(data).hexdigest() == csv_md5, fname
