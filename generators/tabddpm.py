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
from typing import Callable, Literal

import torch
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

from generators.denoiser import MLPDenoiser
from generators.layout import ModelLayout
from generators.multinomial_diffusion import MultinomialDiffusion

BetaSchedule = Literal["linear", "squaredcos_cap_v2", "sigmoid"]
PredictionType = Literal["epsilon", "v_prediction", "sample"]


@dataclass(frozen=True)
class DiffusionShape:
    """Hyper-parameters of the network, the noise schedule and the categorical loss weighting
    (built from :class:`generators.diffusion.DiffusionConfig`, which is what gets saved)."""

    hidden_dim: int = 256
    n_blocks: int = 2
    time_dim: int = 128
    dropout: float = 0.0
    num_train_timesteps: int = 1000
    beta_schedule: BetaSchedule = "squaredcos_cap_v2"
    prediction_type: PredictionType = "v_prediction"
    cat_ce_weight: float = 0.0


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

    Internally a batch is a pair: ``x_num`` (n, num_dim) float numeric features and ``x_cat``
    (n, n_columns) long, the category of each categorical block as a position in the
    concatenated one-hot layout whose blocks are sorted by size (see :class:`BlockLayout`).
    :meth:`to_internal` / :meth:`from_internal` convert from / to a matrix in the model column
    order of ``layout`` (:class:`ModelLayout`; :class:`TorchGenerator` puts the encoder's matrix in
    that order).
    """

    def __init__(
        self,
        layout: ModelLayout,
        shape: DiffusionShape,
        saved_scheduler: dict | None = None,
    ) -> None:
        """``saved_scheduler``: a DDPM scheduler config saved with a model (JSON), which wins over
        the one derived from ``shape`` so a loaded model samples with exactly its training betas."""
        super().__init__()
        self.shape = shape
        self.model_layout = layout
        self.num_dim = layout.num_dim
        self.cat_dim = layout.cat_dim
        if saved_scheduler is not None:
            self.scheduler = DDPMScheduler.from_config(saved_scheduler)
        else:
            self.scheduler = DDPMScheduler(**scheduler_config(shape))
        if self.scheduler.config.clip_sample:
            raise ValueError("clip_sample must be False: encoded features are not bounded to [-1, 1]")
        self.layout = layout.blocks
        self.multinomial = MultinomialDiffusion(self.layout, self.scheduler.betas)
        self.denoiser = self.make_denoiser()

    def make_denoiser(self) -> MLPDenoiser:
        """A fresh network of this model's shape (also used for the weight average)."""
        s = self.shape
        return MLPDenoiser(
            self.num_dim, self.cat_dim, self.layout.n_blocks, hidden_dim=s.hidden_dim, n_blocks=s.n_blocks,
            time_dim=s.time_dim, dropout=s.dropout,
            # numerics, then one chunk per group of equally sized categorical blocks
            output_splits=[self.num_dim, *(g.end - g.start for g in self.layout.groups)],
        )

    def scheduler_json(self) -> dict:
        """The DDPM scheduler config as plain JSON (saved next to the weights)."""
        return {k: v for k, v in dict(self.scheduler.config).items() if not k.startswith("_")}

    # -- layout ----------------------------------------------------------------------------
    def to_internal(self, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Model-order matrix -> (numeric features, category indices)."""
        x_num, onehot = self.model_layout.split(matrix)
        return x_num, self.layout.indices(onehot)

    def from_internal(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """(numeric features, category indices) -> model-order matrix with exact one-hot blocks."""
        return torch.cat([x_num.float(), self.layout.onehot(x_cat)], dim=1) if self.cat_dim else x_num.float()

    # -- training --------------------------------------------------------------------------
    def loss(
        self,
        x_num0: torch.Tensor,
        x_cat0: torch.Tensor,
        denoiser: torch.nn.Module | None = None,
        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean training loss of a batch at uniformly drawn timesteps.

        Returns the loss and its detached parts: ``loss_num``, the MSE of the Gaussian target
        per numeric feature; ``loss_cat``, the multinomial KL / decoder NLL per categorical column.
        """
        net = denoiser or self.denoiser
        n, device = x_num0.shape[0], x_num0.device
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (n,), device=device, generator=generator)
        noise = torch.randn(x_num0.shape, device=device, generator=generator)
        x_num_t = self.scheduler.add_noise(x_num0, noise, t) if self.num_dim else x_num0
        x_cat_t = self.multinomial.q_sample(x_cat0, t, generator) if self.cat_dim else x_cat0
        with autocast() if autocast else contextlib.nullcontext():
            chunks = net(x_num_t, x_cat_t, t)
        out = torch.cat(chunks, dim=1).float()
        total = out.new_zeros(())
        metrics: dict[str, torch.Tensor] = {}
        if self.num_dim:
            target = self._gaussian_target(x_num0, noise, t)
            loss_num = ((out[:, : self.num_dim] - target) ** 2).mean()
            total = total + loss_num
            metrics["loss_num"] = loss_num.detach()
        if self.cat_dim:
            loss_cat = self.multinomial.loss(
                out[:, self.num_dim :], x_cat0, x_cat_t, t, ce_weight=self.shape.cat_ce_weight
            ).mean()
            total = total + loss_cat
            metrics["loss_cat"] = loss_cat.detach()
        return total, metrics

    def _gaussian_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        kind = self.scheduler.config.prediction_type
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
        batch_size: int = 50_000,
        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` rows as an encoder matrix (float32, on CPU) with ``steps`` DDIM steps.

        Rows are drawn in batches of ``batch_size``, each through all steps, so memory stays
        bounded; the random stream depends only on ``n``, the seed and the batch size.
        ``on_step(done, total)`` is called after every denoising step of every batch.
        """
        net = denoiser or self.denoiser
        ddim = ddim_from(self.scheduler)
        ddim.set_timesteps(steps)
        # DDIM moves the numerics from t to t - stride (its own rule, also when the spacing leaves
        # a different next timestep); the categorical chain jumps to the same timestep so both
        # halves stay equally noisy.
        stride = ddim.config.num_train_timesteps // ddim.num_inference_steps
        timesteps = [int(t) for t in ddim.timesteps]
        n_batches = max(1, -(-n // batch_size))
        total, done = n_batches * len(timesteps), 0
        outputs = []
        for b in range(n_batches):
            m = min(batch_size, n - b * batch_size)
            x_num = torch.randn((m, self.num_dim), generator=generator, device=device)
            x_cat = self.layout.uniform(m, generator, device) if self.cat_dim else torch.zeros(m, 0, dtype=torch.long, device=device)
            for t in timesteps:
                t_now = torch.tensor(t, dtype=torch.long, device=device)  # shared by all rows
                with autocast() if autocast else contextlib.nullcontext():
                    chunks = net(x_num, x_cat, t_now)
                if self.num_dim:
                    x_num = ddim.step(chunks[0].float(), t, x_num, eta=eta, generator=generator).prev_sample
                if self.cat_dim:
                    x_cat = self.multinomial.step(chunks[1:], x_cat, t, t - stride, generator)
                done += 1
                if on_step:
                    on_step(done, total)
            outputs.append(self.from_internal(x_num, x_cat).cpu())
        return torch.cat(outputs, dim=0)
