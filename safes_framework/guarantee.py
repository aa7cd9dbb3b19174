"""What a run's privacy report states beyond the ledger: assumptions, release size, delta check."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .base import Synthesizer
from .errors import PrivacyWarning, SafesError

#: What every release's guarantee relies on beyond the mathematics (see docs/privacy.md).
ASSUMPTIONS = (
    "every record takes values in the schema's declared domain, and the schema is public "
    "(it was not read from the data)",
    "the table has at least one record",
)
SEED_ASSUMPTION = (
    "the caller's seed stays secret: whoever holds it can reproduce the noise, and then the "
    "release protects nobody"
)
ROWS_ASSUMPTION = (
    "the synthesizer's use of the rows it read matches the privacy events it declared first"
)
ESTIMATED_SIZE = (
    "a DP estimate of the number of records (the synthesizer's noisy total: post-processing "
    "of its measurements), rounded, at least 1"
)


def _row_estimate(synthesizer: Synthesizer, name: str) -> float:
    """The synthesizer's DP estimate of the number of records (post-processing of its noise)."""
    estimate = synthesizer.estimated_rows()
    if isinstance(estimate, bool) or not isinstance(estimate, (int, float, np.number)):
        raise SafesError(
            f"synthesizer {name!r} returned {estimate!r} as its row-count estimate, not a number"
        )
    if not math.isfinite(float(estimate)):
        raise SafesError(f"synthesizer {name!r} returned a non-finite row-count estimate")
    return float(estimate)


def _warn_if_delta_is_large(delta: float, rows: float) -> None:
    """Warn when delta >= 1/n, with n the DP estimate of the number of records.

    A mechanism that publishes each record with probability delta is (0, delta)-DP, so a
    delta of 1/n or more permits publishing about one record outright. The exact n is
    sensitive, so the rule uses the synthesizer's DP estimate (or the caller's `rows` when
    there is none): it reveals nothing the release does not.
    """
    n = max(1.0, rows)
    if delta * n >= 1:
        warnings.warn(
            f"delta={delta:g} is not below 1/n ~ {1 / n:.3g} (n ~ {n:,.0f}, the DP estimate of "
            "the number of records): with delta >= 1/n the guarantee allows publishing about "
            "one record outright; use a delta far below 1/n (e.g. 1e-9)",
            PrivacyWarning,
            stacklevel=3,
        )
