"""TabDDPM on an encoded matrix: Gaussian diffusion for numeric positions, multinomial for one-hot blocks.

This module knows nothing about DataFrames: it takes the encoder's matrix and its spans
(anything with ``kind``, ``start`` and ``end``) and provides the training loss and the sampler.
:mod:`generators.diffusion` wraps it into the project's :class:`~generators.base.Generator`.

Noise schedules come from ``diffusers``: a :class:`DDPMScheduler` defines the betas and noises
the numeric features during training; a :class:`DDIMScheduler` built from the same config
samples with few steps. The multinomial half reuses the DDPM betas, so both halves are equally
noisy at every timestep and the categorical chain jumps between the same timesteps as DDIM.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Literal, Protocol, Sequence

import torch
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

from generators.denoiser import MLPDenoiser
from generators.multinomial_diffusion import BlockLayout, MultinomialDiffusion

BetaSchedule = Literal["linear", "squaredcos_cap_v2", "sigmoid"]
PredictionType = Literal["epsilon", "v_prediction", "sample"]


class SpanLike(Protocol):
    """The part of :class:`generators.encoder.Span` this module needs."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class DiffusionShape:
    """Hyper-parameters that fix the network and schedule shapes (saved with the model)."""

    hidden_dim: int = 256
    n_blocks: int = 2
    time_dim: int = 128
    dropout: float = 0.0
    num_train_timesteps: int = 1000
    beta_schedule: BetaSchedule = "squaredcos_cap_v2"
    prediction_type: PredictionType = "v_prediction"


def scheduler_config(shape: DiffusionShape) -> dict:
    """The DDPM scheduler's config; saved as JSON with the model so sampling uses the same betas."""
    return dict(
        num_train_timesteps=shape.num_train_timesteps,
        beta_schedule=shape.beta_schedule,
        prediction_type=shape.prediction_type,
        clip_sample=False,  # encoded features are not bounded to [-1, 1]
    )


def ddim_from(ddpm: DDPMScheduler) -> DDIMScheduler:
    """A DDIM sampler with the training scheduler's betas.

    ``trailing`` spacing makes the first sampling step start at ``T - 1``, where the Gaussian
    prior N(0, I) and the uniform categorical prior are exact; ``set_alpha_to_one`` makes the
    last step return clean data. Both matter when sampling with 10-50 steps.
    """
    return DDIMScheduler.from_config(
        ddpm.config, timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=False
    )


class TabDDPM(torch.nn.Module):
    """The denoiser plus both diffusion processes, on one encoded layout.

    Internally the matrix is permuted to ``[numeric positions | categorical blocks sorted by
    size]`` (see :class:`BlockLayout`); :meth:`to_internal` / :meth:`from_internal` convert.
    """

    def __init__(
        self,
        spans: Sequence[SpanLike],
        width: int,
        shape: DiffusionShape,
        saved_scheduler: dict | None = None,
    ) -> None:
        """``saved_scheduler``: a DDPM scheduler config saved with a model (JSON), which wins over
        the one derived from ``shape`` so a loaded model samples with exactly its training betas."""
        super().__init__()
        self.shape = shape
        numeric = [i for s in spans if s.kind == "numeric" for i in range(s.start, s.end)]
        blocks = sorted((s for s in spans if s.kind == "categorical"), key=lambda s: (s.end - s.start, s.start))
        categorical = [i for s in blocks for i in range(s.start, s.end)]
        perm = numeric + categorical
        if sorted(perm) != list(range(width)):
            raise ValueError("spans must tile the encoded matrix exactly once")
        self.num_dim = len(numeric)
        self.cat_dim = len(categorical)
        self.register_buffer("perm", torch.tensor(perm, dtype=torch.long), persistent=False)
        self.register_buffer("inv_perm", torch.argsort(self.perm), persistent=False)
        if saved_scheduler is not None:
            self.scheduler = DDPMScheduler.from_config(saved_scheduler)
        else:
            self.scheduler = DDPMScheduler(**scheduler_config(shape))
        if self.scheduler.config.clip_sample:
            raise ValueError("clip_sample must be False: encoded features are not bounded to [-1, 1]")
        self.layout = BlockLayout([s.end - s.start for s in blocks])
        self.multinomial = MultinomialDiffusion(self.layout, self.scheduler.betas) if blocks else None
        self.denoiser = MLPDenoiser(
            width, hidden_dim=shape.hidden_dim, n_blocks=shape.n_blocks, time_dim=shape.time_dim,
            dropout=shape.dropout,
        )

    def scheduler_json(self) -> dict:
        """The DDPM scheduler config as plain JSON (saved next to the weights)."""
        return {k: v for k, v in dict(self.scheduler.config).items() if not k.startswith("_")}

    # -- layout ----------------------------------------------------------------------------
    def to_internal(self, matrix: torch.Tensor) -> torch.Tensor:
        return matrix[:, self.perm.to(matrix.device)]

    def from_internal(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.inv_perm.to(x.device)]

    # -- training --------------------------------------------------------------------------
    def loss(
        self,
        x0: torch.Tensor,
        denoiser: torch.nn.Module | None = None,
        autocast: Callable[[], object] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean training loss of a batch ``x0`` (internal layout) at uniformly drawn timesteps.

        Returns the loss and its detached parts (``loss_num``: noise-prediction MSE per numeric feature;
        ``loss_cat``: multinomial KL / decoder NLL per categorical column).
        """
        net = denoiser or self.denoiser
        n, device = x0.shape[0], x0.device
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (n,), device=device, generator=generator)
        x_num0, x_cat0 = x0[:, : self.num_dim], x0[:, self.num_dim :]
        parts_in = []
        if self.num_dim:
            noise = torch.randn(x_num0.shape, device=device, generator=generator)
            parts_in.append(self.scheduler.add_noise(x_num0, noise, t))
        if self.cat_dim:
            x_cat_t = self.multinomial.q_sample(x_cat0, t, generator)
            parts_in.append(x_cat_t)
        with autocast() if autocast else contextlib.nullcontext():
            out = net(torch.cat(parts_in, dim=1), t)
        out = out.float()
        total = torch.zeros((), device=device)
        metrics: dict[str, torch.Tensor] = {}
        if self.num_dim:
            target = self._gaussian_target(x_num0, noise, t)
            loss_num = ((out[:, : self.num_dim] - target) ** 2).mean()
            total = total + loss_num
            metrics["loss_num"] = loss_num.detach()
        if self.cat_dim:
            loss_cat = self.multinomial.loss(out[:, self.num_dim :], x_cat0, x_cat_t, t).mean()
            total = total + loss_cat
            metrics["loss_cat"] = loss_cat.detach()
        return total, metrics

    def _gaussian_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        kind = self.shape.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "sample":
            return x0
        return self.scheduler.get_velocity(x0, noise, t)

    # -- sampling --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        steps: int,
        generator: torch.Generator | None,
        device: torch.device,
        denoiser: torch.nn.Module | None = None,
        eta: float = 0.0,
        batch_size: int = 32768,
        autocast: Callable[[], object] | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` rows (encoder layout, float32, on CPU) with ``steps`` DDIM steps.

        Rows are drawn in batches of ``batch_size``, each through all steps, so memory stays
        bounded; the random stream depends only on ``n``, the seed and the batch size.
        ``on_step(done, total)`` is called after every denoising step of every batch.
        """
        net = denoiser or self.denoiser
        ddim = ddim_from(self.scheduler)
        ddim.set_timesteps(steps)
        stride = ddim.config.num_train_timesteps // ddim.num_inference_steps
        timesteps = [int(t) for t in ddim.timesteps]
        n_batches = max(1, -(-n // batch_size))
        total, done = n_batches * len(timesteps), 0
        outputs = []
        for b in range(n_batches):
            m = min(batch_size, n - b * batch_size)
            x_num = torch.randn((m, self.num_dim), generator=generator, device=device)
            x_cat = self.layout.uniform(m, generator, device) if self.cat_dim else x_num[:, :0]
            for t in timesteps:
                t_vec = torch.full((m,), t, dtype=torch.long, device=device)
                with autocast() if autocast else contextlib.nullcontext():
                    out = net(torch.cat([x_num, x_cat], dim=1), t_vec)
                out = out.float()
                if self.num_dim:
                    x_num = ddim.step(out[:, : self.num_dim], t, x_num, eta=eta, generator=generator).prev_sample
                if self.cat_dim:
                    # DDIM moves the numerics to t - stride (its own rule); the categorical chain
                    # jumps to the same timestep so both halves stay equally noisy.
                    x_cat = self.multinomial.step(out[:, self.num_dim :], x_cat, t, t - stride, generator)
                done += 1
                if on_step:
                    on_step(done, total)
            outputs.append(torch.cat([x_num, x_cat], dim=1).cpu())
        return self.from_internal(torch.cat(outputs, dim=0))

