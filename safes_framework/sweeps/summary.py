"""What a sweep did (its running summary) and the one-line progress display of it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..evaluation import (
    Unit,
)

logger = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    """What a sweep did.

    Attributes:
        out: the results directory.
        units_planned: units of the grid still to run when the sweep started.
        units_done: units that finished (their rows are stored).
        units_lost: units the executor could not run (crashed worker...); rerun to resume.
        cells_skipped: cells already in the store when the sweep started.
        cells_ok: cells run now with every metric computed.
        cells_failed: cells run now with a failure recorded (release or a metric).
        seconds: wall time.
        errors: reasons of lost units.
    """

    out: Path
    units_planned: int = 0
    units_done: int = 0
    units_lost: int = 0
    cells_skipped: int = 0
    cells_ok: int = 0
    cells_failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


Progress = Callable[[SweepSummary, Unit], None]


class _ProgressLine:
    def __init__(self, stream: Any, min_interval: float = 2.0) -> None:
        self.stream = stream
        self.min_interval = min_interval
        self._last = 0.0

    def __call__(self, s: SweepSummary, unit: Unit) -> None:
        now = time.monotonic()
        finished = s.units_done + s.units_lost
        if finished < s.units_planned and now - self._last < self.min_interval:
            return
        self._last = now
        left = ""
        if s.units_done:
            eta = s.seconds / finished * (s.units_planned - finished)
            left = f", ~{eta:.0f} s left"
        print(
            f"[sweep] {finished}/{s.units_planned} units ({unit.label}); "
            f"{s.cells_failed} failed cells; {s.seconds:.0f} s{left}",
            file=self.stream,
            flush=True,
        )
