"""The vae and gan families: training, seeding, save/load, edge tables, devices."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from generators.base import ProgressEvent
from generators.gan import GANConfig, GANGenerator
from generators.registry import generator_class, load_generator, make_generator
from generators.vae import VAEConfig, VAEGenerator
from tests.tables import real_table
from validation.errors import DeviceUnavailableError
from validation.profile import profile_table
from validation.schema import ColumnKind

torch.set_num_threads(1)  # 2 shared cores; tiny networks gain nothing from more threads

FAMILIES = {
    "vae": (VAEGenerator, VAEConfig, dict(batch_size=200)),
    "gan": (GANGenerator, GANConfig, dict(batch_size=200, generator_dims=[64, 64], discriminator_dims=[64, 64])),
}


def _make(family: str, **overrides):
    cls, config_cls, small = FAMILIES[family]
    return cls(config_cls(**{"epochs": 2, "device": "cpu", **small, **overrides}))


@pytest.fixture(scope="module")
def planes():
    df, schema = real_table("planes", rows=1200)
    return df[[c.name for c in schema.modeled_columns]], schema


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_registry_builds_the_family(family: str) -> None:
    assert generator_class(family) is FAMILIES[family][0]
    gen = make_generator(family, {"epochs": 3}, device="cpu", seed=5)
    assert gen.config.epochs == 3 and gen.config.seed == 5


def test_gan_batch_must_fit_pac() -> None:
    with pytest.raises(ValueError, match="multiple of pac"):
        GANConfig(batch_size=505, pac=10)


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_fit_sample_types_and_progress(family: str, planes) -> None:
    df, schema = planes
    events: list[ProgressEvent] = []
    gen = _make(family, epochs=3).fit(df, schema, progress=events.append)
    fit_events = [e for e in events if e.stage == "fit"]
    assert [e.step for e in fit_events] == [1, 2, 3] and all("loss" in e.metrics for e in fit_events)
    sample_events: list[ProgressEvent] = []
    out = gen.sample(700, seed=1, progress=sample_events.append)
    assert sample_events and sample_events[-1].fraction == 1.0
    assert list(out.columns) == list(df.columns) and len(out) == 700
    assert out.dtypes.equals(df.dtypes)
    for col in schema.modeled_columns:
        if col.kind == ColumnKind.CATEGORICAL:
            assert set(out[col.name].dropna()) <= set(df[col.name].dropna())
            assert out[col.name].nunique() > 1  # sampled, not collapsed onto the mode
        elif col.kind == ColumnKind.INTEGER:
            assert out[col.name].dropna().between(df[col.name].min(), df[col.name].max()).all()


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_same_seed_same_model_and_rows(family: str, planes) -> None:
    df, schema = planes
    a = _make(family, seed=3).fit(df, schema)
    b = _make(family, seed=3).fit(df, schema)
    pd.testing.assert_frame_equal(a.sample(500, seed=9), b.sample(500, seed=9), check_exact=True)
    assert not a.sample(500, seed=9).equals(a.sample(500, seed=10))
    c = _make(family, seed=4).fit(df, schema)
    assert not c.sample(500, seed=9).equals(a.sample(500, seed=9))
    assert a.loss_history == b.loss_history
    # the conditions of that promise, which the release manifest records
    runtime = a.runtime()
    assert runtime["torch_threads"] == torch.get_num_threads() and runtime["device"] == "cpu"
    assert runtime["precision"] in ("bfloat16", "float32") and runtime["torch"] == torch.__version__


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_save_load_gives_identical_samples(family: str, planes, tmp_path) -> None:
    df, schema = planes
    gen = _make(family).fit(df, schema)
    gen.save(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert files == ["encoder.safetensors", "generator.json", "model.safetensors"]
    meta = json.loads((tmp_path / "model" / "generator.json").read_text())
    assert meta["family"] == family and meta["config"]["epochs"] == 2
    loaded = load_generator(tmp_path / "model")
    assert type(loaded) is type(gen)
    pd.testing.assert_frame_equal(loaded.sample(800, seed=2), gen.sample(800, seed=2), check_exact=True)


def test_vae_training_lowers_the_loss(planes) -> None:
    df, schema = planes
    gen = _make("vae", epochs=12).fit(df, schema)
    losses = [h["loss"] for h in gen.loss_history]
    assert len(losses) == 12
    assert losses[-1] < 0.5 * losses[0]


def test_gan_training_learns_the_condition() -> None:
    """WGAN losses are not monotone; the conditional cross-entropy must fall."""
    df, schema = real_table("weather", rows=1200)
    gen = _make("gan", epochs=15, batch_size=100, learning_rate=1e-3).fit(df, schema)
    cond = [h["cond_loss"] for h in gen.loss_history]
    assert sum(cond[-3:]) < 0.6 * sum(cond[:3])
    assert all("loss_critic" in h for h in gen.loss_history)


@pytest.mark.parametrize("family", ["vae", "gan"])
@pytest.mark.parametrize(
    "columns",
    [
        ["temp", "humid", "wind_dir"],  # only numeric (wind_dir has nulls)
        ["origin"],  # only categorical, single column
        ["pressure"],  # a single numeric column
        ["year", "origin", "temp"],  # a constant column
        ["wind_gust", "hour"],  # mostly null
        ["time_hour", "origin"],  # tz-aware datetime
    ],
)
def test_edge_tables_train_and_sample(family: str, columns: list[str]) -> None:
    df, _ = real_table("weather", rows=600)
    df = df[columns]
    schema = profile_table(df, "edge")
    out = _make(family, epochs=2).fit(df, schema).sample(300, seed=0)
    assert list(out.columns) == columns and out.dtypes.equals(df.dtypes) and len(out) == 300
    if "year" in columns:
        assert (out["year"] == 2013).all()
    if "wind_gust" in columns:
        assert out["wind_gust"].isna().any()


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_cuda_without_gpu_is_a_clear_error(family: str, planes, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    df, schema = planes
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        _make(family, device="cuda").fit(df, schema)


@pytest.mark.parametrize("family", ["vae", "gan"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_precision_trains_and_reproduces(family: str, precision: str, planes) -> None:
    df, schema = planes
    a = _make(family, precision=precision, seed=2).fit(df, schema)
    b = _make(family, precision=precision, seed=2).fit(df, schema)
    out = a.sample(300, seed=1)
    pd.testing.assert_frame_equal(out, b.sample(300, seed=1), check_exact=True)
    assert out.dtypes.equals(df.dtypes) and all(h["loss"] == h["loss"] for h in a.loss_history)  # no NaN


def test_real_rows_by_condition_stay_exact_past_float32_integers() -> None:
    """Positions run to rows x categorical blocks: past 2**24 (1M rows, 17 blocks) float32
    positions rounded into the neighbouring slot or one past the end."""
    from generators.gan import _RowsBySlot

    rows = _RowsBySlot(torch.tensor([[0], [1]]), 2)
    big = 2**24 + 1  # slot 0 holds this many rows, slot 1 the next three positions
    rows.counts, rows.starts = torch.tensor([big, 3]), torch.tensor([0, big])
    rows.rows_sorted = torch.arange(big + 3)
    picked = rows.rows(torch.ones(2000, dtype=torch.long))
    assert picked.min() >= big and picked.max() < big + 3
    assert set(rows.rows(torch.zeros(2000, dtype=torch.long)).tolist()) <= set(range(big))


def test_tables_without_categorical_blocks_keep_their_device() -> None:
    """An all-numeric table without nulls has no blocks: its empty index matrix is made on the
    data's device (a CPU one, indexed with CUDA row indices, failed a diffusion fit on a GPU)."""
    from generators.layout import BlockLayout

    assert BlockLayout([]).indices(torch.zeros(4, 0, device="meta")).device.type == "meta"
