"""docs/privacy.md stays honest: every public name is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from safes_framework import privacy

DOCS = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"


@pytest.mark.parametrize("name", privacy.__all__)
def test_every_public_name_is_documented(name: str) -> None:
    assert f"`{name}" in DOCS.read_text(encoding="utf-8"), f"{name} missing from docs/privacy.md"


@pytest.mark.parametrize(
    "method",
    [
        "compose",
        "can_afford",
        "epsilon",
        "delta",
        "plan_zcdp",
        "plan_gaussian",
        "plan_subsampled_gaussian",
        "copy",
        "to_dict",
        "to_json",
        "spent",
        "remaining_epsilon",
        "rdp",
        "entries",
        "on_spend",
    ],
)
def test_every_accountant_member_is_documented(method: str) -> None:
    assert hasattr(privacy.RDPAccountant, method) or method in vars(privacy.RDPAccountant())
    assert f"`{method}" in DOCS.read_text(encoding="utf-8")
