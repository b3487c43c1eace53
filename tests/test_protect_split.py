"""Keys and PII never reach the model nor the output; the split is seeded and disjoint."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.tables import real_table
from validation.errors import InputError
from validation.profile import profile_table
from validation.protect import fill_protected, real_values, training_view
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
