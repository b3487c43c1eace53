"""Device selection shared by the PyTorch families."""
from __future__ import annotations

import torch

from validation.errors import DeviceUnavailableError


def resolve_device(requested: str) -> torch.device:
    """auto -> CUDA when present else CPU; cuda without a GPU is a clear error."""
    if requested == "cpu":
        return torch.device("cpu")
    if requested in ("cuda", "gpu") or requested.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                "device 'cuda' was requested but no CUDA GPU is available on this host; "
                "use --device cpu or auto, or run training on a GPU worker"
            )
        return torch.device("cuda" if requested == "gpu" else requested)
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raise DeviceUnavailableError(f"unknown device {requested!r}: use auto, cpu or cuda")


def sampling_device(requested: str) -> torch.device:
    """Device for a loaded model: as saved, except that a model trained on a GPU worker and
    loaded on a host without CUDA samples on the CPU (its weights are already learned)."""
    if requested == "cuda" and not torch.cuda.is_available():
        requested = "auto"
    return resolve_device(requested)
