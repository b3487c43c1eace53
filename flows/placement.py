"""Where generator training runs, and the model store that lets a re-run skip training.

Placement
    ``inline``      the ``train-generator`` flow runs as a subflow in the parent's process (the
                    local default: no server, pools or workers needed).
    ``deployment``  the parent starts the ``train-generator`` deployment (pinned to the ``gpu``
                    work pool in ``deployments/prefect.yaml``) with ``run_deployment`` and waits for
                    it. Only references cross: the request names the training table's Parquet file
                    and the folder the model must be saved in, so the parent's storage root must be
                    reachable from the GPU workers (a shared mount or an object-store URI).

Model store
    A fitted model is saved under ``<store>/<family>-<key>`` where the key hashes everything
    that determines the fit: the training table's content fingerprint, the schema, the family and
    its options, seed and device, and the code version (package version, the generator sources
    and the versions of the numeric libraries). A folder is complete only once its
    ``model.complete.json`` marker is written (last), so a crashed training never poisons the
    store and two concurrent trainings of the same key never see each other's half-written files.

    A model trained on real rows can memorise them: the store holds sensitive data, like the
    run's work folder. It lives under the output root by default (``<out>/.models``, owner-only
    permissions on local disks), never inside a release folder, and ``synthpipe releases`` /
    ``verify`` ignore it. ``cache_models=False`` keeps models only for the run (inside the work
    folder, deleted at the end); delete the store folder to purge every cached model.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import secrets
import shutil
import socket
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pyarrow.fs as pafs
from pydantic import BaseModel

from tasks.storage import filesystem, is_local, join, owner_only
from validation.errors import ConfigError, SynthpipeError

TRAIN_DEPLOYMENT = "train-generator/train-generator"
"""The deployment the parent starts when training placement is ``deployment``."""

COMPLETE_MARKER = "model.complete.json"
POLL_SECONDS = 2.0  # how often the parent asks the API whether the training run has finished

Placement = Literal["inline", "deployment"]


class TrainingFailedError(SynthpipeError):
    """The training run (inline subflow or deployment run) did not produce a model."""


class TrainOutcome(BaseModel):
    """What the parent learns about one training: where the model is and how it got there."""

    family: str
    model_uri: str
    key: str
    cached: bool
    seconds: float
    placement: Placement
    flow_run_id: str | None = None
    work_pool: str | None = None
    trained: dict[str, Any] = {}  # the model's completion marker: host, device, time, seconds


# --------------------------------------------------------------------------------------- keys
@lru_cache(maxsize=1)
def generator_code_version() -> str:
    """Hash of the code that shapes a fitted model: generator sources, the validation modules they
    encode values with, and the libraries that fit or tokenize.

    The git commit alone would miss uncommitted edits and is absent in built images, so the
    source files are hashed directly.
    """
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    for dist in ("synthpipe", "torch", "copulas", "numpy", "pandas", "scipy", "scikit-learn", "diffusers",
                 "transformers", "tokenizers", "safetensors"):
        try:
            h.update(f"{dist}={version(dist)};".encode())
        except PackageNotFoundError:
            h.update(f"{dist}=absent;".encode())
    root = Path(__file__).resolve().parent.parent
    sources = sorted((root / "generators").glob("*.py")) + [root / "validation" / f"{name}.py" for name in _ENCODING_MODULES]
    for source in sources:
        h.update(f"{source.parent.name}/{source.name}".encode())
        h.update(source.read_bytes())
    return h.hexdigest()[:16]


# validation modules the generators encode and decode values with (numbers, datetimes, schema)
_ENCODING_MODULES = ("columns", "schema", "errors")


def _normalized_options(family: str, options: dict[str, Any]) -> dict[str, Any]:
    """The family's options as its config reads them (``300.0`` and ``300`` alike), keeping only
    what was given: an option left at its default can mean something else than the same value
    given (diffusion's ``epochs``). Unknown families keep the options as given."""
    from generators.registry import generator_class

    try:
        config = generator_class(family).config_class.model_validate(options)
    except Exception:  # an unknown family or bad options fail at training, with their message
        return options
    return config.model_dump(mode="json", exclude_unset=True)


def _folder_fingerprint(path: str | None) -> str | None:
    """Names, sizes and modification times of the files under a local folder (a pretrained model
    the LLM fine-tunes): another model put in the same folder must not reuse this one's."""
    if not path or not Path(path).is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        stat = f.stat()
        h.update(f"{f.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def training_key(request, placement: str | None = None) -> str:
    """The cache key of a :class:`flows.train_generator.TrainRequest` (not of its model_dir).

    ``device: auto`` is decided where the model trains: ``placement`` names that place (see
    :func:`auto_device_place`), so a model fitted inline on a CPU is not reused for a run that
    trains on the gpu pool, nor the reverse.
    """
    from generators.registry import FAMILIES

    ident = {
        "data": request.train.fingerprint,
        "schema": request.table_schema.model_dump(mode="json"),
        "family": request.generator,
        # which class implements the family is part of the code: a swapped implementation
        # (a plugin, a test double) must never reuse another one's model
        "implementation": FAMILIES.get(request.generator, request.generator),
        "options": _normalized_options(request.generator, request.options),
        "pretrained": _folder_fingerprint(request.options.get("pretrained_path")),
        "seed": request.seed,
        "device": request.device if request.device != "auto" or placement is None else f"auto@{placement}",
        "code": generator_code_version(),
    }
    blob = json.dumps(ident, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def auto_device_place(training: str, deployment: str | None) -> str:
    """Where ``device: auto`` is decided: the deployment's pool (its workers' ``SYNTHPIPE_DEVICE``),
    or, inline, this process's device (``cuda`` when it has one, else ``cpu``)."""
    if training == "deployment":
        return f"deployment:{deployment}"
    device = effective_device("auto")
    if device == "auto":
        from generators.device import resolve_device

        device = resolve_device("auto").type
    return f"inline:{device}"


def model_key(request) -> str:
    """The key ``request.model_dir`` was named by (:func:`model_location`): the flow computes it
    knowing where ``device: auto`` is decided, which the request alone does not say."""
    return posixpath.basename(request.model_dir.rstrip("/")).removeprefix(f"{request.generator}-")


def model_location(store: str, family: str, key: str) -> str:
    return join(store, f"{family}-{key}")


# --------------------------------------------------------------------------------- the store
def read_marker(model_uri: str) -> dict[str, Any] | None:
    """The completion marker of a stored model, or None when the folder is absent or partial."""
    fs, path = filesystem(model_uri)
    try:
        with fs.open_input_stream(posixpath.join(path, COMPLETE_MARKER)) as fh:
            return json.loads(fh.read().decode())
    except (FileNotFoundError, OSError, ValueError):
        return None


def save_model(generator, model_uri: str, info: dict[str, Any]) -> dict[str, Any]:
    """Save ``generator`` into ``model_uri`` and write the completion marker last.

    Local stores get an atomic rename of a finished folder; object stores get the files first and
    the marker after them. When another training of the same key finished first, its model wins.
    """
    marker = {**info, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if is_local(model_uri):
        final = Path(filesystem(model_uri)[1])
        final.parent.mkdir(parents=True, exist_ok=True)
        owner_only(final.parent)
        tmp = final.parent / f".tmp-{final.name}-{secrets.token_hex(4)}"
        try:
            generator.save(tmp)
            (tmp / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2, default=str))
            owner_only(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if read_marker(str(final)) is None:  # a stale partial folder: replace it
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return read_marker(str(final)) or marker
    with tempfile.TemporaryDirectory(prefix="synthpipe-model-") as scratch:
        generator.save(Path(scratch))
        fs, path = filesystem(model_uri)
        fs.create_dir(path, recursive=True)
        pafs.copy_files(scratch, path, destination_filesystem=fs)
        with fs.open_output_stream(posixpath.join(path, COMPLETE_MARKER)) as fh:
            fh.write(json.dumps(marker, indent=2, default=str).encode())
    return marker


def fetch_model(model_uri: str, scratch: str) -> str:
    """A local folder holding the model (downloaded into ``scratch`` for object-store URIs)."""
    if is_local(model_uri):
        return filesystem(model_uri)[1]
    fs, path = filesystem(model_uri)
    target = Path(scratch) / posixpath.basename(path.rstrip("/"))
    target.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(target), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return str(target)


def delete_tree(uri: str) -> None:
    """Best-effort removal of a folder (local or object store): used for real-data scratch."""
    if is_local(uri):
        shutil.rmtree(filesystem(uri)[1], ignore_errors=True)
        return
    fs, path = filesystem(uri)
    try:
        fs.delete_dir(path)
    except (FileNotFoundError, OSError):
        pass


# ------------------------------------------------------------------------------ device / GPU
def effective_device(requested: str) -> str:
    """The device a training request really asks for on this worker.

    An explicit ``cpu`` or ``cuda`` in the request wins. ``auto`` takes the pool's default from
    ``SYNTHPIPE_DEVICE`` (the ``gpu`` deployment sets ``cuda``, so a GPU worker without a usable
    GPU fails loudly instead of silently training on its CPU).
    """
    if requested == "auto":
        return os.environ.get("SYNTHPIPE_DEVICE", "auto") or "auto"
    return requested


def pin_worker_gpu() -> None:
    """On a multi-GPU host each worker owns one GPU: ``SYNTHPIPE_WORKER_GPU`` (set by
    ``deployments/gpu-worker.sh``) overrides the deployment's ``CUDA_VISIBLE_DEVICES``.

    Job variables override a process worker's environment, so a per-worker GPU cannot come from
    the deployment; CUDA reads the variable on first use, which is after this runs.
    """
    gpu = os.environ.get("SYNTHPIPE_WORKER_GPU")
    if gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def host_info() -> str:
    return socket.gethostname()


def enter_checkout() -> dict[str, str]:
    """Deployment pull step: run the flow from this worker's own synthpipe installation.

    ``SYNTHPIPE_HOME`` when set (worker scripts, images), else the folder holding the installed
    ``flows`` package: the checkout for an editable install, site-packages otherwise, where the
    entrypoints ``flows/*.py`` exist as well. Resolved when the run starts, on the worker: a
    ``{{ $VAR }}`` placeholder in prefect.yaml would be filled in on the deploying machine.
    """
    directory = os.environ.get("SYNTHPIPE_HOME") or str(Path(__file__).resolve().parent.parent)
    os.chdir(directory)
    return {"directory": os.getcwd()}


# --------------------------------------------------------------------------------- training
def train(request, placement: Placement = "inline", deployment: str = TRAIN_DEPLOYMENT, timeout: float | None = None) -> TrainOutcome:
    """Return a trained model for ``request``: from the store, inline, or via the deployment.

    ``request.model_dir`` is the store location (see :func:`model_location`). A failed training
    raises: inline, the child's own exception; via a deployment, :class:`TrainingFailedError`
    carrying the child run's state message (which names the child's exception).
    """
    from prefect.logging import get_run_logger

    logger = get_run_logger()
    key = model_key(request)
    start = time.perf_counter()
    marker = read_marker(request.model_dir)
    if marker is not None:
        logger.info("%s: reusing the model trained %s on %s (key %s)", request.generator,
                    marker.get("saved_at", "?"), marker.get("host", "?"), key)
        return TrainOutcome(family=request.generator, model_uri=request.model_dir, key=key, cached=True,
                            seconds=round(time.perf_counter() - start, 3), placement=placement, trained=marker)
    flow_run_id = work_pool = None
    if placement == "inline":
        from flows.train_generator import train_generator

        train_generator(request)
        work_pool = "inline"
    elif placement == "deployment":
        flow_run_id, work_pool = _train_via_deployment(request, deployment, timeout)
    else:
        raise ConfigError(f"unknown training placement {placement!r}; use inline or deployment")
    marker = read_marker(request.model_dir)
    if marker is None:
        raise TrainingFailedError(
            f"training of {request.generator!r} finished but no model is at {request.model_dir}; "
            "the parent and the training workers must share the storage root (a shared mount or "
            "an object-store URI for out / work_root / model_store)"
        )
    return TrainOutcome(family=request.generator, model_uri=request.model_dir, key=key, cached=False,
                        seconds=round(time.perf_counter() - start, 3), placement=placement,
                        flow_run_id=flow_run_id, work_pool=work_pool, trained=marker)


def _train_via_deployment(request, deployment: str, timeout: float | None) -> tuple[str, str | None]:
    """Run the training deployment as a subflow and turn its failure into the parent's."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.logging import get_run_logger

    logger = get_run_logger()
    try:
        child = run_deployment(
            deployment,
            parameters={"request": request.model_dump(mode="json")},
            timeout=timeout,
            poll_interval=POLL_SECONDS,
            as_subflow=True,
            flow_run_name=f"train-{request.generator}-{secrets.token_hex(2)}",
        )
    except ObjectNotFound:
        raise ConfigError(
            f"training deployment {deployment!r} does not exist on this Prefect API; deploy it with "
            "`prefect deploy --all --prefect-file deployments/prefect.yaml`, or use training=inline"
        ) from None
    state = child.state
    where = f"run {child.name!r} on work pool {child.work_pool_name!r}"
    logger.info("%s: training %s finished in state %s", request.generator, where, state.name if state else "?")
    if state is None or not state.is_final():
        _cancel_quietly(child.id)
        raise TrainingFailedError(
            f"training {where} did not finish within {timeout} s (state {state.name if state else 'unknown'}); "
            f"is a worker polling that pool?"
        )
    if not state.is_completed():
        reason = (state.message or state.name).strip()
        raise TrainingFailedError(f"training {where} ended {state.name}: {reason}")
    return str(child.id), child.work_pool_name


def _cancel_quietly(flow_run_id) -> None:
    """Cancel a training run the parent stopped waiting for, so it does not hold a GPU slot."""
    try:
        from prefect import get_client
        from prefect.states import Cancelling

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, Cancelling(message="the parent stopped waiting"), force=True)
    except Exception:  # best effort: the parent's own failure is the message that matters
        pass
