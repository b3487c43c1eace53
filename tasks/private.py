"""Prefect task options for tasks that handle real data, importable without the validation stack
(the training worker, ``flows/train_generator.py``, uses them too)."""
from __future__ import annotations

from prefect.cache_policies import NO_CACHE

# Tasks that take and return real data (tables by reference, but also schemas naming real
# categories, gate results with distance arrays) or are large: Prefect must never pickle their
# inputs or results into its result storage, also on a server that persists results by default.
# Our own training cache (flows/placement.py) is separate from Prefect's.
PRIVATE = dict(persist_result=False, cache_policy=NO_CACHE)
