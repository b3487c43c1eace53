"""``vae``: a tabular variational autoencoder in the spirit of TVAE (Xu et al. 2019).

Differences from TVAE, all deliberate: numerics arrive as quantile-normal scores from the shared
encoder (not mode-specific GMM normalisation), so the decoder's numeric outputs are linear with a
learned per-dim standard deviation instead of tanh; categorical blocks are *sampled* from the
decoder's softmax when generating (TVAE takes the argmax, which over-produces frequent values).
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from generators.base import ProgressCallback
from generators.training import (
    TorchConfig,
    TorchGenerator,
    autocast,
    categorical_activation,
    shuffled_batches,
    span_groups,
    train_epochs,
)


class VAEConfig(TorchConfig):
    """TVAE-style hyper-parameters.

    Defaults differ from TVAE's (300 epochs, 128-wide layers and latent) to be fast on CPU: on
    the benchmark tables 64-wide layers reach the same SDMetrics quality as 128-wide ones in a
    third of the time (bench/results/latest.md).
    """

    embedding_dim: int = Field(64, ge=1, description="latent size")
    compress_dims: list[int] = Field(default_factory=lambda: [64, 64], description="encoder hidden layers")
    decompress_dims: list[int] = Field(default_factory=lambda: [64, 64], description="decoder hidden layers")
    l2scale: float = Field(1e-5, ge=0, description="Adam weight decay")
    loss_factor: float = Field(2.0, gt=0, description="weight of the reconstruction term against the KL term")


def _mlp(sizes: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return layers


class _Encoder(nn.Module):
    def __init__(self, width: int, hidden: list[int], latent: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_mlp([width, *hidden]))
        last = hidden[-1] if hidden else width
        self.mu = nn.Linear(last, latent)
        self.logvar = nn.Linear(last, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


class _Decoder(nn.Module):
    def __init__(self, latent: int, hidden: list[int], width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_mlp([latent, *hidden]), nn.Linear(hidden[-1] if hidden else latent, width))
        # per-dim output std for numeric dims (TVAE's sigma), clamped to [0.01, 1] after each step
        self.sigma = nn.Parameter(torch.full((width,), 0.1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class VAEGenerator(TorchGenerator):
    """Tabular VAE: Gaussian likelihood on numeric dims, cross-entropy on categorical blocks."""

    family = "vae"
    config_class = VAEConfig
    config: VAEConfig

    def _build(self, extra: dict) -> None:
        assert self.encoder is not None
        cfg = self.config
        width = self.encoder.width
        self._numeric, self._blocks = span_groups(self.encoder)
        self.enc = _Encoder(width, cfg.compress_dims, cfg.embedding_dim).to(self.device)
        self.dec = _Decoder(cfg.embedding_dim, cfg.decompress_dims, width).to(self.device)

    def _modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.enc, "decoder": self.dec}

    def _reconstruction(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Summed negative log-likelihood of ``x`` under the decoder output (TVAE's loss)."""
        loss = recon.new_zeros(())
        if self._numeric:
            idx = self._numeric
            sigma = self.dec.sigma[idx]
            loss = loss + (((x[:, idx] - recon[:, idx]) ** 2) / (2 * sigma**2)).sum()
            loss = loss + torch.log(sigma).sum() * x.shape[0]
        for start, end in self._blocks:
            target = x[:, start:end].argmax(dim=1)
            loss = loss + F.cross_entropy(recon[:, start:end].float(), target, reduction="sum")
        return loss

    def _train(self, data: torch.Tensor, progress: ProgressCallback) -> list[dict[str, float]]:
        cfg = self.config
        self.enc.train()
        self.dec.train()
        params = list(self.enc.parameters()) + list(self.dec.parameters())
        opt = torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.l2scale)
        n = len(data)
        batch_size = min(cfg.batch_size, n)

        def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            x = data[idx]
            with autocast(self.device):
                mu, logvar = self.enc(x)
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                recon = self.dec(z)
            recon, mu, logvar = recon.float(), mu.float(), logvar.float()
            rec = self._reconstruction(recon, x)
            kld = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())
            loss = (cfg.loss_factor * rec + kld) / len(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                self.dec.sigma.clamp_(0.01, 1.0)
            return {"loss": loss.detach(), "kl": kld.detach() / len(x)}

        return train_epochs(cfg.epochs, lambda: shuffled_batches(n, batch_size, self.device), step, progress)

    def _generate(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.config.embedding_dim, device=self.device)
        out = self.dec(z).float()
        if self._numeric:
            idx = self._numeric
            # draw around the decoded mean with the learned std, as TVAE does when sampling
            out[:, idx] = out[:, idx] + torch.randn_like(out[:, idx]) * self.dec.sigma[idx]
        return categorical_activation(out, self._blocks, hard_sample=True)
