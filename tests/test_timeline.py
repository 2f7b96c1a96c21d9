"""timeline: facts, grammar, syntactic heads and probes on one step axis — the arrivals and their order are the
findings' `arrives` and `order` rows (intervals, ties, transient and never-established signals said), the figure
is drawn from the summary tables, and the page computes nothing."""

from __future__ import annotations

import pandas as pd

import claims
from probekit.analyses.findings import build
from probekit.report.timeline import arrival_table, section, timeline, which_first


def tables_with_findings(tables: dict | None = None) -> dict:
    tables = dict(tables or claims.tables())
    tables["findings"] = build(tables)
    return tables


def test_the_arrivals_are_the_findings_rows():
    tables = tables_with_findings()
    found = arrival_table(tables).set_index("signal")
    assert found.loc["facts: facts", ["verdict", "after", "by"]].tolist() == ["arrived", 200, 300]
    assert found.loc["syntactic heads: a relation", ["after", "by", "through"]].tolist() == [300, 400,
                                                                                            "det dep->head"]
    assert found.loc["upos probe", "verdict"] == "transient" and found.loc["depth probe", "verdict"] == (
        "not_established")


def test_the_sentence_orders_only_intervals_apart_and_says_ties():
    sentence = which_first(tables_with_findings())
    assert sentence.startswith("in order of arrival: facts: facts (after step 200, by 300) tied with it, grammar: "
                               "blimp (after step 200, by 300) then syntactic heads: a relation")
    assert "transient (cleared, but not at the last step): upos probe" in sentence
    assert "not established: syntactic heads: UUAS, depth probe" in sentence


def test_no_signal_arriving_is_said_so():
    pairs = claims.pair_accuracy().assign(accuracy_low=0.4)
    assert which_first(tables_with_findings({"pair_accuracy": pairs})).startswith(
        "no signal arrives (clears its bar from some step to the last)")


def test_the_page_figure_and_sentence_come_from_the_rows(tmp_path):
    from probekit.report.page import Page

    tables = tables_with_findings()
    fig = timeline(tables)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 4
    assert all(ax.get_xlim() == fig.axes[0].get_xlim() for ax in fig.axes)  # one step axis
    page = Page(tmp_path / "docs")
    section(page, tables)
    text = "\n".join(page.parts["timeline.md"])
    assert "**In order of arrival: facts: facts" in text and 'class="probekit-chart"' in text
    assert len(page.findings) == 1 and page.findings[0].startswith("- Which arrives first: in order of arrival")
    shown = pd.read_csv(tmp_path / "docs" / "data" / "timeline-arrivals.csv")
    assert shown.loc[shown["signal"] == "depth probe", "verdict"].iloc[0] == "not_established"
    assert shown.loc[shown["signal"] == "facts: facts", "by"].iloc[0] == 300
