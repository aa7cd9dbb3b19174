"""The plugin-author contract checks, run against the built-in and a third-party synthesizer."""

from __future__ import annotations

import numpy as np
import pytest
from thirdparty_synth import IndependentMarginals

import safes_framework
from safes_framework.base import StageContext, Synthesizer
from safes_framework.primitives import PrivateTable
from safes_framework.testing import check_synthesizer


def test_third_party_synthesizer_meets_the_contract() -> None:
    check_synthesizer(IndependentMarginals)


def test_mst_meets_the_contract() -> None:
    check_synthesizer(lambda **kw: safes_framework.synthesizer("mst", **kw))


class GlobalRandom(Synthesizer):
    def fit(self, data: PrivateTable, ctx: StageContext) -> None:
        data.measure([("sex",)], 10.0)

    def sample(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        return np.random.randint(0, 2, size=(rows, 4))  # noqa: NPY002


def test_contract_catches_global_random_state() -> None:
    with pytest.raises(AssertionError, match="global random state"):
        check_synthesizer(GlobalRandom)
