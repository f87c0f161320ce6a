"""bench/run_all.py: runs a bench as a process, reads its FIGURE lines (or, for benches that print none yet,
their summary lines), judges each figure against its aim and rewrites only the README's figures block."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "bench" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module
    spec.loader.exec_module(module)
    return module


run_all = _load()


def test_figure_lines_are_read_with_their_units() -> None:
    out = "some words\nFIGURE settled_trades_per_s 1549 trades/s\nFIGURE rtu_wire_time_ratio 1.032 x\n"
    figures, units = run_all.parse("trades", out)
    assert figures == {"settled_trades_per_s": 1549.0, "rtu_wire_time_ratio": 1.032}
    assert units["settled_trades_per_s"] == "trades/s"


def test_benches_without_figure_lines_are_read_from_their_summaries() -> None:
    soak = "RSS: first 47.5 MB, peak 49.2 MB, last 49.0 MB; second half 48.9-49.2 MB (growth +0.0 MB); 60000 readings"
    assert run_all.parse("gateway-rss", soak)[0] == {"gateway_rss_peak_mb": 49.2, "gateway_rss_growth_mb": 0.0}


def test_a_missing_figure_is_not_measured_and_aims_are_judged() -> None:
    runs = {"trades": run_all.Run("trades", "python bench/bench_trades.py", figures={"settled_trades_per_s": 900.0},
                                  units={"settled_trades_per_s": "trades/s"}),
            "api": run_all.Run("api", "python bench/bench_api.py", problem="exit 1: boom")}
    by_what = {row[0]: row for row in run_all.rows(runs)}
    trades = by_what["settled trades (Buy: escrow → buyer, THBC → seller + fee) through LiteSVM"]
    assert trades[1:4] == ("900 trades/s", "≥ 1,000 /s (proposed)", "NOT met")
    assert by_what["api: authenticated order-book reads per second (50 orders a page)"][1] == \
        "not measured: exit 1: boom"


@pytest.mark.chain
def test_a_real_bench_runs_and_only_the_readme_block_is_rewritten(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    bench = run_all.Bench("trades", "bench_trades.py", quick=("--trades", "40"), quick_timeout_s=60)
    run = run_all.run_bench(bench, quick=True)
    assert run.problem is None and run.figures["settled_trades_per_s"] > 0
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{run_all.BEGIN}\nold table\n{run_all.END}\nafter\n")
    monkeypatch.setattr(run_all, "README", readme)
    run_all.write_readme(run_all.table({"trades": run}, "header line"))
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{run_all.END}\nafter\n")
    assert "old table" not in text and "| settled trades" in text and "header line" in text
