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

from generators.base import ProgressCallback
from generators.training import TorchConfig, TorchGenerator, adam, autocast, shuffled_rows, train_epochs


class VAEConfig(TorchConfig):
    """TVAE-style hyper-parameters.

    Defaults differ from TVAE's (300 epochs, batch 500, lr 1e-3, 128-wide layers and latent) to be
    fast on a CPU at better quality: on the benchmark tables a 16-dim latent with a [32] encoder
    and a [64, 64] decoder, trained in batches of 1,500 at lr 3e-3, scores higher than TVAE's
    shape and higher than our earlier 64-wide one (bench/results/latest.md), on tables of 500
    rows as well as 5,000.
    """

    embedding_dim: int = Field(16, ge=1, description="latent size")
    compress_dims: list[int] = Field(default_factory=lambda: [32], description="encoder hidden layers")
    decompress_dims: list[int] = Field(default_factory=lambda: [64, 64], description="decoder hidden layers")
    batch_size: int = Field(1500, ge=2, description="rows per training step")
    learning_rate: float = Field(3e-3, gt=0, description="Adam learning rate")
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
        self.head = nn.Linear(last, 2 * latent)  # mean and log-variance in one product

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)
        return mu, logvar


class _Decoder(nn.Module):
    def __init__(self, latent: int, hidden: list[int], width: int, num_dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_mlp([latent, *hidden]), nn.Linear(hidden[-1] if hidden else latent, width))
        # per-dim output std of the numeric dims (TVAE's sigma), clamped to [0.01, 1] after each step
        self.sigma = nn.Parameter(torch.full((num_dim,), 0.1))

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
        width, num_dim = self.encoder.width, self.layout.num_dim
        self.enc = _Encoder(width, cfg.compress_dims, cfg.embedding_dim).to(self.device)
        self.dec = _Decoder(cfg.embedding_dim, cfg.decompress_dims, width, num_dim).to(self.device)

    def _modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.enc, "decoder": self.dec}

    def _reconstruction(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Summed negative log-likelihood of ``x`` under the decoder output (TVAE's loss)."""
        recon_num, recon_cat = self.layout.split(recon)
        x_num, x_cat = self.layout.split(x)
        loss = self.layout.blocks.cross_entropy(recon_cat, x_cat)
        if self.layout.num_dim:
            sigma = self.dec.sigma
            loss = loss + (((x_num - recon_num) / sigma) ** 2).sum() / 2 + torch.log(sigma).sum() * len(x)
        return loss

    def _train(self, data: torch.Tensor, progress: ProgressCallback) -> list[dict[str, float]]:
        cfg = self.config
        self.enc.train()
        self.dec.train()
        opt = adam([*self.enc.parameters(), *self.dec.parameters()], self.device, lr=cfg.learning_rate,
                   weight_decay=cfg.l2scale)
        n = len(data)
        batch_size = min(cfg.batch_size, n)

        def step(x: torch.Tensor) -> dict[str, torch.Tensor]:
            with autocast(self.device, self.amp_dtype):
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

        return train_epochs(cfg.epochs, lambda: shuffled_rows(data, batch_size), step, progress)

    def _generate(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.config.embedding_dim, device=self.device)
        numeric, logits = self.layout.split(self.dec(z).float())
        # draw around the decoded mean with the learned std, as TVAE does when sampling
        numeric = numeric + torch.randn_like(numeric) * self.dec.sigma
        return torch.cat([numeric, self.layout.blocks.sample_onehot(logits)], dim=1)
