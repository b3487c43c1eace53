"""The benchmark's timing logic: repeated fits in rounds, medians, and the speed-up table."""
from __future__ import annotations

import os


import pytest

from bench import run


class _Clock:
    """Fake contenders whose fit takes a scripted time and logs the order of fits."""

    def __init__(self, times: dict[str, list[float]]) -> None:
        self.times = {k: list(v) for k, v in times.items()}
        self.order: list[str] = []

    def build(self, name: str, epochs, args):
        clock = self

        class Contender:
            def fit(self, train, schema) -> None:
                clock.order.append(name)
                clock.now += clock.times[name].pop(0)

        return Contender()


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    c = _Clock({"vae": [0.6, 0.5], "gan": [4.0, 3.0], "sdv-tvae": [5.0, 4.0], "copula": []})
    c.now = 0.0

    class Measured:
        def __enter__(self):
            self.start, self.seconds, self.cpu_seconds, self.peak_mb = c.now, 0.0, 0.0, 0.0
            return self

        def __exit__(self, *exc):
            self.seconds = self.cpu_seconds = c.now - self.start

    monkeypatch.setattr(run, "measured", Measured)
    monkeypatch.setattr(run, "_build", c.build)
    return c


def _row(name: str, fit_s: float) -> dict:
    return {"table": "planes", "generator": name, "fit_s": fit_s, "fit_cpu_s": fit_s, "quality": 0.7,
            "column_shapes": 0.8, "pair_trends": 0.6}


def test_repeats_run_in_rounds_and_report_medians(clock) -> None:
    rows = [_row("vae", 0.9), _row("gan", 5.0), _row("copula", 0.3), _row("sdv-tvae", 9.0)]
    args = run._parse(["--repeats", "3"])
    run._repeat_fits(rows, None, None, args)
    # one round over every speed-compared contender, then the next; copula is fitted once only
    assert clock.order == ["vae", "gan", "sdv-tvae", "vae", "gan", "sdv-tvae"]
    by_name = {r["generator"]: r for r in rows}
    assert by_name["vae"]["fit_s_runs"] == [0.9, 0.6, 0.5] and by_name["vae"]["fit_s"] == pytest.approx(0.6)
    assert by_name["sdv-tvae"]["fit_s"] == pytest.approx(5.0)
    assert "fit_s_runs" not in by_name["copula"] and by_name["copula"]["fit_s"] == 0.3


def test_speedups_are_ratios_of_medians_with_every_fit_listed(clock) -> None:
    rows = [_row("vae", 0.9), _row("sdv-tvae", 9.0), _row("gan", 5.0)]
    run._repeat_fits(rows, None, None, run._parse(["--repeats", "3"]))
    (speedup,) = run._speedups(rows)  # gan has no CTGAN row: no pair
    assert speedup["ours"] == "vae" and speedup["reference"] == "sdv-tvae"
    assert speedup["fit_speedup"] == pytest.approx(5.0 / 0.6)
    assert speedup["ours_fits"] == [0.9, 0.6, 0.5] and speedup["reference_fits"] == [9.0, 5.0, 4.0]
    meta = {"command": "x", "date": "d", "cpu_count": 2, "threads": 2, "load_before": [0], "load_after": [0],
            "torch": "t", "sdv": "s", "rows": 10, "epochs": 1, "repeats": 3}
    markdown = run.to_markdown({"meta": meta, "rows": rows, "speedups": [speedup], "scale": []})
    assert "| planes | vae | sdv-tvae | 0.9 / 0.6 / 0.5 | 9.0 / 5.0 / 4.0 | 8.3x |" in markdown
    assert "median of 3 fits" in markdown


def test_defaults_use_every_core_and_three_fits(monkeypatch) -> None:
    monkeypatch.delenv("BENCH_THREADS", raising=False)
    full, quick = run._parse([]), run._parse(["--quick"])
    assert full.threads == (os.cpu_count() or 1) and full.repeats == 3
    assert quick.repeats == 1 and run._parse(["--quick", "--repeats", "2"]).repeats == 2
