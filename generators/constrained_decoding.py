"""Constrained decoding: per-row state machines over token ids that only admit valid rows.

A row is ``BOS (HEADER_c VALUE_c)+ EOS`` where each ``HEADER_c`` is one structural token per
column (it reads as ``"c is "``) and every column appears exactly once. The value automata:

* :class:`CategoryAutomaton` — a trie over the token ids of each whole value's text;
* :class:`NumberAutomaton` — spelled with single characters and two-digit tokens; a token is
  allowed only when some canonical number in ``[min, max]`` (at the column's decimals) still
  starts with the text so far, so sampling can never paint itself into a corner;
* :class:`DatetimeAutomaton` — a fixed-width date/time layout spelled the same way, with calendar
  rules (month lengths, leap years) and the ``[min, max]`` range enforced exactly.

A nullable column also admits the structural NULL token as its whole value. :class:`RowBatch`
drives a batch of rows: it lists the allowed (row, token) pairs of a step, advances the states
with the sampled tokens and applies forced tokens itself. :func:`plan_value` and
:func:`assemble_row` build the training sequences with the same forced tokens left out, so the
model sees exactly the token streams it is later asked to continue. Allowed sets are cached per
automaton state: the per-step cost is a dictionary lookup per row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Hashable, Protocol

import numpy as np

from generators.row_text import DATETIME_LAYOUTS, ValueCodec, days_in_month, units_to_text

NULL_STATE = "\x00null"  # sub-state of a column whose value is the NULL token
NUMBER_CHARS = "0123456789.-"
DIGITS = "0123456789"
PAIRS = [a + b for a in DIGITS for b in DIGITS]
DATETIME_CHARS = "0123456789-: "


@dataclass(frozen=True)
class StructuralTokens:
    """Ids of the tokens the value tokenizer does not produce; they follow its vocabulary.

    BOS, EOS, NULL, the 100 two-digit tokens ``"00"``..``"99"`` of spelled numbers and dates,
    and one header per column. Keeping them out of the tokenizer means a category text never
    encodes to them, and the tokenizer's own merges stay whole.
    """

    bos: int
    eos: int
    null: int
    pair0: int  # the token of two digits "ab" is pair0 + int("ab")
    header0: int  # header of column i is header0 + i
    n_columns: int

    @classmethod
    def after(cls, vocab_size: int, n_columns: int) -> "StructuralTokens":
        return cls(bos=vocab_size, eos=vocab_size + 1, null=vocab_size + 2, pair0=vocab_size + 3,
                   header0=vocab_size + 3 + len(PAIRS), n_columns=n_columns)

    @property
    def total(self) -> int:
        """Model vocabulary size: value tokens plus these."""
        return self.header0 + self.n_columns

    @property
    def pair_ids(self) -> dict[str, int]:
        return {p: self.pair0 + int(p) for p in PAIRS}

    def header(self, column: int) -> int:
        return self.header0 + column


class ValueAutomaton(Protocol):
    """What :class:`RowBatch` needs from a column's automaton."""

    def start(self) -> Hashable: ...
    def allowed(self, state: Hashable) -> tuple[list[int], bool]: ...
    def step(self, state: Hashable, token: int) -> Hashable: ...
    def text(self, state: Hashable) -> str | None: ...
    def max_tokens(self) -> int: ...


# ------------------------------------------------------------------------------ categories
class CategoryAutomaton:
    """A trie over the token sequences of the category texts."""

    def __init__(self, token_seqs: list[list[int]], texts: list[str], null_token: int | None) -> None:
        if any(len(seq) == 0 for seq in token_seqs):
            raise ValueError("every category text must encode to at least one token")
        if not token_seqs and null_token is None:
            raise ValueError("a column needs at least one valid value")
        self.children: list[dict[int, int]] = [{}]
        self.terminal: list[str | None] = [None]
        for seq, text in zip(token_seqs, texts):
            node = 0
            for tok in seq:
                nxt = self.children[node].get(tok)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][tok] = nxt
                    self.children.append({})
                    self.terminal.append(None)
                node = nxt
            if self.terminal[node] is not None:
                raise ValueError(f"categories {self.terminal[node]!r} and {text!r} encode to the same tokens")
            self.terminal[node] = text
        self.null_token = null_token
        self._max = max(len(s) for s in token_seqs) if token_seqs else 1
        self._allowed: list[tuple[list[int], bool]] = [
            (sorted(ch), term is not None) for ch, term in zip(self.children, self.terminal)
        ]
        if null_token is not None:
            self._allowed[0] = (self._allowed[0][0] + [null_token], self._allowed[0][1])

    def start(self) -> int:
        return 0

    def allowed(self, state: Hashable) -> tuple[list[int], bool]:
        if state == NULL_STATE:
            return [], True
        return self._allowed[state]  # type: ignore[index]

    def step(self, state: Hashable, token: int) -> Hashable:
        if state == 0 and token == self.null_token:
            return NULL_STATE
        return self.children[state][token]  # type: ignore[index]

    def text(self, state: Hashable) -> str | None:
        return None if state == NULL_STATE else self.terminal[state]  # type: ignore[index]

    def max_tokens(self) -> int:
        return self._max


# ----------------------------------------------------------------------- spelled values
class SpelledAutomaton:
    """Values spelled character by character, optionally with two-digit tokens.

    Subclasses define ``feasible(s)`` (some valid value starts with ``s``) and ``complete(s)``.
    With ``pair_ids`` digit runs are written in a canonical way: pairs from the left, a single
    digit only as the last of an odd run (after it, the run must stop). So every value has exactly
    one token sequence, which halves the LM steps a number or a date costs.

    State: ``(text so far, last token was a lone digit)``, or NULL_STATE.
    """

    separators: str = ""  # the non-digit characters values of this kind use

    def __init__(self, char_ids: dict[str, int], pair_ids: dict[str, int] | None, null_token: int | None) -> None:
        self.char_ids = char_ids
        self.pair_ids = pair_ids
        self.id_text = {v: k for k, v in char_ids.items()} | {v: k for k, v in (pair_ids or {}).items()}
        self.null_token = null_token
        self._cache: dict[tuple[str, bool], tuple[list[int], bool]] = {}

    def feasible(self, s: str) -> bool:
        raise NotImplementedError

    def complete(self, s: str) -> bool:
        raise NotImplementedError

    def start(self) -> tuple[str, bool]:
        return ("", False)

    def allowed(self, state: Hashable) -> tuple[list[int], bool]:
        if state == NULL_STATE:
            return [], True
        hit = self._cache.get(state)  # type: ignore[arg-type]
        if hit is None:
            hit = self._cache[state] = self._compute(*state)  # type: ignore[misc]
        return hit

    def _compute(self, s: str, lone: bool) -> tuple[list[int], bool]:
        ids = [self.char_ids[c] for c in self.separators if self.feasible(s + c)]
        if not lone:
            for d in DIGITS:
                if not self.feasible(s + d):
                    continue
                if self.pair_ids is None:
                    ids.append(self.char_ids[d])
                    continue
                ids.extend(self.pair_ids[d + e] for e in DIGITS if self.feasible(s + d + e))
                # a lone digit must end its run: the value ends or a separator follows
                if self.complete(s + d) or any(self.feasible(s + d + c) for c in self.separators):
                    ids.append(self.char_ids[d])
        if s == "" and self.null_token is not None:
            ids.append(self.null_token)
        return ids, self.complete(s)

    def step(self, state: Hashable, token: int) -> Hashable:
        if state == ("", False) and token == self.null_token:
            return NULL_STATE
        piece = self.id_text[token]
        return (state[0] + piece, self.pair_ids is not None and len(piece) == 1 and piece.isdigit())  # type: ignore[index]

    def text(self, state: Hashable) -> str | None:
        return None if state == NULL_STATE else state[0]  # type: ignore[index]

    def tokens(self, text: str) -> list[int]:
        """The canonical token ids of a value's text."""
        out: list[int] = []
        for run in re.findall(r"\d+|\D", text):
            if not run.isdigit() or self.pair_ids is None:
                out.extend(self.char_ids[c] for c in run)
                continue
            out.extend(self.pair_ids[run[k:k + 2]] for k in range(0, len(run) - 1, 2))
            if len(run) % 2:
                out.append(self.char_ids[run[-1]])
        return out


# --------------------------------------------------------------------------------- numbers
class NumberAutomaton(SpelledAutomaton):
    """Canonical decimal numbers ``units * 10**-decimals`` with ``low <= units <= high``."""

    separators = ".-"

    def __init__(self, low: int, high: int, decimals: int, char_ids: dict[str, int], null_token: int | None,
                 pair_ids: dict[str, int] | None = None) -> None:
        if low > high:
            raise ValueError(f"empty numeric range [{low}, {high}] (units of 1e-{decimals})")
        super().__init__(char_ids, pair_ids, null_token)
        self.low, self.high, self.decimals = low, high, decimals

    def max_tokens(self) -> int:
        width = max(len(units_to_text(self.low, 0)), len(units_to_text(self.high, 0)))
        return width + 2 + self.decimals  # sign, point, fraction digits

    # -- the arithmetic of prefixes, all in integer units so nothing rounds ----------------
    def _split(self, s: str) -> tuple[bool, str, str | None] | None:
        """(negative, integer digits, fraction digits or None) of a syntactically valid prefix."""
        neg = s.startswith("-")
        body = s[1:] if neg else s
        if "-" in body:
            return None
        whole, dot, frac = body.partition(".")
        if not whole.isdigit() and whole != "":
            return None
        if len(whole) > 1 and whole[0] == "0":
            return None  # no leading zeros
        if dot:
            if whole == "" or self.decimals == 0 or len(frac) > self.decimals or (frac and not frac.isdigit()):
                return None
            return neg, whole, frac
        return neg, whole, None

    def _magnitude_range(self, neg: bool) -> tuple[int, int]:
        """Allowed |units| for the sign; empty when lo > hi. Negative values exclude -0."""
        if neg:
            return max(1, -self.high), -self.low
        return max(0, self.low), self.high

    def feasible(self, s: str) -> bool:
        """Does some canonical number in range start with ``s``?"""
        parts = self._split(s)
        if parts is None:
            return False
        neg, whole, frac = parts
        mlo, mhi = self._magnitude_range(neg)
        if mlo > mhi:
            return False
        scale = 10**self.decimals
        if frac is not None:
            k = len(frac)
            base = int(whole) * scale + (int(frac) * 10 ** (self.decimals - k) if frac else 0)
            # "1." and "1.0" need one more non-zero digit somewhere: base itself is not reachable
            lo = base + (1 if (k == 0 or frac[-1] == "0") else 0)
            hi = base + 10 ** (self.decimals - k) - 1
            return max(lo, mlo) <= min(hi, mhi)
        if whole == "":
            return True  # any magnitude in range will do
        if whole == "0":
            return max(0, mlo) <= min(scale - 1, mhi)
        head = int(whole)
        j = 0
        while head * 10**j * scale <= mhi:  # j more integer digits
            lo, hi = head * 10**j * scale, (head + 1) * 10**j * scale - 1
            if max(lo, mlo) <= min(hi, mhi):
                return True
            j += 1
        return False

    def complete(self, s: str) -> bool:
        """Is ``s`` itself a canonical number in range?"""
        parts = self._split(s)
        if parts is None:
            return False
        neg, whole, frac = parts
        if whole == "" or (frac is not None and (frac == "" or frac[-1] == "0")):
            return False
        units = int(whole) * 10**self.decimals + (int(frac) * 10 ** (self.decimals - len(frac)) if frac else 0)
        mlo, mhi = self._magnitude_range(neg)
        return mlo <= units <= mhi


# ------------------------------------------------------------------------------- datetimes
_FIELD = re.compile(r"%([YmdHMS])")
_FIELD_WIDTH = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
_FIELD_RANGE = {"Y": (1, 9999), "m": (1, 12), "H": (0, 23), "M": (0, 59), "S": (0, 59)}


class DatetimeAutomaton(SpelledAutomaton):
    """Fixed-width datetimes in ``[min_text, max_text]``; fixed width makes text order = time order."""

    def __init__(self, resolution: str, min_text: str, max_text: str, char_ids: dict[str, int],
                 null_token: int | None, pair_ids: dict[str, int] | None = None) -> None:
        super().__init__(char_ids, pair_ids, null_token)
        self.slots: list[tuple[str, int] | str] = []  # (field, digit index) or a literal char
        for part in re.split(r"(%[YmdHMS])", DATETIME_LAYOUTS[resolution]):
            m = _FIELD.fullmatch(part)
            if m:
                self.slots.extend((m.group(1), i) for i in range(_FIELD_WIDTH[m.group(1)]))
            else:
                self.slots.extend(part)
        self.separators = "".join(sorted({s for s in self.slots if isinstance(s, str)}))
        self.field_start: dict[str, int] = {}
        for pos, slot in enumerate(self.slots):
            if isinstance(slot, tuple) and slot[1] == 0:
                self.field_start[slot[0]] = pos
        self.width = len(self.slots)
        if len(min_text) != self.width or len(max_text) != self.width or min_text > max_text:
            raise ValueError(f"bad datetime range {min_text!r}..{max_text!r}")
        self.min_text, self.max_text = min_text, max_text

    def complete(self, s: str) -> bool:
        return len(s) == self.width and self.feasible(s)

    def max_tokens(self) -> int:
        return self.width

    def _field_ok(self, s: str, pos: int) -> bool:
        """Can the field holding position ``pos`` of ``s`` still be completed validly?"""
        slot = self.slots[pos]
        if isinstance(slot, str):
            return s[pos] == slot
        name, idx = slot
        start = pos - idx
        digits = s[start:pos + 1]
        if not digits.isdigit():
            return False
        rest = _FIELD_WIDTH[name] - len(digits)
        lo = int(digits) * 10**rest
        hi = lo + 10**rest - 1
        if name == "d":
            year = int(s[self.field_start["Y"]:self.field_start["Y"] + 4])
            month = int(s[self.field_start["m"]:self.field_start["m"] + 2])
            flo, fhi = 1, days_in_month(year, month)
        else:
            flo, fhi = _FIELD_RANGE[name]
        return max(lo, flo) <= min(hi, fhi)

    def _extreme(self, s: str, largest: bool) -> str:
        """The smallest (largest) valid datetime text starting with ``s`` (fields are valid so far).

        Greedy is exact: each field's valid values form an interval that depends only on
        earlier fields, so a feasible field prefix always has a valid completion.
        """
        digits = "9876543210" if largest else "0123456789"
        out = s
        for pos in range(len(s), self.width):
            slot = self.slots[pos]
            if isinstance(slot, str):
                out += slot
                continue
            for c in digits:
                if self._field_ok(out + c, pos):
                    out += c
                    break
        return out

    def feasible(self, s: str) -> bool:
        pos = len(s) - 1
        if pos >= self.width or not self._field_ok(s, pos):
            return False
        n = len(s)
        # strictly inside the bounds' prefixes: every valid completion is in range
        if self.min_text[:n] < s < self.max_text[:n]:
            return True
        if s < self.min_text[:n] or s > self.max_text[:n]:
            return False
        return self._extreme(s, largest=False) <= self.max_text and self._extreme(s, largest=True) >= self.min_text


# ---------------------------------------------------------------------------- row batches
def build_automaton(codec: ValueCodec, value_tokens: list[list[int]] | None, char_ids: dict[str, int],
                    null_token: int, pair_ids: dict[str, int] | None = None) -> ValueAutomaton:
    """The automaton of one column; ``value_tokens`` are the token ids of ``codec.texts``."""
    null = null_token if codec.allow_null else None
    if codec.kind == "categorical" or (codec.kind == "number" and codec.discrete):
        assert value_tokens is not None
        return CategoryAutomaton(value_tokens, codec.texts, null)
    if codec.kind == "number":
        return NumberAutomaton(codec.low, codec.high, codec.decimals, char_ids, null, pair_ids)
    return DatetimeAutomaton(codec.resolution, codec.min_text, codec.max_text, char_ids, null, pair_ids)


@dataclass(frozen=True)
class FieldPlan:
    """A value as the LM sees it: its unforced tokens and whether it could have gone on."""

    visible: list[int]
    continuable: bool  # the value's last state admits more value tokens (so what follows is a choice)


def plan_value(automaton: ValueAutomaton, tokens: list[int]) -> FieldPlan:
    """Drop the tokens the grammar forces (a single allowed token and no way to end here).

    The decoder writes forced tokens itself without asking the model, so the model never sees
    them either: e.g. the ``-`` of a date or a constant column's value cost no LM steps.
    """
    state = automaton.start()
    visible: list[int] = []
    for tok in tokens:
        ids, can_end = automaton.allowed(state)
        if tok not in ids:
            raise ValueError(f"token {tok} is not allowed in state {state!r}")
        if len(ids) > 1 or can_end:
            visible.append(tok)
        state = automaton.step(state, tok)
    ids, can_end = automaton.allowed(state)
    if not can_end:
        raise ValueError(f"value tokens {tokens} stop in the middle of a value")
    return FieldPlan(visible, bool(ids))


def assemble_row(fields: list[tuple[int, FieldPlan]], n_columns: int, special: StructuralTokens) -> list[int]:
    """The visible token sequence of a row whose fields come in this order.

    Mirrors :meth:`RowBatch._auto_advance`: a header is forced when it is the only column left
    and the previous value cannot go on; EOS is forced when the last value cannot go on. A row
    missing some columns (cells outside a narrowed schema) gets no EOS: the decoder never ends
    a row early, so the model should not learn to.
    """
    seq = [special.bos]
    prev_continuable = False
    for k, (column, plan) in enumerate(fields):
        if not (n_columns - k == 1 and not prev_continuable):
            seq.append(special.header(column))
        seq.extend(plan.visible)
        prev_continuable = plan.continuable
    if len(fields) == n_columns and prev_continuable:
        seq.append(special.eos)
    return seq


class RowBatch:
    """The decoding state of a batch of rows; all rows start from the same prompt.

    Tokens the grammar forces are applied at once (:meth:`_auto_advance`); the model is only
    asked where there is a choice, exactly as in training (:func:`assemble_row`).
    """

    def __init__(self, automata: list[ValueAutomaton], special: StructuralTokens, batch_size: int) -> None:
        self.automata = automata
        self.special = special
        self.n = batch_size
        self.col = np.full(batch_size, -1, dtype=np.int64)  # column being written, -1 before the first
        self.sub: list[Hashable] = [None] * batch_size
        self.remaining = np.ones((batch_size, len(automata)), dtype=bool)
        self.n_remaining = np.full(batch_size, len(automata), dtype=np.int64)
        self.done = np.zeros(batch_size, dtype=bool)
        self.texts: list[dict[int, str | None]] = [{} for _ in range(batch_size)]
        for i in range(batch_size):
            self._auto_advance(i)

    def max_row_tokens(self) -> int:
        """Longest possible row in tokens, BOS and EOS included (forced ones too)."""
        return 2 + sum(1 + a.max_tokens() for a in self.automata)

    def _value_choices(self, i: int) -> tuple[list[int], bool]:
        c = self.col[i]
        if c < 0:
            return [], True  # nothing written yet: any header may come
        return self.automata[c].allowed(self.sub[i])

    def allowed_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Allowed next tokens as ``(rows, tokens)``, two int64 arrays of the same length.

        Value tokens, the headers of the columns still to write once the value may end, EOS once
        none remain; a finished row may only repeat EOS. No dense ``(n, vocab)`` mask: a decoding
        step gathers, noises and compares only these pairs, so its cost follows the allowed
        tokens, not the vocabulary. No pair appears twice; the
        pairs of a row are not contiguous (value tokens of all rows come first, then headers,
        then EOS). Every row has at least one pair (the automata never dead-end).
        """
        sp = self.special
        end_ok = np.zeros(self.n, dtype=bool)
        counts = np.zeros(self.n, dtype=np.int64)
        values: list[int] = []
        for i in np.flatnonzero(~self.done):
            ids, end_ok[i] = self._value_choices(i)
            counts[i] = len(ids)
            values.extend(ids)
        head_rows, head_cols = np.nonzero(self.remaining & end_ok[:, None])
        eos_rows = np.flatnonzero((end_ok & (self.n_remaining == 0)) | self.done)
        rows = np.concatenate([np.repeat(np.arange(self.n, dtype=np.int64), counts),
                               head_rows.astype(np.int64), eos_rows.astype(np.int64)])
        tokens = np.concatenate([np.asarray(values, dtype=np.int64), head_cols.astype(np.int64) + sp.header0,
                                 np.full(len(eos_rows), sp.eos, dtype=np.int64)])
        return rows, tokens

    def advance(self, tokens: np.ndarray) -> None:
        """Consume one sampled token per unfinished row, then any tokens that are forced."""
        for i in np.flatnonzero(~self.done):
            self._apply(i, int(tokens[i]))
            self._auto_advance(i)

    def _auto_advance(self, i: int) -> None:
        """Apply tokens while the grammar leaves row ``i`` exactly one choice."""
        while not self.done[i]:
            ids, can_end = self._value_choices(i)
            if can_end:
                if len(ids) + max(int(self.n_remaining[i]), 1) != 1:
                    return
                forced = self.special.eos if self.n_remaining[i] == 0 else self.special.header(
                    int(np.flatnonzero(self.remaining[i])[0]))
            elif len(ids) == 1:
                forced = ids[0]
            else:
                return
            self._apply(i, forced)

    def _apply(self, i: int, t: int) -> None:
        sp = self.special
        c = self.col[i]
        if sp.header0 <= t < sp.header0 + sp.n_columns:
            new = t - sp.header0
            if not self.remaining[i, new]:
                raise ValueError(f"column {new} written twice")
            if c >= 0:
                self._finish_value(i)
            self.col[i] = new
            self.remaining[i, new] = False
            self.n_remaining[i] -= 1
            self.sub[i] = self.automata[new].start()
        elif t == sp.eos:
            if self.n_remaining[i]:
                raise ValueError("row ended before every column was written")
            if c >= 0:
                self._finish_value(i)
            self.done[i] = True
        else:
            if c < 0:
                raise ValueError(f"value token {t} before any column header")
            self.sub[i] = self.automata[c].step(self.sub[i], t)

    def _finish_value(self, i: int) -> None:
        c = self.col[i]
        _, can_end = self.automata[c].allowed(self.sub[i])
        if not can_end:
            raise ValueError(f"column {c} value {self.sub[i]!r} is incomplete")
        self.texts[i][int(c)] = self.automata[c].text(self.sub[i])

    def feed(self, tokens: list[int]) -> None:
        """Consume a prompt shared by all rows: visible tokens as :func:`assemble_row` makes them."""
        for t in tokens:
            if self.done.all():
                raise ValueError(f"token {t} is not allowed here")
            rows, allowed = self.allowed_pairs()
            if not bool(np.any(allowed[rows == 0] == t)):
                raise ValueError(f"token {t} is not allowed here")
            self.advance(np.full(self.n, t))
