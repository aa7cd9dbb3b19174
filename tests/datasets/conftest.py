"""Fixtures of the dataset tests: where the raw source files are, if they are here at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _candidates() -> list[Path]:
    env = os.environ.get("SAFES_SHARED_DATA")
    paths = [Path(env)] if env else []
    return [*paths, REPO.parent / "shared" / "data", Path("/work/shared/data")]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder holding the raw sources (adult_uci/, compas/, adult_pgm/); skip when absent.

    Looked up in $SAFES_SHARED_DATA, then ../shared/data beside the clone, then
    /work/shared/data.
    """
    needed = (
        "adult_uci/adult.data",
        "adult_uci/adult.test",
        "compas/compas-scores-two-years.csv",
        "adult_pgm/adult.csv",
    )
    for base in _candidates():
        if all((base / rel).is_file() for rel in needed):
            return base
    pytest.skip("raw source data (shared/data) not found; set SAFES_SHARED_DATA to run")
