"""Multinomial diffusion for categorical columns (Hoogeboom et al. 2021; TabDDPM, Kotelnikov et al. 2023).

The forward process keeps the current category with probability ``alpha_t`` and otherwise
redraws it uniformly among the ``K`` categories of its column, so

    q(x_t | x_0)      = Cat(abar_t * x_0 + (1 - abar_t) / K)
    q(x_t | x_s)      = Cat(a_st * x_s + (1 - a_st) / K),   a_st = abar_t / abar_s   (s < t)
    q(x_s | x_t, x_0) ∝ q(x_t | x_s) * q(x_s | x_0).

The network predicts the clean category's distribution ``p0``; the reverse step plugs it into the
posterior. Because ``q(x_t | x_s)`` has a closed form for any ``s < t``, the same posterior
serves strided (DDIM-like) sampling: the categorical chain jumps between the same timesteps as
the Gaussian sampler.

Two implementations of the posterior, on purpose:

* :meth:`MultinomialDiffusion.posterior_log` works on full distributions in log space, so that
  ``abar`` near 0 or 1 (the ends of a cosine schedule) stays exact; the training loss (a KL
  divergence between two posteriors) needs it.
* :meth:`MultinomialDiffusion.step` samples the same posterior without materialising it, by
  reading it as a mixture: keep ``x_t``, or draw from ``abar_s * p0 + (1 - abar_s) / K`` (itself
  "draw from p0, or uniformly"). A reverse step then costs one softmax and one inverse-CDF draw
  per column instead of a dozen log-space passes over every category, which is what lets a
  table with a 1,000-category column sample 100,000 rows quickly on a CPU. A test checks that
  both give the same distribution.

Categories are held as integer indices into the concatenated one-hot layout (one index per
column), not as one-hot matrices. Columns with equally many categories are adjacent
(:class:`BlockLayout` requires sizes sorted ascending), so every operation is one batched
tensor op per distinct size, not one per column.
"""
from __future__ import annotations

import math

import torch

from generators.layout import BlockLayout

LOG_EPS = -69.0  # log(1e-30): the log of "zero probability" that keeps arithmetic finite


def log1mexp(a: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(a))`` for ``a <= 0``, accurate at both ends (Mächler 2012)."""
    a = a.clamp(max=-1e-12)
    return torch.where(a > -0.6931471805599453, torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


def onehot_to_log(x: torch.Tensor) -> torch.Tensor:
    """log of a one-hot (or probability) matrix, with zeros mapped to about :data:`LOG_EPS`."""
    return torch.log(x.clamp(min=1e-30))


def _softmax_draw(
    logits: torch.Tensor, current: torch.Tensor | None, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One draw per row of softmax((n, count, K) logits), and the probability of ``current``.

    Inverse CDF with a binary search: three passes over the categories (max, exp, cumulative
    sum) and no logarithms, far cheaper than Gumbel-max or a materialised softmax when a
    column has hundreds of categories. ``current``: (n, count) local indices or ``None``.
    """
    e = (logits - logits.amax(dim=-1, keepdim=True)).exp_()
    p_current = e.gather(-1, current[..., None])[..., 0] if current is not None else None
    cdf = e.cumsum_(dim=-1)
    total = cdf[..., -1:]
    u = torch.rand(total.shape, generator=generator, device=logits.device, dtype=cdf.dtype) * total
    local = torch.searchsorted(cdf, u, right=True)[..., 0].clamp_(max=logits.shape[-1] - 1)
    if p_current is not None:
        p_current = p_current / total[..., 0]
    return local, p_current


class MultinomialDiffusion(torch.nn.Module):
    """The categorical half of TabDDPM on a :class:`BlockLayout`, for a given beta schedule.

    ``betas`` is the per-timestep noise schedule shared with the Gaussian half (the DDPM
    scheduler's ``betas``), so both halves are equally noisy at every timestep ``t``.
    Timesteps follow diffusers' convention: ``0 .. T-1``, with ``t = 0`` the least noisy and
    ``t = -1`` standing for clean data.
    """

    def __init__(self, layout: BlockLayout, betas: torch.Tensor) -> None:
        super().__init__()
        self.layout = layout
        betas64 = betas.detach().to(torch.float64).cpu()
        log_abar = torch.cumsum(torch.log1p(-betas64), dim=0)
        self.num_timesteps = int(betas64.shape[0])
        # Schedules in float64: differences of log-abar near t = 0 are tiny and would vanish in
        # float32. Not persistent: they are rebuilt from the schedule, never loaded.
        self.register_buffer("log_abar", log_abar, persistent=False)
        self.register_buffer("log_k", layout.log_k.clone(), persistent=False)
        self.register_buffer("offsets", layout.offsets.clone(), persistent=False)

    def _log_abar(self, t: torch.Tensor) -> torch.Tensor:
        """log abar_t per row; ``t < 0`` means clean data (abar = 1)."""
        out = self.log_abar[t.clamp(min=0)]
        return torch.where(t < 0, torch.zeros_like(out), out)

    def _abar(self, t: int) -> float:
        return 1.0 if t < 0 else math.exp(float(self.log_abar[t]))

    # -- forward process -------------------------------------------------------------------
    def q_xt_log(self, log_x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log q(x_t | x_0) over every category, for (possibly soft) ``x_0`` as log-probabilities."""
        la = self._log_abar(t)
        l1ma = log1mexp(la).to(log_x0.dtype)[:, None]
        la = la.to(log_x0.dtype)[:, None]
        return torch.logaddexp(log_x0 + la, l1ma - self.log_k.to(log_x0.dtype))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Draw ``x_t`` indices from ``x_0`` indices: keep each with prob. abar_t, else uniform."""
        keep = torch.rand(x0.shape, generator=generator, device=x0.device) < self._log_abar(t).exp()[:, None]
        return torch.where(keep, x0, self.layout.uniform(x0.shape[0], generator, x0.device))

    # -- reverse process, full distributions (training) --------------------------------------
    def posterior_log(self, log_x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """log q(x_s | x_t, x_0) over every category, for ``s < t``.

        ``log_x0``: (n, width) log-probabilities (a one-hot or the model's prediction);
        ``x_t``: (n, width) one-hot of the current categories.
        """
        la_st = self._log_abar(t) - self._log_abar(s)  # log of the keep-probability from s to t
        dtype = log_x0.dtype
        log_k = self.log_k.to(dtype)
        fwd = torch.logaddexp(
            onehot_to_log(x_t) + la_st.to(dtype)[:, None], log1mexp(la_st).to(dtype)[:, None] - log_k
        )
        return self.layout.log_softmax(fwd + self.q_xt_log(log_x0, s))

    def loss(
        self, logits: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, ce_weight: float = 0.0
    ) -> torch.Tensor:
        """Per-row loss averaged over columns: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0 and
        the decoder negative log-likelihood -log p(x_0|x_t) at t = 0, as in TabDDPM, plus
        ``ce_weight`` times the cross-entropy of the predicted x_0 at every t.

        The cross-entropy term (the auxiliary loss of D3PM, Austin et al. 2021) trains ``p0``
        directly. The true reverse step is linear in p(x_0 | x_t), so a ``p0`` that matches it
        gives the exact reverse process; the KL alone gives a weak signal (most of it is close to
        zero at large and small t) and learns the categories slowly in a short CPU run.

        ``x0`` and ``x_t`` are (n, n_blocks) indices; ``logits`` (n, width).
        """
        log_x0_pred = self.layout.log_softmax(logits.float())
        x0_hot, xt_hot = self.layout.onehot(x0), self.layout.onehot(x_t)
        nll = -(x0_hot * log_x0_pred).sum(dim=1)
        s = t - 1
        log_q = self.posterior_log(onehot_to_log(x0_hot), xt_hot, t, s)
        log_p = self.posterior_log(log_x0_pred, xt_hot, t, s)
        kl = (log_q.exp() * (log_q - log_p)).sum(dim=1)
        per_row = torch.where(t == 0, nll, kl)
        if ce_weight:
            per_row = per_row + ce_weight * nll
        return per_row / self.layout.n_blocks

    # -- reverse process, sampling -----------------------------------------------------------
    def step(
        self,
        logits: list[torch.Tensor],
        x_t: torch.Tensor,
        t: int,
        prev_t: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """One reverse step for all rows from timestep ``t`` to ``prev_t`` (``< 0``: clean data).

        ``logits``: one (n, count * size) tensor per :class:`BlockGroup` (see
        :meth:`BlockLayout.split`); ``x_t``: (n, n_blocks) global indices; returns the same for
        ``prev_t``. Exact draws from ``posterior_log`` with the model's ``p0``, through the
        mixture reading described in the module docstring.
        """
        final = prev_t < 0
        a_s = self._abar(prev_t)
        a_st = self._abar(t) / a_s  # keep-probability from prev_t to t
        n = x_t.shape[0]
        parts = []
        for g, chunk in zip(self.layout.groups, logits):
            offset = self.offsets[g.first_block : g.last_block]
            group_logits = chunk.float().reshape(n, g.count, g.size)
            if final:
                draw, _ = _softmax_draw(group_logits, None, generator)
                parts.append(draw + offset)
                continue
            current = x_t[:, g.first_block : g.last_block] - offset
            draw_p0, p0_current = _softmax_draw(group_logits, current, generator)
            # unnormalised posterior = c * B(x) + a_st * B(x_t) * [x = x_t], with
            # B = a_s * p0 + (1 - a_s) / K and c = (1 - a_st) / K; B sums to 1.
            keep_mass = a_st * (a_s * p0_current + (1.0 - a_s) / g.size)
            keep_prob = keep_mass / (keep_mass + (1.0 - a_st) / g.size)
            r = torch.rand((3, n, g.count), generator=generator, device=x_t.device)
            draw_uniform = (r[2] * g.size).long().clamp_(max=g.size - 1)
            fresh = torch.where(r[1] < a_s, draw_p0, draw_uniform)
            parts.append(torch.where(r[0] < keep_prob, current, fresh) + offset)
        return torch.cat(parts, dim=1)
