"""The `train-generator` flow: fits one generator family on the protected training table.

It is its own flow so a deployment can pin it to a GPU work pool (``deployments/prefect.yaml``);
locally it runs as a subflow. Input and output cross by reference: the request names the
training table's Parquet file and the model-store folder the fitted model is saved into.
"""
from __future__ import annotations

import time
from typing import Any

from prefect import flow, task
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.placement import effective_device, host_info, model_key, pin_worker_gpu, read_marker, save_model
from generators.registry import make_generator
from tasks.private import PRIVATE
from tasks.progress import ArtifactProgress
from tasks.storage import TableRef, read_frame
from validation.schema import TableSchema


class TrainRequest(BaseModel):
    """Everything training needs, passed by reference (no DataFrames)."""

    train: TableRef = Field(description="the protected training table (modeled columns only)")
    table_schema: TableSchema
    generator: str = Field("copula", description="generator family")
    options: dict[str, Any] = Field(default_factory=dict, description="family options (epochs, ...)")
    seed: int = 0
    device: str = Field("auto", description="auto (the worker pool's default), cpu or cuda")
    model_dir: str = Field(description="model-store folder (local path or URI) the fitted model is saved in")


# The request carries the schema (which names real categories): Prefect must not pickle it or
# hash it into a cache key. The model store (flows/placement.py) is the training cache.
@task(name="fit-generator", **PRIVATE)
def fit_generator(request: TrainRequest) -> str:
    """Fit and save, unless a complete model with the same key is already there."""
    logger = get_run_logger()
    if read_marker(request.model_dir) is not None:
        # another run of the same key finished while this one waited for a worker
        logger.info("a complete model is already at %s; not training again", request.model_dir)
        return request.model_dir
    pin_worker_gpu()
    device = effective_device(request.device)
    if device != "auto" and device != "cpu":
        # a CUDA request is a promise about the host: break it loudly for every family, also
        # those that would quietly fit on the CPU (copula), so a GPU pool without a GPU shows up
        from generators.device import resolve_device

        resolve_device(device)
    generator = make_generator(request.generator, request.options, seed=request.seed, device=device)
    start = time.perf_counter()
    generator.fit(read_frame(request.train), request.table_schema, progress=ArtifactProgress(f"train {request.generator}"))
    seconds = round(time.perf_counter() - start, 3)
    save_model(
        generator,
        request.model_dir,
        {
            "family": request.generator,
            "key": model_key(request),
            "device": device,
            "host": host_info(),
            "fit_seconds": seconds,
            "runtime": generator.runtime(),
            "train_fingerprint": request.train.fingerprint,
        },
    )
    logger.info("trained %s on %s (device %s) in %.1f s", request.generator, host_info(), device, seconds)
    return request.model_dir


@flow(name="train-generator", log_prints=True)
def train_generator(request: TrainRequest) -> str:
    """Fit the requested family and return the folder of the saved model."""
    return fit_generator(request)
