"""``diffusion``: a TabDDPM-style tabular diffusion model (Kotelnikov et al. 2023).

Numeric features (the shared encoder's quantile-normal scores) are diffused with Gaussian noise
using ``diffusers``' :class:`DDPMScheduler` for training and a few-step :class:`DDIMScheduler`
for sampling; categorical blocks (including the null indicators of nullable numerics) are
diffused with multinomial diffusion written in this project
(:mod:`generators.multinomial_diffusion`). One residual MLP (:mod:`generators.denoiser`)
predicts both. The model lives in :mod:`generators.tabddpm`; this module adapts it to the
project's generator interface on top of :class:`generators.training.TorchGenerator`.

Choices that differ from the TabDDPM paper, and why:

* v-prediction instead of epsilon-prediction. With the cosine schedule, ``abar`` at the last
  timestep is about 2e-9 and epsilon-prediction turns small network errors into x0 estimates
  of size 1e4 during the first few-step DDIM updates; v-prediction is bounded there.
* DDIM with 25 steps instead of 1000 ancestral steps (TabSyn reports near-best quality with
  20), so 100,000 rows take seconds, not minutes, on a CPU. The categorical chain jumps
  between the same timesteps using the exact strided posterior.
* The categorical loss adds the cross-entropy of the predicted clean category to TabDDPM's KL
  (D3PM's auxiliary loss): the KL alone learns the categories slowly in a short CPU run.
* An exponential moving average of the weights is what samples (TabDDPM keeps one too), and
  the learning rate decays linearly to zero, which matters for the short CPU budgets here.
* Training length is set in optimiser steps as well as epochs (``min_steps`` / ``max_steps``),
  because a 3,000-row and a 300,000-row table need similar numbers of updates, not of epochs.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from pydantic import Field, model_validator

from generators.base import ProgressCallback, ProgressEvent, no_progress
from generators.tabddpm import DiffusionShape, TabDDPM
from generators.training import (
    TorchConfig,
    TorchGenerator,
    autocast,
    shuffled_batches,
    train_epochs,
)


class DiffusionConfig(TorchConfig):
    """Hyper-parameters of the diffusion family. Defaults: good quality in about a minute of
    training on two CPU cores for tables of a few thousand rows."""

    epochs: int = Field(300, ge=1, description="passes over the training table; when left at the default, "
                        "kept within min_steps..max_steps optimiser steps; when given, run as given")
    min_steps: int = Field(1000, ge=0, description="optimiser steps at least (default epochs, or when given): "
                           "small tables get more epochs")
    max_steps: int = Field(4000, ge=1, description="optimiser steps at most (default epochs, or when given): "
                           "large tables get fewer epochs")

    def step_bounds(self) -> tuple[int, int]:
        """(min_steps, max_steps) that apply: an epoch count the user chose (``--epochs 5`` for a
        quick run) is run as given unless the step bounds were chosen too; the default adapts."""
        if "epochs" not in self.model_fields_set:
            return self.min_steps, self.max_steps
        return (self.min_steps if "min_steps" in self.model_fields_set else 0,
                self.max_steps if "max_steps" in self.model_fields_set else 2**62)
    batch_size: int = Field(1024, ge=2, description="rows per training step")
    learning_rate: float = Field(2e-3, gt=0, description="peak AdamW learning rate (linear warm-up, then linear decay to 0)")
    weight_decay: float = Field(1e-5, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(100, ge=0, description="linear learning-rate warm-up")
    ema_decay: float = Field(0.995, ge=0, lt=1, description="decay of the weight average used for sampling (0 = no averaging)")
    hidden_dim: int = Field(256, ge=8, description="width of the denoiser's residual MLP")
    n_blocks: int = Field(2, ge=1, description="residual blocks in the denoiser")
    time_dim: int = Field(128, ge=8, multiple_of=2, description="size of the sinusoidal timestep embedding")
    dropout: float = Field(0.0, ge=0, lt=1)
    num_train_timesteps: int = Field(1000, ge=2, description="diffusion timesteps T of the training scheduler")
    beta_schedule: Literal["linear", "squaredcos_cap_v2", "sigmoid"] = Field(
        "squaredcos_cap_v2", description="noise schedule of both halves (diffusers' names; squaredcos_cap_v2 = cosine)"
    )
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = Field(
        "v_prediction", description="what the network predicts for the numeric features"
    )
    cat_ce_weight: float = Field(
        1.0, ge=0, description="weight of the cross-entropy of the predicted clean category, added to the multinomial KL"
    )
    sampling_steps: int = Field(25, ge=1, description="DDIM steps when sampling")
    eta: float = Field(0.0, ge=0, le=1, description="DDIM stochasticity: 0 = deterministic ODE, 1 = DDPM-like")
    sample_batch_size: int = Field(
        10_000, ge=1, description="rows denoised together when sampling (about 10k keeps activations in CPU cache)"
    )

    @model_validator(mode="after")
    def _steps_within_schedule(self) -> "DiffusionConfig":
        if self.sampling_steps > self.num_train_timesteps:
            raise ValueError(
                f"sampling_steps ({self.sampling_steps}) cannot exceed num_train_timesteps ({self.num_train_timesteps})"
            )
        return self

    def shape(self) -> DiffusionShape:
        return DiffusionShape(
            hidden_dim=self.hidden_dim,
            n_blocks=self.n_blocks,
            time_dim=self.time_dim,
            dropout=self.dropout,
            num_train_timesteps=self.num_train_timesteps,
            beta_schedule=self.beta_schedule,
            prediction_type=self.prediction_type,
            cat_ce_weight=self.cat_ce_weight,
        )


class DiffusionGenerator(TorchGenerator):
    """TabDDPM on the shared encoder: Gaussian diffusion for numerics, multinomial for categories."""

    family = "diffusion"
    config_class = DiffusionConfig
    config: DiffusionConfig

    def __init__(self, config: DiffusionConfig | None = None) -> None:
        super().__init__(config)
        self.model: TabDDPM | None = None
        self.ema: torch.nn.Module | None = None
        self._sample_progress: ProgressCallback | None = None
        self._sample_done = 0
        self._sample_total = 0

    # TorchGenerator hooks ---------------------------------------------------------------------
    def _build(self, extra: dict) -> None:
        assert self.encoder is not None
        self.model = TabDDPM(self.layout, self.config.shape(), saved_scheduler=extra.get("scheduler")).to(self.device)
        # The averaged copy that samples; with ema_decay = 0 it simply mirrors the weights.
        self.ema = self.model.make_denoiser().to(self.device)
        self.ema.load_state_dict(self.model.denoiser.state_dict())
        self.ema.requires_grad_(False)

    def _modules(self) -> dict[str, torch.nn.Module]:
        # Only the averaged weights are needed to sample; the raw ones are not saved.
        assert self.ema is not None
        return {"denoiser": self.ema}

    def _extra_state(self) -> dict:
        assert self.model is not None
        return {"scheduler": self.model.scheduler_json()}

    def _train(self, data: torch.Tensor, progress: ProgressCallback) -> list[dict[str, float]]:
        assert self.model is not None and self.ema is not None
        cfg = self.config
        model = self.model
        x_num, x_cat = model.to_internal(data)
        n = len(data)
        batch_size = min(cfg.batch_size, n)
        per_epoch = max(1, math.ceil(n / batch_size) - (1 if n % batch_size == 1 and n > batch_size else 0))
        epochs = _epochs(cfg.epochs, per_epoch, *cfg.step_bounds())
        total_steps = epochs * per_epoch
        params = [p for p in model.denoiser.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: _lr_factor(i, cfg.warmup_steps, total_steps))
        ema_params = list(self.ema.parameters())
        step_count = [0]
        model.train()

        def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            loss, parts = model.loss(x_num[idx], x_cat[idx], autocast=lambda: autocast(self.device, self.amp_dtype))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step_count[0] += 1
            # EMA with the usual warm-up, so the average is not dominated by the random init
            # when training is short.
            decay = min(cfg.ema_decay, (1 + step_count[0]) / (10 + step_count[0]))
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, params, 1.0 - decay)
            return {"loss": loss.detach(), **parts}

        history = train_epochs(epochs, lambda: shuffled_batches(n, batch_size, self.device), step, progress)
        model.eval()
        self.ema.eval()
        return history

    def _generate(self, n: int) -> torch.Tensor:
        assert self.model is not None and self.ema is not None
        return self.model.sample(
            n,
            self.config.sampling_steps,
            generator=None,  # the global RNG, seeded by TorchGenerator.sample
            device=self.device,
            denoiser=self.ema,
            eta=self.config.eta,
            batch_size=n,  # TorchGenerator.sample already splits n into sample_batch_size chunks
            on_step=self._on_sample_step,
        )

    # interface -------------------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0, progress: ProgressCallback = no_progress) -> pd.DataFrame:
        """``n`` rows; progress is reported after every denoising step (not only per batch)."""
        batches = max(1, -(-n // self.config.sample_batch_size))
        self._sample_progress = progress
        self._sample_done, self._sample_total = 0, batches * self.config.sampling_steps
        try:
            # the base class's per-batch events are replaced by the per-step ones above
            return super().sample(n, seed, no_progress)
        finally:
            self._sample_progress = None

    def _on_sample_step(self, _done_in_batch: int, _total_in_batch: int) -> None:
        self._sample_done += 1
        if self._sample_progress is not None:
            self._sample_progress(ProgressEvent(stage="sample", step=self._sample_done, total=self._sample_total))

    @classmethod
    def load(cls, directory: Path) -> "DiffusionGenerator":
        gen = super().load(directory)
        assert isinstance(gen, DiffusionGenerator) and gen.model is not None and gen.ema is not None
        # the raw weights were not saved; the averaged ones stand in for them
        gen.model.denoiser.load_state_dict(gen.ema.state_dict())
        gen.model.eval()
        gen.ema.eval()
        return gen


def _epochs(epochs: int, per_epoch: int, min_steps: int, max_steps: int) -> int:
    """``epochs``, raised so at least ``min_steps`` and lowered so at most ``max_steps`` run."""
    wanted = max(epochs, math.ceil(min_steps / per_epoch))
    return max(1, min(wanted, max_steps // per_epoch))


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then linear decay to 0 at ``total`` (TabDDPM anneals linearly)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, 1.0 - (step - warmup) / max(1, total - warmup))
