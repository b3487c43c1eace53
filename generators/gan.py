"""``gan``: a conditional tabular GAN in the spirit of CTGAN (Xu et al. 2019).

The CTGAN pieces, done in bulk on tensors:

* conditional vector — one one-hot slot per category of every categorical block (null
  indicators included); each training row conditions on one block, chosen uniformly. The
  critic reads its ``pac`` conditions as lookups of weight rows (:class:`_CondLinear`), exactly
  a linear layer over the one-hot vectors without multiplying their zeros;
* training-by-sampling — the conditioned category is drawn with probability proportional to
  log(1 + frequency), and the real row shown to the critic is drawn among the rows that have that
  category (rows sorted by slot, so a batch is a few gathers, not a Python loop);
* WGAN-GP — critic loss E[D(fake)] - E[D(real)] plus a gradient penalty (lambda 10) on critic
  inputs interpolated between real and fake, rows and conditions alike. As in CTGAN, the real
  rows are drawn for a shuffled copy of the fake rows' conditions: pairing them with the same
  conditions instead scored 0.07 lower on the planes table (3 seeds);
* PacGAN — the critic sees ``pac`` rows concatenated, which discourages mode collapse;
* the generator is trained with the critic's score plus the cross-entropy of the conditioned
  block against the condition, so it honours the condition.

Speed on a CPU comes from: the model column order (:class:`generators.layout.ModelLayout`: one
batched op per group of equal categorical blocks); bf16 products where the CPU has them; one
critic pass over real and fake rows; no critic weight gradients in the generator step; cheaper
random draws (:mod:`generators.layout`, :func:`_keep_mask`); and a gradient penalty that needs
no double backward (:meth:`_Critic.input_gradient_norms`).

Sampling conditions on a uniformly chosen block and a category drawn from the real frequencies,
as CTGAN does, which reproduces the marginals rather than the log-flattened training ones.
"""
from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from generators.base import ProgressCallback
from generators.training import TorchConfig, TorchGenerator, adam, autocast, frozen, train_epochs


class GANConfig(TorchConfig):
    """CTGAN-style hyper-parameters.

    Defaults follow CTGAN except 100 epochs (CTGAN: 300) and 128-wide layers (CTGAN: 256): on
    the benchmark tables the narrower networks score the same or better and train twice as fast.
    """

    learning_rate: float = Field(2e-4, gt=0, description="Adam learning rate of both networks")
    embedding_dim: int = Field(128, ge=1, description="noise size")
    generator_dims: list[int] = Field(default_factory=lambda: [128, 128], description="residual layers")
    discriminator_dims: list[int] = Field(default_factory=lambda: [128, 128], description="critic layers")
    weight_decay: float = Field(1e-6, ge=0)
    pac: int = Field(10, ge=1, description="rows the critic judges together (PacGAN)")
    discriminator_steps: int = Field(1, ge=1, description="critic updates per generator update")
    gradient_penalty: float = Field(10.0, ge=0, description="WGAN-GP lambda")
    gumbel_tau: float = Field(0.2, gt=0, description="Gumbel-softmax temperature of categorical outputs")

    @model_validator(mode="after")
    def _batch_fits_pac(self) -> "GANConfig":
        if self.batch_size % self.pac:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of pac ({self.pac})")
        return self


class _CondLinear(nn.Module):
    """``Linear`` over ``[dense input, k one-hot conditions]``, with the one-hot part read as a
    lookup of weight rows instead of a product with a mostly-zero matrix.

    The critic's first layer: ``k = pac`` packed rows, each with its condition and its own weights,
    exactly as a Linear over the concatenation would have. With wide categorical columns the
    conditions are half of that layer's input. ``cond`` instead of ``slots`` takes dense
    (interpolated) conditions, as the gradient penalty needs.
    """

    def __init__(self, dense_in: int, cond_dim: int, k: int, out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dense_in, out)
        self.cond = nn.Embedding(k * cond_dim, out) if cond_dim else None
        bound = (dense_in + k * cond_dim) ** -0.5  # nn.Linear's init over the whole input width
        for weight in [self.dense.weight, self.dense.bias, *([self.cond.weight] if self.cond is not None else [])]:
            nn.init.uniform_(weight, -bound, bound)
        self.register_buffer("shift", torch.arange(k) * cond_dim, persistent=False)

    def forward(self, x: torch.Tensor, slots: torch.Tensor | None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``slots``: (n, k) one-hot positions; or ``cond``: (n, k * cond_dim) dense conditions."""
        y = self.dense(x)
        if self.cond is None:
            return y
        if cond is not None:
            return y + cond @ self.cond.weight
        if slots is not None:
            return y + self.cond(slots + self.shift).sum(1).to(y.dtype)
        return y


class _Generator(nn.Module):
    """CTGAN's residual generator: each block is Linear-BN-ReLU with its output concatenated to
    its input, so the noise and the one-hot condition reach every layer."""

    def __init__(self, noise_dim: int, cond_dim: int, dims: list[int], width: int) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.fcs = nn.ModuleList()
        self.bns = nn.ModuleList()
        size = noise_dim + cond_dim
        for d in dims:
            self.fcs.append(nn.Linear(size, d))
            self.bns.append(nn.BatchNorm1d(d))
            size += d
        self.out = nn.Linear(size, width)

    def forward(self, z: torch.Tensor, slot: torch.Tensor | None) -> torch.Tensor:
        h = torch.cat([z, F.one_hot(slot, self.cond_dim).to(z.dtype)], dim=1) if slot is not None else z
        if torch.is_autocast_enabled(h.device.type):
            # the residual path in the product dtype: every layer's input is cast once, not per use
            h = h.to(torch.get_autocast_dtype(h.device.type))
        for fc, bn in zip(self.fcs, self.bns):
            h = torch.cat([F.relu(bn(fc(h))), h], dim=1)
        return self.out(h)


def _keep_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted-dropout multipliers (0 or 1/(1-p)) from one uniform draw: a CPU Bernoulli draw
    costs several times more."""
    keep = torch.rand(like.shape, device=like.device) >= p
    return keep.to(like.dtype) * (1.0 / (1.0 - p))


class _Critic(nn.Module):
    """CTGAN's PacGAN critic: ``pac`` rows and their conditions judged together; hidden layers are
    Linear, LeakyReLU(0.2), Dropout(0.5)."""

    slope, drop = 0.2, 0.5

    def __init__(self, width: int, cond_dim: int, dims: list[int], pac: int) -> None:
        super().__init__()
        self.pac = pac
        self.first = _CondLinear(width * pac, cond_dim, pac, dims[0] if dims else 1)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(dims[-1], 1) if dims else None

    def _pack(self, x: torch.Tensor, slot: torch.Tensor | None, cond: torch.Tensor | None):
        packed = x.reshape(-1, x.shape[1] * self.pac)
        slots = slot.reshape(-1, self.pac) if slot is not None else None
        return packed, slots, cond.reshape(len(packed), -1) if cond is not None else None

    def _activation(self, a: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(a, self.slope)
        return h * _keep_mask(h, self.drop) if self.training else h

    def forward(self, x: torch.Tensor, slot: torch.Tensor | None, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.first(*self._pack(x, slot, cond))
        if self.out is None:
            return h
        h = self._activation(h)
        for layer in self.hidden:
            h = self._activation(layer(h))
        return self.out(h)

    def input_gradient_norms(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Per pac group, the norm of d score / d (rows, dense conditions).

        The input gradient of this network is written out as products (chain rule through the
        LeakyReLU slopes and dropout masks of one forward pass), so a penalty on it needs only
        first-order gradients: autograd's double backward through the critic costs more small ops
        than the critic itself, and small ops are what a CPU step is made of.
        """
        packed, _, dense_cond = self._pack(x, None, cond)
        # d activation / d pre-activation of each hidden layer: the LeakyReLU slope times the dropout
        # multiplier, and the activation is the pre-activation times the same factor
        factors = []
        with torch.no_grad():  # the slopes and dropout masks of one pass are constants of the gradient
            a = self.first(packed, None, dense_cond)
            for layer in [*self.hidden, self.out] if self.out is not None else []:
                factor = torch.where(a > 0, 1.0, self.slope).to(a.dtype)
                if self.training:
                    factor = factor * _keep_mask(a, self.drop)
                factors.append(factor)
                if layer is not self.out:
                    a = layer(a * factor)
        if self.out is None:
            g = self.first.dense.weight.new_ones(len(packed), 1)
        else:
            g = self.out.weight.expand(len(packed), -1) * factors[-1]
            for layer, factor in zip(reversed(self.hidden), reversed(factors[:-1])):
                g = (g @ layer.weight) * factor
        sq = (g @ self.first.dense.weight).float().pow(2).sum(1)
        if dense_cond is not None and self.first.cond is not None:
            sq = sq + (g @ self.first.cond.weight.T).float().pow(2).sum(1)
        return sq.sqrt()


class _Conditions:
    """Conditional vectors over the categorical blocks, drawn in bulk from category counts.

    Blocks are in the model's order (:class:`ModelLayout`), so a condition's one-hot slot is the
    position of its category in the model-order one-hot part.
    """

    def __init__(self, counts: list[list[int]], device: torch.device) -> None:
        self.n_blocks = len(counts)
        self.widths = torch.tensor([len(c) for c in counts], device=device, dtype=torch.long)
        self.dim = int(self.widths.sum()) if counts else 0
        self.offsets = torch.cumsum(self.widths, 0) - self.widths  # first slot of each block
        padded = torch.zeros(self.n_blocks, max((len(c) for c in counts), default=1))
        for b, c in enumerate(counts):
            padded[b, : len(c)] = torch.tensor(c, dtype=torch.float32)
        padded = padded.to(device)
        log_freq = torch.log1p(padded)  # zero where a slot has no rows
        self._train_cdf = torch.cumsum(log_freq / log_freq.sum(1, keepdim=True), 1)
        self._real_cdf = torch.cumsum(padded / padded.sum(1, keepdim=True), 1)

    def draw(self, size: int, log_frequency: bool) -> torch.Tensor:
        """The condition slot of each of ``size`` rows: a uniform block, then a category by
        log-frequency (training-by-sampling) or by real frequency (sampling)."""
        cdf = self._train_cdf if log_frequency else self._real_cdf
        device = cdf.device
        block = torch.randint(self.n_blocks, (size,), device=device)
        u = torch.rand(size, 1, device=device)
        cat = torch.minimum((cdf[block] < u).sum(1), self.widths[block] - 1)
        return self.offsets[block] + cat


class _RowsBySlot:
    """Row indices grouped by category for every block: a real row with a given condition slot
    is one gather instead of CTGAN's per-row Python choice."""

    def __init__(self, slots: torch.Tensor, dim: int) -> None:
        """``slots``: (n, blocks) condition slot of every row in every block."""
        # integer positions: they run to rows x blocks, past float32's exact 2**24 on large tables
        self.counts = torch.bincount(slots.flatten(), minlength=dim)
        self.starts = torch.cumsum(self.counts, 0) - self.counts  # first position of each slot
        self.rows_sorted = torch.argsort(slots.T.flatten(), stable=True) % len(slots)

    def rows(self, slot: torch.Tensor) -> torch.Tensor:
        count = self.counts[slot]
        offset = (torch.rand(count.shape, dtype=torch.float64, device=count.device) * count).long()
        return self.rows_sorted[self.starts[slot] + torch.minimum(offset, count - 1)]


class GANGenerator(TorchGenerator):
    """Conditional WGAN-GP with PacGAN critic on the shared encoder (CTGAN-style)."""

    family = "gan"
    config_class = GANConfig
    config: GANConfig

    def _build(self, extra: dict) -> None:
        assert self.encoder is not None
        cfg = self.config
        width = self.encoder.width
        # category counts per block (model order): the conditional vectors when training and sampling
        self._block_counts: list[list[int]] = extra.get("block_counts", [])
        self._conditions = _Conditions(self._block_counts, self.device)
        cond_dim = self._conditions.dim
        self.gen = _Generator(cfg.embedding_dim, cond_dim, cfg.generator_dims, width).to(self.device)
        self.critic = _Critic(width, cond_dim, cfg.discriminator_dims, cfg.pac).to(self.device)

    def _modules(self) -> dict[str, nn.Module]:
        return {"generator": self.gen, "critic": self.critic}

    def _extra_state(self) -> dict:
        return {"block_counts": self._block_counts}

    def _prepare(self, data: torch.Tensor) -> dict:
        counts = []
        for group in self.layout.blocks.views(self.layout.split(data)[1]):  # (n, count, size)
            counts += group.sum(0).round().long().tolist()
        return {"block_counts": counts}

    def _activate(self, raw: torch.Tensor, hard: bool = False) -> torch.Tensor:
        """Numeric dims as they are; categorical blocks through Gumbel-softmax."""
        numeric, logits = self.layout.split(raw.float())
        return torch.cat([numeric, self.layout.blocks.gumbel_softmax(logits, self.config.gumbel_tau, hard)], 1)

    def _cond_loss(self, raw: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each row's conditioned block against its condition."""
        log_p = self.layout.blocks.log_softmax(self.layout.split(raw.float())[1])
        return -log_p.gather(1, slot[:, None]).mean()

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, slot_r: torch.Tensor | None,
                          slot_f: torch.Tensor | None) -> torch.Tensor:
        """WGAN-GP as in CTGAN: critic inputs (rows and their one-hot conditions) interpolated
        between real and fake, and the gradient norm over both pushed to 1, per pac group."""
        pac, n = self.config.pac, len(real)
        alpha = torch.rand(n // pac, 1, 1, device=real.device).expand(-1, pac, 1).reshape(n, 1)
        mixed = alpha * real + (1 - alpha) * fake
        mixed_c = None
        if slot_r is not None and slot_f is not None:
            # interpolated conditions are not one-hot: the critic takes them as a dense product
            c_r, c_f = (F.one_hot(s, self._conditions.dim).float() for s in (slot_r, slot_f))
            mixed_c = alpha * c_r + (1 - alpha) * c_f
        norm = self.critic.input_gradient_norms(mixed, mixed_c)
        return ((norm - 1) ** 2).mean() * self.config.gradient_penalty

    def _train(self, data: torch.Tensor, progress: ProgressCallback) -> list[dict[str, float]]:
        cfg = self.config
        self.gen.train()
        self.critic.train()
        conditions = self._conditions
        has_cond = conditions.n_blocks > 0
        if has_cond:
            slots = self.layout.blocks.indices(self.layout.split(data)[1])  # (n, blocks)
            rows_by_slot = _RowsBySlot(slots, conditions.dim)
        opt_g = adam(self.gen.parameters(), self.device, lr=cfg.learning_rate, betas=(0.5, 0.9),
                     weight_decay=cfg.weight_decay)
        opt_d = adam(self.critic.parameters(), self.device, lr=cfg.learning_rate, betas=(0.5, 0.9),
                     weight_decay=cfg.weight_decay)
        batch = cfg.batch_size
        steps = max(1, len(data) // batch)

        def draw() -> tuple[torch.Tensor, torch.Tensor | None]:
            z = torch.randn(batch, cfg.embedding_dim, device=self.device)
            return z, (conditions.draw(batch, log_frequency=True) if has_cond else None)

        def critic_step(fake: torch.Tensor, slot: torch.Tensor | None) -> torch.Tensor:
            # real rows for a shuffled copy of the conditions (training-by-sampling, as CTGAN)
            if slot is not None:
                real_slot = slot[torch.randperm(batch, device=self.device)]
                real = data.index_select(0, rows_by_slot.rows(real_slot))
                both_slots = torch.cat([slot, real_slot])
            else:
                real_slot = both_slots = None
                real = data.index_select(0, torch.randint(len(data), (batch,), device=self.device))
            with autocast(self.device, self.amp_dtype):  # one autocast block: both passes share the weight casts
                # one pass over fake and real rows (pac groups never straddle the halves)
                scores = self.critic(torch.cat([fake, real], 0), both_slots).float()
                half = len(scores) // 2
                d_loss = scores[:half].mean() - scores[half:].mean()
                penalty = self._gradient_penalty(real, fake, real_slot, slot)
            opt_d.zero_grad(set_to_none=True)
            (d_loss + penalty).backward()
            opt_d.step()
            return d_loss.detach()

        def step(_: int) -> dict[str, torch.Tensor]:
            for _ in range(cfg.discriminator_steps - 1):
                z, slot = draw()
                with torch.no_grad(), autocast(self.device, self.amp_dtype):
                    fake = self._activate(self.gen(z, slot))
                critic_step(fake, slot)
            # One generator forward serves the last critic step (detached) and the generator step
            # (through the updated critic), as in the DCGAN reference loop: it saves a quarter of
            # the generator's work compared with drawing a second batch for the generator step.
            z, slot = draw()
            with autocast(self.device, self.amp_dtype):
                raw = self.gen(z, slot)
            fake = self._activate(raw)
            d_loss = critic_step(fake.detach(), slot)
            # the critic's weights get no gradient from the generator step: skip computing it
            with frozen(self.critic), autocast(self.device, self.amp_dtype):
                g_adv = -self.critic(fake, slot).float().mean()
            cond_loss = self._cond_loss(raw, slot) if slot is not None else g_adv.new_zeros(())
            g_loss = g_adv + cond_loss
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            return {"loss": g_loss.detach(), "loss_critic": d_loss, "cond_loss": cond_loss.detach()}

        return train_epochs(cfg.epochs, lambda: range(steps), step, progress)

    def _generate(self, n: int) -> torch.Tensor:
        # BatchNorm in eval mode uses running statistics, so any n works (CTGAN samples in train
        # mode; eval mode keeps sampling independent of the batch size)
        z = torch.randn(n, self.config.embedding_dim, device=self.device)
        slot = self._conditions.draw(n, log_frequency=False) if self._conditions.n_blocks else None
        return self._activate(self.gen(z, slot), hard=True)
