"""The gate's report: ``report.html`` for people, ``report.json`` for machines.

The HTML file is self-contained (inline CSS, plots as base64 PNG drawn with matplotlib's Agg
backend) so it can be mailed or opened from a release folder without a network. It starts with
the verdict and what failed, then the per-check table, then the evidence: column-shape scores
against the holdout ceiling, real vs synthetic marginals, the correlation-difference heatmap and
the distance distributions of synthetic and holdout rows to the train split.

:func:`markdown_summary` and :func:`check_table_rows` give the same verdict and figures in the
shapes Prefect's markdown and table artifacts take.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from validation.gate import CheckResult, GateResult, jsonable
from validation.schema import ColumnKind, TableSchema

MAX_MARGINAL_PLOTS = 24
_REAL = "#1f77b4"
_SYN = "#ff7f0e"
_HOLD = "#2ca02c"
# matplotlib draws dates of years 1..9999 only: epoch days of 0001-01-02 and 9999-12-01
_MPL_FIRST_DAY, _MPL_LAST_DAY = -719_161.0, 2_932_866.0

# ----------------------------------------------------------------------------------------------
# Figures and text shared by all outputs


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return "–"
        if f != 0 and abs(f) < 0.001:
            return f"{f:.2e}"
        return f"{f:.4g}" if abs(f) < 1000 else f"{f:,.0f}"
    return str(v)


def _status(c: CheckResult) -> str:
    if c.passed:
        return "pass"
    return "FAIL" if c.hard else "warn"


def key_figures(result: GateResult) -> list[dict[str, Any]]:
    """Headline figures: the synthetic value, the holdout's value (the baseline/ceiling), and
    the gate's limit when it has one."""
    m = result.metrics
    p = m.get("privacy", {})
    thresholds = {c.name: c.threshold for c in result.checks}
    rare = p.get("rare_combinations", {})
    return [
        {"figure": "fidelity score (1 = identical)", "synthetic": m.get("fidelity_score"),
         "holdout": m.get("fidelity_ceiling"), "limit": thresholds.get("fidelity_score"), "direction": "min"},
        {"figure": "identical-match share", "synthetic": m.get("identical_match_share"),
         "holdout": m.get("holdout_identical_match_share"), "limit": thresholds.get("identical_match_share"), "direction": "max"},
        {"figure": "DCR share (0.5 ideal)", "synthetic": p.get("dcr_share"), "holdout": 0.5,
         "limit": thresholds.get("dcr_share"), "direction": "max"},
        {"figure": "5th-percentile DCR", "synthetic": p.get("dcr_p5"), "holdout": p.get("holdout_dcr_p5"),
         "limit": None, "direction": "min"},
        {"figure": "near-match share", "synthetic": p.get("near_match_share"),
         "holdout": p.get("holdout_near_match_share"), "limit": thresholds.get("near_match_share"), "direction": "max"},
        {"figure": "5th-percentile NNDR", "synthetic": p.get("nndr_p5"), "holdout": p.get("holdout_nndr_p5"),
         "limit": None, "direction": "min"},
        {"figure": "membership-inference AUC (0.5 = chance)", "synthetic": p.get("membership_auc"), "holdout": 0.5,
         "limit": thresholds.get("membership_auc"), "direction": "max"},
        {"figure": "real PII values in output", "synthetic": m.get("pii_value_overlap"), "holdout": None,
         "limit": 0, "direction": "max"},
        {"figure": "rows reproducing a rare record", "synthetic": rare.get("synthetic_rows"),
         "holdout": rare.get("holdout_rows"), "limit": thresholds.get("rare_combination_exposure"), "direction": "max"},
    ]


def check_table_rows(result: GateResult) -> list[dict[str, Any]]:
    """One row per check (hard failures first), JSON-safe, for a Prefect table artifact."""
    order = {"FAIL": 0, "warn": 1, "pass": 2}
    rows = []
    for c in sorted(result.checks, key=lambda c: order[_status(c)]):
        rows.append(
            jsonable(
                {
                    "check": c.name,
                    "category": c.category,
                    "status": _status(c),
                    "hard": c.hard,
                    "value": c.value,
                    "threshold": c.threshold,
                    "detail": c.detail,
                }
            )
        )
    return rows


def markdown_summary(result: GateResult, title: str | None = None) -> str:
    """Verdict, failures and key figures as Markdown, for a Prefect markdown artifact."""
    lines = []
    verdict = "PASS: published" if result.passed else "FAIL: quarantined, nothing published"
    lines.append(f"## {html.escape(title) + ': ' if title else ''}gate {verdict}")
    lines.append("")
    n_hard = sum(c.hard for c in result.checks)
    lines.append(f"{len(result.checks)} checks ({n_hard} hard), {len(result.failures)} hard failures, "
                 f"{len(result.warnings)} warnings.")
    if result.failures:
        lines.append("")
        lines.append("**Failed:**")
        for c in result.failures:
            lines.append(f"- `{c.name}`: {c.detail or 'failed'} (value {_fmt(c.value)}, limit {_fmt(c.threshold)})")
    if result.warnings:
        lines.append("")
        lines.append("**Warnings (soft checks):**")
        for c in result.warnings:
            lines.append(f"- `{c.name}`: {c.detail or 'below target'}")
    lines.append("")
    lines.append("| figure | synthetic | holdout (baseline) | limit |")
    lines.append("|---|---|---|---|")
    for f in key_figures(result):
        lines.append(f"| {f['figure']} | {_fmt(f['synthetic'])} | {_fmt(f['holdout'])} | {_fmt(f['limit'])} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Plots


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_column_scores(shapes: dict[str, dict[str, float]]) -> str | None:
    """Bar chart of each column's shape score, synthetic vs the holdout ceiling."""
    if not shapes:
        return None
    plt = _pyplot()
    names = list(shapes)
    syn = [shapes[n]["synthetic"] for n in names]
    hold = [shapes[n]["holdout"] for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names) + 2), 3.2))
    x = np.arange(len(names))
    ax.bar(x - 0.2, hold, 0.4, label="holdout (ceiling)", color=_HOLD, alpha=0.7)
    ax.bar(x + 0.2, syn, 0.4, label="synthetic", color=_SYN)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(min(0.5, min(syn + hold) - 0.05), 1.0)
    ax.set_ylabel("shape score")
    ax.set_title("Column shapes vs the train split (1 = identical)")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def plot_marginals(prep, shapes: dict[str, dict[str, float]], min_label_count: int = 5) -> str | None:
    """Small multiples: real train vs synthetic distribution of each modeled column.

    A category is named on an axis only when at least ``min_label_count`` train rows hold it:
    the report is published, and a rare category's name may identify the person behind it.
    """
    cols = prep.columns[:MAX_MARGINAL_PLOTS]
    if not cols:
        return None
    plt = _pyplot()
    import matplotlib.dates as mdates

    ncols = 4
    nrows = math.ceil(len(cols) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat[len(cols):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, cols):
        score = shapes.get(name, {}).get("synthetic")
        if name in prep.num_cols:
            i = prep.num_cols.index(name)
            real, syn = prep.num["train"][:, i], prep.num["synthetic"][:, i]
            r, s = real[~np.isnan(real)], syn[~np.isnan(syn)]
            is_dt = prep.kinds.get(name) == ColumnKind.DATETIME
            if is_dt:  # prepared datetimes are epoch seconds; matplotlib dates are epoch days,
                # within years 1..9999 (a 9999-12-31 sentinel plus axis margins would not be)
                r = np.clip(r / 86_400.0, _MPL_FIRST_DAY, _MPL_LAST_DAY)
                s = np.clip(s / 86_400.0, _MPL_FIRST_DAY, _MPL_LAST_DAY)
            both = np.concatenate([r, s])
            if len(both):
                lo, hi = np.percentile(both, [0.5, 99.5])
                if not is_dt and np.all(both == np.round(both)) and hi - lo <= 60:
                    bins = np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.0)  # one bar per integer
                else:
                    if hi <= lo:
                        lo, hi = lo - 0.5, hi + 0.5
                    bins = np.linspace(lo, hi, 31)
                lo, hi = bins[0], bins[-1]
                # a side with no values (a 99 %-null column in a small sample) draws no bars: a
                # density of nothing divides by zero
                if len(r):
                    ax.hist(np.clip(r, lo, hi), bins=bins, density=True, histtype="stepfilled", alpha=0.45,
                            color=_REAL, label="real train")
                if len(s):
                    ax.hist(np.clip(s, lo, hi), bins=bins, density=True, histtype="step", lw=1.6,
                            color=_SYN, label="synthetic")
            if is_dt:
                if len(both):
                    ax.set_xlim(lo, hi)
                ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=2, maxticks=4))
                ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
            ax.set_yticks([])
            nulls = (np.isnan(real).mean(), np.isnan(syn).mean() if len(syn) else 0.0)
        else:
            j = prep.cat_cols.index(name)
            levels = prep.cat_levels[j]
            counts = prep.cat_counts("train", j)
            shown = [k for k in np.argsort(-counts, kind="stable")
                     if counts[k] >= min_label_count or levels[k] is None][:8]
            mapping = np.full(len(levels), len(shown))  # everything else: one "(other)" bar
            mapping[shown] = np.arange(len(shown))
            n_l = len(shown) + 1
            cr, cs = mapping[prep.cat["train"][:, j]], mapping[prep.cat["synthetic"][:, j]]
            pr = np.bincount(cr, minlength=n_l) / max(len(cr), 1)
            ps = np.bincount(cs, minlength=n_l) / max(len(cs), 1)
            if pr[-1] == 0 and ps[-1] == 0:
                n_l -= 1
                pr, ps = pr[:-1], ps[:-1]
            x = np.arange(n_l)
            ax.bar(x - 0.2, pr, 0.4, color=_REAL, alpha=0.6, label="real train")
            ax.bar(x + 0.2, ps, 0.4, color=_SYN, label="synthetic")
            labels = ["(null)" if levels[k] is None else str(levels[k])[:12] for k in shown]
            labels += ["(other)"] * (n_l - len(shown))
            ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
            nulls = None
        title = f"{name}"
        if score is not None:
            title += f"  ({score:.2f})"
        if nulls and max(nulls) > 0:
            title += f"\nnull {nulls[0]:.0%} real / {nulls[1]:.0%} synth"
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=9)
    fig.suptitle("Real train vs synthetic marginals (shape score in brackets)", fontsize=11, y=1.0)
    fig.tight_layout()
    return _png(fig)


def plot_correlations(rho: dict[str, Any], pairs: list[dict[str, Any]], columns: list[str]) -> str | None:
    """Left: Spearman correlation difference (synthetic - real) of the numeric columns.
    Right, when categoricals exist: how far each pair's trend score falls short of the holdout's
    (0 = as faithful as fresh real data; sampling noise in big contingency tables cancels)."""
    plt = _pyplot()
    num_cols = list(rho.get("columns", []))
    has_corr = len(num_cols) >= 2
    has_pairs = bool(pairs) and any(p["metric"] == "contingency" for p in pairs)
    if not has_corr and not has_pairs:
        return None
    n_panels = int(has_corr) + int(has_pairs)
    size = max(4.5, min(0.42 * max(len(num_cols), len(columns)) + 2, 9))
    fig, axes = plt.subplots(1, n_panels, figsize=(size * n_panels, size * 0.85), squeeze=False)
    k = 0
    if has_corr:
        ax = axes[0, k]
        k += 1
        diff = np.asarray(rho["synthetic"]) - np.asarray(rho["train"])
        im = ax.imshow(diff, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(num_cols)), num_cols, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(num_cols)), num_cols, fontsize=7)
        if len(num_cols) <= 12:
            for a in range(len(num_cols)):
                for b in range(len(num_cols)):
                    ax.text(b, a, f"{diff[a, b]:+.2f}", ha="center", va="center", fontsize=6)
        ax.set_title("Spearman correlation: synthetic - real", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if has_pairs:
        ax = axes[0, k]
        idx = {c: i for i, c in enumerate(columns)}
        mat = np.full((len(columns), len(columns)), np.nan)
        for p in pairs:
            if p["a"] in idx and p["b"] in idx:
                gap = max(0.0, p["holdout"] - p["synthetic"])
                mat[idx[p["a"]], idx[p["b"]]] = mat[idx[p["b"]], idx[p["a"]]] = gap
        im = ax.imshow(mat, cmap="Reds", vmin=0, vmax=max(0.2, float(np.nanmax(mat)) if np.isfinite(mat).any() else 0.2))
        ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(columns)), columns, fontsize=7)
        ax.set_title("Pair trends: shortfall vs the holdout ceiling (0 = as good as real)", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _png(fig)


def plot_distances(arrays: dict[str, np.ndarray]) -> str | None:
    """DCR to the train split (synthetic vs holdout rows) and the NNDR distributions."""
    if not arrays or "dcr_synthetic_train" not in arrays:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    s, h = arrays["dcr_synthetic_train"], arrays["dcr_holdout_train"]
    both = np.concatenate([s, h])
    hi = float(np.percentile(both, 99.5)) if len(both) else 1.0
    bins = np.linspace(0, hi if hi > 0 else 1.0, 41)
    ax = axes[0]
    ax.hist(np.clip(h, 0, bins[-1]), bins=bins, density=True, alpha=0.45, color=_HOLD, label="holdout → train (baseline)")
    ax.hist(np.clip(s, 0, bins[-1]), bins=bins, density=True, histtype="step", lw=1.8, color=_SYN, label="synthetic → train")
    for arr, color in ((h, _HOLD), (s, _SYN)):
        if len(arr):
            ax.axvline(np.percentile(arr, 5), color=color, ls="--", lw=1)
    ax.set_title("Distance to the closest train row (dashed: 5th percentile)", fontsize=10)
    ax.set_xlabel("encoded distance (1 = one category differs)")
    ax.legend(fontsize=8)
    ax = axes[1]
    nb = np.linspace(0, 1, 31)
    ax.hist(arrays["nndr_holdout"], bins=nb, density=True, alpha=0.45, color=_HOLD, label="holdout")
    ax.hist(arrays["nndr_synthetic"], bins=nb, density=True, histtype="step", lw=1.8, color=_SYN, label="synthetic")
    ax.set_title("Nearest / second-nearest train distance (NNDR)", fontsize=10)
    ax.set_xlabel("NNDR (near 0 singles out one record)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


# ----------------------------------------------------------------------------------------------
# Writing


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.verdict{font-size:26px;font-weight:700;padding:16px 20px;border-radius:8px;margin:16px 0}
.verdict.pass{background:#e3f6e5;color:#11632a;border:2px solid #2e9d4b}
.verdict.fail{background:#fde7e7;color:#8a1313;border:2px solid #d33}
.sub{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.st-pass{color:#11632a;font-weight:600}.st-FAIL{color:#fff;background:#d33;font-weight:700}.st-warn{color:#8a5a00;background:#fff3cd;font-weight:600}
img{max-width:100%;height:auto;display:block;margin:8px 0}
ul.fail li{color:#8a1313;margin:4px 0}
details{margin:8px 0}summary{cursor:pointer;color:#11632a}
"""


def _table(headers: list[str], rows: list[list[Any]], classes: list[list[str]] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"]
    for r, row in enumerate(rows):
        cells = []
        for c, v in enumerate(row):
            cls = classes[r][c] if classes else ""
            if not cls and isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                cls = "num"
            cells.append(f'<td class="{cls}">{html.escape(_fmt(v))}</td>' if cls else f"<td>{html.escape(_fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _short(v: Any, limit: int = 60) -> Any:
    """Long observed values (a column list) are cut for the table; report.json has them whole."""
    if isinstance(v, str) and len(v) > limit:
        return v[: limit - 1] + "…"
    return v


def _img(b64: str | None, alt: str) -> str:
    if not b64:
        return f'<p class="sub">({html.escape(alt)}: nothing to plot)</p>'
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _ge_summary(ge: dict[str, Any] | None) -> dict[str, Any] | None:
    if not ge:
        return None
    failed = []
    for res in ge.get("results", []):
        if not res.get("success"):
            cfg = res.get("expectation_config", {})
            failed.append({"type": cfg.get("type"), "column": cfg.get("kwargs", {}).get("column")})
    return {"success": ge.get("success"), "statistics": ge.get("statistics"), "failed": failed}


def _distance_summary(arrays: dict[str, np.ndarray] | None) -> dict[str, Any]:
    qs = [0, 1, 5, 25, 50, 75, 95, 99, 100]
    out = {}
    for name, arr in (arrays or {}).items():
        if len(arr):
            out[name] = {f"p{q}": float(v) for q, v in zip(qs, np.percentile(arr, qs))}
    return out


def build_report_json(result: GateResult, title: str, extra: dict | None = None) -> dict[str, Any]:
    """Everything in ``report.json``: verdict, checks, every metric, GE and distance summaries."""
    return jsonable(
        {
            "title": title,
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "verdict": "pass" if result.passed else "fail",
            **result.to_dict(),
            "key_figures": key_figures(result),
            "great_expectations": _ge_summary(result.artifacts.get("great_expectations")),
            "distance_distributions": _distance_summary(result.artifacts.get("privacy_distances")),
            "extra": extra or {},
        }
    )


def render_html(
    result: GateResult,
    real_train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    title: str,
    extra: dict | None = None,
) -> str:
    """The self-contained HTML report."""
    from validation.columns import prepare_tables

    m = result.metrics
    fid = m.get("fidelity", {})
    shapes = fid.get("column_shapes", {})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}: {'PASS' if result.passed else 'FAIL'}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<div class='sub'>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}. "
        f"Rows: train {_fmt(len(real_train))}, holdout {_fmt(len(holdout))}, synthetic {_fmt(len(synthetic))}.</div>",
    ]
    if result.passed:
        parts.append("<div id='verdict' class='verdict pass'>PASS: the synthetic table may be published</div>")
    else:
        parts.append("<div id='verdict' class='verdict fail'>FAIL: quarantined, nothing was published</div>")
        parts.append("<ul class='fail'>")
        for c in result.failures:
            parts.append(
                f"<li><b>{html.escape(c.name)}</b> ({c.category}): {html.escape(c.detail or 'failed')}"
                f" (value {html.escape(_fmt(c.value))}, limit {html.escape(_fmt(c.threshold))})</li>"
            )
        parts.append("</ul>")
    n_hard = sum(c.hard for c in result.checks)
    parts.append(
        f"<p>{len(result.checks)} checks, {n_hard} of them hard (a hard failure quarantines the run); "
        f"{len(result.failures)} hard failures, {len(result.warnings)} warnings. The holdout is real data the "
        "generator never saw: its scores are the ceiling for fidelity and the baseline for privacy.</p>"
    )

    parts.append("<h2>Key figures</h2>")
    parts.append(_table(
        ["figure", "synthetic", "holdout (baseline / ceiling)", "limit"],
        [[f["figure"], f["synthetic"], f["holdout"], f["limit"]] for f in key_figures(result)],
    ))

    parts.append("<h2>Checks</h2>")
    rows = check_table_rows(result)
    # Passing schema expectations are many and dull: fold them away below the others.
    shown = [r for r in rows if not (r["category"] == "schema" and r["status"] == "pass")]
    folded = [r for r in rows if r["category"] == "schema" and r["status"] == "pass"]

    def check_table(rs: list[dict[str, Any]]) -> str:
        return _table(
            ["check", "group", "status", "hard", "value", "limit", "detail"],
            [[r["check"], r["category"], r["status"], r["hard"], _short(r["value"]), r["threshold"], r["detail"]]
             for r in rs],
            [["", "", f"st-{r['status']}", "", "num", "num", ""] for r in rs],
        )

    parts.append(check_table(shown))
    if folded:
        parts.append(f"<details><summary>{len(folded)} schema expectations passed (Great Expectations suite "
                     "generated from the profile)</summary>")
        parts.append(check_table(folded))
        parts.append("</details>")

    prep = prepare_tables({"train": real_train, "holdout": holdout, "synthetic": synthetic}, schema)
    parts.append("<h2>Fidelity</h2>")
    parts.append(
        f"<p>Overall score {_fmt(fid.get('score'))} (holdout ceiling {_fmt(fid.get('ceiling'))}); column shapes "
        f"{_fmt(fid.get('column_shape_score'))} (ceiling {_fmt(fid.get('column_shape_ceiling'))}), pair trends "
        f"{_fmt(fid.get('pair_trend_score'))} (ceiling {_fmt(fid.get('pair_trend_ceiling'))}).</p>"
    )
    if fid.get("tstr"):
        t = fid["tstr"]
        parts.append(
            f"<p>Train on synthetic, test on real ({html.escape(str(t.get('target')))}, {t.get('metric')}): "
            f"{_fmt(t.get('tstr'))} vs train on real {_fmt(t.get('trtr'))}.</p>"
        )
    parts.append(_img(plot_column_scores(shapes), "column shape scores"))
    rare_k = int(m.get("config", {}).get("rare_k", 5))
    parts.append(_img(plot_marginals(prep, shapes, min_label_count=rare_k), "marginal distributions"))
    if len(prep.columns) > MAX_MARGINAL_PLOTS:
        parts.append(f"<p class='sub'>First {MAX_MARGINAL_PLOTS} of {len(prep.columns)} columns shown.</p>")
    rho = result.artifacts.get("correlations") or {"columns": []}
    parts.append(_img(plot_correlations(rho, fid.get("pair_trends", []), prep.columns), "correlation difference heatmap"))
    worst = sorted(fid.get("pair_trends", []), key=lambda p: p["synthetic"])[:12]
    if worst:
        parts.append("<p>Weakest pair trends:</p>")
        parts.append(_table(["column a", "column b", "metric", "synthetic", "holdout ceiling"],
                            [[p["a"], p["b"], p["metric"], p["synthetic"], p["holdout"]] for p in worst]))

    parts.append("<h2>Privacy</h2>")
    p = m.get("privacy", {})
    parts.append(
        "<p>Distances are Euclidean on an encoding fitted on the train split (numerics through the "
        "train split's empirical CDF, categories one-hot at distance 1). Synthetic rows should be no "
        "closer to the train split than the holdout's real rows are.</p>"
    )
    parts.append(_img(plot_distances(result.artifacts.get("privacy_distances", {})), "distance distributions"))
    rare = p.get("rare_combinations", {})
    out = p.get("outliers", {})
    parts.append(_table(
        ["metric", "synthetic", "holdout baseline"],
        [
            ["DCR share (equal-size train piece vs holdout)", p.get("dcr_share"), 0.5],
            ["median DCR", p.get("dcr_median"), p.get("holdout_dcr_median")],
            ["median NNDR", p.get("nndr_median"), p.get("holdout_nndr_median")],
            ["rows with DCR = 0", p.get("synthetic_exact_dcr_zero_share"), p.get("holdout_exact_dcr_zero_share")],
            ["near-match share (DCR ≤ %s, the holdout's %s quantile)" % (
                _fmt(p.get("near_match_distance")), _fmt(p.get("near_match_quantile"))),
             p.get("near_match_share"), p.get("holdout_near_match_share")],
            ["membership AUC", p.get("membership_auc"), 0.5],
            ["rare-record rows (k = %s, QIs: %s)" % (rare.get("k"), ", ".join(rare.get("quasi_identifiers", [])) or "none"),
             rare.get("synthetic_rows"), rare.get("holdout_rows")],
            ["rows with a train outlier value", out.get("synthetic_rows"), out.get("holdout_rows")],
            ["real PII / free-text values found", m.get("pii_value_overlap"), None],
            ["real key values found", m.get("key_value_overlap"), None],
        ],
    ))
    if extra:
        parts.append("<h2>Run</h2>")
        parts.append(_table(["item", "value"], [[k, json.dumps(jsonable(v)) if isinstance(v, (dict, list)) else v]
                                                for k, v in extra.items()]))
    timing = m.get("timing_s")
    if timing:
        parts.append(f"<p class='sub'>Gate time: {html.escape(', '.join(f'{k} {v:.2f} s' for k, v in timing.items()))}.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    result: GateResult,
    real_train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    out_dir: str | Path,
    title: str,
    extra: dict | None = None,
) -> dict[str, Path]:
    """Write ``report.html`` and ``report.json`` into ``out_dir`` (created when missing).

    Each file is written to a temporary name and renamed, so a reader never sees half a report.
    Returns the two paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(build_report_json(result, title, extra), indent=2, allow_nan=False)
    page = render_html(result, real_train, holdout, synthetic, schema, title, extra)
    paths = {"html": out / "report.html", "json": out / "report.json"}
    for key, text in (("json", payload), ("html", page)):
        tmp = paths[key].with_suffix(paths[key].suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(paths[key])
    return paths
