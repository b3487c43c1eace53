"""Where the columns of an encoded matrix live, so per-column operations run in bulk.

* :class:`BlockLayout` — concatenated one-hot blocks sorted by size, so that every per-block
  operation (softmax, cross-entropy, Gumbel-softmax, a categorical draw) is one batched tensor op
  per distinct block size, not one per column.
* :class:`ModelLayout` — the permutation of the shared encoder's matrix into "numeric dims first,
  then the one-hot blocks sorted by size" that the PyTorch families train in: numeric dims become
  one contiguous slice and each group of equal blocks one ``(n, count, size)`` view, with no
  fancy indexing inside a training step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BlockGroup:
    """``count`` consecutive one-hot blocks of ``size`` categories each.

    ``start`` is the first position in the concatenated one-hot layout; ``first_block`` the
    index of its first block (column) among all blocks.
    """

    start: int
    size: int
    count: int
    first_block: int

    @property
    def end(self) -> int:
        return self.start + self.size * self.count

    @property
    def last_block(self) -> int:
        return self.first_block + self.count


class BlockLayout:
    """Layout of concatenated one-hot blocks whose sizes are sorted so equal sizes are adjacent."""

    def __init__(self, sizes: list[int]) -> None:
        if any(k < 1 for k in sizes):
            raise ValueError(f"every categorical block needs at least one category, got {sizes}")
        if list(sizes) != sorted(sizes):
            raise ValueError("block sizes must be sorted ascending so equal sizes are adjacent")
        self.sizes = [int(k) for k in sizes]
        self.width = int(sum(sizes))
        groups: list[BlockGroup] = []
        start = 0
        for b, k in enumerate(self.sizes):
            if groups and groups[-1].size == k:
                last = groups[-1]
                groups[-1] = BlockGroup(last.start, k, last.count + 1, last.first_block)
            else:
                groups.append(BlockGroup(start, k, 1, b))
            start += k
        self.groups = groups
        # log K at every position: the uniform component of every transition
        self.log_k = torch.tensor([float(k) for k in self.sizes for _ in range(k)]).log()
        # where each block starts: global position = offset + local category index
        self.offsets = torch.tensor([0, *torch.tensor(self.sizes).cumsum(0).tolist()[:-1]], dtype=torch.long)

    @property
    def n_blocks(self) -> int:
        return len(self.sizes)

    # -- one-hot <-> indices --------------------------------------------------------------------
    def onehot(self, idx: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(n, n_blocks) global indices -> (n, width) one-hot matrix."""
        out = torch.zeros(idx.shape[0], self.width, dtype=dtype, device=idx.device)
        return out.scatter_(1, idx, 1.0)

    def indices(self, onehot: torch.Tensor) -> torch.Tensor:
        """(n, width) one-hot (or scores) -> (n, n_blocks) global indices of each block's maximum."""
        parts = [
            _argmax(v) + self.offsets[g.first_block : g.last_block].to(onehot.device)
            for g, v in zip(self.groups, self.views(onehot))
        ]
        return torch.cat(parts, dim=1) if parts else torch.zeros(onehot.shape[0], 0, dtype=torch.long, device=onehot.device)

    # -- per-block operations on (n, width) matrices --------------------------------------------
    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(n, count, size) views of ``x`` for each group.

        ``torch.split`` rather than slicing: its gradient is one concatenation, where each
        slice's gradient would be a zero-filled copy of the whole matrix.
        """
        return [c.reshape(x.shape[0], g.count, g.size) for g, c in zip(self.groups, self.split(x))]

    def log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Normalise each block of ``logits`` into log-probabilities."""
        return self._per_group(logits, lambda v, dim: F.log_softmax(v, dim=dim))

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(n, width) -> one (n, count * size) chunk per group, the input :meth:`MultinomialDiffusion.step` takes
        (``torch.split``, whose gradient is one concatenation: see :meth:`views`)."""
        return list(x.split([g.size * g.count for g in self.groups], dim=1)) if self.groups else []

    # -- sampling -----------------------------------------------------------------------------
    def uniform(self, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """(n, n_blocks) global indices drawn uniformly per block: the prior at the last timestep."""
        parts = []
        for g in self.groups:
            u = torch.rand((n, g.count), generator=generator, device=device)
            local = (u * g.size).long().clamp_(max=g.size - 1)
            parts.append(local + self.offsets[g.first_block : g.last_block].to(device))
        return torch.cat(parts, dim=1)

    # -- losses and activations on (n, width) logits ---------------------------------------------
    def cross_entropy(self, logits: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy of every block of ``logits`` against the one-hot targets."""
        loss = logits.new_zeros((), dtype=torch.float32)
        for v, t in zip(self.views(logits.float()), self.views(onehot)):
            v, dim = _category_axis(v)
            t, _ = _category_axis(t)
            loss = loss - (F.log_softmax(v, dim=dim) * t).sum()
        return loss

    def softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities of every block."""
        return self._per_group(logits.float(), lambda v, dim: torch.softmax(v, dim=dim))

    def gumbel_softmax(self, logits: torch.Tensor, tau: float, hard: bool = False) -> torch.Tensor:
        """Gumbel-softmax relaxed (or straight-through ``hard``) one-hots of every block."""
        noisy = (logits.float() + gumbel_noise(logits)) / tau

        def relax(v: torch.Tensor, dim: int) -> torch.Tensor:
            soft = torch.softmax(v, dim=dim)
            if not hard:
                return soft
            onehot = torch.zeros_like(soft).scatter_(dim, soft.argmax(dim=dim, keepdim=True), 1.0)
            return onehot - soft.detach() + soft  # straight-through: one-hot forward, soft gradient
        return self._per_group(noisy, relax)

    def sample_onehot(self, logits: torch.Tensor) -> torch.Tensor:
        """Exact one-hot draws from softmax(logits) per block (Gumbel-max, global torch RNG)."""
        noisy = logits.float() + gumbel_noise(logits)
        return self._per_group(
            noisy, lambda v, dim: torch.zeros_like(v).scatter_(dim, v.argmax(dim=dim, keepdim=True), 1.0)
        )

    def _per_group(self, x: torch.Tensor, fn: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
        """``fn(view, category_dim)`` on every group, concatenated back into (n, width) order."""
        parts = []
        for v in self.views(x):
            w, dim = _category_axis(v)
            out = fn(w, dim)
            parts.append((out.permute(1, 2, 0) if dim == 0 else out).reshape(x.shape[0], -1))
        return torch.cat(parts, dim=1) if parts else x.new_zeros(x.shape[0], 0, dtype=torch.float32)


# Below this many categories a softmax or an argmax over the last dimension of an (n, count, size)
# view runs row by row and costs ten times more than over the first dimension of the same data
# laid out (size, n, count), where every category is one long vectorised row.
_LAST_DIM_MIN = 48


def _category_axis(v: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``v`` (n, count, size) as the layout whose reductions over categories are fast, and the
    categories' dimension in it: (size, n, count) and 0 for small blocks, else ``v`` and -1."""
    if v.shape[-1] < _LAST_DIM_MIN:
        return v.permute(2, 0, 1), 0
    return v, -1


def _argmax(v: torch.Tensor) -> torch.Tensor:
    """(n, count) index of each block's maximum of ``v`` (n, count, size)."""
    w, dim = _category_axis(v)
    return w.argmax(dim=dim)


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise shaped like ``like`` (float32), from the global torch RNG.

    ``-log(-log(U))`` from one uniform draw: several times cheaper on a CPU than the exponential
    draws ``F.gumbel_softmax`` makes, which took about a tenth of a GAN step.
    """
    u = torch.rand(like.shape, device=like.device).clamp_(1e-12, 1 - 1e-7)
    return -torch.log(-torch.log(u))


class SpanLike(Protocol):
    """What :class:`ModelLayout` reads from the encoder's spans."""

    kind: str
    start: int
    end: int


class ModelLayout:
    """The encoder matrix permuted to ``[numeric dims | one-hot blocks sorted by size]``.

    ``to_model`` / ``from_model`` convert between the encoder's column order and the model's;
    ``num_dim`` leading columns are numeric and ``blocks`` describes the rest.
    """

    def __init__(self, spans: Sequence[SpanLike], width: int) -> None:
        numeric = [i for s in spans if s.kind == "numeric" for i in range(s.start, s.end)]
        blocks = sorted((s for s in spans if s.kind == "categorical"), key=lambda s: (s.end - s.start, s.start))
        categorical = [i for s in blocks for i in range(s.start, s.end)]
        if sorted(numeric + categorical) != list(range(width)):
            raise ValueError("spans must tile the encoded matrix exactly once")
        self.width = width
        self.num_dim = len(numeric)
        self.cat_dim = len(categorical)
        self.blocks = BlockLayout([s.end - s.start for s in blocks])
        self.order = torch.tensor(numeric + categorical, dtype=torch.long)  # model column -> encoder column
        self.inverse = torch.argsort(self.order)  # encoder column -> model column

    def to_model(self, matrix: torch.Tensor) -> torch.Tensor:
        """Encoder column order -> model column order."""
        return matrix.index_select(1, self.order.to(matrix.device))

    def from_model(self, matrix: torch.Tensor) -> torch.Tensor:
        """Model column order -> encoder column order."""
        return matrix.index_select(1, self.inverse.to(matrix.device))

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(numeric dims, one-hot part) of a model-order matrix, as views."""
        numeric, categorical = x.split([self.num_dim, self.cat_dim], dim=1)
        return numeric, categorical
