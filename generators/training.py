"""Training-loop pieces shared by the PyTorch families (vae, gan, diffusion).

* :func:`seeded` — every random draw (NumPy, torch CPU and CUDA) comes from the given seed, and the
  caller's global RNG state is restored afterwards, so the same seed, data and config give the same
  model and the same rows on CPU.
* :func:`mixed_precision` / :func:`autocast` — bf16 matrix products on CUDA and on CPUs with
  native bf16 units (``precision: auto``; about four times the float32 rate on such a CPU), float32
  otherwise; losses, softmaxes and optimiser state stay float32.
* :func:`adam` (the fused kernel) and :func:`frozen` (no weight gradients for a network that is
  only passed through) — per-step savings that matter for small networks on a CPU.
* :func:`shuffled_batches` / :func:`shuffled_rows` / :func:`train_epochs` — the minibatch epoch
  loop that reports one :class:`ProgressEvent` per epoch with the mean losses.
* :func:`save_model` / :func:`load_model` — module weights and encoder arrays as safetensors,
  everything else as JSON through ``Generator._write_meta``; loading never unpickles.
* :class:`TorchGenerator` — the fit/sample/save/load skeleton on the shared encoder; a family
  supplies its networks, one training run and one batch of generated encoded rows, all in the
  model column order of :class:`ModelLayout`.
"""
from __future__ import annotations

import contextlib
import functools
import random
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from safetensors.numpy import load_file as load_numpy, save_file as save_numpy
from safetensors.torch import load_file as load_torch, save_file as save_torch

from generators.base import Generator, GeneratorConfig, ProgressCallback, ProgressEvent, no_progress
from generators.device import resolve_device, sampling_device
from generators.encoder import TabularEncoder
from generators.layout import ModelLayout
from validation.errors import InputError
from validation.schema import TableSchema

MODEL_FILE = "model.safetensors"
ENCODER_FILE = "encoder.safetensors"

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# seeding, device, precision
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[np.random.Generator]:
    """Run a block with torch/NumPy/random seeded from ``seed``; restore the outer RNG state after.

    Yields a NumPy generator for NumPy-side draws. Torch draws inside use the global torch RNG
    (dropout, gumbel noise and ``randperm`` all read it), which this block owns.
    """
    devices = [device.index or 0] if device is not None and device.type == "cuda" else []
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        # only the generators fork_rng restores: torch.manual_seed would reseed every CUDA device
        torch.random.default_generator.manual_seed(seed)
        for index in devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield np.random.default_rng(seed)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


Precision = Literal["auto", "fp32", "bf16"]


@functools.cache  # a fact of the machine: probe it once per process
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX): there a bf16
    product is about four times faster than a float32 one; elsewhere bf16 is emulated and slower."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN, or a renamed probe
        return False


def cuda_has_bf16() -> bool:
    """Whether the current CUDA GPU multiplies bf16 natively (compute capability 8.0 and up): on
    older ones (V100, T4) torch emulates bf16, slower than float32."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except (AssertionError, RuntimeError, TypeError):  # no usable CUDA, or a torch without the flag
        return False


def mixed_precision(device: torch.device, precision: Precision) -> torch.dtype:
    """The dtype of matrix products for ``precision`` on ``device``: ``auto`` is bf16 on a GPU or
    CPU with native bf16 products, float32 otherwise."""
    if precision == "fp32":
        return torch.float32
    native = cuda_has_bf16() if device.type == "cuda" else cpu_has_bf16()
    return torch.bfloat16 if precision == "bf16" or native else torch.float32


def autocast(device: torch.device, dtype: torch.dtype | None = None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` (bf16 needs no loss scaling); a no-op for float32.

    Without a ``dtype``: bf16 on a CUDA GPU with native bf16, float32 elsewhere. The families whose
    quality was measured under CPU bf16 (``precision``) pass :func:`mixed_precision`'s choice.
    """
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" and cuda_has_bf16() else torch.float32
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def adam(params, device: torch.device, **options) -> torch.optim.Adam:
    """Adam with the fused kernel (one op per step for all parameters, not a dozen per tensor),
    which is several times cheaper than the default loop for the small networks trained here."""
    return torch.optim.Adam(params, fused=device.type in ("cpu", "cuda"), **options)


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Within the block, ``module``'s parameters take no gradient (backward skips their products)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


# --------------------------------------------------------------------------------------------
# the epoch loop
# --------------------------------------------------------------------------------------------
def shuffled_batches(n_rows: int, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Row indices of one epoch in seeded random order, in batches of ``batch_size``.

    A last batch of fewer than two rows is dropped when there are other batches: BatchNorm
    cannot normalise a single row.
    """
    perm = torch.randperm(n_rows).to(device)
    for start in range(0, n_rows, batch_size):
        idx = perm[start:start + batch_size]
        if len(idx) < 2 and start > 0:
            break
        yield idx


def shuffled_rows(data: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """The rows of ``data`` for one epoch in seeded random order, in batches of ``batch_size``
    (``index_select``: several times faster than ``data[idx]`` for a row gather)."""
    for idx in shuffled_batches(len(data), batch_size, data.device):
        yield data.index_select(0, idx)


def train_epochs(
    epochs: int,
    batches: Callable[[], Iterable[T]],
    step: Callable[[T], dict[str, torch.Tensor]],
    progress: ProgressCallback = no_progress,
) -> list[dict[str, float]]:
    """Run ``epochs`` epochs of ``step`` over ``batches()``; report and return per-epoch means.

    ``step`` returns detached scalar tensors; they are summed on the device and read once per
    epoch, so a CUDA run is not synchronised after every step.
    """
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for batch in batches():
            for key, value in step(batch).items():
                sums[key] = sums[key] + value if key in sums else value.detach().clone()
            count += 1
        means = {k: float(v.float().item()) / max(count, 1) for k, v in sums.items()}
        history.append(means)
        progress(ProgressEvent(stage="fit", step=epoch, total=epochs, metrics=means))
    return history


# --------------------------------------------------------------------------------------------
# persistence
# --------------------------------------------------------------------------------------------
def save_model(
    generator: Generator,
    directory: Path,
    modules: dict[str, torch.nn.Module],
    encoder: TabularEncoder,
    extra: dict | None = None,
) -> None:
    """Write module weights and encoder arrays as safetensors and the rest as generator.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{name}.{key}": value.detach().to("cpu").contiguous()
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }
    save_torch(tensors, str(directory / MODEL_FILE))
    enc_config, enc_arrays = encoder.state()
    save_numpy(enc_arrays, str(directory / ENCODER_FILE))
    generator._write_meta(directory, {"encoder": enc_config, **(extra or {})})


def load_model(
    cls: type[Generator], directory: Path
) -> tuple[GeneratorConfig, TableSchema, dict, TabularEncoder, dict[str, torch.Tensor]]:
    """Read what :func:`save_model` wrote: config, schema, meta, encoder and CPU tensors."""
    directory = Path(directory)
    config, schema, meta = cls._read_meta(directory)
    encoder = TabularEncoder.from_state(meta["encoder"], load_numpy(str(directory / ENCODER_FILE)))
    tensors = load_torch(str(directory / MODEL_FILE), device="cpu")
    return config, schema, meta, encoder, tensors


def module_state(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The state dict of module ``name`` out of :func:`load_model`'s flat tensor dict."""
    prefix = f"{name}."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------------------------
# the shared generator skeleton
# --------------------------------------------------------------------------------------------
class TorchConfig(GeneratorConfig):
    """Knobs every PyTorch family has."""

    epochs: int = Field(100, ge=1, description="passes over the training table")
    batch_size: int = Field(500, ge=2, description="rows per training step")
    learning_rate: float = Field(1e-3, gt=0)
    max_categories: int = Field(1000, ge=2, description="one-hot slots per categorical column; rarer values are pooled")
    sample_batch_size: int = Field(20_000, ge=1, description="rows generated and decoded per batch when sampling")
    precision: Precision = Field(
        "auto", description="matrix products in bf16 (auto: on CUDA, and on CPUs with native bf16 units) or fp32"
    )


class TorchGenerator(Generator):
    """fit/sample/save/load for a PyTorch family on the shared :class:`TabularEncoder`.

    Subclasses implement :meth:`_build` (create networks from the encoder layout),
    :meth:`_train` (one training run on the encoded matrix), :meth:`_generate` (one batch of
    encoded rows), :meth:`_modules` (the networks to save) and optionally :meth:`_extra_state`.
    """

    config: TorchConfig
    config_class = TorchConfig
    # the model column order of :class:`ModelLayout` (numeric dims first, one-hot blocks grouped
    # by size): ``_prepare``/``_train`` get, and ``_generate`` returns, matrices in that order.
    # Derived from the encoder whenever it is set (see :attr:`encoder`); None before fit/load.
    layout: ModelLayout | None

    def __init__(self, config: TorchConfig | None = None) -> None:
        super().__init__(config)
        self.encoder = None
        self.device: torch.device = torch.device("cpu")
        self.amp_dtype: torch.dtype = torch.float32  # of matrix products, set from ``precision`` on fit/load
        self.loss_history: list[dict[str, float]] = []

    # hooks ----------------------------------------------------------------------------------
    @abstractmethod
    def _build(self, extra: dict) -> None:
        """Create the networks on ``self.device`` from ``self.encoder`` and saved ``extra`` state."""

    @abstractmethod
    def _train(self, data: torch.Tensor, progress: ProgressCallback) -> list[dict[str, float]]:
        """Train on the encoded matrix ``data`` (already on the device); return epoch losses."""

    @abstractmethod
    def _generate(self, n: int) -> torch.Tensor:
        """``n`` encoded rows (one-hot blocks may be soft; decoding takes the argmax)."""

    @abstractmethod
    def _modules(self) -> dict[str, torch.nn.Module]:
        """The networks whose weights are saved, by name."""

    def _extra_state(self) -> dict:
        """JSON-able state besides weights that :meth:`_build` needs on load."""
        return {}

    def _prepare(self, data: torch.Tensor) -> dict:
        """Derive what :meth:`_build` needs from the training matrix (default: nothing)."""
        return {}

    @property
    def encoder(self) -> TabularEncoder | None:
        """The fitted encoder (None before fit/load); setting it also sets :attr:`layout`."""
        return self._encoder

    @encoder.setter
    def encoder(self, encoder: TabularEncoder | None) -> None:
        self._encoder = encoder
        self.layout = None if encoder is None else ModelLayout(encoder.spans, encoder.width)

    def runtime(self) -> dict[str, str | int]:
        """:meth:`Generator.runtime` plus torch's version, its CPU threads (products and sums split
        across threads round differently, so another thread count gives other, equally valid rows),
        the device and the product precision (``auto`` is bf16 only on CPUs with bf16 units)."""
        return {**super().runtime(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                "device": self.device.type, "precision": str(self.amp_dtype).removeprefix("torch.")}

    # interface ------------------------------------------------------------------------------
    def fit(self, table: pd.DataFrame, schema: TableSchema, progress: ProgressCallback = no_progress) -> "TorchGenerator":
        """Encode the modeled columns of ``table`` and train the family's networks on them."""
        if len(table) < 2:
            raise InputError(f"need at least 2 training rows, got {len(table)}")
        self.device = resolve_device(self.config.device)
        self.amp_dtype = mixed_precision(self.device, self.config.precision)
        self.schema = schema
        with seeded(self.config.seed, self.device):
            self.encoder = TabularEncoder(max_categories=self.config.max_categories).fit(table, schema)
            # to model order; the encoder-order matrix is freed here
            data = self.layout.to_model(torch.from_numpy(self.encoder.transform(table))).to(self.device)
            self._build(self._prepare(data))
            self.loss_history = self._train(data, progress)
        return self

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, progress: ProgressCallback = no_progress) -> pd.DataFrame:
        """``n`` rows of the modeled columns with the source dtypes; the same seed gives the same rows."""
        if self.encoder is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        for module in self._modules().values():
            module.eval()
        parts: list[pd.DataFrame] = []
        total = max(1, -(-n // self.config.sample_batch_size))
        with seeded(seed, self.device):
            done = 0
            for i in range(total):
                size = min(self.config.sample_batch_size, n - done)
                if size > 0 or not parts:
                    with autocast(self.device, self.amp_dtype):
                        rows = self._generate(size) if size > 0 else torch.zeros(0, self.layout.width)
                    rows = self.layout.from_model(rows)
                    # decode batch by batch: the float matrix of a one-hot-heavy table is many
                    # times larger than the decoded rows, so 1M rows never exist as a matrix
                    batch_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
                    parts.append(self.encoder.inverse_transform(rows.float().cpu().numpy(), seed=batch_seed))
                    done += size
                progress(ProgressEvent(stage="sample", step=i + 1, total=total))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def save(self, directory: Path) -> None:
        """Weights and encoder arrays as safetensors, config/schema/encoder layout as JSON."""
        if self.encoder is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        save_model(self, Path(directory), self._modules(), self.encoder,
                   {"state": self._extra_state(), "loss_history": self.loss_history})

    @classmethod
    def load(cls, directory: Path) -> "TorchGenerator":
        """Rebuild from :meth:`save`'s files.

        Sampling runs on the saved device setting, except that a model trained on a GPU worker
        and loaded on a host without CUDA samples on the CPU (the weights are already learned).
        """
        config, schema, meta, encoder, tensors = load_model(cls, directory)
        gen = cls(config)  # type: ignore[arg-type]
        gen.schema, gen.encoder = schema, encoder
        gen.loss_history = meta.get("loss_history", [])
        gen.device = sampling_device(config.device)
        gen.amp_dtype = mixed_precision(gen.device, gen.config.precision)
        gen._build(meta.get("state", {}))
        for name, module in gen._modules().items():
            module.load_state_dict(module_state(tensors, name))
            module.to(gen.device)
        return gen
