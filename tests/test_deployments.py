"""Deployments, placement, the training cache and generator=auto.

The deployment files are checked the way Prefect reads them; the flows run under the session's
Prefect test server. The real server + workers path is tests/test_e2e_server.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from flows import auto
from flows.placement import effective_device, enter_checkout, generator_code_version, training_key
from tests.leaky import install_copying_generator
from tests.tables import nycflights_dir, real_table
from validation.errors import ConfigError, GateFailedError

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENTS = REPO / "deployments"


# ------------------------------------------------------------------------------ prefect.yaml
@pytest.fixture(scope="module")
def prefect_yaml() -> dict:
    return yaml.safe_load((DEPLOYMENTS / "prefect.yaml").read_text())


def test_prefect_yaml_passes_prefects_own_validation(prefect_yaml):
    from prefect.cli.deploy._models import PrefectYamlModel  # what `prefect deploy` validates with

    model = PrefectYamlModel.model_validate(prefect_yaml)
    assert {d.name for d in model.deployments} == {"synthesize", "train-generator"}


def test_deployments_pin_the_pipeline_to_cpu_and_training_to_gpu(prefect_yaml):
    from prefect.flows import load_flow_from_entrypoint

    from flows.synthesize import SynthesizeParams

    deps = {d["name"]: d for d in prefect_yaml["deployments"]}
    synth, train = deps["synthesize"], deps["train-generator"]
    assert synth["work_pool"]["name"] == "cpu" and train["work_pool"]["name"] == "gpu"
    # entrypoints load, relative to the repository root, and name the flows the parent calls
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        assert load_flow_from_entrypoint(synth["entrypoint"]).name == "synthesize"
        assert load_flow_from_entrypoint(train["entrypoint"]).name == "train-generator"
    finally:
        os.chdir(cwd)
    assert SynthesizeParams().training_deployment == "train-generator/train-generator"
    # the example parameters are a valid run form, and send training to the gpu pool
    example = SynthesizeParams.model_validate(synth["parameters"]["params"])
    assert example.training == "deployment"
    # nightly, but off until someone turns it on
    (schedule,) = synth["schedules"]
    assert schedule["cron"] == "0 2 * * *" and schedule["active"] is False
    env = train["work_pool"]["job_variables"]["env"]
    assert env["SYNTHPIPE_DEVICE"] == "cuda" and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert isinstance(train["concurrency_limit"], int) and train["concurrency_limit"] >= 1
    # nothing is cloned or downloaded at run time
    assert prefect_yaml["pull"] == [{"flows.placement.enter_checkout": {}}]
    assert not prefect_yaml.get("build") and not prefect_yaml.get("push")


def test_pull_step_enters_the_workers_own_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNTHPIPE_HOME", str(tmp_path))
    assert enter_checkout() == {"directory": str(tmp_path)}
    monkeypatch.delenv("SYNTHPIPE_HOME")
    assert enter_checkout() == {"directory": str(REPO)}, "default: the installed package's folder"
    assert (Path.cwd() / "flows" / "synthesize.py").is_file()


def test_kubernetes_gpu_template_requests_gpus_on_gpu_nodes():
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.templating import apply_values

    template = json.loads((DEPLOYMENTS / "k8s-gpu-job-template.json").read_text())
    validate_base_job_template(template)  # every placeholder is a declared variable
    props = template["variables"]["properties"]
    defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    job = apply_values(template["job_configuration"], {**defaults, "env": {"SYNTHPIPE_DEVICE": "cuda"}})
    spec = job["job_manifest"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert container["env"] == {"SYNTHPIPE_DEVICE": "cuda"}
    # the worker validates these paths (prefect-kubernetes' required job shape)
    assert job["job_manifest"]["apiVersion"] == "batch/v1" and spec["restartPolicy"] == "Never"
    # one pod, once: Job fields, which Kubernetes ignores inside the pod spec
    job_spec = job["job_manifest"]["spec"]
    assert job_spec["parallelism"] == job_spec["completions"] == 1 and "parallelism" not in spec
    assert container["name"] == "prefect-job"


@pytest.mark.parametrize("script", sorted(p.name for p in DEPLOYMENTS.glob("*.sh")))
def test_worker_and_deploy_scripts_are_valid_bash(script):
    proc = subprocess.run(["bash", "-n", str(DEPLOYMENTS / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert os.access(DEPLOYMENTS / script, os.X_OK), f"{script} is not executable"


def test_gpu_worker_script_refuses_a_host_without_a_usable_gpu(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PREFECT_API_URL": "http://127.0.0.1:9/api", "SYNTHPIPE_HOME": str(REPO), "HOME": str(tmp_path)}
    proc = subprocess.run([str(DEPLOYMENTS / "gpu-worker.sh")], env=env, capture_output=True, text=True, timeout=60)
    if shutil.which("nvidia-smi", path=env["PATH"]):
        pytest.skip("this host has nvidia-smi")
    assert proc.returncode == 2 and "no nvidia-smi" in proc.stderr
    import torch

    if not torch.cuda.is_available():
        proc = subprocess.run([str(DEPLOYMENTS / "gpu-worker.sh")], env={**env, "GPU_IDS": "0"}, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "cannot see a CUDA GPU" in proc.stderr
    no_api = subprocess.run([str(DEPLOYMENTS / "cpu-worker.sh")], env={"PATH": env["PATH"]}, capture_output=True, text=True, timeout=30)
    assert no_api.returncode != 0 and "set PREFECT_API_URL" in no_api.stderr


# ------------------------------------------------------------------------ keys and devices
def _request(**changes):
    from flows.train_generator import TrainRequest
    from tasks.storage import TableRef

    _, schema = real_table("planes", rows=200)
    base = dict(train=TableRef(uri="/x/train.parquet", fingerprint="a" * 64, rows=200), table_schema=schema,
                generator="copula", options={}, seed=0, device="auto", model_dir="")
    return TrainRequest(**{**base, **changes})


def test_training_key_covers_data_config_and_code(monkeypatch):
    from generators import registry
    from tasks.storage import TableRef

    base = training_key(_request())
    assert training_key(_request(model_dir="/anywhere/else")) == base, "where the model goes is not what it is"
    assert training_key(_request(train=TableRef(uri="/x/train.parquet", fingerprint="b" * 64, rows=200))) != base
    assert training_key(_request(options={"distribution": "gaussian_kde"})) != base
    assert training_key(_request(seed=1)) != base
    assert training_key(_request(device="cpu")) != base
    # device=auto is decided where the model trains: inline on this CPU, or by the gpu pool
    assert training_key(_request(), "inline:cpu") != training_key(_request(), "deployment:train-generator/gpu")
    assert training_key(_request(device="cpu"), "inline:cpu") == training_key(_request(device="cpu"))
    # options as the family's config reads them: 300.0 is 300; left unset is not the same as given
    assert training_key(_request(generator="diffusion", options={"epochs": 300.0})) == \
        training_key(_request(generator="diffusion", options={"epochs": 300}))
    assert training_key(_request(generator="diffusion", options={"epochs": 300})) != \
        training_key(_request(generator="diffusion"))
    monkeypatch.setitem(registry.FAMILIES, "copula", "somewhere.else:Copula")
    assert training_key(_request()) != base, "another implementation never reuses this model"
    assert len(generator_code_version()) == 16


def test_code_version_covers_the_validation_modules_generators_encode_with(tmp_path, monkeypatch):
    import shutil

    import flows.placement as placement

    root = Path(placement.__file__).resolve().parent.parent
    copy = tmp_path / "tree"
    for folder in ("flows", "generators", "validation"):
        shutil.copytree(root / folder, copy / folder)
    monkeypatch.setattr(placement, "__file__", str(copy / "flows" / "placement.py"))
    placement.generator_code_version.cache_clear()
    before = placement.generator_code_version()
    with open(copy / "validation" / "columns.py", "a") as fh:
        fh.write("\n# an edit to how values are encoded\n")
    placement.generator_code_version.cache_clear()
    try:
        assert placement.generator_code_version() != before
    finally:
        placement.generator_code_version.cache_clear()


def test_a_pretrained_model_folder_is_keyed_by_its_files(tmp_path):
    base_model = tmp_path / "base"
    base_model.mkdir()
    (base_model / "model.safetensors").write_bytes(b"one")
    request = _request(generator="llm", options={"pretrained_path": str(base_model)})
    first = training_key(request)
    (base_model / "model.safetensors").write_bytes(b"another model")
    assert training_key(request) != first, "another model in the same folder never reuses this one"


def test_the_pool_sets_the_device_only_for_auto_requests(monkeypatch):
    monkeypatch.setenv("SYNTHPIPE_DEVICE", "cuda")
    assert effective_device("auto") == "cuda"
    assert effective_device("cpu") == "cpu", "an explicit request wins over the pool default"
    monkeypatch.delenv("SYNTHPIPE_DEVICE")
    assert effective_device("auto") == "auto"


# --------------------------------------------------------------------------- auto selection
def _cand(family, passed, fidelity=None, ims=0.0, hard=0, gated=True):
    return {"family": family, "gated": gated, "passed": passed, "fidelity_score": fidelity,
            "identical_match_share": ims, "hard_failures": hard}


def test_auto_publishes_the_best_passing_candidate_by_fidelity():
    chosen, by = auto.choose([_cand("copula", True, 0.81), _cand("vae", True, 0.86), _cand("gan", False, 0.95, hard=1)])
    assert (chosen["family"], by) == ("vae", "fidelity_score"), "a failing candidate is never published"
    chosen, _ = auto.choose([_cand("copula", True, 0.8), _cand("vae", True, 0.8)])
    assert chosen["family"] == "copula", "ties keep candidate order"


def test_auto_falls_back_to_identical_matches_without_a_fidelity_score():
    chosen, by = auto.choose([_cand("copula", True, ims=0.02), _cand("vae", True, ims=0.001)])
    assert (chosen["family"], by) == ("vae", "identical_match_share")


def test_auto_quarantines_the_least_bad_when_none_passes_and_needs_a_gated_candidate():
    chosen, by = auto.choose([_cand("copula", False, 0.9, hard=2), _cand("vae", False, 0.5, hard=1),
                              _cand("gan", False, gated=False)])
    assert (chosen["family"], by) == ("vae", "fewest_hard_failures")
    assert auto.choose([_cand("gan", False, gated=False)]) == (None, "none")


def test_auto_options_flat_or_per_family(monkeypatch):
    from generators import registry

    monkeypatch.setitem(registry.FAMILIES, "vae", "generators.copula:CopulaGenerator")
    flat = {"distribution": "uniform", "epochs": 5}
    assert auto.options_for("copula", flat, auto=True) == {"distribution": "uniform"}, "epochs is not a copula option"
    assert auto.options_for("copula", {"copula": {"distribution": "beta"}, "vae": {"x": 1}}, auto=True) == {"distribution": "beta"}
    assert auto.options_for("copula", flat, auto=False) == flat, "one family: its config judges the options"
    usable, skipped = auto.available_families(["copula", "copula", "vae"])
    assert usable == ["copula", "vae"] and not skipped
    monkeypatch.setitem(registry.FAMILIES, "gan", "not_installed_module:GAN")
    usable, skipped = auto.available_families(["gan", "copula"])
    assert usable == ["copula"] and "not available" in skipped["gan"]
    with pytest.raises(ConfigError, match="none of the candidates"):
        auto.available_families(["gan"])


# ------------------------------------------------------------------------------ flow tests
@pytest.fixture(scope="module")
def planes_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "planes.csv"
    path.write_bytes((nycflights_dir() / "planes.csv").read_bytes())
    return path


def _synthesize(**params) -> dict:
    """Run the flow; return the manifest of what it wrote (a release or a quarantined run)."""
    from flows.synthesize import SynthesizeParams, synthesize

    out = Path(params["out"])
    try:
        synthesize(SynthesizeParams(**params))
    except GateFailedError:
        pass  # the gate is not under test here: a quarantined run has the same manifest
    manifests = sorted(out.glob("*/*/manifest.json")) + sorted(out.glob("*/quarantine/*/manifest.json"))
    newest = max(manifests, key=lambda p: p.parent.name)
    return json.loads(newest.read_text())


@pytest.mark.flow
def test_a_rerun_reuses_the_cached_model_and_a_change_retrains(prefect_server, planes_csv, tmp_path):
    common = dict(source=str(planes_csv), out=str(tmp_path), rows=300)
    first = _synthesize(**common)
    assert first["training"]["cached"] is False and first["training"]["work_pool"] == "inline"
    (model,) = (tmp_path / ".models").iterdir()
    assert model.name == f"copula-{first['training']['model_key']}"
    assert oct(model.parent.stat().st_mode & 0o777) == "0o700", "models of real data: owner only"
    stamp = (model / "model.complete.json").stat().st_mtime_ns

    again = _synthesize(**common)
    assert again["training"]["cached"] is True and again["training"]["model_key"] == first["training"]["model_key"]
    assert again["training"]["trained_on"]["saved_at"] == first["training"]["trained_on"]["saved_at"]
    assert (model / "model.complete.json").stat().st_mtime_ns == stamp, "not retrained"

    reseeded = _synthesize(**common, seed=5)
    assert reseeded["training"]["cached"] is False
    assert len(list((tmp_path / ".models").iterdir())) == 2
    assert not any((tmp_path / ".work").iterdir())


@pytest.mark.flow
def test_without_caching_no_model_outlives_the_run(prefect_server, planes_csv, tmp_path):
    manifest = _synthesize(source=str(planes_csv), out=str(tmp_path), rows=300, cache_models=False)
    assert manifest["training"]["cached"] is False
    assert not (tmp_path / ".models").exists() and not any((tmp_path / ".work").iterdir())


@pytest.mark.flow
def test_a_failing_inline_training_fails_the_run_with_its_reason(prefect_server, planes_csv, tmp_path):
    from flows.synthesize import SynthesizeParams, synthesize

    with pytest.raises(ConfigError, match="(?s)invalid options for generator 'copula'.*no_such_option"):
        synthesize(SynthesizeParams(source=str(planes_csv), out=str(tmp_path), generator_options={"no_such_option": 1}))
    assert not any((tmp_path / ".work").iterdir()), "the real data copy is removed on failure too"
    assert not (tmp_path / "planes").exists(), "nothing published"


@pytest.mark.flow
def test_a_cuda_request_without_a_gpu_fails_the_run_clearly(prefect_server, planes_csv, tmp_path):
    import torch

    from flows.synthesize import SynthesizeParams, synthesize
    from validation.errors import DeviceUnavailableError

    if torch.cuda.is_available():
        pytest.skip("this host has a CUDA GPU")
    with pytest.raises(DeviceUnavailableError, match="device 'cuda' was requested but no CUDA GPU is available"):
        synthesize(SynthesizeParams(source=str(planes_csv), out=str(tmp_path), device="cuda"))
    assert not any((tmp_path / ".work").iterdir()) and not (tmp_path / ".models").exists()


@pytest.mark.flow
def test_deployment_placement_without_the_deployment_is_a_clear_error(prefect_server, planes_csv, tmp_path):
    from flows.synthesize import SynthesizeParams, synthesize

    with pytest.raises(ConfigError, match="training deployment 'no-such/deployment' does not exist"):
        synthesize(SynthesizeParams(source=str(planes_csv), out=str(tmp_path), training="deployment",
                                    training_deployment="no-such/deployment"))
    assert not any((tmp_path / ".work").iterdir())


def _find_key(tree, key):
    """The first value stored under ``key`` anywhere in a JSON document (the report's layout is
    the report module's business; the comparison only has to be in it)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            found = _find_key(item, key)
            if found is not None:
                return found
    return None


@pytest.mark.flow
def test_auto_trains_every_candidate_gates_each_and_records_the_comparison(prefect_server, weather_csv, tmp_path, monkeypatch):
    # a 'vae' candidate that replays training rows: the gate must reject it, so auto must not
    # publish it whatever its fidelity
    install_copying_generator(monkeypatch, "vae")
    manifest = _synthesize(source=str(weather_csv), out=str(tmp_path), rows=600, generator="auto",
                           candidates=["copula", "vae"], generator_options={"copula": {"distribution": "beta"}})
    cands = {c["family"]: c for c in manifest["candidates"]}
    assert set(cands) == {"vae", "copula"}
    assert all(c["gated"] and c["cached"] is False and c["work_pool"] == "inline" for c in cands.values())
    assert cands["vae"]["passed"] is False and "identical_match_share" in cands["vae"]["summary"]
    # the copier never wins: it is either beaten among passing ones, or has more hard failures
    assert cands["copula"]["chosen"] is True and "chosen" not in cands["vae"]
    assert manifest["generator"]["family"] == "copula" and manifest["generator"]["selected_by"] == "auto"
    assert manifest["generator"]["options"] == {"distribution": "beta"}
    assert cands["vae"]["options"] == {}, "per-family options reach only their family"
    assert manifest["selection"]["chosen"] == "copula" and manifest["selection"]["rule"] == auto.SELECTION_RULE
    release = next(p.parent for p in tmp_path.glob("weather/**/manifest.json"))
    report = json.loads((release / "report.json").read_text())
    assert {c["family"] for c in _find_key(report, "candidates")} == {"vae", "copula"}
    assert sorted(p.name.split("-")[0] for p in (tmp_path / ".models").iterdir()) == ["copula", "vae"]
    assert not any((tmp_path / ".work").iterdir())


# ------------------------------------------------------------------- what a release may show
def test_the_manifest_and_report_never_show_the_password_or_the_query():
    import hashlib

    from flows.placement import TrainOutcome
    from flows.synthesize import SynthesizeParams, build_manifest
    from tasks.sources import SourceSpec
    from tasks.steps import _report_extra
    from tasks.storage import TableRef
    from validation.gate import GateResult
    from validation.report import build_report_json

    query = "SELECT ssn, diagnosis FROM patients WHERE clinic = 'north'"
    params = SynthesizeParams(
        source="postgresql://u:secret@h/db", query=query, name="patients",
        work_root="s3://AKIAX:secret@bucket/work?region=eu-west-1&session_token=secret", model_store="s3://bucket/models",
    )
    spec = SourceSpec(params.source, params.query, params.encoding)
    request = _request()
    _, schema = real_table("planes", rows=200)
    outcome = TrainOutcome(family="copula", model_uri="/m", key="k", cached=False, seconds=1.0, placement="inline")
    gate = GateResult()
    source = TableRef(uri="/w/source.parquet", fingerprint="f" * 64, rows=200)
    for candidates in (None, [{"family": "copula", "gated": True, "passed": True}]):
        manifest = build_manifest(params, spec, source, schema, "copula", request, outcome, gate,
                                  candidates=candidates, decided_by="fidelity_score", flow_run_id="r")
        report = build_report_json(gate, "patients", extra=_report_extra(manifest))
        for document in (manifest, report):
            text = json.dumps(document, default=str)
            assert "secret" not in text and query not in text and "diagnosis" not in text
        digest = hashlib.sha256(query.encode()).hexdigest()
        assert manifest["source"]["location"] == "postgresql://u:***@h/db"
        assert manifest["source"]["query_sha256"] == digest
        assert manifest["parameters"]["source"] == "postgresql://u:***@h/db"
        assert manifest["parameters"]["query_sha256"] == digest and "query" not in manifest["parameters"]
        assert manifest["parameters"]["work_root"].startswith("s3://AKIAX:***@bucket/work?region=eu-west-1")
        assert manifest["parameters"]["model_store"] == "s3://bucket/models"
        assert manifest["generator"]["selected_by"] == ("user" if candidates is None else "auto")
        assert ("selection" in manifest) == (candidates is not None)


def test_dataset_names_are_one_plain_folder():
    from pydantic import ValidationError

    from flows.synthesize import SynthesizeParams, safe_dataset_name
    from tasks.sources import SourceSpec, default_name

    for bad in ("../../x", "..", ".work", "a/b", "a\\b", "", "-x", "x y", "/abs"):
        with pytest.raises(ValidationError, match="pattern"):
            SynthesizeParams(name=bad)
    for good in ("weather", "weather_2024.v1-a", "2024"):
        assert SynthesizeParams(name=good).name == good
    # the default comes from the source and is made safe the same way
    assert safe_dataset_name(default_name(SourceSpec("/data/my data (1).csv"))) == "my_data__1_"
    assert safe_dataset_name(default_name(SourceSpec(".."))) == "table"
    assert safe_dataset_name(default_name(SourceSpec("/data/.hidden.csv"))) == "hidden"
    assert safe_dataset_name("Zoë") == "Zo_"
    assert safe_dataset_name(default_name(SourceSpec("demo:weather"))) == "weather"


# ---------------------------------------------------------------- Prefect: results, retries
def test_pipeline_tasks_never_persist_or_cache_real_data():
    from prefect.cache_policies import NO_CACHE

    from flows import synthesize
    from flows.train_generator import fit_generator
    from tasks import steps

    tasks = [steps.ingest, steps.profile, steps.split_and_protect, steps.sample, steps.validate, steps.publish,
             fit_generator, synthesize._train_task]
    for t in tasks:
        assert t.persist_result is False and t.cache_policy is NO_CACHE, t.name


def test_only_transient_io_errors_are_retried():
    import pyarrow as pa

    from tasks.steps import is_transient
    from validation.errors import InputError, OutputError

    for exc in (OSError("io"), ConnectionResetError(), TimeoutError(), pa.ArrowIOError("s3 hiccup")):
        assert is_transient(exc), exc
    for exc in (ValueError("cast"), pa.ArrowInvalid("bad"), InputError("x"), OutputError("x"), KeyError("c"),
                FileNotFoundError("gone"), PermissionError("no")):
        assert not is_transient(exc), exc


def _in_a_flow(task, *args):
    """Run ``task`` as the pipeline does: inside a flow run (its logs have a run to go to)."""
    from prefect import flow

    return flow(name="publish-test")(lambda: task(*args))()


def _publish_inputs(tmp_path):
    from tasks.storage import write_frame, write_text
    from validation.gate import GateResult

    df, schema = real_table("planes", rows=120)
    synthetic = write_frame(df, str(tmp_path / "work" / "synthetic.parquet"))
    report = write_text("<html>report</html>", str(tmp_path / "work" / "report.html"))
    return synthetic, schema, GateResult(artifacts={"report_html_uri": report})


@pytest.mark.flow
def test_publish_retries_io_errors_and_a_retry_finds_its_own_release(prefect_server, tmp_path, monkeypatch):
    from tasks import release, steps

    synthetic, schema, gate = _publish_inputs(tmp_path)
    real_move = release.move_latest
    calls = []

    def flaky_move(dataset_dir, release_id):  # the release is renamed into place, then LATEST fails once
        calls.append(release_id)
        if len(calls) == 1:
            raise OSError("disk hiccup")
        real_move(dataset_dir, release_id)

    monkeypatch.setattr(release, "move_latest", flaky_move)
    path = _in_a_flow(steps.publish, str(tmp_path / "out"), "planes", synthetic, schema, gate, {"x": 1}, "20240101T000000Z-abcdef")
    assert Path(path) == tmp_path / "out" / "planes" / "20240101T000000Z-abcdef" and len(calls) == 2
    assert (tmp_path / "out" / "planes" / "LATEST").read_text().strip() == "20240101T000000Z-abcdef"
    assert (Path(path) / "report.html").read_text() == "<html>report</html>"
    assert [p.name for p in (tmp_path / "out" / "planes").iterdir() if p.is_dir()] == ["20240101T000000Z-abcdef"]


@pytest.mark.flow
def test_publish_does_not_retry_a_deterministic_error(prefect_server, tmp_path, monkeypatch):
    from tasks import release, steps

    synthetic, schema, gate = _publish_inputs(tmp_path)
    calls = []

    def bad_cast(frame, schema):
        calls.append(1)
        raise ValueError("synthetic column 'year' cannot be cast")

    monkeypatch.setattr(release, "to_release_arrow", bad_cast)
    with pytest.raises(ValueError, match="cannot be cast"):
        _in_a_flow(steps.publish, str(tmp_path / "out"), "planes", synthetic, schema, gate, {}, "20240101T000000Z-abcdef")
    assert len(calls) == 1


@pytest.mark.flow
def test_auto_records_a_failing_candidate_and_publishes_another(prefect_server, planes_csv, tmp_path):
    manifest = _synthesize(source=str(planes_csv), out=str(tmp_path), rows=300, generator="auto",
                           candidates=["copula", "vae"], generator_options={"vae": {"no_such_option": 1}})
    cands = {c["family"]: c for c in manifest["candidates"]}
    assert "no_such_option" in cands["vae"]["error"] and cands["vae"]["gated"] is False
    assert cands["copula"]["chosen"] is True and manifest["generator"]["family"] == "copula"
    assert not any((tmp_path / ".work").iterdir())
