"""CTGAN's conditional generator and discriminator in torch, the discriminator trained by DP-SGD."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.optimizers import DPOptimizerFastGradientClipping
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch import nn
from torch.nn import functional as F  # noqa: N812

logger = logging.getLogger(__name__)

#: Gumbel-softmax temperature of the generator's outputs seen by the discriminator (CTGAN 0.7).
GUMBEL_TAU = 0.2
#: Slope of the discriminator's LeakyReLU (CTGAN 0.7).
LEAKY_SLOPE = 0.2


@dataclass(frozen=True)
class GanSettings:
    """Network sizes and optimisation settings (all public).

    Attributes:
        embedding_dim: size of the generator's noise input.
        generator_dims: widths of the generator's residual layers.
        discriminator_dims: widths of the discriminator's hidden layers.
        generator_lr: Adam learning rate of the generator.
        discriminator_lr: Adam learning rate of the discriminator.
        generator_steps: generator updates after each discriminator step.
        generator_batch: rows per generator update.
        marginal_weight: weight of the generator's one-way-marginal term.
        max_grad_norm: per-sample clipping norm C of the discriminator's gradients.
    """

    embedding_dim: int
    generator_dims: tuple[int, ...]
    discriminator_dims: tuple[int, ...]
    generator_lr: float
    discriminator_lr: float
    generator_steps: int
    generator_batch: int
    marginal_weight: float
    max_grad_norm: float


def torch_generator(seed: np.random.SeedSequence) -> torch.Generator:
    """A torch CPU generator seeded from a numpy seed sequence (never torch's global state)."""
    state = int(seed.generate_state(1, np.uint64)[0] >> np.uint64(1))
    return torch.Generator().manual_seed(state)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with `threads` intra-op threads and deterministic algorithms; restore both after."""
    before = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(deterministic)


def _linear(i: int, o: int, gen: torch.Generator) -> nn.Linear:
    """An `nn.Linear` with torch's default initialisation drawn from `gen`, not global state."""
    layer = torch.nn.utils.skip_init(nn.Linear, i, o)
    bound = 1.0 / math.sqrt(i)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.uniform_(-bound, bound, generator=gen)
    return layer


class Residual(nn.Module):
    """CTGAN's generator block: Linear, BatchNorm, ReLU, output concatenated to the input."""

    def __init__(self, i: int, o: int, gen: torch.Generator) -> None:
        super().__init__()
        self.fc = _linear(i, o, gen)
        self.bn = nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class Generator(nn.Module):
    """CTGAN's generator: residual layers on (noise, condition), then one logit per category."""

    def __init__(
        self, noise: int, cond: int, dims: Sequence[int], out: int, gen: torch.Generator
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = noise + cond
        for d in dims:
            layers.append(Residual(width, d, gen))
            width += d
        self.body = nn.Sequential(*layers)
        self.head = _linear(width, out, gen)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.cat([z, cond], dim=1)))


class Discriminator(nn.Module):
    """CTGAN's discriminator with pac = 1 and no dropout: Linear + LeakyReLU layers, one logit."""

    def __init__(self, width: int, dims: Sequence[int], gen: torch.Generator) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for d in dims:
            layers += [_linear(width, d, gen), nn.LeakyReLU(LEAKY_SLOPE)]
            width = d
        layers.append(_linear(width, 1, gen))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class Blocks:
    """The schema's one-hot layout: column j occupies `offsets[j]:offsets[j] + sizes[j]`."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = [int(s) for s in sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int).tolist()
        self.width = int(sum(self.sizes))

    def one_hot(self, codes: np.ndarray) -> torch.Tensor:
        """(n, d) integer codes to an (n, width) float32 one-hot matrix."""
        out = torch.zeros((codes.shape[0], self.width), dtype=torch.float32)
        idx = torch.as_tensor(codes + np.asarray(self.offsets)[None, :], dtype=torch.int64)
        out.scatter_(1, idx, 1.0)
        return out

    def gumbel_softmax(
        self, logits: torch.Tensor, gen: torch.Generator, hard: bool = True
    ) -> torch.Tensor:
        """Per column, a Gumbel-softmax draw (noise from `gen`); with `hard`, the one-hot of the
        draw in the forward pass and the relaxation's gradient in the backward pass."""
        u = torch.rand(logits.shape, generator=gen).clamp_(1e-10, 1.0 - 1e-7)
        noisy = (logits - torch.log(-torch.log(u))) / GUMBEL_TAU
        parts = []
        for o, s in zip(self.offsets, self.sizes, strict=True):
            soft = torch.softmax(noisy[:, o : o + s], dim=1)
            if hard:
                one_hot = F.one_hot(soft.argmax(dim=1), s).to(soft.dtype)
                soft = one_hot - soft.detach() + soft
            parts.append(soft)
        return torch.cat(parts, dim=1)

    def log_probs(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return [
            torch.log_softmax(logits[:, o : o + s], dim=1)
            for o, s in zip(self.offsets, self.sizes, strict=True)
        ]


class ConditionSampler:
    """CTGAN's condition vector: a column chosen uniformly, one of its categories set to 1.

    Fake rows draw the category from the noisy one-way frequencies; a real row's condition is
    its own category in the chosen column, so both sides' conditions have (up to the noise of
    the marginals) the same distribution.
    """

    def __init__(self, blocks: Blocks, frequencies: Sequence[np.ndarray]) -> None:
        self.blocks = blocks
        self.probs = [torch.as_tensor(p, dtype=torch.float32) for p in frequencies]

    def for_fake(self, rows: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(condition one-hot, (column, category) pairs) for `rows` generated rows."""
        b = self.blocks
        cols = torch.randint(0, len(b.sizes), (rows,), generator=gen)
        cats = torch.zeros(rows, dtype=torch.int64)
        for j, p in enumerate(self.probs):
            pick = cols == j
            k = int(pick.sum())
            if k:
                cats[pick] = torch.multinomial(p, k, replacement=True, generator=gen)
        offsets = torch.as_tensor(b.offsets, dtype=torch.int64)
        cond = torch.zeros((rows, b.width), dtype=torch.float32)
        cond[torch.arange(rows), offsets[cols] + cats] = 1.0
        return cond, torch.stack([cols, cats], dim=1)

    def for_real(self, onehot: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The condition of each real row: its own category in a uniformly chosen column."""
        b = self.blocks
        rows = onehot.shape[0]
        cols = torch.randint(0, len(b.sizes), (rows,), generator=gen)
        mask = torch.zeros((rows, b.width), dtype=torch.float32)
        starts = torch.as_tensor(b.offsets, dtype=torch.int64)[cols]
        sizes = torch.as_tensor(b.sizes, dtype=torch.int64)[cols]
        pos = torch.arange(b.width)[None, :]
        mask[(pos >= starts[:, None]) & (pos < (starts + sizes)[:, None])] = 1.0
        return onehot * mask


def _condition_loss(
    log_probs: list[torch.Tensor], picks: torch.Tensor, columns: int
) -> torch.Tensor:
    """CTGAN's conditional loss: cross-entropy of the conditioned column against its condition."""
    total = torch.zeros(())
    for j in range(columns):
        rows = picks[:, 0] == j
        if rows.any():
            total = total - log_probs[j][rows, picks[rows, 1]].sum()
    return total / picks.shape[0]


def _marginal_loss(log_probs: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """KL(target || batch-average of the generator's distribution), summed over columns."""
    total = torch.zeros(())
    for lp, t in zip(log_probs, targets, strict=True):
        avg = torch.logsumexp(lp, dim=0) - math.log(lp.shape[0])
        total = total + (t * (torch.log(t.clamp_min(1e-12)) - avg)).sum()
    return total


@dataclass
class TrainedGenerator:
    """What fitting leaves: the generator, the condition sampler and the one-hot layout."""

    generator: Generator
    conditions: ConditionSampler
    blocks: Blocks
    embedding_dim: int


def train(
    codes: np.ndarray,
    sizes: Sequence[int],
    frequencies: Sequence[np.ndarray],
    *,
    settings: GanSettings,
    sampling_rate: float,
    steps: int,
    noise_multiplier: float,
    fake_batch: int,
    seed: np.random.SeedSequence,
    progress: Callable[[int, int], None] | None = None,
) -> TrainedGenerator:
    """Train the conditional GAN; the discriminator by DP-SGD, the generator on it only.

    Each of `steps` discriminator steps takes a Poisson sample of `codes` (each row kept with
    probability `sampling_rate`, opacus's `UniformWithReplacementSampler`), adds `fake_batch`
    generated rows, clips every row's gradient to `settings.max_grad_norm` and adds Gaussian
    noise of std `noise_multiplier` x that norm (opacus's `DPOptimizer`, its `secure_mode` noise).
    Adding or removing one real row changes the clipped sum by at most the clipping norm, so each
    step is the `SubsampledGaussian(sampling_rate, noise_multiplier)` the caller charged.

    Args:
        codes: the (n, d) real code matrix (read here and nowhere else).
        sizes: domain size of each column.
        frequencies: noisy one-way frequencies of each column (public: DP measurements).
        settings: networks and optimisation.
        sampling_rate: Poisson sampling rate q.
        steps: discriminator (DP-SGD) steps.
        noise_multiplier: σ of each step.
        fake_batch: generated rows per discriminator step (public: from the noisy row count).
        seed: the only source of randomness (sampling, noise, initialisation, generator noise).
        progress: called with (step, steps) after each discriminator step.
    """
    s = settings
    seeds = seed.spawn(4)
    init_gen, sample_gen, noise_gen, gan_gen = (torch_generator(x) for x in seeds)
    blocks = Blocks(sizes)
    conditions = ConditionSampler(blocks, frequencies)
    targets = [torch.as_tensor(p, dtype=torch.float32) for p in frequencies]

    generator = Generator(s.embedding_dim, blocks.width, s.generator_dims, blocks.width, init_gen)
    with torch.no_grad():
        # Start from the independent model of the noisy one-way marginals: a zero head with
        # their log-frequencies as bias (the generator learns dependence from there).
        generator.head.weight.zero_()
        generator.head.bias.copy_(torch.log(torch.cat(targets).clamp_min(1e-6)))
    clip = s.max_grad_norm
    # Ghost clipping (opacus): exact per-row gradient norms without materialising per-row
    # gradients, then a second backward pass of the clipped sum.
    disc = GradSampleModuleFastGradientClipping(
        Discriminator(2 * blocks.width, s.discriminator_dims, init_gen),
        max_grad_norm=clip, use_ghost_clipping=True, loss_reduction="mean",
    )
    opt_g = torch.optim.Adam(generator.parameters(), lr=s.generator_lr, betas=(0.5, 0.9))
    opt_d = DPOptimizerFastGradientClipping(
        torch.optim.Adam(disc.parameters(), lr=s.discriminator_lr, betas=(0.5, 0.9)),
        noise_multiplier=noise_multiplier,
        max_grad_norm=clip,
        expected_batch_size=2 * fake_batch,
        loss_reduction="mean",
        generator=noise_gen,
        secure_mode=True,
    )
    criterion = DPLossFastGradientClipping(
        disc, opt_d, nn.BCEWithLogitsLoss(reduction="mean"), loss_reduction="mean"
    )
    real_all = blocks.one_hot(codes)
    sampler = UniformWithReplacementSampler(
        num_samples=real_all.shape[0], sample_rate=sampling_rate, generator=sample_gen, steps=steps
    )

    def fake_rows(rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        cond, picks = conditions.for_fake(rows, gan_gen)
        z = torch.randn((rows, s.embedding_dim), generator=gan_gen)
        logits = generator(z, cond)
        return blocks.gumbel_softmax(logits, gan_gen), cond, picks, logits

    generator.train()
    for step, indices in enumerate(sampler, start=1):
        # -- discriminator: one DP-SGD step (opacus clips each row's gradient, adds noise) --
        disc.enable_hooks()
        for p in disc.parameters():
            p.requires_grad_(True)
        real = real_all[torch.as_tensor(indices, dtype=torch.int64)]
        real_in = torch.cat([real, conditions.for_real(real, gan_gen)], dim=1)
        with torch.no_grad():
            fake, cond, _, _ = fake_rows(fake_batch)
        batch = torch.cat([real_in, torch.cat([fake, cond], dim=1)], dim=0)
        labels = torch.cat([torch.ones(real.shape[0]), torch.zeros(fake_batch)])
        opt_d.zero_grad(set_to_none=True)
        loss_d = criterion(disc(batch), labels)
        with warnings.catch_warnings():
            # opacus' hooks fire on a batch whose inputs need no gradient; that is expected.
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss_d.backward()
        opt_d.step()

        # -- generator: post-processing of the discriminator and the noisy marginals --
        disc.disable_hooks()
        for p in disc.parameters():
            p.requires_grad_(False)
        for _ in range(s.generator_steps):
            fake, cond, picks, logits = fake_rows(s.generator_batch)
            lp = blocks.log_probs(logits)
            adv = F.binary_cross_entropy_with_logits(
                disc(torch.cat([fake, cond], dim=1)), torch.ones(s.generator_batch)
            )
            loss_g = adv + _condition_loss(lp, picks, len(blocks.sizes))
            if s.marginal_weight > 0:
                loss_g = loss_g + s.marginal_weight * _marginal_loss(lp, targets)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        if step % 25 == 0 or step == steps:
            logger.debug(
                "dpctgan step %d/%d: discriminator loss %.4f, generator loss %.4f",
                step, steps, loss_d.item(), loss_g.item(),
            )
        if progress is not None:
            progress(step, steps)
    del real_all, real, real_in, batch
    generator.eval()
    return TrainedGenerator(generator, conditions, blocks, s.embedding_dim)


def sample(model: TrainedGenerator, rows: int, gen: torch.Generator) -> np.ndarray:
    """Draw `rows` records as an (rows, d) int64 code matrix (post-processing)."""
    b = model.blocks
    chunks = []
    with torch.no_grad():
        for start in range(0, rows, 8192):
            m = min(8192, rows - start)
            cond, _ = model.conditions.for_fake(m, gen)
            z = torch.randn((m, model.embedding_dim), generator=gen)
            logits = model.generator(z, cond)
            cols = [
                torch.multinomial(torch.softmax(logits[:, o : o + s], dim=1), 1, generator=gen)
                for o, s in zip(b.offsets, b.sizes, strict=True)
            ]
            chunks.append(torch.cat(cols, dim=1).numpy())
    if not chunks:
        return np.zeros((0, len(b.sizes)), dtype=np.int64)
    return np.concatenate(chunks, axis=0).astype(np.int64)
