"""The report: self-contained HTML with the verdict first and the plots, JSON with every metric,
Markdown and table rows for Prefect artifacts; rendered in headless Chromium."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.gate_data import split
from validation.gate import run_gate
from validation.report import check_table_rows, markdown_summary, write_report

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and os.path.exists(p)), None)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    train, holdout, honest, schema = split(rows=4000, n_train=2500, n_holdout=700)
    honest = honest.iloc[:800].reset_index(drop=True)
    leaked = honest.copy()
    leaked.loc[: len(leaked) // 2, :] = train.iloc[: len(leaked) // 2 + 1].to_numpy()  # half copied
    out = {}
    for name, synth in (("pass", honest), ("fail", leaked)):
        result = run_gate(train, holdout, synth, schema)
        d = tmp_path_factory.mktemp(f"report-{name}")
        paths = write_report(result, train, holdout, synth, schema, d, title=f"weather {name}",
                             extra={"generator": "test", "seed": 7})
        out[name] = (result, paths)
    return out


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_html_is_self_contained_with_verdict_first_and_plots(reports):
    for name, (result, paths) in reports.items():
        page = paths["html"].read_text()
        body = page[page.index("<body>"):]
        verdict = "PASS" if name == "pass" else "FAIL"
        assert result.passed == (name == "pass")
        # the verdict is the first thing after the title
        assert body.index("id='verdict'") < body.index("<h2>")
        assert f"{verdict}:" in body[: body.index("<h2>")]
        images = _images(page)
        assert len(images) >= 4  # column scores, marginals, correlations, distances
        assert all(img.startswith(b"\x89PNG\r\n\x1a\n") and len(img) > 2000 for img in images)
        assert not re.search(r'(src|href)="https?://', page)  # nothing loaded from the network
        for c in result.checks:
            assert c.name.split(" [")[0] in page
        assert "near-match share (DCR ≤" in page


def test_failing_report_names_the_failures(reports):
    result, paths = reports["fail"]
    page = paths["html"].read_text()
    assert {c.name for c in result.failures} >= {"identical_match_share", "membership_auc"}
    head = page[: page.index("<h2>")]
    for c in result.failures:
        assert c.name in head


def test_report_json_holds_every_metric(reports):
    for name, (result, paths) in reports.items():
        data = json.loads(paths["json"].read_text())
        assert data["verdict"] == name and data["passed"] == (name == "pass")
        assert len(data["checks"]) == len(result.checks)
        m = data["metrics"]
        for key in ("fidelity_score", "fidelity_ceiling", "dcr_share", "near_match_share", "holdout_near_match_share",
                    "membership_auc", "identical_match_share", "pii_value_overlap", "rare_combination_rows"):
            assert key in m and m[key] is not None
        assert set(m["fidelity"]["column_shapes"]) == set(m["columns_compared"])
        assert m["privacy"]["dcr_p5"] is not None and m["privacy"]["holdout_dcr_p5"] is not None
        assert data["distance_distributions"]["dcr_synthetic_train"]["p50"] >= 0
        assert data["great_expectations"]["statistics"]["evaluated_expectations"] > 0
        assert data["extra"] == {"generator": "test", "seed": 7}
        assert not list(paths["json"].parent.glob("*.tmp"))


def test_markdown_and_table_rows(reports):
    result, _ = reports["fail"]
    md = markdown_summary(result, title="weather")
    assert md.startswith("## weather: gate FAIL")
    assert "`identical_match_share`" in md and "| DCR share (0.5 ideal) |" in md
    assert "| near-match share |" in md  # the half-copied table is all near matches
    assert "`near_match_share`" in md
    rows = check_table_rows(result)
    assert len(rows) == len(result.checks)
    assert rows[0]["status"] == "FAIL"  # failures first
    assert set(rows[0]) == {"check", "category", "status", "hard", "value", "threshold", "detail"}
    json.dumps(rows, allow_nan=False)
    ok, _ = reports["pass"]
    assert "gate PASS" in markdown_summary(ok)
    assert {r["status"] for r in check_table_rows(ok)} <= {"pass", "warn"}


def screenshot(html: Path, png: Path, profile_dir: Path, height: int = 2400) -> None:
    """Render ``html`` in headless Chromium into ``png``."""
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={profile_dir}", f"--window-size=1280,{height}", f"--screenshot={png}",
        html.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
@pytest.mark.parametrize("name", ["pass", "fail"])
def test_report_renders_in_headless_chromium(reports, tmp_path, name):
    import matplotlib.image as mpimg

    _, paths = reports[name]
    png = tmp_path / f"report-{name}.png"
    screenshot(paths["html"], png, tmp_path / "profile")
    shot_dir = os.environ.get("SYNTHPIPE_SCREENSHOT_DIR")  # keep the picture for a human look
    if shot_dir:
        shutil.copy(png, Path(shot_dir) / png.name)
    img = mpimg.imread(png)[..., :3]
    assert img.shape[0] >= 2000 and img.shape[1] >= 1200
    non_white = (img < 0.95).any(axis=2)
    assert non_white.mean() > 0.05  # text and plots, not a blank page
    # the verdict banner's colour sits near the top of the page
    top = img[:300]
    if name == "pass":
        banner = (top[..., 1] > 0.9) & (top[..., 0] < 0.93) & (top[..., 2] < 0.93)  # pale green
    else:
        banner = (top[..., 0] > 0.95) & (top[..., 1] < 0.93) & (top[..., 2] < 0.93)  # pale red
    assert banner.mean() > 0.02
    # plot colours (matplotlib's blue and orange) appear further down
    rest = img[300:]
    orange = (rest[..., 0] > 0.9) & (np.abs(rest[..., 1] - 0.5) < 0.1) & (rest[..., 2] < 0.2)
    assert orange.sum() > 500
