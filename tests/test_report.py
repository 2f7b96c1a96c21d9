import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from browser import visit
from probekit import ProbekitError
from probekit.probe import probe
from probekit.report import build_report

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
EVIL = "</script><script>window.pwned=1;alert(1)</script>"


@pytest.fixture(scope="module")
def site(tiny_series, tmp_path_factory):
    """A site built from results produced here: a tiny series, a benchmark with a hostile prompt."""
    root = tmp_path_factory.mktemp("report")
    bench = root / "bench.csv"
    bench.write_text("relation,template,subject,answer\n"
                     "capital,the capital of [X] is [MASK].,italy,rome\n"
                     "capital,the capital of [X] is [MASK].,france,paris\n"
                     f'capital,"{EVIL} of [X] is [MASK].",italy,rome\n'
                     "capital_reverse,the capital of [MASK] is [X].,rome,italy\n")
    sentences = root / "sentences.txt"
    sentences.write_text(f"the capital of italy is rome.\n{EVIL} the king.\nparis is a city.\tthe queen.\n")
    probe(str(tiny_series), [str(bench)], out=root / "results", sentences=str(sentences),
          say=lambda *_: None, progress=False)
    index = build_report(root / "results", root / "site", say=lambda *_: None)
    return index.parent


def test_site_has_the_pages_and_figures(site):
    for page in ("index.html", "benchmarks.html", "attention.html", "qkv.html"):
        assert (site / page).is_file(), page
    figures = {p.name for p in (site / "figures").iterdir()}
    assert {"loss.png", "loss.svg", "scores-bench.png", "scores-bench.svg", "heads-grid.png", "norms.png"} <= figures
    text = (site / "index.html").read_text()
    assert "checkpoint-8" in text and "fingerprint" in text


@pytest.mark.slow
@pytest.mark.parametrize("page", ["index.html", "benchmarks.html", "attention.html", "qkv.html"])
def test_pages_load_offline_without_errors(site, page):
    seen = visit((site / page).as_uri(), screenshot=ARTIFACTS / f"report-{page}.png" if page == "benchmarks.html" else None)
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.outside_requests == [] and seen.failed_requests == []
    assert seen.broken_images == []
    assert seen.dialogs == [] and seen.globals_set == []


@pytest.mark.slow
def test_head_view_draws(site):
    seen = visit((site / "attention.html").as_uri(), svg_selector=".probekit-headview svg *")
    assert seen.svg_elements > 20 and not seen.console_errors


def test_hostile_prompt_is_text_not_markup(site):
    for page in ("benchmarks.html", "attention.html"):
        html = (site / page).read_text()
        assert "<script>window.pwned" not in html
    assert "&lt;/script&gt;&lt;script&gt;window.pwned" in (site / "benchmarks.html").read_text()


def test_results_without_predictions_are_refused(tmp_path):
    with pytest.raises(ProbekitError, match="no predictions.parquet"):
        build_report(tmp_path, tmp_path / "site")


def test_cli_report(site, tmp_path):
    results = site.parent.parent / "results"
    proc = subprocess.run([sys.executable, "-m", "probekit", "report", str(results), "--site", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("index.html")
