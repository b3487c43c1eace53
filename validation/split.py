"""Seeded train / holdout split. The holdout is never shown to a generator."""
from __future__ import annotations

import numpy as np
import pandas as pd

from validation.errors import InputError
from validation.profile import MIN_ROWS


def split_train_holdout(table: pd.DataFrame, holdout_fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shuffle with ``seed`` and cut off ``holdout_fraction`` of the rows as the holdout."""
    if not 0.05 <= holdout_fraction <= 0.5:
        raise InputError(f"holdout fraction must be between 0.05 and 0.5, got {holdout_fraction}")
    n = len(table)
    if n < MIN_ROWS:
        raise InputError(f"the table has {n} rows; synthpipe needs at least {MIN_ROWS} to train and check")
    order = np.random.default_rng(seed).permutation(n)
    n_holdout = max(1, int(round(n * holdout_fraction)))
    holdout = table.iloc[np.sort(order[:n_holdout])].reset_index(drop=True)
    train = table.iloc[np.sort(order[n_holdout:])].reset_index(drop=True)
    return train, holdout
