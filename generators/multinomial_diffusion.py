"""Multinomial diffusion for one-hot categorical blocks, in log space.

The forward process of Hoogeboom et al. (2021), as used for categorical features by TabDDPM
(Kotelnikov et al. 2023): each step keeps the current category with probability ``alpha_t``
and otherwise resamples it uniformly, so

    q(x_t | x_0)     = Cat(abar_t * x_0 + (1 - abar_t) / K)
    q(x_t | x_s)     = Cat((abar_t/abar_s) * x_s + (1 - abar_t/abar_s) / K)      (s < t)
    q(x_s | x_t, x_0) ∝ q(x_t | x_s) * q(x_s | x_0).

The network predicts (logits of) ``x_0``; the reverse step plugs that prediction into the
posterior. Because ``q(x_t | x_s)`` has a closed form for any ``s < t``, the same posterior
serves strided (DDIM-like) sampling with few steps: the categorical chain jumps between the
same timesteps as the Gaussian sampler.

All probabilities are kept as log-probabilities so that ``abar_t`` close to 0 or 1 (the ends of a
cosine schedule) stays exact. Several categorical columns of different sizes share one
matrix; :class:`BlockLayout` groups equally sized blocks so each operation is one batched
tensor op per distinct size, not one per column.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOG_EPS = -69.0  # log(1e-30): the log of "zero probability" that keeps arithmetic finite


def log1mexp(a: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(a))`` for ``a <= 0``, accurate at both ends (Mächler 2012)."""
    a = a.clamp(max=-1e-12)
    return torch.where(a > -0.6931471805599453, torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


@dataclass(frozen=True)
class BlockGroup:
    """``count`` consecutive one-hot blocks of ``size`` categories each, at ``[start, end)``."""

    start: int
    size: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.size * self.count


class BlockLayout:
    """Layout of concatenated one-hot blocks whose sizes are sorted so equal sizes are adjacent."""

    def __init__(self, sizes: list[int]) -> None:
        if any(k < 1 for k in sizes):
            raise ValueError(f"every categorical block needs at least one category, got {sizes}")
        if list(sizes) != sorted(sizes):
            raise ValueError("block sizes must be sorted ascending so equal sizes are adjacent")
        self.sizes = list(sizes)
        self.width = int(sum(sizes))
        groups: list[BlockGroup] = []
        start = 0
        for k in sizes:
            if groups and groups[-1].size == k:
                last = groups[-1]
                groups[-1] = BlockGroup(last.start, k, last.count + 1)
            else:
                groups.append(BlockGroup(start, k, 1))
            start += k
        self.groups = groups
        # log K for every position: the uniform component of every transition.
        self.log_k = torch.tensor([float(k) for k in sizes for _ in range(k)]).log()

    @property
    def n_blocks(self) -> int:
        return len(self.sizes)

    def _views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(n, count, size) views of ``x`` for each group."""
        return [x[:, g.start : g.end].reshape(x.shape[0], g.count, g.size) for g in self.groups]

    def log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Normalise each block of ``logits`` into log-probabilities."""
        parts = [F.log_softmax(v, dim=-1).reshape(v.shape[0], -1) for v in self._views(logits)]
        return torch.cat(parts, dim=1)

    def sample(self, log_probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One-hot draw per block from ``log_probs`` (Gumbel-max: exactly one 1 per block)."""
        u = torch.rand(log_probs.shape, generator=generator, device=log_probs.device, dtype=log_probs.dtype)
        gumbel = -torch.log(-torch.log(u.clamp(min=1e-30, max=1.0 - 1e-7)))
        return self.argmax_onehot(log_probs + gumbel)

    def argmax_onehot(self, scores: torch.Tensor) -> torch.Tensor:
        """One-hot of the best-scoring category of each block."""
        parts = []
        for v in self._views(scores):
            idx = v.argmax(dim=-1)
            parts.append(F.one_hot(idx, v.shape[-1]).to(scores.dtype).reshape(v.shape[0], -1))
        return torch.cat(parts, dim=1)

    def uniform(self, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """One-hot rows drawn uniformly per block: the prior at the last timestep."""
        return self.sample(torch.zeros(n, self.width, device=device), generator)


def onehot_to_log(x: torch.Tensor) -> torch.Tensor:
    """log of a one-hot (or probability) matrix, with zeros mapped to :data:`LOG_EPS`."""
    return torch.log(x.clamp(min=1e-30))


class MultinomialDiffusion(torch.nn.Module):
    """The categorical half of TabDDPM on a :class:`BlockLayout`, for a given beta schedule.

    ``betas`` is the per-timestep noise schedule shared with the Gaussian half (the DDPM
    scheduler's ``betas``), so both halves are equally noisy at every timestep ``t``.
    Timesteps follow diffusers' convention: ``0 .. T-1``, with ``t = 0`` the least noisy.
    """

    def __init__(self, layout: BlockLayout, betas: torch.Tensor) -> None:
        super().__init__()
        self.layout = layout
        betas64 = betas.detach().to(torch.float64).cpu()
        log_alpha = torch.log1p(-betas64)
        log_abar = torch.cumsum(log_alpha, dim=0)
        self.num_timesteps = int(betas64.shape[0])
        # Schedules in float64: differences of log-abar near t = 0 are tiny and would vanish
        # in float32. They are persistent=False because they are rebuilt from the schedule.
        self.register_buffer("log_abar", log_abar, persistent=False)
        self.register_buffer("log_1m_abar", log1mexp(log_abar), persistent=False)
        self.register_buffer("log_k", layout.log_k.clone(), persistent=False)

    # -- schedule lookups ------------------------------------------------------------------
    def _log_abar(self, t: torch.Tensor) -> torch.Tensor:
        """log abar_t per row; ``t < 0`` means "clean" (abar = 1)."""
        out = self.log_abar[t.clamp(min=0)]
        return torch.where(t < 0, torch.zeros_like(out), out)

    # -- forward process -------------------------------------------------------------------
    def q_xt_log(self, log_x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log q(x_t | x_0) for (possibly soft) ``x_0`` given as log-probabilities."""
        la = self._log_abar(t)
        l1ma = log1mexp(la).to(log_x0.dtype)[:, None]
        la = la.to(log_x0.dtype)[:, None]
        return torch.logaddexp(log_x0 + la, l1ma - self.log_k.to(log_x0.dtype))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Draw one-hot ``x_t`` from one-hot ``x_0``."""
        return self.layout.sample(self.q_xt_log(onehot_to_log(x0), t), generator)

    # -- reverse process -------------------------------------------------------------------
    def posterior_log(self, log_x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """log q(x_s | x_t, x_0) for ``0 <= s < t``; ``log_x0`` may be a predicted distribution."""
        la_t = self._log_abar(t)
        la_s = self._log_abar(s)
        la_st = la_t - la_s  # log of the kept-probability from s to t
        dtype = log_x0.dtype
        log_k = self.log_k.to(dtype)
        fwd = torch.logaddexp(
            onehot_to_log(x_t) + la_st.to(dtype)[:, None], log1mexp(la_st).to(dtype)[:, None] - log_k
        )
        prior = self.q_xt_log(log_x0, s)
        return self.layout.log_softmax(fwd + prior)

    def loss(self, logits: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-row loss, averaged over blocks: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0,
        and the decoder negative log-likelihood -log p(x_0 | x_t) at t = 0 (TabDDPM's choice)."""
        log_x0_pred = self.layout.log_softmax(logits.float())
        x0 = x0.float()
        nll = -(x0 * log_x0_pred).sum(dim=1)
        s = t - 1
        log_q = self.posterior_log(onehot_to_log(x0), x_t, t, s)
        log_p = self.posterior_log(log_x0_pred, x_t, t, s)
        kl = (log_q.exp() * (log_q - log_p)).sum(dim=1)
        per_row = torch.where(t == 0, nll, kl)
        return per_row / self.layout.n_blocks

    def step(
        self,
        logits: torch.Tensor,
        x_t: torch.Tensor,
        t: int,
        prev_t: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """One reverse step from timestep ``t`` to ``prev_t`` (``prev_t < 0``: to clean data)."""
        log_x0_pred = self.layout.log_softmax(logits.float())
        if prev_t < 0:
            # The final draw comes from the predicted x_0 distribution itself; sampling (not
            # argmax) keeps rare categories at their learned rates.
            return self.layout.sample(log_x0_pred, generator)
        n = x_t.shape[0]
        t_vec = torch.full((n,), t, dtype=torch.long, device=x_t.device)
        s_vec = torch.full((n,), prev_t, dtype=torch.long, device=x_t.device)
        return self.layout.sample(self.posterior_log(log_x0_pred, x_t, t_vec, s_vec), generator)
