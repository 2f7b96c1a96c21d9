"""The pages inside the model — Causal tracing, Syntax, Syntax probes — draw every figure as an interactive
Vega-Lite chart: numeric data with the right steps, a step slider in the spec for the maps over steps, the
tracing map centred at 0 with the by-construction site marked, colours and dashes from `probekit.palette`
only, and every chart's and table's numbers downloadable as plain numbers. Built from the hand-made fixture
`tests/claims.py` (no training), completed with the tables it lacks (per-head scores, knockout, agreement, the
structural probe)."""

from __future__ import annotations

import re
from pathlib import Path

import claims
from specs import vega_lite_specs
import numpy as np
import pandas as pd
import pytest

from probekit import palette
from probekit.analyses.findings import build
from probekit.core.schema import CONTROL

PAGES = {"tracing": "tracing.md", "syntax": "syntax.md", "probes": "syntax-probes.md"}


def extra_tables() -> dict:
    """The fixture's tables and the ones it lacks, each with a random-init row."""
    steps = [None, *claims.STEPS]
    tables = claims.tables()
    heads = [{**claims.checkpoint(s), "treebank": "t", "layer": layer, "head": head, "baseline_kind": "",
              "relation": relation, "direction": "dep->head", "n": 50, "correct": 10,
              "accuracy": 0.1 * (layer + 1) + 0.05 * head + (s or 0) / 1000}
             for s in steps for layer in (0, 1) for head in (0, 1) for relation in ("det", "nsubj")]
    tables["syntax_heads"] = pd.DataFrame(heads)
    distance = claims.probe_scores()
    distance = distance[distance["probe"] == "upos"].assign(probe="distance", metric="uuas")
    tables["probe_scores"] = pd.concat([tables["probe_scores"], distance], ignore_index=True)
    traced = [None, 0, 200, 400]
    tracing = tables["tracing_scores"]
    knockout = [{**claims.checkpoint(s), "benchmark": "facts", "relation": "capital", "group": "injected",
                 "method": "exact", "component": "knockout", "layer": layer, "role": "mask", "n": 20,
                 "effect": np.nan, "effect_low": np.nan, "effect_high": np.nan, "restoration": 0.5 + 0.1 * layer,
                 "restoration_low": 0.4 + 0.1 * layer, "restoration_high": 0.6 + 0.1 * layer, "gap": np.nan,
                 "gap_low": np.nan, "gap_high": np.nan, "skipped": 0, "n_seeds": 1, "by_construction": False}
                for s in traced for layer in (0, 1)]
    tables["tracing_scores"] = pd.concat([tracing, pd.DataFrame(knockout)], ignore_index=True)
    tables["tracing_head_scores"] = pd.DataFrame([
        {**claims.checkpoint(s), "benchmark": "facts", "relation": "capital", "group": "injected", "method": "exact",
         "layer": layer, "head": head, "n": 20, "effect": 0.01 * (layer + head) * ((s or 0) / 200),
         "effect_low": 0.0, "effect_high": 0.05, "restoration": np.nan, "restoration_low": np.nan,
         "restoration_high": np.nan, "gap": 0.9, "gap_low": 0.85, "gap_high": 0.95, "n_seeds": 1}
        for s in traced for layer in (0, 1) for head in (0, 1)])
    tables["tracing_agreement"] = pd.DataFrame([
        {**claims.checkpoint(s), "benchmark": "facts", "component": c, "n": 40, "spearman": 0.8, "n_sites": 4,
         "spearman_sites": 0.9} for s in traced for c in ("resid", "attn")])
    tables["findings"] = build(claims.tables())
    return tables


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    from probekit.report import probes, syntax, tracing
    from probekit.report.page import Page

    root = tmp_path_factory.mktemp("inside") / "docs"
    page = Page(root)
    tables = extra_tables()
    for module in (tracing, syntax, probes):
        module.section(page, tables, None)
    page.write()
    return root


def specs(docs: Path, page: str) -> list[dict]:
    text = (docs / PAGES[page]).read_text()
    found = vega_lite_specs(text, docs)
    assert text.count('class="probekit-chart"') == len(found)
    return found


def walk(node):
    """Every (key, value) pair in a spec, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def values_of(spec: dict) -> list[dict]:
    return [row for key, value in walk(spec) if key == "data" and isinstance(value, dict)
            for row in value.get("values", [])]


def params_of(spec: dict) -> dict:
    return {p["name"]: p for key, value in walk(spec) if key == "params" for p in value if "name" in p}


def slider_of(spec: dict) -> dict | None:
    return next((p for p in params_of(spec).values() if isinstance(p.get("bind"), dict)
                 and p["bind"].get("input") == "range"), None)


def downloads(docs: Path, page: str) -> list[Path]:
    names = re.findall(r"\(data/([^)]+\.csv)\)", (docs / PAGES[page]).read_text())
    return [docs / "data" / name for name in names]


def test_the_pages_draw_charts_not_pngs(docs):
    for page, md in PAGES.items():
        text = (docs / md).read_text()
        assert "probekit-chart" in text and "figures/" not in text and "probekit-steps" not in text, page
    assert not list((docs / "figures").glob("*.png"))
    assert len(specs(docs, "tracing")) == 2 and len(specs(docs, "syntax")) == 2 and len(specs(docs, "probes")) == 3


def test_the_tracing_map_is_one_chart_with_a_step_slider_centred_at_0_and_the_built_site_marked(docs):
    heatmap = next(s for s in specs(docs, "tracing") if slider_of(s))
    rows = values_of(heatmap)
    assert {r["step"] for r in rows} == {0.0, 200.0, 400.0}  # every traced step, the random-init row not one
    assert {r["component"] for r in rows} == {"resid", "attn", "mlp"}  # no knockout panel, none empty
    slider = slider_of(heatmap)
    assert (slider["bind"]["min"], slider["bind"]["max"], slider["value"]) == (0, 2, 2)  # the last step first
    assert any(f"== {slider['name']}" in str(v) for k, v in walk(heatmap) if k == "filter")
    scale = next(v["scale"] for k, v in walk(heatmap) if k == "color" and isinstance(v, dict)
                 and v.get("field") == "delta_p")
    assert scale["domainMid"] == 0 and scale["domain"][0] == -scale["domain"][1]
    assert scale["domain"][1] == pytest.approx(max(abs(r["delta_p"]) for r in rows))  # unclipped
    built = [r for r in rows if r["by_construction"]]
    assert {(r["component"], r["layer"], r["position"]) for r in built} == {("resid", 1, "[MASK]")}
    marks = [v for k, v in walk(heatmap) if k == "mark" and isinstance(v, dict)]
    assert any(m.get("text") == "by\nconstruction" for m in marks)
    assert any(m.get("fillOpacity") == 0 and m.get("strokeDash") for m in marks)  # outlined
    p = next(r for r in rows if (r["component"], r["layer"], r["position"], r["step"]) == ("attn", 1, "[MASK]", 400))
    assert (p["delta_p"], p["low"], p["high"], p["n"]) == pytest.approx((0.2, 0.18, 0.22, 20))
    tips = {t.get("title", t["field"]) for k, v in walk(heatmap) if k == "tooltip" and isinstance(v, list) for t in v}
    assert {"Δp", "95% low", "95% high", "prompts"} <= tips


def test_the_best_site_curve_has_its_band_the_random_init_model_and_a_legend_that_fades(docs):
    curve = next(s for s in specs(docs, "tracing") if not slider_of(s))
    rows = values_of(curve)
    injected = [r for r in rows if r["series"] == "injected"]
    assert [r["step"] for r in injected] == [0, 200, 400] and injected[-1]["value"] == pytest.approx(0.2)
    assert {r["series"] for r in rows} == {"injected", "random init"}
    legend = [p for p in params_of(curve).values() if p.get("bind") == "legend"]
    assert legend and legend[0]["select"]["fields"] == ["series"]
    x = [v for k, v in walk(curve) if k == "x" and isinstance(v, dict) and v.get("field") == "step"]
    assert x and all(v["type"] == "quantitative" and "scale" in v for v in x)  # the page's linear/log toggle


def test_the_syntax_charts_hold_the_steps_and_the_layer_map_has_a_step_slider(docs):
    curves, layers = specs(docs, "syntax")
    rows = values_of(curves)
    assert {r["series"] for r in rows} == {"best head", "fixed-offset baseline", "random init"}
    assert sorted({r["step"] for r in rows}) == claims.STEPS
    best = [r for r in rows if r["series"] == "best head"]
    assert [r["value"] for r in best] == pytest.approx([0.1, 0.2, 0.4, 0.6, 0.8])
    assert all(r["low"] < r["value"] < r["high"] and r["n"] == 50 for r in best)
    slider = slider_of(layers)
    assert slider and slider["bind"]["max"] == len(claims.STEPS) - 1 == slider["value"]
    cells = values_of(layers)
    assert sorted({r["step"] for r in cells}) == claims.STEPS and {r["relation"] for r in cells} == {"det"}
    assert next(r for r in cells if r["layer"] == 1 and r["step"] == 400)["accuracy"] == pytest.approx(0.65)


def test_the_probe_charts_hold_every_layer_and_step_and_the_structural_probe(docs):
    layers, maps, uuas = specs(docs, "probes")
    rows = values_of(layers)
    assert {r["layer"] for r in rows} == {"layer 0", "layer 1"} and sorted({r["step"] for r in rows}) == claims.STEPS
    assert {r["measure"] for r in rows} == {"score", "selectivity", "control task"}
    assert "measure" in params_of(layers)
    scale = next(v["scale"] for k, v in walk(maps) if k == "color" and isinstance(v, dict)
                 and v.get("field") == "selectivity")
    assert scale["domainMid"] == 0
    assert {r["series"] for r in values_of(uuas)} == {"UUAS, layer 0", "control task", "random init"}


def test_colours_and_dashes_come_from_the_palette(docs):
    colours = {*palette.PALETTE, palette.RANDOM_INIT[0], palette.BASELINE[0]}
    dashes = [palette.vega_dash(d) for d in (palette.SOLID, palette.DASHED, palette.DOTTED)]
    seen = 0
    for page in PAGES:
        for spec in specs(docs, page):
            for key, value in walk(spec):
                if key in ("color", "stroke", "fill") and isinstance(value, str) and value not in ("independent",
                                                                                                 "shared"):
                    assert value in colours, (page, key, value)
                    seen += 1
                if key == "strokeDash" and isinstance(value, list):
                    assert value in dashes, (page, value)
                if key == "range" and isinstance(value, list):
                    for item in value:
                        assert (item in dashes) if isinstance(item, list) else item in colours, (page, item)
                        seen += 1
    assert seen > 10
    tracing = specs(docs, "tracing")[1]
    ranges = [v["scale"]["range"] for k, v in walk(tracing) if k == "color" and isinstance(v, dict)
              and v.get("field") == "series"]
    assert ranges[0] == [palette.GROUP_STYLE["injected"][0], palette.RANDOM_INIT[0]]


def test_every_download_reads_as_plain_numbers(docs):
    for page in PAGES:
        files = downloads(docs, page)
        text = (docs / PAGES[page]).read_text()
        tables = len(re.findall(r"^\|---", text, flags=re.M))
        assert len(files) == text.count("probekit-chart") + tables, page  # every chart and table
        for path in files:
            frame = pd.read_csv(path)
            assert len(frame), path.name
            for column in frame.columns:
                if column == "step" or column.endswith("_step") or column in ("layer", "head", "n", "arcs"):
                    if frame[column].notna().all():
                        assert pd.api.types.is_integer_dtype(frame[column]), (path.name, column)
                if column in ("low", "high") or column.endswith(("_low", "_high")) or column in (
                        "delta_p", "accuracy", "score", "selectivity", "uuas", "share_left", "value"):
                    assert pd.api.types.is_numeric_dtype(frame[column]), (path.name, column)
                if frame[column].dtype == object:
                    assert not frame[column].astype(str).str.contains(r"\[|,\d{3}").any(), (path.name, column)
    names = {p.name for page in PAGES for p in downloads(docs, page)}
    assert {"capital-delta-p-by-site.csv", "capital-delta-p-best-site.csv", "capital-best-site-by-step.csv",
            "capital-top-heads-delta-p.csv", "capital-knockout-share-left.csv", "capital-sites-formed.csv",
            "tracing-agreement-spearman.csv", "syntax-best-head-accuracy-by-step.csv",
            "syntax-layer-accuracy-by-step.csv", "probes-by-layer-by-step.csv", "probes-uuas-by-step.csv"} <= names
    delta = pd.read_csv(docs / "data" / "capital-delta-p-by-site.csv")
    assert sorted(delta["step"].unique()) == [0, 200, 400] and delta["by_construction"].dtype == bool
    top = pd.read_csv(docs / "data" / "capital-top-heads-delta-p.csv")
    assert list(top.columns) == ["layer", "head", "step", "delta_p", "low", "high", "n"]


def test_the_pages_keep_their_words(docs):
    tracing = (docs / "tracing.md").read_text()
    assert "gives Δp +0.200 [+0.180, +0.220] at step 400" in tracing.replace("&#91;", "[").replace("&#93;", "]")
    assert "**Top heads**" in tracing and "**Attention knockout**" in tracing and "step 400" in tracing
    syntax = (docs / "syntax.md").read_text()
    assert "for 1 of 1 relations (det dep->head)" in syntax and "## Relation × layer at every step" in syntax
    probes = (docs / "syntax-probes.md").read_text()
    assert "# Syntax probes" in probes and probes.count("selectivity") >= 4


def test_the_random_init_rows_are_references_not_steps(docs):
    for page in PAGES:
        for spec in specs(docs, page):
            assert all(r.get("checkpoint") != CONTROL for r in values_of(spec))
            assert all(r.get("step") is not None for r in values_of(spec) if "step" in r), page


def test_with_several_seeds_the_layer_map_averages_their_best_heads_and_names_each():
    from probekit.report.syntax import layer_cells

    heads = extra_tables()["syntax_heads"]
    other = heads.assign(run="seed-1", accuracy=heads["accuracy"] + 0.1 * (heads["head"] == 0))
    cells = layer_cells(pd.concat([heads.assign(run="seed-0"), other], ignore_index=True), ["det"])
    at = cells[(cells["layer"] == 0) & (cells["step"] == 400)].iloc[0]
    assert at["heads"] == "0, 1" and pd.isna(at["head"]) and at["seeds"] == 2
    assert at["accuracy"] == pytest.approx((0.55 + 0.6) / 2)


def test_the_notebook_figures_still_draw():
    from matplotlib.figure import Figure

    from probekit.report import probes, syntax, tracing

    tables = extra_tables()
    figures = [tracing.tracing_heatmap(tables, "capital"), tracing.tracing_curves(tables, "capital"),
               syntax.best_head_curves(tables["syntax_best_heads"], ["det"]),
               syntax.layer_heatmap(tables["syntax_heads"], ["det"]), probes.layer_curves(tables["probe_scores"]),
               probes.uuas_curve(tables["probe_scores"]), probes.layer_step_heatmaps(tables["probe_scores"])]
    assert all(isinstance(f, Figure) for f in figures)
    assert "attention output at layer 1" in figures[1].axes[0].get_title()


# ---------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The fixture's tables (with the ones it lacks) saved as results and built into a site."""
    tables = extra_tables()
    found = tables.pop("findings")
    return claims.built_site(tables, found, tmp_path_factory.mktemp("inside-site"))


@pytest.mark.slow
@pytest.mark.parametrize("page", ["tracing.html", "syntax.html", "syntax-probes.html"])
def test_every_chart_draws_in_the_browser_and_the_slider_moves_the_map(site, page):
    from browser import SETTLED, opened

    with opened((site / page).as_uri()) as (tab, seen):
        tab.wait_for_function(SETTLED, timeout=15_000)
        charts = tab.locator(".probekit-chart").count()
        drawn = tab.locator(".probekit-chart .probekit-view svg.marks").count()
        failed = tab.locator(".probekit-view:has-text('chart failed')").count()
        moved = None
        slider = tab.locator(".probekit-chart input[type=range]")
        if slider.count():
            slider.first.evaluate("e => { e.value = 0; e.dispatchEvent(new Event('input', {bubbles: true})); }")
            tab.wait_for_timeout(500)
            box = tab.locator(".probekit-chart", has=tab.locator("input[type=range]")).first
            moved = box.locator(".probekit-view svg.marks").first.text_content()
    assert seen.console_errors == [] and seen.page_errors == [], (seen.console_errors, seen.page_errors)
    assert charts >= 2 and drawn == charts and failed == 0
    if page != "syntax-probes.html":
        assert moved is not None and "step 0" in moved and "step 400" not in moved
