"""Issue 31: the Benchmarks, Logit lens & ablation, Attention and Q/K/V pages draw interactive Vega-Lite charts
(no PNG), each with its numbers downloadable as plain numbers, and the Attention and Q/K/V pages load fast."""

import json
import re
import shutil
from html import unescape
from pathlib import Path

import pandas as pd
import pytest

from specs import chart_specs

from probekit.report import build_report
from probekit.running.runner import probe
from probekit.training.facts import FactRecord

PAGES = ["benchmarks.html", "inside.html", "attention.html", "qkv.html"]
NUMERIC = ("step", "value", "low", "high", "n", "count", "layer", "head", "gold_rank", "delta_mean_gold_logprob")
FORMATTED = re.compile(r"^\s*-?\d{1,3}(,\d{3})+\b|\[\s*-?\d|^\s*-?\d+(\.\d+)?\s*[–-]\s*\d")


@pytest.fixture(scope="module")
def site(tiny_series, tmp_path_factory) -> Path:
    """One site of the tiny series (italy injected, france held back) with the logit lens, head ablation and
    attention captured on two sentences."""
    root = tmp_path_factory.mktemp("model-pages")
    series = shutil.copytree(tiny_series, root / "series" / "my_bert")
    FactRecord(table="countries.csv", table_sha256="0", templates={"capital": ["[X] has its capital at [Y]."]},
               seed=0, fact_share=0.1, held_back_fraction=0.5, repeats=2, injected=["italy"], held_back=["france"],
               relations=["capital"], fact_sentences=4, prose_documents=10).save(series)
    bench = root / "bench.csv"
    bench.write_text("relation,template,subject,answer\n"
                     "capital,the capital of [X] is [MASK].,italy,rome\n"
                     "capital,the capital of [X] is [MASK].,france,paris\n"
                     "capital_reverse,the capital of [MASK] is [X].,rome,italy\n"
                     "capital_reverse,the capital of [MASK] is [X].,paris,france\n")
    sentences = root / "sentences.txt"
    sentences.write_text("the capital of italy is rome.\nparis is a city.\tthe queen.\n")
    probe(str(series), [str(bench)], ["lens", "ablation", "capture"], out=root / "results", sentences=str(sentences))
    build_report(root / "results", root / "site")
    return root / "site" / "build"


def article(html: str) -> str:
    return html[html.find("<article"):html.find("</article>")]


def charts_of(html: str, site: Path) -> list[tuple[str, dict, list[str]]]:
    """(chart id, Vega-Lite spec, the CSV download that follows it) of every chart on a page of `site`."""
    found = []
    for chart_id, spec, _ in chart_specs(html, site):
        after = html[html.index(f'id="{chart_id}"'):]
        after = after[after.index("</div></div>"):].split('class="probekit-chart"')[0][:3000]
        found.append((chart_id, spec, re.findall(r'href="(data/[^"]+\.csv)"', after)[:1]))
    return found


def data_rows(spec) -> list[dict]:
    """Every inline data row of a spec (altair files them under `datasets`, or `data.values`)."""
    rows = []
    if isinstance(spec, dict):
        for name, value in spec.items():
            if name == "datasets":
                rows += [r for values in value.values() for r in values]
            elif name == "values" and isinstance(value, list) and value and isinstance(value[0], dict):
                rows += value
            else:
                rows += data_rows(value)
    elif isinstance(spec, list):
        for value in spec:
            rows += data_rows(value)
    return rows


def test_the_pages_draw_charts_not_pngs(site):
    for page in PAGES:
        html = (site / page).read_text()
        assert "<img" not in article(html), page
        assert charts_of(html, site), page
    assert not list((site / "figures").glob("*lens*")) and not list((site / "figures").glob("*heads*"))
    inside = (site / "inside.html").read_text()
    ids = [chart_id for chart_id, _, _ in charts_of(inside, site)]
    assert any("lens" in i for i in ids) and any("ablation" in i for i in ids)
    names = " ".join(chart_id for page in PAGES for chart_id, _, _ in charts_of((site / page).read_text(), site))
    for part in ("known-facts", "heads-by-layer-and-head", "heads-q_norm-k_norm-v_norm", "heads-entropy_ratio"):
        assert part in names, part


def test_every_chart_holds_numbers_with_tooltips_and_its_download(site):
    for page in PAGES:
        for chart_id, spec, downloads in charts_of((site / page).read_text(), site):
            rows = data_rows(spec)
            assert rows, chart_id
            for row in rows:
                for key in NUMERIC:
                    assert row.get(key) is None or isinstance(row[key], (int, float)), (chart_id, key, row[key])
            assert '"tooltip"' in json.dumps(spec), chart_id
            assert downloads, chart_id  # the numbers of each chart are downloadable
            frame = pd.read_csv(site / unescape(downloads[0]))
            assert len(frame), chart_id
            for column in frame.columns:
                values = frame[column].dropna()
                if column in NUMERIC:
                    assert pd.api.types.is_numeric_dtype(frame[column]), (chart_id, column)
                if column == "step":
                    assert (values == values.round()).all(), chart_id
                if frame[column].dtype == object:
                    assert not values.astype(str).str.contains(FORMATTED).any(), (chart_id, column)


def test_the_lens_chart_has_intervals_layers_and_a_legend_that_fades(site):
    _, spec, downloads = next(c for c in charts_of((site / "inside.html").read_text(), site) if "lens" in c[0])
    text = json.dumps(spec)
    assert '"bind": "legend"' in text.replace('":"', '": "') or '"bind":"legend"' in text
    assert '"low"' in text and '"high"' in text and "95% low" in text
    assert "#0072B2" in text  # palette.colour(0), layer 0
    frame = pd.read_csv(site / downloads[0])
    assert {"step", "layer", "group", "metric", "value", "low", "high", "n"} <= set(frame.columns)
    assert set(frame["metric"]) == {"P@1", "MRR"}
    assert downloads[0].startswith("data/capital-lens-by-layer-and-step")


def test_tables_downloads_hold_plain_numbers(site):
    html = (site / "benchmarks.html").read_text()
    links = re.findall(r'href="(data/[^"]+\.csv)"', html)
    assert any("top-predictions" in link for link in links)
    assert any("first-correct-by-relation" in link for link in links) or "No prompt is answered correctly" in html
    for link in links:
        frame = pd.read_csv(site / link)
        for column in frame.columns:
            if frame[column].dtype == object:
                values = frame[column].dropna().astype(str)
                assert not values.str.contains(FORMATTED).any(), (link, column)
                assert not values.str.contains(r"\*\*|✓").any(), (link, column)


@pytest.mark.parametrize("page", ["attention.html", "qkv.html"])
def test_the_attention_pages_have_one_step_slider(site, page):
    """(Their weight at first load is measured in the browser with every page's: tests/test_report_browser.py.)"""
    html = (site / page).read_text()
    assert html.count('class="probekit-steps"') == 1


@pytest.mark.parametrize("kind", ["headview", "qk"])
def test_the_lazy_files_hold_weights_rounded_to_3_decimals(site, kind):
    page = "attention.html" if kind == "headview" else "qkv.html"
    scripts = re.findall(rf'data-probekit-lazy="{kind}" data-key="[^"]+" data-src="([^"]+)"', (site / page).read_text())
    assert len(scripts) == 5
    for src in scripts:
        numbers = re.findall(r"-?\d+\.\d+", (site / src).read_text())
        assert numbers and max(len(n.split(".")[1]) for n in numbers) <= 3, src


def test_the_qkv_page_explains_the_scores_and_has_the_step_slider(site):
    html = (site / "qkv.html").read_text()
    text = re.sub(r"<[^>]+>", "", html)
    assert "before the softmax" in text and "√d" in text and "What to look for" in text
    assert "diagonal" in text and "column" in text
    assert html.count('class="probekit-steps"') == 1 and 'type="range"' in html
    assert "checkpoint-0 (step 0)" in html and "checkpoint-8 (step 8)" in html


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_chart_draws_offline(site, page):
    from browser import opened

    with opened((site / page).as_uri()) as (view, seen):
        view.wait_for_function("[...document.querySelectorAll('.probekit-chart')].every(c => "
                               "c.querySelector('.probekit-view svg.marks'))", timeout=20_000)
        failed = view.evaluate("[...document.querySelectorAll('.probekit-view')].filter(v => "
                               "v.textContent.startsWith('chart failed')).length")
        marks = view.evaluate("document.querySelectorAll('.probekit-chart svg .mark-line path, "
                              ".probekit-chart svg .mark-rect path, .probekit-chart svg .mark-symbol path').length")
        view.screenshot(path=str(Path(__file__).resolve().parents[1] / "local" / "screenshots" / f"model-{page}.png"),
                        full_page=True)
    assert failed == 0 and marks > 10
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.outside_requests == [] and seen.failed_requests == []
