"""The `synthesize` flow: ingest → profile → split/protect → train → sample → validate → publish."""
from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from flows.train_generator import TrainRequest, train_generator
from tasks import steps
from tasks.progress import notify
from tasks.release import code_version, ensure_writable, new_release_id
from tasks.sources import SourceSpec, default_name
from tasks.storage import join
from validation.errors import GateFailedError
from validation.gate import GateConfig

GeneratorName = Literal["copula", "vae", "gan", "diffusion", "llm"]


class SynthesizeParams(BaseModel):
    """One synthetic release of one table. Rendered as the run form in the Prefect UI."""

    source: str = Field("demo:weather", description="CSV / Parquet file or folder, SQLAlchemy URL, or demo:weather|planes|flights")
    query: str | None = Field(None, description="SQL query, for a database URL source")
    name: str | None = Field(None, description="dataset name (folder under out); default from the source")
    generator: GeneratorName = Field("copula", description="generator family")
    generator_options: dict[str, Any] = Field(default_factory=dict, description="family options, e.g. {\"epochs\": 50}")
    rows: int | None = Field(None, ge=1, description="rows to sample; default: as many as the source")
    seed: int = Field(0, description="seed for split, training and sampling")
    out: str = Field("releases", description="output root folder")
    schema_file: str | None = Field(None, description="YAML schema overrides (synthpipe profile --write)")
    holdout_fraction: float = Field(0.2, ge=0.05, le=0.5, description="share of real rows held out")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="training device")
    encoding: str = Field("utf-8", description="text encoding of a CSV source")
    gate: GateConfig = Field(default_factory=GateConfig, description="gate thresholds")


class SynthesizeResult(BaseModel):
    passed: bool
    verdict: str
    dataset: str
    release_path: str
    rows: int
    step_seconds: dict[str, float]
    failures: list[str] = Field(default_factory=list)


class _StepClock:
    """Wall time per step, announced to in-process listeners (the CLI shows it live)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str):
        from generators.base import ProgressEvent

        notify("step", ProgressEvent(name, 0, 1))
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        notify("step", ProgressEvent(name, 1, 1, {"seconds": self.seconds[name]}))


@flow(name="synthesize", log_prints=True)
def synthesize(params: SynthesizeParams) -> SynthesizeResult:
    """Turn a real table into a privacy-checked synthetic release (or a quarantined run)."""
    spec = SourceSpec(params.source, params.query, params.encoding)
    dataset = params.name or default_name(spec)
    out_root = ensure_writable(params.out)
    release_id = new_release_id()
    work_dir = str(out_root / ".work" / release_id)
    clock = _StepClock()
    try:
        with clock.step("ingest"):
            source = steps.ingest(spec, work_dir)
        with clock.step("profile"):
            schema = steps.profile(source, dataset, params.schema_file)
        with clock.step("split"):
            refs = steps.split_and_protect(source, schema, params.holdout_fraction, params.seed, work_dir)
        request = TrainRequest(
            train=refs["train_model_view"],
            table_schema=schema,
            generator=params.generator,
            options=params.generator_options,
            seed=params.seed,
            device=params.device,
            model_dir=join(work_dir, "model"),
        )
        with clock.step("train"):
            model_dir = train_generator(request)
        n = params.rows or source.rows
        with clock.step("sample"):
            synthetic = steps.sample(model_dir, schema, n, params.seed, source, work_dir)
        with clock.step("validate"):
            gate = steps.validate(refs, synthetic, schema, params.gate, n)
        manifest = {
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": {"location": spec.display, "fingerprint": source.fingerprint, "rows": source.rows},
            "generator": {"family": params.generator, "options": params.generator_options, "seed": params.seed, "device": params.device},
            "parameters": params.model_dump(mode="json"),
            "code_version": code_version(),
            "prefect_flow_run_id": str(flow_run.get_id() or ""),
            "columns": [
                {"name": c.name, "kind": c.kind.value, "protection": c.protection.value, "arrow_type": c.arrow_type}
                for c in schema.released_columns
            ],
            "gate": {"passed": gate.passed, "summary": gate.summary()},
        }
        with clock.step("publish"):
            release_path = steps.publish(params.out, dataset, synthetic, schema, gate, manifest, {}, release_id)
    finally:
        # The working folder holds copies of the real table: never leave it behind.
        shutil.rmtree(work_dir, ignore_errors=True)
    _publish_artifacts(dataset, gate, release_path, clock.seconds)
    result = SynthesizeResult(
        passed=gate.passed,
        verdict="pass" if gate.passed else "fail",
        dataset=dataset,
        release_path=release_path,
        rows=n,
        step_seconds=clock.seconds,
        failures=[f"{c.name}: {c.detail}" if c.detail else c.name for c in gate.failures],
    )
    if not gate.passed:
        raise GateFailedError(f"gate failed, run quarantined at {release_path}: {gate.summary()}")
    return result


def _publish_artifacts(dataset: str, gate, release_path: str, seconds: dict[str, float]) -> None:
    verdict = "PASS — published" if gate.passed else "FAIL — quarantined"
    lines = [f"# {dataset}: {verdict}", "", gate.summary(), "", "| step | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in seconds.items()]
    lines += ["", f"Release folder: `{release_path}`"]
    create_markdown_artifact("\n".join(lines), key=_key(f"{dataset}-summary"), description="synthpipe run summary")
    create_table_artifact(
        [{k: ("" if v is None else v) for k, v in c.to_dict().items()} for c in gate.checks],
        key=_key(f"{dataset}-checks"),
        description="gate checks",
    )
    create_link_artifact(Path(release_path).resolve().as_uri(), link_text=str(release_path), key=_key(f"{dataset}-release"))


def _key(text: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    import re

    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "synthpipe"
