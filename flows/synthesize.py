"""The `synthesize` flow: ingest → profile → split/protect → train → sample → validate → publish."""
from __future__ import annotations

import functools
import hashlib
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from flows import auto
from flows.placement import (
    TRAIN_DEPLOYMENT,
    Placement,
    TrainingFailedError,
    TrainOutcome,
    auto_device_place,
    delete_tree,
    fetch_model,
    model_location,
    train,
    training_key,
)
from flows.train_generator import TrainRequest
from tasks import steps
from tasks.private import PRIVATE
from tasks.progress import notify
from tasks.release import code_version, ensure_writable, new_release_id, sha256_file
from tasks.sources import PASSWORD_ENV, SourceSpec, default_name, refuse_password
from tasks.storage import claim_run_folder, is_local, join
from validation.errors import GateFailedError, InputError
from validation.gate import GateConfig
from validation.suppression import SuppressionConfig

GeneratorName = Literal["copula", "vae", "gan", "diffusion", "llm"]
GeneratorChoice = Literal["auto", "copula", "vae", "gan", "diffusion", "llm"]

DATASET_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""A dataset name is one folder under ``out``: no separators, no leading dot (``.work``, ``..``)."""


class SynthesizeParams(BaseModel):
    """One synthetic release of one table. Rendered as the run form in the Prefect UI."""

    source: str = Field(
        "demo:weather",
        description="CSV / Parquet file or folder, SQLAlchemy URL, or demo:weather|planes|flights. "
        f"Never put a database password here (Prefect stores parameters): set {PASSWORD_ENV} in the flow's environment "
        "or name a Secret block in db_password_block",
    )
    db_password_block: str | None = Field(
        None, description="name of a Prefect Secret block holding the password of the source URL's user (a URL with a user and no password)"
    )
    query: str | None = Field(None, description="SQL query, for a database URL source")
    name: str | None = Field(
        None,
        pattern=DATASET_NAME,
        description="dataset name (folder under out: letters, digits, '.', '_', '-', starting with a letter or digit); default from the source",
    )
    generator: GeneratorChoice = Field("copula", description="generator family, or auto: try the candidates, publish the best passing one")
    generator_options: dict[str, Any] = Field(
        default_factory=dict,
        description="family options, e.g. {\"epochs\": 50}; with auto, flat (given to every family that has the option) or per family {\"vae\": {\"epochs\": 50}}",
    )
    candidates: list[GeneratorName] = Field(
        default_factory=lambda: list(auto.DEFAULT_CANDIDATES), description="families tried by generator=auto (one after another inline; in parallel with training=deployment)"
    )
    rows: int | None = Field(None, ge=1, description="rows to sample; default: as many as the source")
    seed: int = Field(0, ge=0, description="seed for split, training and sampling")
    out: str = Field("releases", description="output root folder")
    schema_file: str | None = Field(None, description="YAML schema overrides (synthpipe profile --write)")
    holdout_fraction: float = Field(0.2, ge=0.05, le=0.5, description="share of real rows held out")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="training device")
    encoding: str = Field("utf-8", description="text encoding of a CSV source")
    gate: GateConfig = Field(default_factory=GateConfig, description="gate thresholds")
    protections: SuppressionConfig = Field(
        default_factory=SuppressionConfig, description="rare-category pooling and extreme clipping before training"
    )
    training: Placement = Field(
        "inline",
        description="where generators train: inline (in this flow's process) or deployment (the train-generator deployment on the gpu work pool)",
    )
    training_deployment: str = Field(TRAIN_DEPLOYMENT, description="flow/deployment name used when training=deployment")
    training_timeout_s: float | None = Field(
        None, gt=0, description="with training=deployment: give up (and cancel the child) after this many seconds; none = wait"
    )
    work_root: str | None = Field(
        None,
        description="storage root for the run's intermediate tables (local path or pyarrow URI, e.g. s3://bucket/synthpipe/work); "
        "default <out>/.work. Holds real data during the run and is deleted at its end. Must be shared with GPU workers when training=deployment. "
        "Local roots are owner-only and each run sweeps the folders of killed runs; on an object store a killed run's folder stays (expire the prefix)",
    )
    model_store: str | None = Field(
        None,
        description="where trained models are cached (local path or URI); default <out>/.models. Models of real data are sensitive",
    )
    cache_models: bool = Field(True, description="reuse a model trained on the same data, config and code instead of retraining")


class SynthesizeResult(BaseModel):
    passed: bool
    verdict: str
    dataset: str
    release_path: str
    rows: int
    step_seconds: dict[str, float]
    failures: list[str] = Field(default_factory=list)
    generator: str = ""
    candidates: list[dict[str, Any]] = Field(default_factory=list)


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
    check_params(params)
    spec = SourceSpec(params.source, params.query, params.encoding, password_block=params.db_password_block)
    dataset = params.name or safe_dataset_name(default_name(spec))
    # absolute, so training workers (other processes, maybe other hosts) find the same folders
    out_root = ensure_writable(params.out).resolve()
    is_auto = params.generator == "auto"
    if is_auto:
        families, skipped = auto.available_families(list(params.candidates))
    else:
        families, skipped = [params.generator], {}
        auto.available_families(families)  # an uninstalled family fails before any data is read
    release_id = new_release_id()
    # Sweeps the folders of killed runs, then creates this run's, locked while the run lives: the
    # finally below removes it, or, after a kill (no finally), the next run's sweep.
    run_folder = claim_run_folder(params.work_root or str(out_root / ".work"), release_id)
    work_dir = run_folder.uri
    store = (params.model_store or str(out_root / ".models")) if params.cache_models else join(work_dir, "models")
    scratch = tempfile.mkdtemp(prefix="synthpipe-models-")  # local copies of models from an object store
    clock = _StepClock()
    try:
        with clock.step("ingest"):
            source = steps.ingest(spec, work_dir)
        with clock.step("profile"):
            schema = steps.profile(source, dataset, params.schema_file)
        with clock.step("split"):
            # from here on, the schema the release follows: rare categories pooled, extremes clipped
            refs, schema = steps.split_and_protect(
                source, schema, params.holdout_fraction, params.seed, work_dir, params.protections
            )
        requests = {family: _train_request(params, family, refs, schema, store, is_auto) for family in families}
        # where each family's synthetic table and report go: one folder per candidate with auto
        family_dirs = {family: join(work_dir, "candidates", family) if is_auto else work_dir for family in families}
        with clock.step("train"):
            outcomes, errors = _train_all(requests, params)
        n = params.rows or source.rows
        candidates: list[dict[str, Any]] = [
            {"family": family, "skipped": reason, "gated": False, "passed": False} for family, reason in skipped.items()
        ]
        gates: dict[str, Any] = {}
        synthetic_refs = {}
        with clock.step("sample"):
            for family, outcome in outcomes.items():
                with _candidate_errors(errors, family, is_auto):
                    model_dir = fetch_model(outcome.model_uri, scratch)
                    synthetic_refs[family] = steps.sample(model_dir, schema, n, params.seed, source, family_dirs[family])
        with clock.step("validate"):
            for family, ref in synthetic_refs.items():
                with _candidate_errors(errors, family, is_auto):
                    gates[family] = steps.validate(refs, ref, schema, params.gate, n, family_dirs[family])
        for family in families:
            candidates.append(_candidate_record(family, requests[family], outcomes.get(family), errors.get(family), gates.get(family)))
        chosen, decided_by = auto.choose(candidates)
        if chosen is None:
            reasons = "; ".join(f"{f}: {e}" for f, e in errors.items())
            raise TrainingFailedError(f"generator=auto: no candidate could be trained and sampled ({reasons})")
        family = chosen["family"]
        chosen["chosen"] = True
        gate, outcome, request = gates[family], outcomes[family], requests[family]
        manifest = build_manifest(
            params, spec, source, schema, family, request, outcome, gate,
            candidates=candidates if is_auto else None, decided_by=decided_by,
            flow_run_id=str(flow_run.get_id() or ""),
        )
        with clock.step("publish"):
            release_path = steps.publish(str(out_root), dataset, synthetic_refs[family], schema, gate, manifest, release_id)
    finally:
        # The working folder (and a run-only model store inside it) holds real data: never leave it behind.
        delete_tree(work_dir)
        run_folder.release()
        shutil.rmtree(scratch, ignore_errors=True)
    try:
        _publish_artifacts(dataset, gate, release_path, clock.seconds, candidates if is_auto else [])
    except Exception as exc:  # the release is published by now: a lost UI summary must not fail the run
        get_run_logger().warning("could not create the run's Prefect artifacts (the release is written): %s", exc)
    result = SynthesizeResult(
        passed=gate.passed,
        verdict="pass" if gate.passed else "fail",
        dataset=dataset,
        release_path=release_path,
        rows=n,
        step_seconds=clock.seconds,
        failures=[f"{c.name}: {c.detail}" if c.detail else c.name for c in gate.failures],
        generator=family,
        candidates=candidates if is_auto else [],
    )
    if not gate.passed:
        detail = gate.summary()
        if is_auto:
            detail = "no candidate passed: " + "; ".join(
                f"{c['family']}: {c.get('summary') or c.get('error') or c.get('skipped')}" for c in candidates
            )
        raise GateFailedError(f"gate failed, run quarantined at {release_path}: {detail}")
    return result


def check_params(params: SynthesizeParams) -> None:
    """Checks the parameter model cannot express, run before anything is written. The flow runs
    them for every caller (CLI, UI, deployment); the CLI also runs them before it creates ``out``."""
    refuse_password(params.source)
    check_locations(params.source, params.out, params.work_root, params.model_store)


def check_locations(source: str, out: str, work_root: str | None = None, model_store: str | None = None) -> None:
    """Refuse an output, work or model location inside a folder source: the run would write
    releases (Parquet), real-data copies and models among the source's files, and the next run
    would read them back as real rows (or fail on report.html)."""
    if source.startswith("demo:") or not is_local(source):
        return
    folder = Path(source.removeprefix("file://")).expanduser()
    if not folder.is_dir():
        return
    folder = folder.resolve()
    for label, location in (("out", out), ("work_root", work_root), ("model_store", model_store)):
        if not location or not is_local(location):
            continue
        target = Path(location.removeprefix("file://")).expanduser().resolve()
        if target == folder or folder in target.parents:
            raise InputError(
                f"{label} {location} lies inside the source folder {source}; the run would write into the "
                f"real data and read its own output back next time: choose an {label} outside {folder}"
            )


@contextmanager
def _candidate_errors(errors: dict[str, str], family: str, is_auto: bool):
    """With generator=auto one candidate's failure is recorded and the others go on; with one
    family it is the run's failure."""
    try:
        yield
    except Exception as exc:
        if not is_auto:
            raise
        errors[family] = f"{type(exc).__name__}: {exc}"


def safe_dataset_name(name: str) -> str:
    """``name`` made a valid dataset name (:data:`DATASET_NAME`): other characters become ``_``,
    leading dots, dashes and underscores go (a source called ``..`` or ``.x.csv`` must not name a
    hidden or parent folder)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-")
    return cleaned or "table"


def query_sha256(query: str | None) -> str | None:
    """The SQL query as the release records it: its sha256, never its text (which may name
    tables, columns or literal values the receiving team must not see)."""
    return hashlib.sha256(query.encode("utf-8")).hexdigest() if query is not None else None


def _redact_uri(uri: str | None) -> str | None:
    """A storage URI without credentials: no password in its user info, no secret-looking query
    values (``s3://key:secret@bucket``, ``?secret_key=...``)."""
    if not uri or "://" not in uri:
        return uri
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
        netloc = parts.netloc
        if "@" in netloc:
            user, host = netloc.rsplit("@", 1)
            netloc = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else f"{user}@{host}"
        query = urlencode(
            [(k, "***" if re.search(r"secret|key|token|pass|cred|sig", k, re.I) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
            safe="*",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return uri.split("://", 1)[0] + "://…"


def release_parameters(params: SynthesizeParams, spec: SourceSpec) -> dict[str, Any]:
    """The run's parameters as a release may show them: the source as :attr:`SourceSpec.display`
    (no password), the query only as ``query_sha256``, storage URIs without credentials."""
    record = params.model_dump(mode="json")
    record["source"] = spec.display
    record["query_sha256"] = query_sha256(record.pop("query"))
    for key in ("work_root", "model_store"):
        record[key] = _redact_uri(record[key])
    return record


def build_manifest(
    params: SynthesizeParams,
    spec: SourceSpec,
    source,
    schema,
    family: str,
    request: TrainRequest,
    outcome: TrainOutcome,
    gate,
    *,
    candidates: list[dict[str, Any]] | None = None,
    decided_by: str = "",
    flow_run_id: str = "",
) -> dict[str, Any]:
    """The release manifest (also copied into report.json), before tasks.release adds the files.

    Pure: everything comes in as arguments. Nothing secret goes in: the source location is
    ``spec.display`` and the query only its sha256 (see :func:`release_parameters`).
    """
    manifest: dict[str, Any] = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": {
            "location": spec.display,
            "query_sha256": query_sha256(spec.query),
            "fingerprint": source.fingerprint,
            "rows": source.rows,
        },
        "generator": {
            "family": family,
            "options": request.options,
            "seed": params.seed,
            "device": params.device,
            "selected_by": "auto" if candidates is not None else "user",
        },
        "training": {
            "placement": params.training,
            "deployment": params.training_deployment if params.training == "deployment" else None,
            "model_key": outcome.key,
            "cached": outcome.cached,
            "seconds": outcome.seconds,
            "work_pool": outcome.work_pool,
            "flow_run_id": outcome.flow_run_id,
            "trained_on": {k: outcome.trained.get(k) for k in ("host", "device", "fit_seconds", "saved_at", "runtime")},
        },
        "parameters": release_parameters(params, spec),
        "code_version": code_version(),
        "prefect_flow_run_id": flow_run_id,
        "columns": [
            {"name": c.name, "kind": c.kind.value, "protection": c.protection.value, "arrow_type": c.arrow_type}
            for c in schema.released_columns
        ],
        "gate": {"passed": gate.passed, "summary": gate.summary()},
    }
    if candidates is not None:
        manifest["candidates"] = candidates
        manifest["selection"] = {"rule": auto.SELECTION_RULE, "decided_by": decided_by, "chosen": family}
    return manifest


def _train_request(params: SynthesizeParams, family: str, refs, schema, store: str, is_auto: bool) -> TrainRequest:
    """The request for one family, pointing at its model-store folder (named by the cache key)."""
    request = TrainRequest(
        train=refs["train_model_view"],
        table_schema=schema,
        generator=family,
        options=auto.options_for(family, params.generator_options, is_auto),
        seed=params.seed,
        device=params.device,
        model_dir="",
    )
    place = auto_device_place(params.training, params.training_deployment) if params.device == "auto" else None
    return request.model_copy(update={"model_dir": model_location(store, family, training_key(request, place))})


# A task so deployment trainings run side by side; private like the pipeline's tasks (the
# request carries the schema, which names real categories).
_train_task = task(name="train-candidate", **PRIVATE)(train)


def _train_all(requests: dict[str, TrainRequest], params: SynthesizeParams) -> tuple[dict[str, TrainOutcome], dict[str, str]]:
    """Train every requested family.

    One family: its failure is the run's failure (the child's exception or reason). Several
    (generator=auto): a failed candidate is recorded and the others go on. Inline, candidates
    train one after another: training seeds and sets process-wide state (torch, NumPy and
    ``random`` RNGs, torch's thread count), so concurrent fits in one process would interleave
    their draws and the same seed would not give the same models. With training=deployment each
    child runs in its own process, so they run side by side.
    """
    args = dict(placement=params.training, deployment=params.training_deployment, timeout=params.training_timeout_s)
    if len(requests) == 1:
        (family, request), = requests.items()
        return {family: train(request, **args)}, {}
    if params.training == "inline":
        getters = {family: functools.partial(train, request, **args) for family, request in requests.items()}
    else:  # every child is submitted before the first is waited for
        getters = {family: _train_task.submit(request, **args).result for family, request in requests.items()}
    outcomes, errors = {}, {}
    for family, get in getters.items():
        with _candidate_errors(errors, family, is_auto=True):  # one candidate's failure must not sink the others
            outcomes[family] = get()
    return outcomes, errors


def _candidate_record(family: str, request: TrainRequest, outcome: TrainOutcome | None, error: str | None, gate) -> dict[str, Any]:
    """One row of the auto comparison, as stored in the manifest and report."""
    record: dict[str, Any] = {"family": family, "options": request.options, "gated": gate is not None, "passed": False}
    if outcome is not None:
        record.update(
            cached=outcome.cached, train_seconds=outcome.seconds, work_pool=outcome.work_pool,
            flow_run_id=outcome.flow_run_id, model_key=outcome.key,
        )
    if error:
        record["error"] = error
    if gate is not None:
        record.update(
            passed=gate.passed,
            summary=gate.summary(),
            hard_failures=len(gate.failures),
            fidelity_score=gate.metrics.get("fidelity_score"),
            identical_match_share=gate.metrics.get("identical_match_share"),
        )
    return record


def _publish_artifacts(dataset: str, gate, release_path: str, seconds: dict[str, float], candidates: list[dict]) -> None:
    from validation.report import check_table_rows, markdown_summary

    verdict = "PASS — published" if gate.passed else "FAIL — quarantined"
    lines = [markdown_summary(gate, f"{dataset}: {verdict}"), "", "| step | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in seconds.items()]
    lines += ["", f"Release folder: `{release_path}`"]
    manifest = Path(release_path) / "manifest.json"
    if manifest.is_file():  # what a hand-off announces; `synthpipe verify` prints it to compare
        lines += [f"Manifest sha256: `{sha256_file(manifest)}`"]
    create_markdown_artifact("\n".join(lines), key=_key(f"{dataset}-summary"), description="synthpipe run summary")
    create_table_artifact(check_table_rows(gate), key=_key(f"{dataset}-checks"), description="gate checks")
    create_link_artifact(Path(release_path).resolve().as_uri(), link_text=str(release_path), key=_key(f"{dataset}-release"))
    if candidates:
        columns = ("family", "passed", "fidelity_score", "identical_match_share", "train_seconds", "cached", "work_pool", "chosen")
        create_table_artifact(
            [{k: ("" if c.get(k) is None else c.get(k)) for k in columns} | {"note": c.get("error") or c.get("skipped") or ""} for c in candidates],
            key=_key(f"{dataset}-candidates"),
            description="generator=auto: every candidate, and the one published",
        )


def _key(text: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "synthpipe"
