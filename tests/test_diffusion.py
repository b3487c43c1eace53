"""Tests of the tabular diffusion family: the two diffusion processes on toy tensors, then the
generator on real and edge tables (fit, sample, seeds, save/load)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from generators.base import ProgressEvent
from generators.diffusion import DiffusionConfig, DiffusionGenerator
from generators.layout import BlockLayout, ModelLayout
from generators.multinomial_diffusion import MultinomialDiffusion, log1mexp, onehot_to_log
from generators.registry import make_generator
from generators.tabddpm import DiffusionShape, TabDDPM, ddim_from
from tests.tables import blocks as _blocks, real_table
from validation.errors import ConfigError, DeviceUnavailableError
from validation.profile import profile_table


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one torch thread avoids thread hand-off costs, which on a shared
    two-core machine made this module several times slower. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class _Span:
    kind: str
    start: int
    end: int


# -- multinomial diffusion on toy tensors ---------------------------------------------------------
def _schedule(t_max: int = 100) -> torch.Tensor:
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=t_max, beta_schedule="squaredcos_cap_v2").betas


def test_block_layout_groups_equal_sizes_and_converts_indices() -> None:
    layout = BlockLayout([2, 2, 3, 5])
    assert [(g.start, g.size, g.count, g.first_block) for g in layout.groups] == [
        (0, 2, 2, 0), (4, 3, 1, 2), (7, 5, 1, 3)
    ]
    logits = torch.randn(7, layout.width) * 5
    for block in _blocks(layout.log_softmax(logits).exp(), layout.sizes):
        torch.testing.assert_close(block.sum(1), torch.ones(7))
    idx = layout.uniform(500, torch.Generator().manual_seed(0), torch.device("cpu"))
    lo, hi = layout.offsets, layout.offsets + torch.tensor(layout.sizes)
    assert ((idx >= lo) & (idx < hi)).all()
    hot = layout.onehot(idx)
    assert all(torch.all(block.sum(1) == 1) for block in _blocks(hot, layout.sizes))
    assert torch.equal(layout.indices(hot), idx)
    with pytest.raises(ValueError):
        BlockLayout([3, 2])


def test_log1mexp_is_accurate_at_both_ends() -> None:
    a = torch.tensor([-1e-10, -1e-3, -0.5, -1.0, -30.0], dtype=torch.float64)
    mpmath = pytest.importorskip("mpmath")  # ships with torch (via sympy)
    mpmath.mp.dps = 50  # the reference in 50-digit arithmetic
    want = torch.tensor([float(mpmath.log(1 - mpmath.exp(v))) for v in a.tolist()], dtype=torch.float64)
    torch.testing.assert_close(log1mexp(a), want, rtol=1e-9, atol=0)


def test_q_xt_marginals_match_closed_form_and_sampling() -> None:
    layout = BlockLayout([3])
    diff = MultinomialDiffusion(layout, _schedule())
    n = 20000
    x0 = torch.zeros(n, 1, dtype=torch.long)  # every row in category 0
    t = torch.full((n,), 40)
    abar = torch.exp(diff.log_abar[40]).item()
    expected = torch.tensor([abar + (1 - abar) / 3, (1 - abar) / 3, (1 - abar) / 3])
    got = diff.q_xt_log(onehot_to_log(layout.onehot(x0[:1])), t[:1]).exp()[0]
    torch.testing.assert_close(got, expected.float())
    draws = diff.q_sample(x0, t, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws[:, 0], minlength=3).float() / n
    torch.testing.assert_close(freq, expected.float(), atol=0.015, rtol=0)


def test_posterior_matches_bayes_rule_by_enumeration() -> None:
    """q(x_s | x_t, x_0) from the module equals the normalised product of the two transition
    matrices, for adjacent (training) and strided (few-step sampling) timesteps."""
    sizes = [2, 4]
    layout = BlockLayout(sizes)
    diff = MultinomialDiffusion(layout, _schedule()).double()
    abar = torch.exp(diff.log_abar)
    gen = torch.Generator().manual_seed(3)
    for t, s in [(1, 0), (50, 49), (99, 60), (30, 3)]:
        a_ts = abar[t] / abar[s]
        x0 = layout.onehot(layout.uniform(1, gen, torch.device("cpu")), torch.float64)
        xt = layout.onehot(layout.uniform(1, gen, torch.device("cpu")), torch.float64)
        got = diff.posterior_log(onehot_to_log(x0), xt, torch.tensor([t]), torch.tensor([s])).exp()
        for k, g, x0b, xtb in zip(sizes, _blocks(got, sizes), _blocks(x0, sizes), _blocks(xt, sizes)):
            eye, uni = torch.eye(k, dtype=torch.float64), torch.full((k, k), 1.0 / k, dtype=torch.float64)
            q_s_given_0 = (abar[s] * eye + (1 - abar[s]) * uni) @ x0b[0]  # distribution over x_s
            q_t_given_s = (a_ts * eye + (1 - a_ts) * uni) @ xtb[0]  # likelihood of x_t per x_s
            want = q_s_given_0 * q_t_given_s
            torch.testing.assert_close(g[0], want / want.sum(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("t,prev", [(99, 60), (40, 39), (12, 0), (5, -1)])
def test_fast_reverse_step_draws_from_the_log_space_posterior(t: int, prev: int) -> None:
    """The sampler's mixture shortcut gives the same distribution as the full posterior with
    the predicted x_0 (or the prediction itself on the final step), for every block size."""
    layout = BlockLayout([2, 5, 5])
    diff = MultinomialDiffusion(layout, _schedule())
    gen = torch.Generator().manual_seed(11)
    n = 40000
    logits = (torch.randn(1, layout.width, generator=gen) * 2).expand(n, -1)  # one fixed prediction
    x_t = layout.uniform(1, gen, torch.device("cpu")).expand(n, -1)  # one fixed current state
    draws = layout.onehot(diff.step(layout.split(logits), x_t, t, prev, gen))
    log_x0 = layout.log_softmax(logits[:1])
    if prev >= 0:
        want = diff.posterior_log(log_x0, layout.onehot(x_t[:1]), torch.tensor([t]), torch.tensor([prev])).exp()[0]
    else:
        want = log_x0.exp()[0]
    torch.testing.assert_close(draws.mean(0), want, atol=0.012, rtol=0)


def test_categorical_probabilities_stay_valid_along_the_reverse_chain() -> None:
    """Any logits (even extreme ones) give non-negative posteriors summing to 1 per block,
    and every reverse step returns exactly one category per block."""
    layout = BlockLayout([2, 3, 3, 7])
    diff = MultinomialDiffusion(layout, _schedule())
    gen = torch.Generator().manual_seed(0)
    x = layout.uniform(64, gen, torch.device("cpu"))
    lo, hi = layout.offsets, layout.offsets + torch.tensor(layout.sizes)
    for t, prev in [(99, 80), (80, 50), (50, 10), (10, 0), (5, -1)]:
        logits = torch.randn(64, layout.width, generator=gen) * 50
        if prev >= 0:
            log_p = diff.posterior_log(
                layout.log_softmax(logits), layout.onehot(x), torch.full((64,), t), torch.full((64,), prev)
            )
            assert torch.isfinite(log_p).all() and (log_p.exp() >= 0).all()
            for block in _blocks(log_p.exp(), layout.sizes):
                torch.testing.assert_close(block.sum(1), torch.ones(64))
        x = diff.step(layout.split(logits), x, t, prev, gen)
        assert x.shape == (64, layout.n_blocks) and ((x >= lo) & (x < hi)).all()


def test_multinomial_loss_is_zero_for_a_perfect_prediction_and_positive_otherwise() -> None:
    layout = BlockLayout([3, 4])
    diff = MultinomialDiffusion(layout, _schedule())
    gen = torch.Generator().manual_seed(1)
    x0 = layout.uniform(256, gen, torch.device("cpu"))
    t = torch.randint(1, 100, (256,), generator=gen)
    xt = diff.q_sample(x0, t, gen)
    perfect = diff.loss(onehot_to_log(layout.onehot(x0)), x0, xt, t)  # logits = log one-hot
    assert perfect.abs().max() < 1e-4
    wrong = diff.loss(torch.zeros(256, layout.width), x0, xt, t)
    assert (wrong >= -1e-6).all() and wrong.mean() > 1e-3


# -- Gaussian half: diffusers schedulers -----------------------------------------------------------
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("steps", [10, 25, 50])
def test_scheduler_round_trip_noise_then_denoise(prediction_type: str, steps: int) -> None:
    """Noise toy data to the last timestep with the DDPM scheduler, then walk back with the DDIM
    sampler fed by an oracle that knows the clean data: the data come back exactly. This pins
    the scheduler wiring (trailing spacing, alpha-to-one, no clipping, prediction targets)."""
    model = TabDDPM(ModelLayout([_Span("numeric", 0, 3)], 3), DiffusionShape(prediction_type=prediction_type))
    ddpm = model.scheduler
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(500, 3, generator=gen) * 3 + 5  # far outside [-1, 1]: clipping would show
    noise = torch.randn(500, 3, generator=gen)
    t_last = ddpm.config.num_train_timesteps - 1
    x = ddpm.add_noise(x0, noise, torch.full((500,), t_last))
    ddim = ddim_from(ddpm)
    ddim.set_timesteps(steps)
    assert int(ddim.timesteps[0]) == t_last
    abar = ddpm.alphas_cumprod
    for t in ddim.timesteps:
        a = abar[int(t)]
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        target = {"epsilon": eps, "sample": x0, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}
        x = ddim.step(target[prediction_type], int(t), x).prev_sample
    torch.testing.assert_close(x, x0, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_tabddpm_learns_a_toy_mixture(seed: int) -> None:
    """600 small optimiser steps on a 3-cluster mixture whose cluster is a categorical
    column: sampled clusters keep their frequencies and their numeric means (the joint)."""
    torch.manual_seed(seed)
    n = 3000
    c = torch.randint(0, 3, (n,))
    x1 = (c.float() - 1) * 2 + 0.3 * torch.randn(n)
    matrix = torch.cat([x1[:, None], torch.nn.functional.one_hot(c, 3).float()], dim=1)
    shape = DiffusionShape(hidden_dim=64, time_dim=16, num_train_timesteps=200, cat_ce_weight=1.0)
    model = TabDDPM(ModelLayout([_Span("numeric", 0, 1), _Span("categorical", 1, 4)], 4), shape)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    # decay to 0 as the generator does: at a constant rate SGD noise alone moves the marginals
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / 600)
    x_num, x_cat = model.to_internal(matrix)
    for _ in range(600):
        idx = torch.randint(0, n, (256,))
        loss, _ = model.loss(x_num[idx], x_cat[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    out = model.sample(3000, 20, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.isfinite(out).all() and torch.all(out[:, 1:].sum(1) == 1)
    cls = out[:, 1:].argmax(1)
    freq = torch.bincount(cls, minlength=3).float() / len(out)
    torch.testing.assert_close(freq, torch.full((3,), 1 / 3), atol=0.07, rtol=0)
    for k in range(3):
        assert abs(out[cls == k, 0].mean().item() - (k - 1) * 2) < 0.4


# -- the generator on real and edge tables ---------------------------------------------------------
# Small enough for the test budget on two shared CPU cores; quality is the benchmark's job.
FAST = dict(device="cpu", epochs=4, min_steps=0, max_steps=40, batch_size=256, hidden_dim=32,
            time_dim=16, sampling_steps=5, num_train_timesteps=100)


def _fit(df: pd.DataFrame, name: str = "t", **options) -> DiffusionGenerator:
    schema = profile_table(df, name)
    cols = [c.name for c in schema.modeled_columns]
    gen = DiffusionGenerator(DiffusionConfig(**(FAST | options)))
    return gen.fit(df[cols], schema)


@pytest.fixture(scope="module")
def planes() -> tuple[pd.DataFrame, DiffusionGenerator, list[ProgressEvent]]:
    df, schema = real_table("planes", rows=800)
    cols = [c.name for c in schema.modeled_columns]
    events: list[ProgressEvent] = []
    gen = DiffusionGenerator(DiffusionConfig(**FAST))
    gen.fit(df[cols], schema, events.append)
    return df[cols], gen, events


def test_registry_builds_the_diffusion_family_and_validates_options() -> None:
    gen = make_generator("diffusion", {"sampling_steps": 10}, device="cpu")
    assert isinstance(gen, DiffusionGenerator) and gen.config.sampling_steps == 10
    for bad in ({"sampling_steps": 200, "num_train_timesteps": 100}, {"time_dim": 15}, {"unknown": 1}):
        with pytest.raises(ConfigError):
            make_generator("diffusion", bad)


def test_fit_reports_each_epoch_and_sample_reports_each_step(planes) -> None:
    df, gen, events = planes
    assert [e.step for e in events] == list(range(1, len(events) + 1)) and events[-1].fraction == 1.0
    assert all(e.stage == "fit" and {"loss", "loss_num", "loss_cat"} <= set(e.metrics) for e in events)
    assert all(math.isfinite(e.metrics["loss"]) for e in events)
    steps: list[ProgressEvent] = []
    out = gen.sample(300, seed=1, progress=steps.append)
    assert [e.step for e in steps] == list(range(1, gen.config.sampling_steps + 1))
    assert all(e.stage == "sample" and e.total == gen.config.sampling_steps for e in steps)
    assert list(out.columns) == list(df.columns) and len(out) == 300
    assert out.dtypes.to_dict() == df.dtypes.to_dict()
    for col in ("type", "manufacturer", "engine"):
        assert set(out[col].dropna()) <= set(df[col].dropna())


def test_same_seed_same_rows_and_other_seed_other_rows(planes) -> None:
    df, gen, _ = planes
    a, b = gen.sample(500, seed=7), gen.sample(500, seed=7)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not a.equals(gen.sample(500, seed=8))
    # a second fit with the same seed, data and config gives the same model and rows
    schema = profile_table(df, "planes")
    again = DiffusionGenerator(DiffusionConfig(**FAST)).fit(df, gen.schema or schema)
    pd.testing.assert_frame_equal(again.sample(500, seed=7), a, check_exact=True)


def test_sampling_in_chunks_covers_n_rows(planes) -> None:
    _, gen, _ = planes
    chunked = DiffusionGenerator(gen.config.model_copy(update={"sample_batch_size": 128}))
    chunked.schema, chunked.encoder, chunked.model, chunked.ema = gen.schema, gen.encoder, gen.model, gen.ema
    steps: list[ProgressEvent] = []
    out = chunked.sample(300, seed=3, progress=steps.append)
    assert len(out) == 300 and len(steps) == 3 * gen.config.sampling_steps
    assert steps[-1].fraction == 1.0


def test_save_load_identity(planes, tmp_path: Path) -> None:
    _, gen, _ = planes
    gen.save(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert files == ["encoder.safetensors", "generator.json", "model.safetensors"]
    meta = json.loads((tmp_path / "model" / "generator.json").read_text())
    assert meta["family"] == "diffusion" and meta["state"]["scheduler"]["clip_sample"] is False
    assert meta["state"]["scheduler"]["num_train_timesteps"] == FAST["num_train_timesteps"]
    loaded = DiffusionGenerator.load(tmp_path / "model")
    assert loaded.config == gen.config
    pd.testing.assert_frame_equal(loaded.sample(400, seed=5), gen.sample(400, seed=5), check_exact=True)


def test_cuda_request_without_gpu_fails_clearly(planes) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    df, gen, _ = planes
    with pytest.raises(DeviceUnavailableError):
        DiffusionGenerator(DiffusionConfig(**(FAST | {"device": "cuda"}))).fit(df, gen.schema)


@pytest.mark.parametrize(
    "columns",
    [
        ["temp", "humid", "precip", "wind_dir"],  # only numeric, with nulls
        ["origin"],  # one categorical column
        ["pressure"],  # one numeric column with nulls
        ["year", "origin"],  # a constant column
        ["wind_gust", "hour"],  # mostly null (about 80%)
        ["time_hour", "origin"],  # tz-aware datetime
    ],
)
def test_edge_tables_train_and_sample(columns: list[str]) -> None:
    df, _ = real_table("weather", rows=600)
    df = df[columns]
    gen = _fit(df)
    out = gen.sample(200, seed=0)
    assert list(out.columns) == columns and len(out) == 200
    assert out.dtypes.to_dict() == df.dtypes.to_dict()
    for col in columns:
        if df[col].nunique() == 1 and df[col].notna().all():
            assert (out[col] == df[col].iloc[0]).all()  # constant stays constant
        if df[col].notna().all():
            assert out[col].notna().all()  # never-null stays never-null


def test_only_categorical_and_nearly_all_null_columns() -> None:
    planes_df, _ = real_table("planes")
    cats = planes_df[["type", "manufacturer", "engine"]]
    out = _fit(cats).sample(200, seed=0)
    assert out.dtypes.to_dict() == cats.dtypes.to_dict()
    assert all(set(out[c]) <= set(cats[c]) for c in cats.columns)
    sparse = planes_df[["speed", "engines"]]  # speed is 99% null
    out = _fit(sparse).sample(500, seed=0)
    assert out["speed"].dropna().between(sparse["speed"].min(), sparse["speed"].max()).all()
    assert out["speed"].isna().mean() > 0.5


def test_training_length_and_learning_rate_schedule() -> None:
    from generators.diffusion import _epochs, _lr_factor

    assert _epochs(300, 4, 1000, 4000) == 300  # a 4,000-row table: epochs decide
    assert _epochs(300, 3, 1000, 4000) == 334  # a small table: at least min_steps updates
    assert _epochs(300, 21, 1000, 4000) == 190  # a large table: at most max_steps updates
    assert _epochs(5, 10_000, 1000, 4000) == 1  # never zero epochs
    # epochs the user chose are run as given (a quick `--epochs 5`); the default adapts
    assert DiffusionConfig().step_bounds() == (1000, 4000)
    assert DiffusionConfig(epochs=5).step_bounds() == (0, 2**62)
    assert DiffusionConfig(epochs=5, min_steps=50).step_bounds() == (50, 2**62)
    assert _epochs(5, 3, *DiffusionConfig(epochs=5).step_bounds()) == 5
    factors = [_lr_factor(i, 10, 100) for i in range(100)]
    assert factors[0] == 0.1 and factors[9] == 1.0 and factors[-1] < 0.02
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))  # decays monotonically
