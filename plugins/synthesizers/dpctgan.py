"""DP-CTGAN: CTGAN (Xu et al. 2019) with its discriminator trained by DP-SGD on opacus."""

from __future__ import annotations

import importlib.util
import logging
import math
from typing import Any

import numpy as np

from safes_framework import hookimpl
from safes_framework.base import StageContext, Synthesizer
from safes_framework.errors import ConfigError, PluginUnavailableError, SafesError
from safes_framework.primitives import PrivateTable
from safes_framework.privacy import SubsampledGaussian
from safes_framework.registry import Registry

logger = logging.getLogger(__name__)

#: The optional extra that brings torch and opacus.
INSTALL = "pip install 'safes-framework[dpsgd]'"


def _missing_dependencies() -> list[str]:
    return [m for m in ("torch", "opacus") if importlib.util.find_spec(m) is None]


def _positive(name: str, value: object, kind: type = float) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    if not ok or not (math.isfinite(value) and value > 0):  # type: ignore[arg-type]
        what = "a positive integer" if kind is int else "a positive finite number"
        raise ConfigError(f"dpctgan: {name} must be {what}, got {value!r}")


def _dims(name: str, value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"dpctgan: {name} must be a non-empty list of layer widths, got {value!r}"
        )
    for v in value:
        _positive(name, v, int)
    return tuple(int(v) for v in value)


class DPCTGAN(Synthesizer):
    """DP-CTGAN: CTGAN's conditional GAN whose discriminator is trained by DP-SGD (opacus).

    The run's (epsilon, delta) is planned by the core accountant in two parts: a share
    (`marginal_share` of the zCDP budget) measures every one-way marginal with Gaussian noise
    (they give the conditions' frequencies, the generator's starting point and the DP row count),
    then the discriminator is trained by `steps` DP-SGD steps on Poisson samples of rate q =
    min(1, `batch_size` / noisy row count), with the noise multiplier planned so that the whole run
    spends exactly the budget. The generator only sees the discriminator and the noisy marginals
    (post-processing). Every column is categorical here: the schema's codes (continuous columns
    through their public bins), one-hot encoded.

    Args:
        epsilon: privacy budget epsilon.
        delta: privacy budget delta.
        steps: discriminator (DP-SGD) steps.
        batch_size: expected number of real rows per step: the Poisson sampling rate is
            q = min(1, batch_size / noisy row count).
        marginal_share: share of the zCDP budget spent on the one-way marginals.
        max_grad_norm: per-sample clipping norm of the discriminator's gradients.
        embedding_dim: size of the generator's noise input.
        generator_dims: widths of the generator's residual layers.
        discriminator_dims: widths of the discriminator's hidden layers.
        generator_lr: generator learning rate (Adam).
        discriminator_lr: discriminator learning rate (Adam).
        generator_steps: generator updates per discriminator step (free: post-processing).
        generator_batch: rows per generator update.
        marginal_weight: weight of the generator's one-way-marginal term (0 disables it).
        threads: torch intra-op threads during fit and sample.
    """

    name = "dpctgan"
    #: The release's default row count is a DP estimate (the noisy one-way totals).
    estimates_rows = True

    def __init__(
        self,
        epsilon: float,
        delta: float,
        *,
        steps: int = 50,
        batch_size: int = 8192,
        marginal_share: float = 0.1,
        max_grad_norm: float = 1.0,
        embedding_dim: int = 64,
        generator_dims: tuple[int, ...] | list[int] = (128, 128),
        discriminator_dims: tuple[int, ...] | list[int] = (64,),
        generator_lr: float = 5e-4,
        discriminator_lr: float = 5e-3,
        generator_steps: int = 4,
        generator_batch: int = 1024,
        marginal_weight: float = 10.0,
        threads: int = 1,
    ) -> None:
        missing = _missing_dependencies()
        if missing:
            raise PluginUnavailableError(
                f"dpctgan needs {' and '.join(missing)} (DP-SGD); install them with {INSTALL}"
            )
        super().__init__(epsilon, delta)
        for name, value in (
            ("steps", steps), ("batch_size", batch_size), ("embedding_dim", embedding_dim),
            ("generator_steps", generator_steps), ("generator_batch", generator_batch),
            ("threads", threads),
        ):
            _positive(name, value, int)
        for name, value in (
            ("max_grad_norm", max_grad_norm), ("generator_lr", generator_lr),
            ("discriminator_lr", discriminator_lr),
        ):
            _positive(name, value)
        if isinstance(marginal_share, bool) or not (
            isinstance(marginal_share, (int, float)) and 0.0 < marginal_share < 1.0
        ):
            raise ConfigError(
                f"dpctgan: marginal_share must lie strictly between 0 and 1, got {marginal_share!r}"
            )
        if isinstance(marginal_weight, bool) or not (
            isinstance(marginal_weight, (int, float)) and math.isfinite(marginal_weight)
            and marginal_weight >= 0
        ):
            raise ConfigError(
                f"dpctgan: marginal_weight must be a finite number >= 0, got {marginal_weight!r}"
            )
        self.steps = steps
        self.batch_size = batch_size
        self.marginal_share = float(marginal_share)
        self.max_grad_norm = float(max_grad_norm)
        self.embedding_dim = embedding_dim
        self.generator_dims = _dims("generator_dims", generator_dims)
        self.discriminator_dims = _dims("discriminator_dims", discriminator_dims)
        self.generator_lr = float(generator_lr)
        self.discriminator_lr = float(discriminator_lr)
        self.generator_steps = generator_steps
        self.generator_batch = generator_batch
        self.marginal_weight = float(marginal_weight)
        self.threads = threads
        self._model: Any = None
        self._rows_estimate: float | None = None
        self._columns: tuple[str, ...] = ()
        #: The DP-SGD plan of the last fit: sampling rate, steps, noise multiplier, fake batch.
        self.plan_: dict[str, float] = {}

    @staticmethod
    def unavailable_reason() -> str | None:
        """None when torch and opacus import, else what to install."""
        missing = _missing_dependencies()
        if not missing:
            return None
        return f"needs {' and '.join(missing)}; install with {INSTALL}"

    def params(self) -> dict[str, Any]:
        return {
            **super().params(), "steps": self.steps, "batch_size": self.batch_size,
            "marginal_share": self.marginal_share, "max_grad_norm": self.max_grad_norm,
            "embedding_dim": self.embedding_dim, "generator_dims": list(self.generator_dims),
            "discriminator_dims": list(self.discriminator_dims),
            "generator_lr": self.generator_lr, "discriminator_lr": self.discriminator_lr,
            "generator_steps": self.generator_steps, "generator_batch": self.generator_batch,
            "marginal_weight": self.marginal_weight, "threads": self.threads,
        }

    def fit(self, data: PrivateTable, ctx: StageContext) -> None:
        from . import _dpsgd_gan as gan

        columns = data.columns
        if not columns:
            raise ConfigError("dpctgan: the table has no columns")
        sizes = [data.sizes[c] for c in columns]
        acc = data.accountant
        d = len(columns)

        # 1. One-way marginals: their joint L2 sensitivity is sqrt(d), so sigma = sqrt(d / 2 rho).
        rho = self.marginal_share * acc.plan_zcdp()
        sigma = math.sqrt(d / (2.0 * rho))
        ctx.progress(0, None, f"dpctgan: measuring {d} one-way marginals")
        ones = data.measure([(c,) for c in columns], sigma, label="one-way marginals")
        frequencies, rows_estimate = _frequencies_and_total(ones, sizes)

        # 2. DP-SGD: q and the step count from public values, the noise from the accountant.
        q = min(1.0, self.batch_size / rows_estimate)
        steps = self.steps
        fake_batch = max(1, round(q * rows_estimate))
        noise = acc.plan_subsampled_gaussian(q, steps)
        self.plan_ = {
            "sampling_rate": q, "steps": steps, "noise_multiplier": noise,
            "fake_batch": fake_batch, "marginal_sigma": sigma,
        }
        logger.info("dpctgan plan: %s", self.plan_)
        event = SubsampledGaussian(sampling_rate=q, noise_multiplier=noise)
        seed = data.secret_seed("dp-sgd")
        codes = data.rows([(event, steps)], label="DP-SGD discriminator steps")
        settings = gan.GanSettings(
            embedding_dim=self.embedding_dim, generator_dims=self.generator_dims,
            discriminator_dims=self.discriminator_dims, generator_lr=self.generator_lr,
            discriminator_lr=self.discriminator_lr, generator_steps=self.generator_steps,
            generator_batch=self.generator_batch, marginal_weight=self.marginal_weight,
            max_grad_norm=self.max_grad_norm,
        )
        with gan.torch_threads(self.threads):
            self._model = gan.train(
                codes, sizes, frequencies, settings=settings, sampling_rate=q, steps=steps,
                noise_multiplier=noise, fake_batch=fake_batch, seed=seed,
                progress=lambda i, n: ctx.progress(i, n, "dpctgan: DP-SGD steps"),
            )
        del codes
        self._rows_estimate = rows_estimate
        self._columns = columns

    def estimated_rows(self) -> float:
        """A DP estimate of the input's row count (from the noisy one-way marginals)."""
        if self._rows_estimate is None:
            raise SafesError("dpctgan: call fit() before estimated_rows()")
        return self._rows_estimate

    def sample(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        if self._model is None:
            raise SafesError("dpctgan: call fit() before sample()")
        from . import _dpsgd_gan as gan

        seed = np.random.SeedSequence(int(rng.integers(0, 2**63 - 1)))
        with gan.torch_threads(self.threads):
            return gan.sample(self._model, rows, gan.torch_generator(seed))


def _frequencies_and_total(ones: list[Any], sizes: list[int]) -> tuple[list[np.ndarray], float]:
    """Noisy one-way frequencies (clipped at 0, normalised) and the inverse-variance-weighted
    mean of the noisy totals (a column of k cells has a total with variance k sigma^2)."""
    freqs = []
    totals, weights = [], []
    for m, k in zip(ones, sizes, strict=True):
        counts = np.clip(m.values, 0.0, None)
        freqs.append(counts / counts.sum() if counts.sum() > 0 else np.full(k, 1.0 / k))
        totals.append(float(m.values.sum()))
        weights.append(1.0 / k)
    total = float(np.dot(totals, weights) / np.sum(weights))
    return freqs, max(1.0, total)


@hookimpl
def safes_register_synthesizers(register: Registry) -> None:
    register.add(
        "dpctgan", DPCTGAN,
        description="DP-CTGAN: CTGAN's discriminator trained by DP-SGD on opacus (dpsgd extra)",
    )
