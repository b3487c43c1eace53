"""A planted leak for flow tests: a 'generator' that replays real training rows."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def install_copying_generator(monkeypatch, family: str) -> None:
    """Register, for this test only, a copula subclass under ``family`` that samples by
    replaying training rows. The gate must quarantine whatever it produces."""
    from generators import copula, registry

    class Copying(copula.CopulaGenerator):
        def fit(self, table, schema, progress=None):
            super().fit(table, schema)
            self._rows = table.reset_index(drop=True)
            return self

        def sample(self, n, seed=0, progress=None):
            return self._rows.sample(n, replace=True, random_state=seed).reset_index(drop=True)

        def save(self, directory):
            super().save(directory)
            self._rows.to_parquet(Path(directory) / "rows.parquet")

        @classmethod
        def load(cls, directory):
            gen = super().load(directory)
            gen._rows = pd.read_parquet(Path(directory) / "rows.parquet")
            return gen

    Copying.family = family
    module_name = f"copying_{family}_module"
    module = type(sys)(module_name)
    module.Copying = Copying
    monkeypatch.setitem(sys.modules, module_name, module)
    monkeypatch.setitem(registry.FAMILIES, family, f"{module_name}:Copying")
