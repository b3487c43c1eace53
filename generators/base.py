"""The generator interface every family implements, its config base and progress events."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from validation.schema import TableSchema

Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of long work: the task turns it into a progress artifact, the CLI into a bar."""

    stage: str  # "fit" or "sample"
    step: int
    total: int
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(_: ProgressEvent) -> None:
    """Default callback: ignore progress."""


class GeneratorConfig(BaseModel):
    """Fields every family understands. Families subclass this with their own knobs."""

    model_config = ConfigDict(extra="forbid")

    device: Device = Field("auto", description="auto = CUDA when present, else CPU")
    seed: int = Field(0, ge=0, description="training seed; same seed + data + config = same model")


class Generator(ABC):
    """fit on the modeled columns of a protected training table, then sample rows.

    ``fit`` receives only columns with ``ColumnSchema.modeled`` true; ``sample`` returns those
    columns with the source's pandas dtypes. Keys, PII, free text, all-null columns are filled
    outside the generator by :mod:`validation.protect`.
    """

    family: ClassVar[str]
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        self.config = config or self.config_class()
        self.schema: TableSchema | None = None

    @abstractmethod
    def fit(
        self, table: pd.DataFrame, schema: TableSchema, progress: ProgressCallback = no_progress
    ) -> "Generator":
        """Learn the table. Must not modify ``table``."""

    @abstractmethod
    def sample(self, n: int, seed: int = 0, progress: ProgressCallback = no_progress) -> pd.DataFrame:
        """Draw ``n`` rows; the same seed gives the same rows."""

    def runtime(self) -> dict[str, str | int]:
        """What besides seed, data and config decides the fitted model and its rows: the numeric
        libraries (and, for the PyTorch families, the threads and the product precision). The same
        seed, data and config give the same table byte for byte where these match."""
        import numpy as np
        import scipy

        return {"numpy": np.__version__, "pandas": pd.__version__, "scipy": scipy.__version__}

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write safetensors + JSON (never pickle) into ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> "Generator":
        """Rebuild a fitted generator from :meth:`save`'s files."""

    # Shared helpers for save/load --------------------------------------------------------------
    def _write_meta(self, directory: Path, extra: dict | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "family": self.family,
            "config": self.config.model_dump(mode="json"),
            "schema": self.schema.model_dump(mode="json") if self.schema else None,
            **(extra or {}),
        }
        (directory / "generator.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def _read_meta(cls, directory: Path) -> tuple[GeneratorConfig, TableSchema, dict]:
        meta = json.loads((Path(directory) / "generator.json").read_text())
        if meta.get("family") != cls.family:
            raise ValueError(f"{directory} holds a {meta.get('family')!r} model, not {cls.family!r}")
        config = cls.config_class.model_validate(meta["config"])
        schema = TableSchema.model_validate(meta["schema"])
        return config, schema, meta
