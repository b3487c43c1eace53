"""The `train-generator` flow: fits one generator family on the protected training table.

It is its own flow so a deployment can pin it to a GPU work pool; locally it runs as a subflow.
"""
from __future__ import annotations

from typing import Any

from prefect import flow, task
from pydantic import BaseModel, Field

from generators.registry import make_generator
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
    device: str = Field("auto", description="auto, cpu or cuda")
    model_dir: str = Field(description="where the fitted model is saved")


@task(name="fit-generator")
def fit_generator(request: TrainRequest) -> str:
    generator = make_generator(request.generator, request.options, seed=request.seed, device=request.device)
    generator.fit(read_frame(request.train), request.table_schema, progress=ArtifactProgress(f"train {request.generator}"))
    generator.save(request.model_dir)
    return request.model_dir


@flow(name="train-generator", log_prints=True)
def train_generator(request: TrainRequest) -> str:
    """Fit the requested family and return the folder of the saved model."""
    return fit_generator(request)
