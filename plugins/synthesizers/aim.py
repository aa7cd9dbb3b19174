"""AIM (McKenna, Mullins, Sheldon, Miklau, VLDB 2022): adaptive and iterative marginals on mbi."""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from safes_framework import hookimpl
from safes_framework.base import StageContext, Synthesizer
from safes_framework.errors import ConfigError, SafesError
from safes_framework.primitives import PrivateTable
from safes_framework.registry import Registry

from .. import pgm

logger = logging.getLogger(__name__)

Clique = tuple[str, ...]

#: Share of each round's zCDP budget spent on measurement; the rest goes to selection (paper).
MEASURE_SHARE = 0.9
#: Rounds per column when `rounds` is not given (T = 16 d, as in the paper).
ROUNDS_PER_COLUMN = 16
#: Estimation engines, all mbi's mirror descent (same iterates): "tree" (in numpy on the junction
#: tree of the measured cliques), "dense" (in numpy on the full joint table: small domains),
#: "mbi" (mbi itself, JAX: one compilation per set of measured cliques; slow on CPU).
ENGINES = ("auto", "dense", "mbi", "tree")
#: "auto" uses the dense engine when (cells of the full joint) x (candidates) is at most this:
#: one dense iteration costs about that many operations.
DENSE_MAX_WORK = 1 << 21
#: Mirror-descent iterations per round are max_iters / ROUND_ITERS_DIVISOR, warm-started from
#: the previous round's model (the reference runs max_iters every round; see docs/aim.md for
#: the measured accuracy of both).
ROUND_ITERS_DIVISOR = 4
#: Each round's line search starts from the previous round's last step size when that is
#: larger than mbi's conservative 2 / (L N), instead of growing back from it by 1% a step.
CARRY_STEP_SIZE = True
#: Early stop of each round's fit, of the initial fit and of the final fit (mbi's rule: the
#: loss improved by at most this relative amount over two blocks of iterations); None runs them
#: all. The final fit stops at 1% a block: by then it fits the noise of the measurements, and
#: the marginals it changes are no closer to the data (docs/aim.md).
ROUND_TOL: float | None = None
INITIAL_TOL: float | None = None
FINAL_TOL: float | None = 1e-2
#: A round's fit (tree engine) stops once the marginal it has just measured has settled: its
#: move over a block of iterations is at most this share of its move since the round began.
ROUND_SETTLE: float | None = 0.1
#: Largest work (iterations x cells of the model) of one round's fit and of the initial and
#: final fits (tree engine). One iteration costs about a pass over the model's cells, so
#: these bound AIM's time as the model grows with the number of records; a model of up to
#: 200,000 cells (1.5 MB) keeps every iteration of the schedule.
ROUND_WORK: float | None = 5e7
FINAL_WORK: float | None = 5e8

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one round (public information: derived from noisy outputs only).

    Attributes:
        round: 1-based round number.
        clique: the selected marginal.
        sigma: the Gaussian noise std of its measurement.
        epsilon: the exponential mechanism's epsilon of the selection.
        candidates: how many candidates passed the model-size filter.
        annealed: whether sigma was halved (and epsilon doubled) after this round.
        final: whether this was the last round (spending what was left).
    """

    round: int
    clique: Clique
    sigma: float
    epsilon: float
    candidates: int
    annealed: bool
    final: bool


def _max_rounds(columns: int, rounds: int) -> int:
    """Rounds AIM runs if it never anneals: each takes 1/T of the budget, the one-way
    marginals 0.9 d/T, and the last round starts once less than two rounds' worth is left."""
    used, t = MEASURE_SHARE * columns / rounds, 0
    while True:
        t += 1
        if 1.0 - used < 2.0 / rounds - 1e-12:
            return t
        used += 1.0 / rounds


def _positive_int(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"aim: {name} must be a positive integer, got {value!r}")


def _normalise_workload(workload: object) -> tuple[tuple[Clique, float], ...] | None:
    """A user workload as ((clique, weight), ...); cliques given bare get weight 1."""
    if workload is None:
        return None
    if isinstance(workload, (str, bytes)) or not isinstance(workload, Sequence):
        raise ConfigError(
            "aim: workload must be a list of marginals, each a list of column names or a "
            f"(columns, weight) pair, got {workload!r}"
        )
    out = []
    for item in workload:
        weight: object = 1.0
        cols: object = item
        if (
            isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2
            and isinstance(item[1], (int, float)) and not isinstance(item[1], bool)
        ):
            cols, weight = item[0], item[1]
        if isinstance(cols, str):
            cols = (cols,)
        if not isinstance(cols, Sequence) or not cols or not all(isinstance(c, str) for c in cols):
            raise ConfigError(
                f"aim: workload entry {item!r} must name one or more columns (strings)"
            )
        if len(set(cols)) != len(cols):
            raise ConfigError(f"aim: workload marginal {tuple(cols)} names a column twice")
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
            raise ConfigError(
                f"aim: workload weight of {tuple(cols)} must be positive and finite, got {weight!r}"
            )
        out.append((tuple(cols), float(weight)))
    if not out:
        raise ConfigError("aim: workload is empty; give at least one marginal or leave it None")
    return tuple(out)


class AIM(Synthesizer):
    """AIM: adaptive selection of marginals to measure, fitted with mbi, under one budget.

    The (epsilon, delta) budget is planned into zCDP by the run's accountant. All one-way
    marginals are measured first; each round then selects the candidate marginal the current
    model gets most wrong (exponential mechanism on the weighted L1 error minus the expected
    noise) and measures it with Gaussian noise, 0.9 of the round's budget to the measurement
    and 0.1 to the selection. Candidates whose junction tree would exceed a budget-dependent
    share of `max_model_size` are skipped; when a measurement barely moves the model, the noise
    is halved and the selection epsilon doubled; the last round spends exactly what is left.

    Args:
        epsilon: privacy budget epsilon.
        delta: privacy budget delta.
        degree: size of the workload's marginals (all combinations of `degree` columns).
        max_cells: workload marginals with more cells than this are left out.
        max_model_size: largest junction tree (in MB) the model may grow to.
        rounds: the round budget T (default 16 x number of columns); each round's share of the
            budget is 1/T of the total, so fewer rounds means less noise per round.
        max_iters: mirror-descent iterations of the initial and final estimation; each round
            warm-starts from the previous model with a quarter of them.
        workload: marginals to target instead of the default: column-name lists, or
            (columns, weight) pairs.
        engine: "auto" (default: "dense" while joint cells x candidates <= DENSE_MAX_WORK, else
            "tree"),
            "dense", "tree" or "mbi"; see ENGINES.
        loss_weighting: weight of a measurement's squared residual in the estimation loss:
            "inverse_variance" (default, 1 / sigma^2, as in mbi 2.0) or "inverse_std"
            (1 / sigma, mbi 1.0's loss; for exact comparisons with mbi 1.0's AIM script).
    """

    name = "aim"
    estimates_rows = True

    def __init__(
        self,
        epsilon: float,
        delta: float,
        *,
        degree: int = 2,
        max_cells: int = 10_000,
        max_model_size: float = 80.0,
        rounds: int | None = None,
        max_iters: int = 1000,
        workload: Sequence[Any] | None = None,
        engine: str = "auto",
        loss_weighting: str = "inverse_variance",
    ) -> None:
        super().__init__(epsilon, delta)
        _positive_int("degree", degree)
        _positive_int("max_cells", max_cells)
        _positive_int("rounds", rounds, allow_none=True)
        _positive_int("max_iters", max_iters)
        if isinstance(max_model_size, bool) or not (
            isinstance(max_model_size, (int, float)) and math.isfinite(max_model_size)
            and max_model_size > 0
        ):
            raise ConfigError(
                f"aim: max_model_size must be a positive number of MB, got {max_model_size!r}"
            )
        if engine not in ENGINES:
            raise ConfigError(f"aim: engine must be one of {ENGINES}, got {engine!r}")
        if loss_weighting not in pgm.LOSS_WEIGHTINGS:
            raise ConfigError(
                f"aim: loss_weighting must be one of {pgm.LOSS_WEIGHTINGS}, got {loss_weighting!r}"
            )
        if engine == "mbi" and loss_weighting != "inverse_variance":
            raise ConfigError(
                "aim: engine 'mbi' (mbi 2.0) weights by 1 / sigma^2 only; use engine 'auto', "
                "'tree' or 'dense' with loss_weighting='inverse_std'"
            )
        self.loss_weighting = loss_weighting
        self.degree = degree
        self.max_cells = max_cells
        self.max_model_size = float(max_model_size)
        self.rounds = rounds
        self.max_iters = max_iters
        self.workload = _normalise_workload(workload)
        self.engine = engine
        self._marginals: pgm.TreeMarginals | None = None
        self._columns: tuple[str, ...] = ()
        self.history_: list[RoundRecord] = []
        self.cliques_: tuple[Clique, ...] = ()
        self.engine_: str = ""

    def params(self) -> dict[str, Any]:
        return {
            **super().params(), "degree": self.degree, "max_cells": self.max_cells,
            "max_model_size": self.max_model_size, "rounds": self.rounds,
            "max_iters": self.max_iters,
            "workload": None if self.workload is None
            else [[list(c), w] for c, w in self.workload],
            "engine": self.engine, "loss_weighting": self.loss_weighting,
        }

    # -- pre-flight (public information only; nothing is spent) ----------------------------------

    def _workload(self, data: PrivateTable) -> list[tuple[Clique, float]]:
        columns = data.columns
        order = {c: i for i, c in enumerate(columns)}
        if self.workload is None:
            k = min(self.degree, len(columns))
            combos = list(itertools.combinations(columns, k))
            default = [(cl, 1.0) for cl in combos if data.domain_size(cl) <= self.max_cells]
            if not default:
                smallest = min(data.domain_size(cl) for cl in combos)
                raise ConfigError(
                    f"aim: every {k}-way marginal has more than max_cells={self.max_cells} "
                    f"cells (the smallest has {smallest}); raise max_cells to at least "
                    f"{smallest} or lower degree"
                )
            return default
        work: dict[Clique, float] = {}
        for cols, weight in self.workload:
            unknown = [c for c in cols if c not in order]
            if unknown:
                raise ConfigError(
                    f"aim: workload column {unknown[0]!r} is not in the table; columns are "
                    f"{list(columns)}"
                )
            cl = tuple(sorted(cols, key=order.__getitem__))
            work[cl] = work.get(cl, 0.0) + weight
        return list(work.items())

    @staticmethod
    def _candidates(workload: list[tuple[Clique, float]]) -> dict[Clique, float]:
        """Downward closure of the workload, each weighted by its overlap with the workload."""
        closure: set[Clique] = set()
        for cl, _ in workload:
            for r in range(1, len(cl) + 1):
                closure.update(itertools.combinations(cl, r))
        ordered = sorted(closure, key=lambda c: (len(c), c))
        return {
            c: float(sum(w * len(set(c) & set(cl)) for cl, w in workload)) for c in ordered
        }

    def preflight(self, data: PrivateTable) -> dict[str, Any]:
        """Check that the settings can run on `data`'s schema, before any budget is spent.

        Returns a summary: workload and candidate counts, the round budget T, the rounds run
        if AIM never anneals, the sizes (MB) of the one-way model and of a model of the whole
        workload, the engine, and workload marginals too large to ever be measured.

        Raises:
            ConfigError: the workload is empty or names unknown columns, `rounds` is below the
                number of columns, or even the one-way model exceeds `max_model_size`.
        """
        columns = data.columns
        d = len(columns)
        if d == 0:
            raise ConfigError("aim: the table has no columns")
        workload = self._workload(data)
        candidates = self._candidates(workload)
        rounds = self.rounds or ROUNDS_PER_COLUMN * d
        if rounds < d:
            raise ConfigError(
                f"aim: rounds={rounds} is below the number of columns ({d}); the one-way "
                f"marginals alone take d/T of the measurement budget, so T must be at least {d}"
            )
        dom = pgm.domain(data.sizes)
        oneway_mb = sum(data.sizes.values()) * 8 / 2**20
        if oneway_mb > self.max_model_size:
            raise ConfigError(
                f"aim: the one-way marginals alone need {oneway_mb:.3g} MB, above "
                f"max_model_size={self.max_model_size:g} MB; raise max_model_size"
            )
        oneway = [(c,) for c in columns]
        sizer = pgm.JunctionTreeSizer(dom)
        too_big = [
            cl for cl, _ in workload
            if len(cl) > 1 and sizer.size_mb(oneway + [cl]) > self.max_model_size
        ]
        if too_big:
            msg = (
                f"aim: {len(too_big)} of {len(workload)} workload marginals can never be measured: "
                f"alone they exceed max_model_size={self.max_model_size:g} MB (e.g. {too_big[0]}); "
                "raise max_model_size or lower max_cells"
            )
            warnings.warn(msg, UserWarning, stacklevel=3)
            logger.warning(msg)
        cells = math.prod(data.sizes.values())
        engine = self.engine
        if engine == "auto":
            engine = "dense" if cells * len(candidates) <= DENSE_MAX_WORK else "tree"
        workload_mb = sizer.size_mb(oneway + [cl for cl, _ in workload])
        if workload_mb > self.max_model_size:
            logger.info(
                "aim: a model of the whole workload would need %.3g MB, above max_model_size=%g "
                "MB; AIM will measure the marginals that fit", workload_mb, self.max_model_size,
            )
        summary = {
            "columns": d, "workload": len(workload), "candidates": len(candidates),
            "rounds": rounds, "max_rounds": _max_rounds(d, rounds),
            "oneway_model_mb": oneway_mb, "workload_model_mb": workload_mb,
            "joint_cells": cells, "engine": engine, "never_measurable": too_big,
        }
        logger.info("aim pre-flight: %s", summary)
        return summary

    # -- the mechanism ---------------------------------------------------------------------------

    def fit(self, data: PrivateTable, ctx: StageContext) -> None:
        plan = self.preflight(data)
        columns = data.columns
        d = len(columns)
        candidates = self._candidates(self._workload(data))
        rounds = plan["rounds"]
        dom = pgm.domain(data.sizes)
        acc = data.accountant

        engine = _engine(plan["engine"], dom, list(candidates) + [(c,) for c in columns])
        round_iters = max(1, self.max_iters // ROUND_ITERS_DIVISOR)
        rho = acc.plan_zcdp()
        sigma = math.sqrt(rounds / (2.0 * MEASURE_SHARE * rho))
        eps = math.sqrt(8.0 * (1.0 - MEASURE_SHARE) * rho / rounds)
        ctx.progress(0, rounds, f"aim: measuring {d} one-way marginals ({len(candidates)} "
                                f"candidates, at most {plan['max_rounds']} rounds)")
        log = pgm.MeasurementLog(self.loss_weighting)
        for m in data.measure([(c,) for c in columns], sigma, label="one-way marginals"):
            log.add(m.clique, m.values, m.sigma)
        rho_used = d / (2.0 * sigma**2)
        model = engine.fit(log, self.max_iters, None, INITIAL_TOL, None, FINAL_WORK)
        marginals = engine.marginals(model)
        sizes = pgm.ModelSizeCache(dom)
        joint_mb = d * math.prod(data.sizes.values()) * 8 / 2**20  # bounds any junction tree's size

        history: list[RoundRecord] = []
        t = 0
        final = False
        while not final:
            t += 1
            if rho - rho_used < 2.0 * (1.0 / (2.0 * sigma**2) + eps**2 / 8.0):
                # Last round: spend exactly what the accountant says is left.
                remaining = acc.plan_zcdp()
                sigma = math.sqrt(1.0 / (2.0 * MEASURE_SHARE * remaining))
                eps = math.sqrt(8.0 * (1.0 - MEASURE_SHARE) * remaining)
                final = True
            rho_used += eps**2 / 8.0 + 1.0 / (2.0 * sigma**2)
            size_limit = self.max_model_size * min(1.0, rho_used / rho)

            measured = log.cliques
            free = {sub for cl in measured for r in range(1, len(cl) + 1)
                    for sub in itertools.combinations(cl, r)}
            if joint_mb <= size_limit:
                allowed = list(candidates)
            else:
                allowed = [cl for cl in candidates
                           if cl in free or sizes.size_with(measured, cl) <= size_limit]
            estimates = {cl: marginals.vector(cl) for cl in allowed}
            chosen = data.select(
                allowed, epsilon=eps, estimates=estimates,
                weights=[candidates[cl] for cl in allowed],
                penalties=[_SQRT_2_OVER_PI * sigma * data.domain_size(cl) for cl in allowed],
                label=f"round {t} selection",
            )
            if final:
                sigma = acc.plan_gaussian(1)  # the rest of the budget, to the last bit
            (m,) = data.measure([chosen], sigma, label=f"round {t} measurement")
            log.add(m.clique, m.values, m.sigma)
            before = estimates[chosen]
            model = engine.fit(log, round_iters, model, ROUND_TOL, chosen, ROUND_WORK)
            marginals = engine.marginals(model)
            after = marginals.vector(chosen)
            cells = data.domain_size(chosen)
            annealed = False
            if not final and np.abs(after - before).sum() <= _SQRT_2_OVER_PI * sigma * cells:
                annealed = True
            history.append(RoundRecord(t, chosen, sigma, eps, len(allowed), annealed, final))
            logger.debug("aim round %d: %s, %d candidates, sigma %.4g, eps %.4g%s", t, chosen,
                         len(allowed), sigma, eps, ", annealed" if annealed else "")
            if annealed:
                sigma /= 2.0
                eps *= 2.0
            ctx.progress(
                t, rounds if not final else t,
                f"aim: round {t} measured {chosen}; budget used {min(1.0, rho_used / rho):.1%}",
            )

        model = engine.fit(log, self.max_iters, model, FINAL_TOL, None, FINAL_WORK)
        self._marginals = engine.marginals(model)
        self._columns = columns
        self.history_ = history
        self.cliques_ = log.cliques
        self.engine_ = plan["engine"]
        logger.info("aim: %d rounds, %d distinct marginals measured, engine %s",
                    t, len(log), self.engine_)

    def estimated_rows(self) -> float:
        """The model's total: the minimum-variance combination of the noisy marginals' sums."""
        if self._marginals is None:
            raise SafesError("aim: call fit() before estimated_rows()")
        return self._marginals.total

    def sample(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        if self._marginals is None:
            raise SafesError("aim: call fit() before sample()")
        data = pgm.sample_tree(self._marginals, rows, rng)
        out = np.empty((rows, len(self._columns)), dtype=np.int64, order="F")
        for j, c in enumerate(self._columns):
            out[:, j] = data.pop(c)
        return out  # column-major: each column is contiguous for decoding


class _Engine:
    """Fits a model to a measurement log and answers its marginals (see `ENGINES`)."""

    def __init__(self, fit: Any, marginals: Any) -> None:
        self.fit = fit
        self.marginals = marginals


def _engine(name: str, dom: Any, cliques: list[Clique]) -> _Engine:
    if name == "mbi":
        return _Engine(
            lambda log, iters, warm, tol, watch=None, work=None: pgm.estimate_graph(
                dom, log, iters=iters, warm_start=warm, tol=tol
            ),
            pgm.TreeMarginals.from_model,
        )
    md = pgm.DenseMirrorDescent(dom, cliques) if name == "dense" else pgm.TreeMirrorDescent(dom)

    def fit(
        log: pgm.MeasurementLog,
        iters: int,
        warm: pgm.TreeFit | None,
        tol: float | None,
        watch: Clique | None = None,
        work: float | None = None,
    ) -> pgm.TreeFit:
        step = warm.step_size if (warm is not None and CARRY_STEP_SIZE) else None
        if isinstance(md, pgm.TreeMirrorDescent):
            return md.estimate(
                log, iters=iters, warm_start=warm, step_size=step, tol=tol,
                watch=watch if ROUND_SETTLE is not None else None,
                settle_share=ROUND_SETTLE or 0.0, max_work=work,
            )
        return md.estimate(log, iters=iters, warm_start=warm, step_size=step, tol=tol)

    return _Engine(fit, lambda fitted: fitted.marginals)


@hookimpl
def safes_register_synthesizers(register: Registry) -> None:
    register.add("aim", AIM, description="AIM (McKenna et al. 2022) on mbi")
