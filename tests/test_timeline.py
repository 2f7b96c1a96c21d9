"""timeline: facts, grammar, syntactic heads and probes on one step axis — each signal's arrival is the first step
its interval clears its own bar, the sentence orders them from the table, and the page and figure are drawn from
the summary tables alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probekit.core.schema import CONTROL
from probekit.report.timeline import arrival_table, section, timeline, which_first

STEPS = [0, 100, 200, 300, 400]


def line(values: list[float], width: float = 0.05) -> list[tuple]:
    """(step, value, low, high) per step, the control (step None) first with the first value."""
    return [(None, values[0], values[0] - width, values[0] + width),
            *((s, v, v - width, v + width) for s, v in zip(STEPS, values))]


def checkpoint(step) -> dict:
    return {"checkpoint": CONTROL if step is None else f"checkpoint-{step}", "run": "" if step is None else "run",
            "step": step, "seed": ""}


def made_tables() -> dict:
    """Facts arrive at 300, grammar at 200, the heads' UUAS at 100, a relation beats its offset at 400, the UPOS
    probe at 300 (its selectivity above the control's), the depth probe never."""
    scores = pd.DataFrame([{**checkpoint(s), "benchmark": "facts", "relation": relation, "group": "injected",
                            "p_at_1": v, "p_at_1_low": lo, "p_at_1_high": hi, "n_seeds": 1}
                           for relation, values in (("capital", [0, 0, 0, 0.5, 0.6]), ("language", [0, 0, 0, 0, 0.4]))
                           for s, v, lo, hi in line(values)])
    pairs = pd.DataFrame([{**checkpoint(s), "benchmark": "blimp", "metric": "m", "level": "all", "name": "all",
                           "accuracy": v, "accuracy_low": lo, "accuracy_high": hi}
                          for s, v, lo, hi in line([0.5, 0.5, 0.6, 0.6, 0.65])])
    uuas = pd.DataFrame([{**checkpoint(s), "treebank": "t", "layer": layer, "head": 0, "n": 100, "uuas": v - 0.1 * layer,
                          "best_in_layer": True, "uuas_low": lo - 0.1 * layer, "uuas_high": hi - 0.1 * layer,
                          "n_seeds": 1}
                         for layer in (0, 1) for s, v, lo, hi in line([0.2, 0.4, 0.5, 0.5, 0.6])])
    best = pd.DataFrame([{**checkpoint(s), "treebank": "t", "relation": "det", "direction": "dep->head", "n": 50,
                          "layer": 0, "head": 0, "accuracy": v, "accuracy_low": lo, "accuracy_high": hi, "offset": 1,
                          "baseline": 0.6, "baseline_low": 0.55, "baseline_high": 0.65, "beats_baseline": lo > 0.65,
                          "n_seeds": 1} for s, v, lo, hi in line([0.1, 0.2, 0.4, 0.6, 0.8])])
    probes = pd.DataFrame([{**checkpoint(s), "treebank": "t", "layer": 0, "probe": probe, "metric": "accuracy",
                            "score": 0.5 + v, "score_low": 0.5 + lo, "score_high": 0.5 + hi, "control": 0.5,
                            "control_low": 0.45, "control_high": 0.55, "selectivity": v, "selectivity_low": lo,
                            "selectivity_high": hi, "spearman": np.nan, "n": 100, "sentences": 10, "n_seeds": 1}
                           for probe, values in (("upos", [0.1, 0.1, 0.1, 0.3, 0.3]), ("depth", [0.2, 0.2, 0.2, 0.2, 0.2]))
                           for s, v, lo, hi in line(values)])
    return {"scores": scores, "pair_accuracy": pairs, "syntax_uuas": uuas, "syntax_best_heads": best,
            "probe_scores": probes}


def plain_arrival(steps: list, low: list, bar: float, after_zero: bool = True) -> float:
    """The first step (after 0, where a control is the bar) whose lower bound is above the bar: a plain loop."""
    for step, lo in zip(steps, low):
        if (step > 0 or not after_zero) and lo > bar:
            return step
    return float("nan")


def test_arrivals_are_the_first_steps_each_signal_clears_its_bar():
    tables = made_tables()
    found = arrival_table(tables).set_index("signal")["arrives_at"]
    pairs = tables["pair_accuracy"].dropna(subset=["step"])
    assert found["grammar: blimp"] == plain_arrival(pairs["step"].tolist(), pairs["accuracy_low"].tolist(), 0.5,
                                                    after_zero=False) == 200
    assert found["facts: facts (injected)"] == 300  # capital's P@1 interval clears the control's 0.05
    uuas = tables["syntax_uuas"]
    bar = uuas.loc[uuas["checkpoint"] == CONTROL, "uuas_high"].max()
    best = uuas.dropna(subset=["step"]).sort_values("uuas").drop_duplicates("step", keep="last").sort_values("step")
    assert found["syntactic heads: UUAS"] == plain_arrival(best["step"].tolist(), best["uuas_low"].tolist(), bar) == 100
    assert found["syntactic heads: a relation beats its offset"] == 400
    assert found["UPOS probe"] == 300 and np.isnan(found["depth probe"])
    sentence = which_first(arrival_table(tables))
    assert sentence.startswith("first syntactic heads: UUAS at step 100, then grammar: blimp at step 200, then ")
    assert "never within these checkpoints: depth probe" in sentence
    assert "facts: facts (injected) and UPOS probe at step 300" in sentence  # one checkpoint: a tie
    order = [sentence.index(s) for s in ("UUAS", "grammar", "facts", "beats its offset", "depth probe")]
    assert order == sorted(order)


def test_no_signal_ever_clearing_its_bar_is_said_so():
    tables = made_tables()
    pairs = tables["pair_accuracy"]
    tables = {"pair_accuracy": pairs.assign(accuracy_low=0.4)}
    assert which_first(arrival_table(tables)).startswith("no signal clears its bar at any checkpoint")


def test_the_page_figure_and_sentence_come_from_the_tables(tmp_path):
    from probekit.report.page import Page

    tables = made_tables()
    fig = timeline(tables)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 4
    assert all(ax.get_xlim() == fig.axes[0].get_xlim() for ax in fig.axes)  # one step axis
    page = Page(tmp_path / "docs")
    section(page, tables)
    text = "\n".join(page.parts["timeline.md"])
    assert "**First syntactic heads: UUAS at step 100" in text and "timeline.png" in text
    assert len(page.findings) == 1 and page.findings[0].startswith("Which arrives first: first syntactic heads")
    shown = pd.read_csv(next((tmp_path / "docs" / "data").glob("table-timeline*.csv")))
    assert shown.loc[shown["signal"] == "depth probe", "arrives_at"].iloc[0] == "never"


def test_a_signal_that_falls_back_is_said_so():
    pairs = made_tables()["pair_accuracy"]
    pairs = pairs.assign(accuracy_low=[0.4, 0.4, 0.55, 0.45, 0.45, 0.45])  # above chance at step 100 only
    found = arrival_table({"pair_accuracy": pairs}).iloc[0]
    assert found["arrives_at"] == 100 and not found["at_last"] and np.isnan(found["stays_from"])
    assert which_first(arrival_table({"pair_accuracy": pairs})).startswith(
        "first grammar: blimp (no longer at the last checkpoint) at step 100")
