"""The synthesizers under benchmark, behind one small fit/sample adapter.

Our families come from :mod:`generators.registry` (every family that imports appears; a family
whose module is absent is skipped). The references are SDV 2's single-table synthesizers, which
are dict-based: ``fit({name: df})`` and ``sample(n)`` returning ``{name: df}``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from generators.registry import FAMILIES, generator_class
from validation.errors import ConfigError
from validation.schema import ColumnKind, TableSchema

EPOCH_FAMILIES = {"vae", "gan"}  # ours that are compared epoch-for-epoch with SDV TVAE / CTGAN
SDV_NAMES = {"sdv-copula": "GaussianCopulaSynthesizer", "sdv-tvae": "TVAESynthesizer", "sdv-ctgan": "CTGANSynthesizer"}
_SDTYPE = {
    ColumnKind.INTEGER: "numerical",
    ColumnKind.FLOAT: "numerical",
    ColumnKind.DATETIME: "datetime",
    ColumnKind.BOOLEAN: "boolean",
    ColumnKind.CATEGORICAL: "categorical",
}


@dataclass
class Contender:
    """A named synthesizer: ``fit(train, schema)`` then ``sample(n, seed)``."""

    name: str
    options: dict[str, Any]
    fit: Callable[[pd.DataFrame, TableSchema], None] = field(repr=False)
    sample: Callable[[int, int], pd.DataFrame] = field(repr=False)
    model: Any = field(default=None, repr=False)


def available_families() -> list[str]:
    """Our registered families whose modules import here."""
    names = []
    for name in FAMILIES:
        try:
            generator_class(name)
        except ConfigError:
            continue
        names.append(name)
    return names


def ours(family: str, epochs: int | None, seed: int, extra: dict[str, Any] | None = None,
         epochs_for_all: bool = False) -> Contender:
    """Family ``family`` from the registry on the CPU.

    ``epochs`` goes to the epoch-compared families (all families with an ``epochs`` field when
    ``epochs_for_all``); ``extra`` holds further config fields (``--set family.field=value``).
    """
    cls = generator_class(family)
    options: dict[str, Any] = {"seed": seed, "device": "cpu"}
    if epochs is not None and (family in EPOCH_FAMILIES or epochs_for_all):
        options["epochs"] = epochs
    options = {k: v for k, v in options.items() if k in cls.config_class.model_fields}
    options.update(extra or {})
    gen = cls(cls.config_class.model_validate(options))
    contender = Contender(name=family, options=gen.config.model_dump(mode="json"), fit=lambda *_: None,
                          sample=lambda *_: pd.DataFrame(), model=gen)

    def fit(train: pd.DataFrame, schema: TableSchema) -> None:
        gen.fit(train, schema)

    def sample(n: int, sample_seed: int) -> pd.DataFrame:
        return gen.sample(n, seed=sample_seed)

    contender.fit, contender.sample = fit, sample
    return contender


def sdv_metadata(train: pd.DataFrame, schema: TableSchema):
    """SDV metadata detected from ``train``, then aligned with our profile's column kinds so both
    sides model the same columns the same way (no SDV-side id/PII regeneration)."""
    from sdv.metadata import Metadata

    metadata = Metadata.detect_from_dataframes({schema.name: train})
    table_meta = metadata.to_dict()["tables"][schema.name]
    if table_meta.get("primary_key"):
        metadata.remove_primary_key(schema.name)
    for col in schema.modeled_columns:
        if col.name not in train.columns:
            continue
        kwargs: dict[str, Any] = {"sdtype": _SDTYPE[col.kind]}
        if col.kind == ColumnKind.DATETIME and col.datetime_format and train[col.name].dtype == object:
            kwargs["datetime_format"] = col.datetime_format
        metadata.update_column(col.name, table_name=schema.name, **kwargs)
    return metadata


def sdv(name: str, epochs: int | None, seed: int) -> Contender:
    """SDV reference synthesizer ``name`` (sdv-copula, sdv-tvae, sdv-ctgan)."""
    import sdv.single_table as single

    cls = getattr(single, SDV_NAMES[name])
    options: dict[str, Any] = {}
    if epochs is not None and name != "sdv-copula":
        options["epochs"] = epochs
    contender = Contender(name=name, options=options, fit=lambda *_: None, sample=lambda *_: pd.DataFrame())
    state: dict[str, Any] = {}

    def fit(train: pd.DataFrame, schema: TableSchema) -> None:
        import torch

        torch.manual_seed(seed)  # SDV's torch models draw from the global RNG
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synth = cls(sdv_metadata(train, schema), **options)
            synth.fit({schema.name: train})
        state["synth"], state["name"] = synth, schema.name
        contender.model = synth

    def sample(n: int, sample_seed: int) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = state["synth"].sample(n)
        return out[state["name"]] if isinstance(out, dict) else out

    contender.fit, contender.sample = fit, sample
    return contender


def build(name: str, epochs: int | None, seed: int, extra: dict[str, Any] | None = None,
          epochs_for_all: bool = False) -> Contender:
    """A contender by name: one of our families or an ``sdv-*`` reference."""
    if name in SDV_NAMES:
        return sdv(name, epochs, seed)
    return ours(name, epochs, seed, extra, epochs_for_all)
