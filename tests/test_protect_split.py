"""Keys and PII never reach the model nor the output; the split is seeded and disjoint."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.tables import real_table
from validation.errors import InputError
from validation.profile import profile_table
from validation.protect import fill_protected, fresh_numbers, real_values, training_view
from validation.schema import ColumnKind, ColumnSchema, Protection
from validation.split import split_train_holdout


def _people(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in rng.permutation(n)],
            "email": [f"person{i}@corp.example" for i in range(n)],
            "age": rng.integers(18, 90, n),
            "segment": rng.choice(["a", "b", "c"], n),
            "note": [f"free text comment number {i} about the customer's account history" for i in range(n)],
        }
    )


def test_training_view_holds_only_modeled_columns():
    df = _people()
    schema = profile_table(df, "people")
    view = training_view(df, schema)
    assert list(view.columns) == ["age", "segment"]
    view["age"] = 0
    assert df["age"].ne(0).all(), "the source must never be modified"


def test_fill_protected_regenerates_keys_and_fakes_pii():
    df = _people()
    schema = profile_table(df, "people")
    sampled = training_view(df, schema).sample(500, replace=True, random_state=0).reset_index(drop=True)
    avoid = real_values(df, schema)
    out = fill_protected(sampled, schema, seed=3, avoid=avoid)
    assert list(out.columns) == list(df.columns)
    ids = out["customer_id"]
    assert ids.is_unique and not set(ids) & set(df["customer_id"])
    assert ids.str.fullmatch(r"C\d{6}").all(), "regenerated keys keep the real shape"
    assert not set(out["email"]) & set(df["email"]) and out["email"].str.contains("@").all()
    assert not set(out["note"]) & set(df["note"])
    again = fill_protected(sampled, schema, seed=3, avoid=avoid)
    pd.testing.assert_frame_equal(out, again)


def test_integer_keys_and_null_rates():
    n = 400
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"order_id": np.arange(1000, 1000 + n), "phone": [f"+1 212 555 {i:04d}" if i % 4 else None for i in range(n)], "v": rng.normal(size=n)})
    schema = profile_table(df, "orders")
    out = fill_protected(training_view(df, schema), schema, seed=0, avoid=real_values(df, schema))
    assert out["order_id"].is_unique and not set(out["order_id"]) & set(df["order_id"])
    assert out["phone"].isna().mean() == pytest.approx(0.25, abs=0.08)


def test_split_is_seeded_disjoint_and_sized():
    df, _ = real_table("planes")
    train, holdout = split_train_holdout(df, 0.2, seed=5)
    assert len(holdout) == round(len(df) * 0.2) and len(train) + len(holdout) == len(df)
    assert not set(train["tailnum"]) & set(holdout["tailnum"])
    train2, _ = split_train_holdout(df, 0.2, seed=5)
    pd.testing.assert_frame_equal(train, train2)
    train3, _ = split_train_holdout(df, 0.2, seed=6)
    assert not train3.equals(train)


def test_split_refuses_tiny_tables():
    with pytest.raises(InputError, match="at least"):
        split_train_holdout(pd.DataFrame({"a": range(10)}))


def test_numeric_keys_and_pii_fit_their_arrow_types():
    import pyarrow as pa

    n = 200
    big = [9_000_000_000_000_000_000 + i for i in range(n)]
    table = pa.table(
        {
            "account_id": pa.array(big, pa.int64()),
            "user_id": pa.array([float(i) if i % 5 else None for i in range(1000, 1000 + n)], pa.float64()),
            "phone": pa.array([2125550000 + i for i in range(n)], pa.int64()),
            "v": pa.array(np.arange(n, dtype=float)),
        }
    )
    df = table.to_pandas()
    schema = profile_table(df, "accounts", table.schema)
    out = fill_protected(training_view(df, schema), schema, seed=0, avoid=real_values(df, schema))
    from tasks.release import to_release_arrow

    released = to_release_arrow(out, schema)
    assert released.schema == schema.arrow_schema()
    assert not set(out["account_id"]) & set(big)
    assert out["phone"].dropna().astype(int).astype(str).str.len().eq(10).all()
    assert not set(out["phone"].dropna().astype(int)) & set(df["phone"])
    assert not set(out["user_id"].dropna()) & set(df["user_id"].dropna())


def _returns(call, seconds: float = 60.0):
    """``call()``'s result, run in a daemon thread so a hang fails the test instead of freezing it."""
    import threading

    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(result=call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "did not return (endless retry loop)"
    return box["result"]


def _key(arrow_type: str, low: float, high: float) -> ColumnSchema:
    return ColumnSchema(
        name="id", kind=ColumnKind.KEY, arrow_type=arrow_type, min=low, max=high, protection=Protection.REGENERATE
    )


def test_fresh_numbers_in_a_nearly_full_small_type_return():
    import pyarrow as pa

    # smallint key 1..30000: fewer than 5,000 free 5-digit values, but 35,536 in the whole type
    real = set(range(1, 30_001))
    avoid = {str(v) for v in real}
    key = _key("int16", 1, 30_000)
    values = _returns(lambda: fresh_numbers(key, 5000, np.random.default_rng(0), avoid, pa.int16()))
    assert len(set(values.tolist())) == 5000 and not set(values.tolist()) & real
    assert values.min() >= -32768 and values.max() <= 32767
    # int8 key 1..60: 68 free non-negative values hold 60 fresh ids
    real = set(range(1, 61))
    values = fresh_numbers(_key("int8", 1, 60), 60, np.random.default_rng(0), {str(v) for v in real}, pa.int8())
    assert len(set(values.tolist())) == 60 and not set(values.tolist()) & real
    assert values.min() >= 0 and values.max() <= 127
    # only when the type really has too few free values: an InputError, not a traceback
    avoid = {str(v) for v in range(-128, 118)}
    with pytest.raises(InputError, match="cannot hold 11 fresh"):
        fresh_numbers(_key("int8", -128, 117), 11, np.random.default_rng(0), avoid, pa.int8())
    assert len(fresh_numbers(_key("int8", -128, 117), 10, np.random.default_rng(0), avoid, pa.int8())) == 10


def test_fresh_numbers_keep_the_digits_and_sign_of_the_real_ones_and_the_seed():
    import pyarrow as pa

    real = set(range(-99_999, -10_000, 7))
    avoid = {str(v) for v in real}
    key = _key("int32", -99_999, -10_001)
    draw = lambda seed: fresh_numbers(key, 2000, np.random.default_rng(seed), avoid, pa.int32())  # noqa: E731
    values = draw(0)
    assert (values < 0).all() and pd.Series(values).astype(str).str.fullmatch(r"-\d{5}").all()
    assert len(set(values.tolist())) == 2000 and not set(values.tolist()) & real
    np.testing.assert_array_equal(values, draw(0))
    assert not np.array_equal(values, draw(1))


def test_uint64_keys_are_refilled_within_their_type():
    import pyarrow as pa

    from tasks.release import to_release_arrow

    n = 100
    ids = np.arange(n, dtype=np.uint64) * np.uint64(97_000_000_000_000_000) + np.uint64(10**18)
    df = pd.DataFrame({"user_id": ids, "x": np.random.default_rng(0).normal(size=n)})
    schema = profile_table(df, "t")
    assert schema.column("user_id").arrow_type == "uint64" and schema.column("user_id").fill is not None
    out = fill_protected(df[["x"]], schema, seed=0, avoid=real_values(df, schema))
    released = to_release_arrow(out, schema)
    assert released.schema.field("user_id").type == pa.uint64()
    fresh = released["user_id"].to_pylist()
    assert len(set(fresh)) == n and not set(fresh) & set(ids.tolist())
    assert all(len(str(v)) == 20 for v in fresh)  # the real ids reach 20 digits
