"""Prefect flows (the parent `synthesize` flow, the `train-generator` flow) and the CLI."""
