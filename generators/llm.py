"""``llm``: a causal language model over serialized rows, GReaT-style (Borisov et al. 2023).

Each training row becomes ``"origin is JFK, temp is 39.02, ..."`` with a fresh random column
order per row and epoch, and a causal LM learns the token sequences. Sampling decodes with the
state machines of :mod:`generators.constrained_decoding`, so every generated row parses into the
schema: categories from the category set, numbers canonical and in range, datetimes valid and in
range, each column exactly once, nulls only where the column has them.

Tokens. Whole values (categories, and numeric columns with few distinct values) go through a
``tokenizers`` BPE tokenizer; other numbers and datetimes are spelled with single characters and
two-digit tokens, so the decoder can bound them exactly. Everything structural is a token of its
own after the tokenizer's vocabulary: BOS, EOS, NULL, the digit pairs and one header per column
(reads ``"c is "``); structural tokens never collide with value text, and each field is encoded
on its own, so a value has the same tokens in training and in sampling. Tokens the grammar forces
(a date's ``-``, a constant column, the last column's header) are written by the decoder and
never shown to the model: a weather row of 15 columns costs about 39 model steps.

Model. A local pretrained causal LM when ``pretrained_path`` is given (fine-tuned; its tokenizer
encodes the whole values; new structural embeddings start at the mean embedding of their text's
tokens, so a header starts out "meaning" its column name), otherwise a small GPT-2 built from
the config with a byte-level BPE tokenizer trained on the table's values. Nothing is ever
downloaded: paths must be local folders and every ``from_pretrained`` call is local-files-only.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# No network at run time: make any hub lookup fail fast instead of downloading.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch.nn import functional as F
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from generators.base import Generator, GeneratorConfig, ProgressCallback, ProgressEvent, no_progress
from generators.constrained_decoding import (
    DATETIME_CHARS,
    NUMBER_CHARS,
    FieldPlan,
    RowBatch,
    SpelledAutomaton,
    StructuralTokens,
    ValueAutomaton,
    assemble_row,
    build_automaton,
    plan_value,
)
from generators.device import resolve_device, sampling_device
from generators.row_text import (
    DATETIME_LAYOUTS,
    NULL_TEXT,
    ValueCodec,
    build_codec,
    datetime_texts,
    is_missing,
    serialize_row,
    text_units,
    units_to_text,
)
from generators.training import autocast, seeded, train_epochs
from validation.errors import ConfigError, InputError
from validation.schema import TableSchema

MODEL_DIR = "model"
TOKENIZER_FILE = "tokenizer.json"


class LLMConfig(GeneratorConfig):
    """GReaT-style LM options.

    Defaults are sized for CPU: a 5,000-row, 15-column table trains in about 3 minutes on one
    core (bench/llm_measure.py). Many small steps matter more than model size here: the model
    must find cross-column dependencies, which a few hundred large-batch steps do not reach.
    """

    pretrained_path: str | None = Field(
        None, description="local folder of a pretrained causal LM (+ tokenizer) to fine-tune; never a hub name")
    n_layer: int = Field(2, ge=1, description="transformer blocks of the from-scratch GPT-2")
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(128, ge=8, description="hidden size of the from-scratch GPT-2")
    dropout: float = Field(0.0, ge=0, lt=1, description="GPT-2 dropout; few epochs need none")
    vocab_size: int = Field(2048, ge=300, description="BPE vocabulary budget for the whole-value texts")
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(16, ge=1, description="rows per training step")
    learning_rate: float | None = Field(
        None, gt=0, description="peak AdamW rate; default 4e-3 from scratch, 5e-5 for a pretrained model")
    weight_decay: float = Field(0.01, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="share of steps with a linear warm-up")
    shuffle_columns: bool = Field(True, description="random column order per row (GReaT); False = table order")
    digit_pairs: bool = Field(True, description="spell digits two per token (halves the steps numbers cost)")
    discrete_max_values: int = Field(
        64, ge=0, description="numeric columns with at most this many distinct values are spelled as whole values")
    threads: int | None = Field(
        1, ge=1, description="torch CPU threads during fit/sample; None keeps the process setting. One is "
        "the default: the small model's matrices gain little from more, and on a busy host threads that "
        "spin-wait for each other made every step 3-10x slower (measured on 2 shared cores)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    sample_batch_size: int = Field(512, ge=1, description="rows decoded together")


class LLMGenerator(Generator):
    """Causal LM over "column is value" rows with constrained decoding."""

    family = "llm"
    config_class = LLMConfig
    config: LLMConfig

    def __init__(self, config: LLMConfig | None = None) -> None:
        super().__init__(config)
        self.codecs: list[ValueCodec] = []
        self.tokenizer: Tokenizer | None = None
        self.model: PreTrainedModel | None = None
        self.special: StructuralTokens | None = None
        self.device = torch.device("cpu")
        self.max_length = 0
        self.loss_history: list[dict[str, float]] = []
        self.sample_stats: dict[str, float] = {}
        self._automata: list[ValueAutomaton] = []
        self._char_ids: dict[str, int] = {}
        self._category_tokens: dict[int, list[list[int]]] = {}

    # ------------------------------------------------------------------------------------ fit
    def fit(self, table: pd.DataFrame, schema: TableSchema, progress: ProgressCallback = no_progress) -> "LLMGenerator":
        """Serialize the modeled columns, build tokenizer and model, and train the LM."""
        cfg = self.config
        columns = [c for c in schema.modeled_columns if c.name in table.columns]
        if not columns:
            raise InputError("the table has no modeled columns to learn")
        if len(table) < 1:
            raise InputError("the training table is empty")
        self.device = resolve_device(cfg.device)
        self.schema = schema
        self.codecs = [build_codec(c, table[c.name], cfg.discrete_max_values) for c in columns]
        texts = {c.name: c.column_texts(table[c.name]) for c in self.codecs}
        with seeded(cfg.seed, self.device) as rng, torch_threads(cfg.threads):
            if cfg.pretrained_path:
                self.tokenizer, base_model = _load_pretrained(cfg.pretrained_path)
                # structural ids go after both: the tokenizer may know more ids than the model has rows
                vocab = max(base_model.get_input_embeddings().num_embeddings, self.tokenizer.get_vocab_size())
            else:
                self.tokenizer = train_tokenizer(
                    (t for codec in self.codecs if _spelled_whole(codec) for t in texts[codec.name] if t),
                    cfg.vocab_size)
                base_model, vocab = None, self.tokenizer.get_vocab_size()
            self.special = StructuralTokens.after(vocab, len(self.codecs))
            self._build_automata()
            self.max_length = RowBatch(self._automata, self.special, 1).max_row_tokens()
            fields = self._encode_rows(table, texts)
            self.model = self._make_model(base_model).to(self.device)
            self.loss_history = self._train(fields, rng, progress)
        return self

    def _build_automata(self) -> None:
        """Token ids of the value alphabet and one automaton per column."""
        assert self.tokenizer is not None and self.special is not None
        self._char_ids = char_token_ids(self.tokenizer, sorted(set(NUMBER_CHARS + DATETIME_CHARS)))
        pair_ids = self.special.pair_ids if self.config.digit_pairs else None
        self._category_tokens = {}
        self._automata = []
        for i, codec in enumerate(self.codecs):
            seqs = None
            if _spelled_whole(codec):
                seqs = [self.tokenizer.encode(t, add_special_tokens=False).ids for t in codec.texts]
                self._category_tokens[i] = seqs
            self._automata.append(build_automaton(codec, seqs, self._char_ids, self.special.null, pair_ids))

    def _value_tokens(self, column: int, text: str | None) -> list[int]:
        """Token ids of one value (NULL for a missing one); the inverse of the automata."""
        assert self.special is not None
        if text is None:
            return [self.special.null]
        codec = self.codecs[column]
        if _spelled_whole(codec):
            return self._category_tokens[column][codec.text_index()[text]]
        automaton = self._automata[column]
        assert isinstance(automaton, SpelledAutomaton)
        return automaton.tokens(text)

    def _plan(self, column: int, text: str | None) -> FieldPlan:
        return plan_value(self._automata[column], self._value_tokens(column, text))

    def _encode_rows(self, table: pd.DataFrame, texts: dict[str, list[str | None]]) -> list[list[tuple[int, FieldPlan]]]:
        """Per row, its fields as (column, planned value tokens).

        A cell that is not missing but falls outside the schema's rules (a category or range
        narrowed by a schema override) leaves its field out of that row rather than teaching the
        model a value it may not produce.
        """
        per_column: list[list[tuple[int, FieldPlan] | None]] = []
        for i, codec in enumerate(self.codecs):
            missing = table[codec.name].isna().to_numpy()
            cache: dict[str | None, tuple[int, FieldPlan]] = {}
            column_fields: list[tuple[int, FieldPlan] | None] = []
            for text, is_missing in zip(texts[codec.name], missing):
                if text is None and not (is_missing and codec.allow_null):
                    column_fields.append(None)
                    continue
                field = cache.get(text)
                if field is None:
                    field = cache[text] = (i, self._plan(i, text))
                column_fields.append(field)
            per_column.append(column_fields)
        return [[f for f in row if f is not None] for row in zip(*per_column)]

    def _make_model(self, base: PreTrainedModel | None) -> PreTrainedModel:
        assert self.special is not None and self.tokenizer is not None
        cfg = self.config
        if base is None:
            if cfg.n_embd % cfg.n_head:
                raise ConfigError(f"n_embd ({cfg.n_embd}) must be a multiple of n_head ({cfg.n_head})")
            config = GPT2Config(
                vocab_size=self.special.total, n_positions=self.max_length, n_embd=cfg.n_embd,
                n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
                attn_pdrop=cfg.dropout, bos_token_id=self.special.bos, eos_token_id=self.special.eos)
            return GPT2LMHeadModel(config)
        limit = getattr(base.config, "n_positions", None) or getattr(base.config, "max_position_embeddings", None)
        if limit is not None and self.max_length > limit:
            raise ConfigError(f"rows need up to {self.max_length} tokens; the pretrained model takes {limit}")
        old = base.get_input_embeddings().weight.detach().clone()
        base.resize_token_embeddings(self.special.total)
        weight = base.get_input_embeddings().weight
        names = [c.name for c in self.codecs]
        starts = {self.special.bos: "", self.special.eos: ", ", self.special.null: NULL_TEXT}
        starts |= {tok: pair for pair, tok in self.special.pair_ids.items()}
        starts |= {self.special.header(i): f"{n} is " for i, n in enumerate(names)}
        with torch.no_grad():
            for tok, text in starts.items():
                ids = [t for t in self.tokenizer.encode(text, add_special_tokens=False).ids if t < len(old)] if text else []
                weight[tok] = old[ids].mean(0) if ids else old.mean(0)
        return base

    def _train(self, fields: list[list[tuple[int, FieldPlan]]], rng: np.random.Generator,
               progress: ProgressCallback) -> list[dict[str, float]]:
        """AdamW with warm-up and cosine decay on next-token cross-entropy."""
        assert self.model is not None and self.special is not None
        cfg = self.config
        model = self.model
        lr = cfg.learning_rate or (5e-5 if cfg.pretrained_path else 4e-3)
        n = len(fields)
        batch_size = min(cfg.batch_size, n)
        steps_per_epoch = math.ceil(n / batch_size)
        total = cfg.epochs * steps_per_epoch
        warmup = max(1, int(total * cfg.warmup_fraction))
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress_ = (step - warmup) / max(1, total - warmup)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        eos = self.special.eos

        n_columns = len(self.codecs)

        def batches():
            order = rng.permutation(n)
            for start in range(0, n, batch_size):
                rows = []
                for r in order[start:start + batch_size]:
                    row = fields[r]
                    if cfg.shuffle_columns:
                        row = [row[j] for j in rng.permutation(len(row))]
                    rows.append(assemble_row(row, n_columns, self.special))
                width = max(len(s) for s in rows)
                if width < 2:
                    continue  # every token of these rows is forced: nothing to learn
                ids = np.full((len(rows), width), eos, dtype=np.int64)
                target = np.full((len(rows), width), -100, dtype=np.int64)
                for k, s in enumerate(rows):
                    ids[k, :len(s)] = s
                    target[k, :len(s)] = s
                yield torch.from_numpy(ids).to(self.device), torch.from_numpy(target[:, 1:]).to(self.device)

        def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            ids, target = batch
            with autocast(self.device):
                logits = model(input_ids=ids[:, :-1]).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            return {"loss": loss.detach()}

        model.train()
        history = train_epochs(cfg.epochs, batches, step, progress)
        model.eval()
        return history

    # --------------------------------------------------------------------------------- sample
    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, progress: ProgressCallback = no_progress,
               condition: dict[str, Any] | None = None) -> pd.DataFrame:
        """``n`` valid rows; ``condition`` fixes column values (e.g. ``{"origin": "JFK"}``).

        Rows that fail the final schema check (none are expected: decoding is constrained) or do
        not finish within the longest possible row are counted in ``sample_stats`` and replaced.
        """
        if self.model is None or self.special is None:
            raise RuntimeError("LLMGenerator is not fitted")
        if n < 0:
            raise InputError(f"cannot sample {n} rows")
        with torch_threads(self.config.threads):
            return self._sample(n, seed, progress, condition or {})

    def _sample(self, n: int, seed: int, progress: ProgressCallback, condition: dict[str, Any]) -> pd.DataFrame:
        prompt = self._condition_tokens(condition)
        gen = torch.Generator().manual_seed(seed)  # sampling draws happen on the CPU: device-independent
        rows: list[dict[int, str | None]] = []
        attempted = rejected = 0
        self.model.eval()
        while len(rows) < n:
            size = min(self.config.sample_batch_size, n - len(rows))
            batch = self._decode_batch(prompt, size, gen)
            attempted += size
            for i in range(size):
                texts = batch.texts[i]
                if batch.done[i] and self._row_valid(texts):
                    rows.append(texts)
                else:
                    rejected += 1
            progress(ProgressEvent(stage="sample", step=min(len(rows), n), total=n,
                                   metrics={"rejected_share": rejected / attempted}))
            if attempted >= 10 * n + 10 * self.config.sample_batch_size and len(rows) < n:
                raise RuntimeError(f"only {len(rows)} of {attempted} sampled rows were valid")
        self.sample_stats = {"requested": float(n), "attempted": float(attempted), "rejected": float(rejected),
                             "rejected_share": rejected / attempted if attempted else 0.0}
        index = pd.RangeIndex(n)
        data = {codec.name: codec.to_series([r[i] for r in rows[:n]], index) for i, codec in enumerate(self.codecs)}
        return pd.DataFrame(data, index=index)

    def _decode_batch(self, prompt: list[int], size: int, gen: torch.Generator) -> RowBatch:
        """Constrained ancestral sampling of ``size`` rows with a KV cache.

        All rows share the prompt and advance one model token per step (forced tokens are
        applied by the grammar in between), so they stay aligned and need no padding. A step
        touches only the allowed (row, token) pairs (:meth:`RowBatch.allowed_pairs`): their
        logits are gathered on the model's device and only they come to the CPU, so what a step
        does after the forward pass costs the same with a 150k-token pretrained vocabulary as
        with a small one. The draw is Gumbel-max on CPU from ``gen``, one uniform per allowed
        pair, so the draws do not depend on the device; the logits they are added to do (bf16
        products on CUDA, float32 on a CPU), so the same seed gives the same rows on the same kind
        of device and precision.
        """
        assert self.model is not None and self.special is not None
        batch = RowBatch(self._automata, self.special, size)
        try:
            batch.feed(prompt[1:])
        except ValueError as exc:
            raise InputError(f"the condition is not valid for the schema: {exc}") from None
        ids = torch.tensor([prompt] * size, device=self.device)
        cache = None
        for _ in range(self.max_length):
            if batch.done.all():
                break
            with autocast(self.device):
                out = self.model(input_ids=ids, **{_CACHE_ARG: cache}, use_cache=True)
            cache = getattr(out, _CACHE_ARG)
            rows_np, tokens_np = batch.allowed_pairs()
            rows, pair_tokens = torch.from_numpy(rows_np), torch.from_numpy(tokens_np)
            on_device = torch.stack((rows, pair_tokens)).to(self.device)  # one transfer per step
            logits = out.logits[:, -1][on_device[0], on_device[1]].float().cpu() / self.config.temperature
            noise = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen).clamp_(1e-20, 1.0)))
            tokens = choose_tokens(size, rows, pair_tokens, logits + noise)
            batch.advance(tokens.numpy())
            ids = tokens.unsqueeze(1).to(self.device)
        return batch

    def _condition_tokens(self, condition: dict[str, Any]) -> list[int]:
        """The prompt: BOS, then the fixed columns as the LM would have written them."""
        assert self.special is not None
        names = [c.name for c in self.codecs]
        fields: list[tuple[int, FieldPlan]] = []
        for name, value in condition.items():
            if name not in names:
                raise InputError(f"cannot condition on {name!r}: not a modeled column ({', '.join(names)})")
            i = names.index(name)
            codec = self.codecs[i]
            text = codec.to_text(value)
            if text is None and not (is_missing(value) and codec.allow_null):
                raise InputError(f"condition {name}={value!r} is not a valid value of the column")
            fields.append((i, self._plan(i, text)))
        return assemble_row(fields, len(self.codecs), self.special)

    def _row_valid(self, texts: dict[int, str | None]) -> bool:
        """Independent check of a decoded row: every column once, each value valid."""
        if len(texts) != len(self.codecs):
            return False
        return all(value_valid(self.codecs[i], t) for i, t in texts.items())

    def to_text(self, table: pd.DataFrame, seed: int = 0) -> list[str]:
        """The rows as the model reads them (random column order per row when configured)."""
        rng = np.random.default_rng(seed)
        texts = {c.name: c.column_texts(table[c.name]) for c in self.codecs}
        out = []
        for r in range(len(table)):
            order = rng.permutation(len(self.codecs)) if self.config.shuffle_columns else range(len(self.codecs))
            out.append(serialize_row([(self.codecs[j].name, texts[self.codecs[j].name][r]) for j in order]))
        return out

    # ------------------------------------------------------------------------------ save/load
    def runtime(self) -> dict[str, str | int]:
        """:meth:`Generator.runtime` plus torch's and transformers' versions, the threads and the device."""
        import transformers

        threads = self.config.threads if self.config.threads is not None else torch.get_num_threads()
        return {**super().runtime(), "torch": torch.__version__, "transformers": transformers.__version__,
                "torch_threads": threads, "device": self.device.type}

    def save(self, directory: Path) -> None:
        """save_pretrained (safetensors) + tokenizer.json + generator.json."""
        if self.model is None or self.tokenizer is None or self.special is None:
            raise RuntimeError("LLMGenerator is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory / MODEL_DIR)
        self.tokenizer.save(str(directory / TOKENIZER_FILE))
        self._write_meta(directory, {
            "codecs": [c.to_json() for c in self.codecs],
            "value_vocab": self.special.bos,
            "max_length": self.max_length,
            "loss_history": self.loss_history,
        })

    @classmethod
    def load(cls, directory: Path) -> "LLMGenerator":
        """Rebuild from :meth:`save`'s files; a GPU-trained model loads on a CPU-only host."""
        directory = Path(directory)
        config, schema, meta = cls._read_meta(directory)
        gen = cls(config)  # type: ignore[arg-type]
        gen.schema = schema
        gen.codecs = [ValueCodec.from_json(c) for c in meta["codecs"]]
        gen.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        gen.special = StructuralTokens.after(int(meta["value_vocab"]), len(gen.codecs))
        gen.max_length = int(meta["max_length"])
        gen.loss_history = meta.get("loss_history", [])
        gen._build_automata()
        gen.device = sampling_device(config.device)
        gen.model = _causal_lm(directory / MODEL_DIR).to(gen.device).eval()
        return gen


# -------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (None: unchanged), restoring the setting after.

    Small models gain little from threads, and on a busy host extra threads that spin-wait for
    each other slow every step down several times.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def choose_tokens(n_rows: int, rows: torch.Tensor, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Per row, the token of its best-scoring (row, token) pair: a segment argmax, no dense tensor.

    ``rows``/``tokens`` (int64) and ``scores`` (float) are aligned per pair, in any order. For
    rows with a finite score the choice is what an argmax over a dense ``(n_rows, vocab)`` score
    tensor with the other tokens at -inf returns: the highest score, ties going to the lowest
    token id. A NaN score counts as -inf, so a row whose scores are all NaN or -inf still gets
    one of its allowed tokens (its lowest), where a dense argmax could pick a disallowed one.
    Every row needs at least one pair.
    """
    scores = torch.where(torch.isnan(scores), torch.full_like(scores, -math.inf), scores)
    best = torch.full((n_rows,), -math.inf, dtype=scores.dtype).scatter_reduce_(0, rows, scores, "amax")
    hit = scores == best[rows]
    none = torch.iinfo(torch.int64).max
    chosen = torch.full((n_rows,), none, dtype=torch.int64).scatter_reduce_(0, rows[hit], tokens[hit], "amin")
    if bool((chosen == none).any()):
        raise RuntimeError("a row has no allowed token (the grammar dead-ended)")
    return chosen


def _cache_argument() -> str:
    """transformers 5 calls the KV cache ``cache``; 4.x called it ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(GPT2LMHeadModel.forward).parameters else "past_key_values"


_CACHE_ARG = _cache_argument()


def train_tokenizer(texts, vocab_size: int) -> Tokenizer:
    """Byte-level BPE trained on the whole-value texts of the table (categories, discrete numbers).

    The whole value is one pre-token (no regex split), so a frequent category can merge into a
    single token; the byte alphabet is always in the vocabulary, so any text encodes, and digits
    and datetime punctuation are single tokens.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def char_token_ids(tokenizer: Tokenizer, chars: list[str]) -> dict[str, int]:
    """The single token of each character numbers and datetimes are spelled with."""
    out = {}
    for ch in chars:
        ids = tokenizer.encode(ch, add_special_tokens=False).ids
        if len(ids) != 1:
            raise ConfigError(f"the tokenizer does not encode {ch!r} as one token; numbers are spelled per character")
        out[ch] = ids[0]
    if len(set(out.values())) != len(out):
        raise ConfigError("the tokenizer maps different characters to the same token")
    return out


def _load_pretrained(path: str) -> tuple[Tokenizer, PreTrainedModel]:
    """A local causal LM and its fast tokenizer; a name that is not a local folder is refused."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"pretrained_path {path!r} is not a local folder (models are never downloaded)")
    if (folder / TOKENIZER_FILE).is_file():
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    else:
        from transformers import AutoTokenizer

        fast = AutoTokenizer.from_pretrained(folder, local_files_only=True, use_fast=True, trust_remote_code=False)
        tokenizer = fast.backend_tokenizer
    try:
        model = _causal_lm(folder)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a causal LM with safetensors weights from {folder}: {exc}") from None
    # values are encoded alone (add_special_tokens=False): no padding or truncation may alter them
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer, model


def _spelled_whole(codec: ValueCodec) -> bool:
    """Values written with the value tokenizer (a trie of whole values), not per character."""
    return codec.kind == "categorical" or (codec.kind == "number" and codec.discrete)


def value_valid(codec: ValueCodec, text: str | None) -> bool:
    """Is ``text`` a valid canonical value of the column (independent of the automata)?"""
    if text is None:
        return codec.allow_null
    if codec.kind == "categorical":
        return text in codec.text_index()
    if codec.kind == "number":
        # exact units: through a float, digits beyond float64's 53 bits (int64 nanoseconds,
        # full-precision floats at 10 decimals) would read as another number
        units = text_units(text, codec.decimals)
        if units is None:
            return False
        if codec.discrete and text not in codec.text_index():
            return False
        return codec.low <= units <= codec.high and units_to_text(units, codec.decimals) == text
    try:
        parsed = dt.datetime.strptime(text, DATETIME_LAYOUTS[codec.resolution])
    except ValueError:
        return False
    canonical = datetime_texts(np.array([np.datetime64(parsed, "us")]), codec.resolution)[0]  # years < 1000 padded
    return canonical == text and codec.min_text <= text <= codec.max_text


def _causal_lm(folder: Path):
    """A causal LM from a local folder: safetensors only, since loading a model must never unpickle
    (a .bin checkpoint could run code); float32 weights whatever the checkpoint's dtype (most are
    stored in bf16 or fp16): AdamW on bf16 weights rounds small updates away, and fp16 overflows;
    products are autocast. ``.float()``, not ``dtype=``: transformers before 4.56 takes no dtype."""
    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                                use_safetensors=True).float()
