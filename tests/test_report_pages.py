"""The Grammar, Choices, Which-arrives-first and What-changed pages draw interactive charts (Vega-Lite specs whose
data are numbers at the right steps, styled from `probekit.palette` only, a legend click fading the other lines),
no PNG figures, and every chart and table downloads as plain numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import claims
from specs import vega_lite_specs
from probekit import palette
from probekit.analyses.findings import build
from probekit.report import changes, choices, grammar, timeline
from probekit.report.page import Page

NUMERIC = re.compile(r"(?:.*_)?step|from_step|to_step|value|low|high|accuracy|n|prompts|newly_right|lost|pairs")
COLOURS = {*palette.PALETTE, palette.RANDOM_INIT[0], palette.BASELINE[0]}
DASHES = [palette.vega_dash(d) for d in (palette.SOLID, palette.DASHED, palette.DOTTED,
                                         palette.RANDOM_INIT[1], palette.BASELINE[1])]


@pytest.fixture(scope="module")
def tables() -> dict:
    found = claims.tables()
    found["findings"] = build(found)
    return found


def built(tmp_path: Path, make) -> tuple[Page, Path]:
    page = Page(tmp_path / "docs")
    make(page)
    return page, tmp_path / "docs"


def specs(page: Page, name: str) -> list[dict]:
    text = "\n".join(page.parts[name])
    assert 'class="probekit-chart"' in text
    return vega_lite_specs(text, page.docs)


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def styles_from_palette(spec: dict) -> None:
    """Every colour and dash the spec names is one of probekit.palette's."""
    for node in walk(spec):
        for key in ("color", "stroke", "fill"):
            if isinstance(node.get(key), str) and node[key].startswith("#"):
                assert node[key] in COLOURS, node[key]
        if "strokeDash" in node and isinstance(node["strokeDash"], list):
            assert node["strokeDash"] in DASHES, node["strokeDash"]
        scale = node.get("scale") if isinstance(node.get("scale"), dict) else None
        if scale and isinstance(scale.get("range"), list) and scale["range"]:
            for value in scale["range"]:
                assert value in DASHES if isinstance(value, list) else value in COLOURS, value


def values(spec: dict) -> list[dict]:
    return spec["data"]["values"]


def fades_on_legend_click(spec: dict) -> bool:
    binds = [p for node in walk(spec) for p in node.get("params", []) if isinstance(p, dict)
             and p.get("bind") == "legend"]
    opacity = [n["opacity"] for n in walk(spec) if isinstance(n.get("opacity"), dict) and "condition" in n["opacity"]]
    return bool(binds) and any(o["value"] == 0.12 for o in opacity)


def downloads_are_numbers(docs: Path, *stems: str) -> dict[str, pd.DataFrame]:
    """Each data/STEM.csv parses, with numeric step/value/low/high columns (integer steps)."""
    out = {}
    for stem in stems:
        frame = pd.read_csv(docs / "data" / f"{stem}.csv")
        for column in frame.columns:
            if NUMERIC.fullmatch(column):
                assert pd.api.types.is_numeric_dtype(frame[column]), (stem, column, frame[column].dtype)
            if column.endswith("step") and frame[column].notna().all():
                assert pd.api.types.is_integer_dtype(frame[column]), (stem, column)
        out[stem] = frame
    return out


def no_png(docs: Path) -> None:
    assert not list((docs / "figures").glob("*.png"))


def test_the_grammar_page_draws_charts_of_the_tables_numbers(tmp_path, tables):
    page, docs = built(tmp_path, lambda p: grammar.grammar(p, tables))
    phenomena, both = specs(page, "grammar.md")
    no_png(docs)
    for spec in (phenomena, both):
        styles_from_palette(spec)
        assert fades_on_legend_click(spec)
    drawn = [v for v in values(phenomena) if v["kind"] == "line"]
    assert {v["step"] for v in drawn} == {float(s) for s in claims.STEPS}
    assert all(isinstance(v[k], float) for v in drawn for k in ("value", "low", "high", "n"))
    assert {v["panel"] for v in drawn} == {"all", "agr", "bind"}
    assert phenomena["columns"] <= len({v["panel"] for v in drawn})  # no empty panel
    chance = [v for v in values(phenomena) if v["series"] == "chance"]
    assert chance and {v["value"] for v in chance} == {0.5}
    assert phenomena["spec"]["layer"][1]["encoding"]["x"]["field"] == "step"  # the log toggle swaps it
    data = downloads_are_numbers(docs, "blimp-accuracy-by-phenomenon", "blimp-phenomena-last-step",
                                 "grammar-and-facts-by-step")
    curve = data["blimp-accuracy-by-phenomenon"]
    overall = curve[curve["phenomenon"] == "all"].set_index("step")
    source = claims.pair_accuracy()
    source = source[(source["level"] == "all") & source["step"].notna()].set_index("step")
    assert overall["accuracy"].tolist() == source.loc[overall.index, "accuracy"].tolist()
    assert (curve["chance"] == 0.5).all()
    last = data["blimp-phenomena-last-step"]
    assert pd.api.types.is_float_dtype(last["p_holm"]) and last.loc[last["phenomenon"] == "all", "step"].item() == 400
    shown = "\n".join(page.parts["grammar.md"])
    assert "&#91;" in shown  # the shown table brackets the interval; the download has low/high columns


def test_the_choices_page_draws_accuracy_against_chance(tmp_path):
    rows = [{"checkpoint": f"checkpoint-{s}", "run": "r", "step": s, "seed": "", "benchmark": "choice",
             "relation": relation, "group": group, "n": 10, "n_unscorable": 1, "accuracy": acc,
             "accuracy_low": acc - 0.1, "accuracy_high": acc + 0.1, "n_seeds": 1}
            for relation in ("capital", "plural") for group in ("injected", "held_back")
            for s, acc in ((0, 0.3), (100, 0.5), (2500, 0.9 if group == "injected" else 0.4))]
    chosen = pd.DataFrame([{"benchmark": "choice", "relation": "capital", "prompt": "p", "answer": "rome",
                            "candidates": ["paris", "oslo"]},
                           {"benchmark": "choice", "relation": "plural", "prompt": "q", "answer": "kings",
                            "candidates": ["king"]}])
    tables = {"choice_accuracy": pd.DataFrame(rows), "choices": chosen}
    tables["findings"] = build(tables)  # the verdicts are the findings' above_chance rows
    page, docs = built(tmp_path, lambda p: choices.choices(p, tables))
    (spec,) = specs(page, "choices.md")
    no_png(docs)
    styles_from_palette(spec)
    assert fades_on_legend_click(spec)
    lines = [v for v in values(spec) if v["kind"] == "line"]
    assert {v["step"] for v in lines} == {0.0, 100.0, 2500.0}
    assert {(v["panel"], v["value"]) for v in values(spec) if v["series"] == "chance"} == {("capital", 1 / 3),
                                                                                           ("plural", 0.5)}
    colour = next(n["scale"] for n in walk(spec) if n.get("field") == "series" and "scale" in n
                  and n["scale"]["range"][0].startswith("#"))
    styles = dict(zip(colour["domain"], colour["range"]))
    assert styles["injected"] == palette.GROUP_STYLE["injected"][0] and styles["chance"] == palette.BASELINE[0]
    data = downloads_are_numbers(docs, "choice-choice-accuracy-by-step", "choice-choice-accuracy-last-step")
    last = data["choice-choice-accuracy-last-step"]
    assert last["step"].tolist() == [2500] * 4 and pd.api.types.is_float_dtype(last["low"])
    shown = "\n".join(page.parts["choices.md"])
    assert "| capital | injected | 2,500 | 10 | 1 | 0.900 &#91;0.800, 1.000&#93; | 0.333 | above chance |" in shown
    assert "| plural | held&#95;back | 2,500 | 10 | 1 | 0.400 &#91;0.300, 0.500&#93; | 0.500 | chance |" in shown
    claims = tables["findings"][tables["findings"]["analysis"] == "choices"]
    assert set(claims["kind"]) == {"above_chance", "emerged"} and (claims["family_size"] == 4).all()


def test_the_timeline_draws_every_kind_on_one_step_axis(tmp_path, tables):
    page, docs = built(tmp_path, lambda p: timeline.section(p, tables))
    (spec,) = specs(page, "timeline.md")
    no_png(docs)
    styles_from_palette(spec)
    assert fades_on_legend_click(spec)
    assert spec["resolve"]["scale"]["y"] == "independent" and spec["columns"] == 1
    panels = {v["panel"] for v in values(spec) if v["kind"] == "line"}
    assert panels == {label for _, label in timeline.KINDS}
    spans = {v["signal"]: (v["from"], v["step"]) for v in values(spec) if v["kind"] == "span"}
    assert spans["facts: facts"] == (200.0, 300.0) and spans["grammar: blimp"] == (200.0, 300.0)
    data = downloads_are_numbers(docs, "timeline-by-step", "timeline-arrivals")
    arrivals = data["timeline-arrivals"].set_index("signal")
    assert arrivals.loc["facts: facts", "by"] == 300 and pd.api.types.is_numeric_dtype(arrivals["after"])
    assert set(data["timeline-by-step"]["step"]) == set(claims.STEPS)


def churning_predictions() -> pd.DataFrame:
    """capital: 6 injected prompts right at step 200 after 2 at step 100 (those two lost): the most churn at
    100 → 200; plural: 3 prompts newly right at 300."""
    rows = []
    capital = {0: [], 100: [0, 1], 200: [2, 3, 4, 5, 6, 7], 300: [2, 3, 4, 5, 6, 7, 8]}
    for step, right in capital.items():
        for group in ("injected", "held_back"):
            for i in range(10):
                for relation, known in (("capital", group == "injected" and i in right),
                                        ("plural", step >= 300 and i < 3 and group == "injected")):
                    rows.append({"checkpoint": f"checkpoint-{step}", "run": "run", "step": step,
                                 "benchmark": "facts", "relation": relation, "group": group, "template": "t",
                                 "prompt": f"{relation} {group} {i} [MASK]", "answer": "a",
                                 "top1": "a" if known else "b", "gold_rank": 1.0 if known else 5.0})
    return pd.DataFrame(rows)


def test_what_changed_charts_the_churn_and_names_the_largest(tmp_path):
    page, docs = built(tmp_path, lambda p: changes.changes(p, {"predictions": churning_predictions(),
                                                                "manifest": {}}, tmp_path))
    (spec,) = specs(page, "changes.md")
    no_png(docs)
    styles_from_palette(spec)
    assert fades_on_legend_click(spec)
    text = "\n".join(page.parts["changes.md"])
    said = re.search(r"\*\*capital\*\*: step ([\d,]+) → ([\d,]+), \+(\d+) / −(\d+) \(e\.g\. newly right: (.*?)\)",
                     text)
    assert said and said.groups()[:4] == ("100", "200", "6", "2")
    assert "capital injected 2" in said.group(5) and "lost: “capital injected 0" in said.group(5)
    assert "**plural**: step 200 → 300, +3 / −0" in text
    assert text.index("Largest churn") < text.index("probekit-chart") < text.index("| steps |")
    bars = {(v["pair"], v["relation"], v["group"]): (v["newly_right"], v["lost"]) for v in values(spec)}
    assert bars[("100 → 200", "capital", "injected")] == (6.0, 2.0)
    data = downloads_are_numbers(docs, "changes-newly-right-lost", "changes-newly-right-lost-by-step-pair")
    counts = data["changes-newly-right-lost"]
    assert {"from_step", "to_step", "relation", "group", "newly_right", "lost"} <= set(counts.columns)
    assert all(pd.api.types.is_integer_dtype(counts[c]) for c in ("from_step", "to_step", "newly_right", "lost"))
    row = counts[(counts["from_step"] == 100) & (counts["relation"] == "capital") & (counts["group"] == "injected")]
    assert row[["newly_right", "lost"]].values.tolist() == [[6, 2]]


def test_no_page_of_these_names_a_colour_or_dash_of_its_own():
    """One palette: the four pages and their chart module take colours and dashes from probekit.palette."""
    folder = Path(grammar.__file__).parent
    for name in ("grammar.py", "choices.py", "timeline.py", "changes.py", "charts_lines.py"):
        source = (folder / name).read_text()
        assert not re.search(r"#[0-9a-fA-F]{6}\b|\"C\d|ls=\"[-:]|DASHES", source), name


def test_what_changed_says_when_nothing_changed(tmp_path):
    still = churning_predictions().assign(gold_rank=5.0, top1="b")
    page, docs = built(tmp_path, lambda p: changes.changes(p, {"predictions": still, "manifest": {}}, tmp_path))
    text = "\n".join(page.parts["changes.md"])
    assert "No prompt was newly answered at rank 1 or lost it" in text and "probekit-chart" not in text
    assert (docs / "data" / "changes-newly-right-lost.csv").is_file()


def test_the_paradigm_heatmap_groups_paradigms_by_phenomenon(tmp_path, tables):
    rows = claims.pair_accuracy()
    paradigms = pd.concat([rows[rows["name"] == "agr"].assign(level="paradigm", name="agr_b"),
                           rows[rows["name"] == "bind"].assign(level="paradigm", name="bind_a"),
                           rows[rows["name"] == "agr"].assign(level="paradigm", name="agr_a")])
    mine = {**tables, "pair_accuracy": pd.concat([rows, paradigms], ignore_index=True),
            "pairs": pd.DataFrame({"paradigm": ["agr_a", "agr_b", "bind_a"], "phenomenon": ["agr", "agr", "bind"]})}
    page, docs = built(tmp_path, lambda p: grammar.grammar(p, mine))
    heatmap = next(s for s in specs(page, "grammar.md") if s.get("mark", {}).get("type") == "rect")
    assert heatmap["encoding"]["y"]["sort"] == ["agr_a", "agr_b", "bind_a"]
    assert {(v["paradigm"], v["step"]) for v in values(heatmap)} >= {("agr_a", 0.0), ("bind_a", 400.0)}
    grid = downloads_are_numbers(docs, "blimp-accuracy-by-paradigm")["blimp-accuracy-by-paradigm"]
    assert grid.loc[(grid["paradigm"] == "bind_a") & (grid["step"] == 200), "accuracy"].item() == 0.8
    no_png(docs)
