"""The ``llm`` family: row text, tokenizer, constrained decoding, training contract, save/load."""
from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from generators.constrained_decoding import (
    CategoryAutomaton,
    DatetimeAutomaton,
    NumberAutomaton,
    RowBatch,
    StructuralTokens,
    assemble_row,
    plan_value,
)
from generators.llm import LLMConfig, LLMGenerator, char_token_ids, choose_tokens, train_tokenizer, value_valid
from generators.row_text import build_codec, parse_row, serialize_row, units_to_text
from validation.errors import ConfigError, DeviceUnavailableError, InputError
from validation.profile import profile_table
from validation.schema import ColumnKind, TableSchema

TINY = dict(n_layer=1, n_head=2, n_embd=32, epochs=1, batch_size=32, sample_batch_size=128)


# ------------------------------------------------------------------------------- fixtures
def _arrow_table(n: int = 160, seed: int = 0) -> pa.Table:
    """Every kind the LLM models: categories, ints (one nullable), floats, bools, datetimes."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["Paris", "Lyon", "Nice", "Saint-Étienne", "Aix-en-Provence"], n, p=[.4, .25, .2, .1, .05])
    count = rng.integers(0, 500, n)
    score = np.round(rng.normal(0, 10, n) + (city == "Paris") * 5, 2)
    rating = rng.integers(1, 6, n)
    visits = [None if rng.random() < 0.2 else int(v) for v in rng.integers(-20, 40, n)]
    start = pd.Timestamp("2024-02-27 20:00", tz="UTC")
    when = start + pd.to_timedelta(rng.integers(0, 24 * 5, n), unit="h")
    days = [dt.date(2023, 12, 25) + dt.timedelta(days=int(d)) for d in rng.integers(0, 15, n)]
    # ISO timestamps as text (a bare "2020-01-05" would be profiled as a phone number)
    stamp_str = [(pd.Timestamp("2020-01-01") + pd.Timedelta(minutes=30 * int(d))).strftime("%Y-%m-%dT%H:%M:%SZ")
                 for d in rng.integers(0, 500, n)]
    return pa.table({
        "city": pa.array(city.tolist()),
        "count": pa.array(count, pa.int64()),
        "score": pa.array(score, pa.float64()),
        "rating": pa.array(rating, pa.int64()),
        "visits": pa.array(visits, pa.int64()),
        "member": pa.array((rng.random(n) < 0.3).tolist()),
        "when": pa.array(when.to_numpy(), pa.timestamp("s", tz="UTC")),
        "day": pa.array(days, pa.date32()),
        "stamp_str": pa.array(stamp_str),
    })


@pytest.fixture(scope="module")
def mixed() -> tuple[pd.DataFrame, TableSchema]:
    arrow = _arrow_table()
    df = arrow.to_pandas()
    return df, profile_table(df, "mixed", arrow.schema)


@pytest.fixture(scope="module")
def fitted(mixed) -> LLMGenerator:
    df, schema = mixed
    return LLMGenerator(LLMConfig(**TINY | {"epochs": 2})).fit(df, schema)


def assert_valid(synth: pd.DataFrame, real: pd.DataFrame, schema: TableSchema) -> None:
    """Every sampled cell obeys the schema, and dtypes are the input's."""
    for col in schema.modeled_columns:
        s, r = synth[col.name], real[col.name]
        assert str(s.dtype) == str(r.dtype), col.name
        null = s.isna()
        if not r.isna().any():
            assert not null.any(), f"{col.name}: nulls in a column without nulls"
        v = s[~null]
        if col.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            assert v.isin(col.category_values).all(), col.name
        elif col.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT):
            x = v.astype(float)
            assert ((x >= col.min) & (x <= col.max)).all(), col.name
            if col.kind == ColumnKind.INTEGER:
                assert (x == np.round(x)).all(), col.name
            elif col.decimals is not None:  # None: magnitudes too small to round (not rounded)
                assert np.allclose(x, x.round(col.decimals), atol=1e-9), col.name
        elif col.kind == ColumnKind.DATETIME:
            ts = _utc(pd.to_datetime(v, format=col.datetime_format) if col.datetime_format else pd.to_datetime(v))
            assert ((ts >= _utc(pd.Timestamp(col.min))) & (ts <= _utc(pd.Timestamp(col.max)))).all(), col.name
            if r.dtype == object:  # strings and dates keep their Python type
                assert {type(x) for x in v} == {type(x) for x in r.dropna()}, col.name


def _utc(x):
    """Timestamps as UTC-aware (naive ones read as UTC) so bounds and values compare."""
    if isinstance(x, pd.Timestamp):
        return x.tz_localize("UTC") if x.tz is None else x.tz_convert("UTC")
    return x.dt.tz_localize("UTC") if x.dt.tz is None else x.dt.tz_convert("UTC")


# ----------------------------------------------------------------------------- row text
def test_units_to_text_is_canonical():
    assert units_to_text(0, 2) == "0"
    assert units_to_text(-5, 2) == "-0.05"
    assert units_to_text(120, 2) == "1.2"
    assert units_to_text(101200, 2) == "1012"
    assert units_to_text(-994, 2) == "-9.94"
    assert units_to_text(7, 0) == "7"


def test_serialization_round_trip(mixed):
    df, schema = mixed
    codecs = [build_codec(c, df[c.name]) for c in schema.modeled_columns]
    texts = {c.name: c.column_texts(df[c.name]) for c in codecs}
    for r in range(len(df)):
        fields = [(c.name, texts[c.name][r]) for c in codecs[::-1]]
        line = serialize_row(fields)
        assert parse_row(line, [c.name for c in codecs]) == dict(fields)
    back = pd.DataFrame({c.name: c.to_series(texts[c.name]) for c in codecs})
    for c in codecs:
        if c.kind == "number":
            np.testing.assert_allclose(back[c.name].astype(float), df[c.name].astype(float), equal_nan=True)
        else:
            pd.testing.assert_series_equal(back[c.name], df[c.name], check_names=False)


def test_row_text_shape(fitted, mixed):
    df, _ = mixed
    line = fitted.to_text(df.head(1))[0]
    assert "city is " in line and "when is 2024-" in line and line.count(", ") == 8
    assert fitted.to_text(df.head(3), seed=1) == fitted.to_text(df.head(3), seed=1)


# ------------------------------------------------------------------------------ tokenizer
def test_tokenizer_training():
    texts = ["JFK"] * 50 + ["LGA"] * 40 + ["EWR"] * 30 + ["Saint-Étienne"] * 5
    tok = train_tokenizer(iter(texts), 400)
    again = train_tokenizer(iter(texts), 400)
    assert tok.get_vocab() == again.get_vocab()  # deterministic
    for frequent in ("JFK", "LGA", "EWR"):
        assert len(tok.encode(frequent).ids) == 1
    assert tok.decode(tok.encode("Saint-Étienne").ids) == "Saint-Étienne"
    assert tok.decode(tok.encode("never seen ü").ids) == "never seen ü"  # byte fallback
    ids = char_token_ids(tok, list("0123456789.-: "))
    assert len(set(ids.values())) == 14


# -------------------------------------------------------------------- decoding automata
def _accepted(automaton, limit: int = 20000) -> set[str]:
    """Every complete text the automaton admits (exhaustive search); each by one path only."""
    out: list[str] = []
    stack = [automaton.start()]
    while stack:
        state = stack.pop()
        ids, can_end = automaton.allowed(state)
        if can_end:
            out.append(automaton.text(state))
        stack.extend(automaton.step(state, t) for t in ids)
        assert len(out) < limit
    assert len(out) == len(set(out)), "some value has two token spellings"
    return set(out)


CHARS = {c: i for i, c in enumerate("0123456789.-: ")}
PAIR_IDS = {a + b: 100 + 10 * int(a) + int(b) for a in "0123456789" for b in "0123456789"}


@pytest.mark.parametrize("pairs", [None, PAIR_IDS], ids=["single", "pairs"])
@pytest.mark.parametrize("low,high,decimals", [(-150, 230, 1), (-5, 1234, 2), (95, 1050, 0), (0, 0, 3),
                                               (-40, -3, 1), (7, 7, 0), (1, 9, 2), (-99999, -99000, 0)])
def test_number_automaton_is_exact(low, high, decimals, pairs):
    """Exactly the canonical numbers in range, nothing else, and never a dead end."""
    auto = NumberAutomaton(low, high, decimals, CHARS, null_token=None, pair_ids=pairs)
    expected = {units_to_text(u, decimals) for u in range(low, high + 1)}
    assert _accepted(auto) == expected
    for text in list(expected)[:50]:  # the training spelling is the one the decoder walks
        state = auto.start()
        for tok in auto.tokens(text):
            assert tok in auto.allowed(state)[0]
            state = auto.step(state, tok)
        assert auto.text(state) == text and auto.allowed(state)[1]


def test_digit_pairs_spelling():
    auto = NumberAutomaton(-100000, 100000, 2, CHARS, None, PAIR_IDS)
    assert auto.tokens("-123.45") == [CHARS["-"], PAIR_IDS["12"], CHARS["3"], CHARS["."], PAIR_IDS["45"]]
    assert auto.tokens("1012") == [PAIR_IDS["10"], PAIR_IDS["12"]]


@pytest.mark.parametrize("pairs", [None, PAIR_IDS], ids=["single", "pairs"])
def test_number_automaton_never_dead_ends(pairs):
    auto = NumberAutomaton(-1234, 98765, 3, CHARS, null_token=None, pair_ids=pairs)
    rng = np.random.default_rng(0)
    for _ in range(500):  # random walks: every reachable state can still finish
        state = auto.start()
        while True:
            ids, can_end = auto.allowed(state)
            assert ids or can_end
            if not ids or (can_end and rng.random() < 0.3):
                break
            state = auto.step(state, int(rng.choice(ids)))
        assert -1234 <= round(float(auto.text(state)) * 1000) <= 98765


@pytest.mark.parametrize("res,lo,hi,freq,fmt", [
    ("h", "2024-02-27 22", "2024-03-01 03", "h", "%Y-%m-%d %H"),  # leap day
    ("D", "2013-12-30", "2014-01-02", "D", "%Y-%m-%d"),
    ("D", "2023-02-27", "2023-03-01", "D", "%Y-%m-%d"),
    ("m", "1999-12-31 23:58", "2000-01-01 00:01", "min", "%Y-%m-%d %H:%M"),
])
@pytest.mark.parametrize("pairs", [None, PAIR_IDS], ids=["single", "pairs"])
def test_datetime_automaton_is_exact(res, lo, hi, freq, fmt, pairs):
    auto = DatetimeAutomaton(res, lo, hi, CHARS, null_token=None, pair_ids=pairs)
    expected = set(pd.date_range(lo, hi, freq=freq).strftime(fmt))
    assert _accepted(auto) == expected


def test_category_trie_handles_prefixes():
    seqs = [[1], [1, 2], [1, 2, 3], [4]]
    auto = CategoryAutomaton(seqs, ["a", "ab", "abc", "d"], null_token=9)
    assert _accepted(auto) == {"a", "ab", "abc", "d", None}
    with pytest.raises(ValueError):
        CategoryAutomaton([[1], [1]], ["x", "y"], None)


def _unfitted(df: pd.DataFrame, schema: TableSchema, value_vocab: int | None = None) -> LLMGenerator:
    """Codecs, tokenizer and automata without a model; structural ids after ``value_vocab``."""
    gen = LLMGenerator(LLMConfig(**TINY))
    gen.codecs = [build_codec(c, df[c.name], 8) for c in schema.modeled_columns]
    gen.tokenizer = train_tokenizer((t for c in gen.codecs for t in c.texts), 400)
    gen.special = StructuralTokens.after(value_vocab or gen.tokenizer.get_vocab_size(), len(gen.codecs))
    gen._build_automata()
    return gen


def _dense_mask(batch: RowBatch) -> np.ndarray:
    """The allowed tokens as a dense (rows, vocab) mask, cell by cell from the grammar: the
    reference :meth:`RowBatch.allowed_pairs` is checked against (small vocabularies only)."""
    sp = batch.special
    mask = np.zeros((batch.n, sp.total), dtype=bool)
    end_ok = np.zeros(batch.n, dtype=bool)
    for i in np.flatnonzero(~batch.done):
        ids, end_ok[i] = batch._value_choices(i)
        mask[i, ids] = True
        for c in np.flatnonzero(batch.remaining[i]):
            mask[i, sp.header0 + c] = end_ok[i]
        mask[i, sp.eos] = end_ok[i] and batch.n_remaining[i] == 0
    mask[batch.done, sp.eos] = True
    return mask


def test_random_choices_always_give_valid_rows(mixed):
    """The adversarial case: pick uniformly among allowed tokens, no model at all."""
    df, schema = mixed
    gen = _unfitted(df, schema)
    batch = RowBatch(gen._automata, gen.special, 400)
    rng = np.random.default_rng(1)
    for _ in range(batch.max_row_tokens()):
        if batch.done.all():
            break
        mask = _dense_mask(batch)
        assert mask.any(axis=1).all()  # never a dead end
        batch.advance(np.array([rng.choice(np.flatnonzero(m)) for m in mask]))
    assert batch.done.all()
    for texts in batch.texts:
        assert sorted(texts) == list(range(len(gen.codecs)))  # every column exactly once
        for i, text in texts.items():
            assert value_valid(gen.codecs[i], text), (gen.codecs[i].name, text)


def test_allowed_pairs_are_the_dense_mask(mixed):
    """The (row, token) pairs a decoding step uses are exactly the dense mask's allowed cells,
    at every step of random walks (finished rows: EOS only), each pair once."""
    df, schema = mixed
    gen = _unfitted(df, schema)
    batch = RowBatch(gen._automata, gen.special, 300)
    rng = np.random.default_rng(2)
    for _ in range(batch.max_row_tokens() + 1):
        rows, tokens = batch.allowed_pairs()
        assert rows.dtype == tokens.dtype == np.int64 and rows.shape == tokens.shape
        mask = _dense_mask(batch)
        dense = np.zeros_like(mask)
        dense[rows, tokens] = True
        assert (dense == mask).all() and dense.sum() == len(rows)  # same cells, no duplicates
        for i in np.flatnonzero(batch.done):
            assert tokens[rows == i].tolist() == [gen.special.eos]
        if batch.done.all():
            break
        batch.advance(np.array([rng.choice(tokens[rows == i]) for i in range(batch.n)]))
    assert batch.done.all()


def test_pair_choice_is_the_dense_masked_argmax():
    """choose_tokens over (row, token, score) pairs picks what an argmax over the dense
    (rows, vocab) scores with disallowed tokens at -inf picks, ties included (lowest id)."""
    rng = np.random.default_rng(0)
    n, vocab = 64, 500
    for trial in range(20):
        allowed = rng.random((n, vocab)) < rng.uniform(0.002, 0.3)
        allowed[np.arange(n), rng.integers(0, vocab, n)] = True  # every row has a pair
        rows, tokens = np.nonzero(allowed)
        order = rng.permutation(len(rows))  # pairs come in any order
        rows, tokens = torch.from_numpy(rows[order]), torch.from_numpy(tokens[order])
        # few distinct values: many ties within a row
        scores = torch.from_numpy(rng.integers(-3, 3, len(rows)).astype(np.float32)) if trial % 2 else \
            torch.randn(len(rows), generator=torch.Generator().manual_seed(trial))
        dense = torch.full((n, vocab), float("-inf"))
        dense[rows, tokens] = scores
        assert torch.equal(choose_tokens(n, rows, tokens, scores), dense.argmax(dim=1))
    # rows whose scores are all NaN or -inf still get an allowed token: their lowest
    rows, tokens = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([7, 3, 9, 4, 5])
    scores = torch.tensor([float("nan"), float("nan"), float("-inf"), float("-inf"), 1.0])
    assert choose_tokens(3, rows, tokens, scores).tolist() == [3, 4, 5]
    with pytest.raises(RuntimeError):
        choose_tokens(4, rows, tokens, scores)  # row 3 has no pair


class _WideFakeLM:
    """A stand-in causal LM with a vocabulary of millions: one fixed logit row, broadcast (no copy)."""

    def __init__(self, vocab: int) -> None:
        self.row = torch.randn(vocab, generator=torch.Generator().manual_seed(0))

    def eval(self) -> "_WideFakeLM":
        return self

    def __call__(self, input_ids: torch.Tensor, use_cache: bool, **_) -> object:
        from types import SimpleNamespace

        logits = self.row.expand(input_ids.shape[0], input_ids.shape[1], -1)
        return SimpleNamespace(logits=logits, cache=None, past_key_values=None)


def test_decoding_draws_noise_only_for_allowed_tokens(mixed, monkeypatch):
    """A step's cost follows the allowed tokens, not the vocabulary: with 2M structural-token
    offsets no random draw spans the vocabulary, and the rows are still valid and seeded."""
    df, schema = mixed
    vocab = 2_000_000
    gen = _unfitted(df, schema, value_vocab=vocab)
    gen.max_length = RowBatch(gen._automata, gen.special, 1).max_row_tokens()
    gen.model = _WideFakeLM(gen.special.total)
    real_rand = torch.rand
    sizes: list[int] = []

    def rand(*size, **kw):
        shape = size[0] if len(size) == 1 and not isinstance(size[0], int) else size
        sizes.append(math.prod(shape))
        assert sizes[-1] < vocab, f"noise drawn over {tuple(shape)}: the whole vocabulary"
        return real_rand(*size, **kw)

    monkeypatch.setattr(torch, "rand", rand)
    out = gen.sample(24, seed=4)
    assert sizes and gen.sample_stats["rejected"] == 0
    assert_valid(out, df, schema)
    pd.testing.assert_frame_equal(gen.sample(24, seed=4), out)


def test_training_encoding_matches_decoding(fitted, mixed):
    """Feeding a row's visible tokens (forced ones left out) to the decoder gives the row back."""
    df, _ = mixed
    texts = {c.name: c.column_texts(df[c.name]) for c in fitted.codecs}
    rng = np.random.default_rng(0)
    for r in range(40):
        order = rng.permutation(len(fitted.codecs))
        fields = [(int(i), fitted._plan(int(i), texts[fitted.codecs[i].name][r])) for i in order]
        seq = assemble_row(fields, len(fitted.codecs), fitted.special)
        batch = RowBatch(fitted._automata, fitted.special, 1)
        batch.feed(seq[1:])
        assert batch.done[0]
        assert batch.texts[0] == {int(i): texts[fitted.codecs[i].name][r] for i in order}
    # constant and date separators are forced: the LM sees fewer tokens than the text has
    year = NumberAutomaton(2013, 2013, 0, CHARS, None, PAIR_IDS)
    year_like = plan_value(year, year.tokens("2013"))
    assert year_like.visible == [] and not year_like.continuable


# ---------------------------------------------------------------------- the generator
def test_fit_sample_contract(fitted, mixed):
    df, schema = mixed
    events = []
    out = fitted.sample(300, seed=3, progress=events.append)
    assert len(out) == 300 and list(out.columns) == [c.name for c in schema.modeled_columns]
    assert_valid(out, df, schema)
    assert fitted.sample_stats["rejected_share"] == 0.0
    assert events and events[-1].stage == "sample" and events[-1].step == 300
    assert out["city"].nunique() > 1 and out["count"].nunique() > 10


def test_rejected_rows_are_replaced_and_counted(fitted, monkeypatch):
    """A row failing the final check is resampled, never dropped, and shows in sample_stats."""
    real_check = LLMGenerator._row_valid
    calls = itertools.count()
    monkeypatch.setattr(LLMGenerator, "_row_valid", lambda self, t: next(calls) % 4 != 0 and real_check(self, t))
    out = fitted.sample(90, seed=5)
    assert len(out) == 90
    stats = fitted.sample_stats
    assert stats["rejected"] > 0 and stats["attempted"] == 90 + stats["rejected"]
    assert stats["rejected_share"] == pytest.approx(stats["rejected"] / stats["attempted"])


def test_untrained_model_at_high_temperature_stays_valid(mixed):
    df, schema = mixed
    gen = LLMGenerator(LLMConfig(**TINY | {"learning_rate": 1e-9, "temperature": 5.0})).fit(df, schema)
    assert_valid(gen.sample(300, seed=0), df, schema)


def test_fit_reports_progress_per_epoch(mixed):
    df, schema = mixed
    events = []
    before = torch.get_num_threads()
    LLMGenerator(LLMConfig(**TINY | {"epochs": 2})).fit(df.head(60), schema, progress=events.append)
    assert torch.get_num_threads() == before  # the threads setting is the caller's again
    assert [e.step for e in events] == [1, 2] and all(e.stage == "fit" and e.total == 2 for e in events)
    assert all(np.isfinite(e.metrics["loss"]) for e in events)


def test_seeded_reproducibility(fitted, mixed):
    df, schema = mixed
    again = LLMGenerator(LLMConfig(**TINY | {"epochs": 2})).fit(df, schema)
    assert again.loss_history == fitted.loss_history
    a, b = fitted.sample(120, seed=7), again.sample(120, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not fitted.sample(120, seed=8).equals(a)
    other = LLMGenerator(LLMConfig(**TINY | {"epochs": 2, "seed": 1})).fit(df, schema)
    assert other.loss_history != fitted.loss_history


def test_save_load_identity(fitted, tmp_path):
    before = fitted.sample(150, seed=11)
    fitted.save(tmp_path / "m")
    files = {p.relative_to(tmp_path / "m").as_posix() for p in (tmp_path / "m").rglob("*") if p.is_file()}
    assert {"generator.json", "tokenizer.json", "model/model.safetensors", "model/config.json"} <= files
    assert not any(f.endswith((".bin", ".pkl", ".pt", ".pth")) for f in files)
    loaded = LLMGenerator.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.sample(150, seed=11), before)
    from generators.registry import load_generator

    assert isinstance(load_generator(tmp_path / "m"), LLMGenerator)


def test_conditional_sampling(fitted, mixed):
    df, schema = mixed
    out = fitted.sample(80, seed=2, condition={"city": "Nice", "rating": 3})
    assert (out["city"] == "Nice").all() and (out["rating"] == 3).all()
    assert_valid(out, df, schema)
    when = df["when"].iloc[0]
    at = fitted.sample(20, seed=2, condition={"when": when, "visits": None})
    assert (at["when"] == when).all() and at["visits"].isna().all()
    with pytest.raises(InputError):
        fitted.sample(5, condition={"city": "Marseille"})
    with pytest.raises(InputError):
        fitted.sample(5, condition={"count": None})  # the column has no nulls
    with pytest.raises(InputError):
        fitted.sample(5, condition={"count": 10_000})
    with pytest.raises(InputError):
        fitted.sample(5, condition={"nope": 1})


def _edge_tables() -> dict[str, pa.Table]:
    rng = np.random.default_rng(4)
    n = 60
    return {
        "only_numeric": pa.table({"a": rng.normal(5, 2, n).round(3), "b": rng.integers(-3, 900, n)}),
        "only_categorical": pa.table({"c": rng.choice(["x", "yy", "zzz"], n).tolist(),
                                      "d": rng.choice(["on", "off"], n).tolist()}),
        "one_column": pa.table({"v": rng.integers(0, 1000, n)}),
        "mostly_null": pa.table({
            "m": pa.array([None if i % 10 else float(i) / 4 for i in range(n)], pa.float64()),
            "k": pa.array([None if i % 7 else "rare" for i in range(n)]),
            "z": rng.integers(0, 5, n)}),
        "constant": pa.table({"one": [7] * n, "same": ["only"] * n}),
    }


@pytest.mark.parametrize("name", list(_edge_tables()))
def test_edge_tables_train_and_sample(name):
    arrow = _edge_tables()[name]
    df = arrow.to_pandas()
    schema = profile_table(df, name, arrow.schema)
    gen = LLMGenerator(LLMConfig(**TINY)).fit(df, schema)
    out = gen.sample(40, seed=0)
    assert len(out) == 40
    assert_valid(out, df, schema)
    if name == "constant":
        assert (out["one"] == 7).all() and (out["same"] == "only").all()


def test_pretrained_local_folder_is_fine_tuned(tmp_path, mixed):
    """A local model folder (config + safetensors + tokenizer.json) is loaded and fine-tuned, in
    float32 weights although it is stored in bf16, as most checkpoints are (AdamW on bf16 weights
    rounds small updates away)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    df, schema = mixed
    tok = train_tokenizer(iter(["hello world", "tabular data"] * 20), 300)
    folder = tmp_path / "pretrained"
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=256, n_embd=32, n_layer=1,
                               n_head=2)).to(torch.bfloat16).save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    gen = LLMGenerator(LLMConfig(**TINY | {"pretrained_path": str(folder)})).fit(df, schema)
    assert gen.model.get_input_embeddings().num_embeddings == gen.special.total
    assert gen.model.dtype == torch.float32
    assert_valid(gen.sample(60, seed=0), df, schema)
    with pytest.raises(ConfigError):
        LLMGenerator(LLMConfig(**TINY | {"pretrained_path": "distilgpt2"})).fit(df, schema)
    # a pickled checkpoint is refused rather than unpickled
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ConfigError):
        LLMGenerator(LLMConfig(**TINY | {"pretrained_path": str(folder)})).fit(df, schema)


def test_cuda_request_without_gpu_fails_clearly(mixed):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    df, schema = mixed
    with pytest.raises(DeviceUnavailableError):
        LLMGenerator(LLMConfig(**TINY | {"device": "cuda"})).fit(df, schema)


def test_unknown_options_are_rejected():
    from generators.registry import make_generator

    with pytest.raises(ConfigError):
        make_generator("llm", {"n_layers": 3})
    assert isinstance(make_generator("llm", {"epochs": 2}), LLMGenerator)


def test_pandas_dtypes_are_restored():
    """category (with its own category order), nullable Int64, string, object bool, naive datetime."""
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({
        "cat": pd.Categorical(rng.choice(["a", "b", "c"], n, p=[.2, .3, .5]), categories=["a", "b", "c"]),
        "flag": pd.array([None if i % 5 == 0 else bool(i % 2) for i in range(n)], dtype=object),
        "s": pd.array(rng.choice(["x", "y"], n), dtype="string"),
        "naive": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 10000, n), unit="s"),
        "i": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
    })
    schema = profile_table(df, "dtypes")
    gen = LLMGenerator(LLMConfig(**TINY)).fit(df, schema)
    for out in (gen.sample(0), gen.sample(30, seed=1)):
        assert out.dtypes.to_dict() == df.dtypes.to_dict()
    assert_valid(out, df, schema)


# ------------------------------------------------------------ exactness and edge values
def test_integers_beyond_float64_are_exact():
    """int64 nanosecond stamps and values near 2**62 are written, checked and sampled exactly."""
    rng = np.random.default_rng(0)
    n = 80  # more distinct values than discrete_max_values: spelled digit by digit
    df = pd.DataFrame({
        "ns": (1_700_000_000 + rng.integers(0, 86_400, n)) * 10**9 + rng.integers(0, 10**9, n),
        "big": 2**62 + rng.integers(0, 10**6, n),
        "kind": rng.choice(["a", "b"], n),
    })
    schema = profile_table(df, "bigint")
    for col in schema.modeled_columns[:2]:
        codec = build_codec(col, df[col.name])
        texts = codec.column_texts(df[col.name])
        assert texts == [str(v) for v in df[col.name]]
        assert all(value_valid(codec, t) for t in texts)
        pd.testing.assert_series_equal(codec.to_series(texts), df[col.name], check_names=False)
    nullable = pd.Series(pd.array([2**62 + 1, None, 2**62 + 3], dtype="Int64"), name="n")
    codec = build_codec(profile_table(nullable.to_frame(), "n").columns[0], nullable)
    pd.testing.assert_series_equal(codec.to_series(codec.column_texts(nullable)), nullable)
    gen = LLMGenerator(LLMConfig(**TINY)).fit(df, schema)
    out = gen.sample(60, seed=0)  # the old float check rejected nearly every row and gave up
    assert gen.sample_stats["rejected_share"] == 0.0
    for name in ("ns", "big"):
        assert out[name].dtype == np.int64
        assert out[name].between(df[name].min(), df[name].max()).all()


def test_full_precision_floats_are_never_rejected():
    """Values whose units exceed 2**53 (1e8 at 10 decimals) pass the final check: valid by construction."""
    rng = np.random.default_rng(0)
    n = 80
    df = pd.DataFrame({"x": rng.uniform(0, 1e8, n), "c": rng.choice(["a", "b"], n)})
    schema = profile_table(df, "floats")
    gen = LLMGenerator(LLMConfig(**TINY)).fit(df, schema)
    out = gen.sample(100, seed=0)
    assert gen.sample_stats["rejected_share"] == 0.0
    assert_valid(out, df, schema)


def test_years_below_1000_are_zero_padded():
    """A 0001-01-01 sentinel keeps the fixed-width layout (strftime writes year 1 as "1")."""
    days = [dt.date(1, 1, 1) if i % 10 == 0 else dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    days[5] = dt.date(999, 12, 31)
    arrow = pa.table({"d": pa.array(days, pa.date32()), "y": pa.array(np.arange(60) % 7, pa.int64())})
    df = arrow.to_pandas()
    schema = profile_table(df, "years", arrow.schema)
    codec = build_codec(schema.columns[0], df["d"])
    assert (codec.min_text, codec.max_text) == ("0001-01-01", "2020-02-29")
    texts = codec.column_texts(df["d"])
    assert texts[:6] == ["0001-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "2020-01-05", "0999-12-31"]
    assert all(value_valid(codec, t) for t in texts) and codec.to_series(texts).tolist() == days
    stamps = pd.Series(np.array(["0005-03-01T06", "2020-01-01T07"], dtype="datetime64[us]"))
    hourly = build_codec(profile_table(stamps.to_frame("t"), "t").columns[0], stamps)
    assert hourly.column_texts(stamps) == ["0005-03-01 06", "2020-01-01 07"]
    gen = LLMGenerator(LLMConfig(**TINY)).fit(df, schema)
    out = gen.sample(60, seed=0)
    assert gen.sample_stats["rejected_share"] == 0.0
    assert all(isinstance(v, dt.date) and dt.date(1, 1, 1) <= v <= dt.date(2020, 2, 29) for v in out["d"])


def test_tiny_floats_widen_the_decimals():
    """Values below 1e-10 (the profile's decimals cap) are neither an empty range nor cut to 0."""
    rng = np.random.default_rng(0)
    n = 80
    df = pd.DataFrame({"tiny": rng.uniform(1e-12, 9e-12, n),
                       "mixed": np.r_[rng.uniform(1e-12, 9e-11, n // 2), rng.uniform(1e-3, 2e-3, n // 2)]})
    schema = profile_table(df, "tiny")
    for col in schema.modeled_columns:
        codec = build_codec(col, df[col.name])
        texts = codec.column_texts(df[col.name])
        assert None not in texts
        np.testing.assert_allclose(codec.to_series(texts), df[col.name], rtol=1e-4)
    gen = LLMGenerator(LLMConfig(**TINY)).fit(df, schema)
    assert_valid(gen.sample(40, seed=0), df, schema)
    far = pd.DataFrame({"x": [1e-300, 2e-300, 3e-300]})
    with pytest.raises(InputError, match="'x'"):
        LLMGenerator(LLMConfig(**TINY)).fit(far, profile_table(far, "far"))
    # and the other end: a 1e300 float would be 301 digit tokens, and planning them took hours
    huge = pd.DataFrame({"h": rng.uniform(1, 9, n) * 1e100})
    with pytest.raises(InputError, match="'h' has magnitudes up to .*at most 30 integer digits"):
        LLMGenerator(LLMConfig(**TINY)).fit(huge, profile_table(huge, "huge"))


def test_unrounded_floats_keep_about_ten_significant_digits():
    """The profile leaves full-precision doubles unrounded (decimals None): the codec keeps ~10
    significant digits of the typical magnitude, as the former 10-place cap did for values near 1,
    and more places for small values (a fixed 6 merged values of 0.01..0.09)."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"z": rng.normal(size=300), "small": rng.uniform(1, 9, 300) * 1e-2})
    schema = profile_table(df, "t")
    assert schema.column("z").decimals is None and schema.column("small").decimals is None
    for name, places in (("z", 10), ("small", 11)):
        codec = build_codec(schema.column(name), df[name])
        assert codec.decimals == places, name
        assert len(set(codec.column_texts(df[name]))) == 300, name


def test_string_storage_comes_back_and_unused_categories_are_never_sampled():
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"s": pd.Series(rng.choice(["a", "b", "c"], n), dtype="string[pyarrow]"),
                       "c": pd.Categorical(rng.choice(["lo", "mid"], n), categories=["lo", "mid", "hi", "unused"])})
    out = LLMGenerator(LLMConfig(**TINY)).fit(df, profile_table(df, "t")).sample(200, seed=0)
    assert out["s"].dtype == df["s"].dtype and out["c"].dtype == df["c"].dtype
    assert set(out["c"].dropna()) <= {"lo", "mid"}


def test_object_column_of_aware_datetimes_stays_aware():
    """tz-aware Python datetimes in an object column come back aware, in the column's zone."""
    rng = np.random.default_rng(0)
    n = 80
    when = pd.Timestamp("2024-03-09 20:00", tz="America/New_York") + pd.to_timedelta(rng.integers(0, 48, n), unit="h")
    df = pd.DataFrame({"w": pd.Series([t.to_pydatetime() for t in when], dtype=object), "v": rng.integers(0, 9, n)})
    gen = LLMGenerator(LLMConfig(**TINY)).fit(df, profile_table(df, "objtz"))
    out = gen.sample(40, seed=0)
    assert out["w"].dtype == object
    assert {str(v.tzinfo) for v in out["w"]} == {"America/New_York"}
    assert all(df["w"].min() <= v <= df["w"].max() for v in out["w"])


def test_condition_on_pandas_missing_values(fitted):
    """pd.NA and NaT condition a nullable column on null, as None and NaN do."""
    for missing in (pd.NA, pd.NaT, np.float64("nan")):
        out = fitted.sample(10, seed=0, condition={"visits": missing})
        assert out["visits"].isna().all()
    with pytest.raises(InputError):
        fitted.sample(5, condition={"count": pd.NA})  # the column has no nulls
