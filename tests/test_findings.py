"""findings: every claim decided once, by one written rule — each rule checked against a plain loop written here,
the claims of a hand-made fixture (a transient signal, a tie, a never-established signal) found, and a site
built from that fixture saying what the findings rows say, and nothing the rows do not."""

from __future__ import annotations

import ast
import math
import re
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import claims
from probekit.analyses import findings, stats
from probekit.analyses.findings import FINDINGS, build, select
from probekit.core.schema import TABLES

REPORT = Path(findings.__file__).resolve().parents[1] / "report"


# ---------------------------------------------------------------- the rules, against plain loops


def plain_sustained(steps, cleared):
    """The emergence rule as a loop: the start of the run of clearances that reaches the last step."""
    start = None
    for k, flag in enumerate(cleared):
        if flag and start is None:
            start = k
        if not flag:
            start = None
    if start is None:
        return ("transient" if any(cleared) else "not_established"), None, None
    return "emerged", steps[start], steps[start - 1] if start > 0 else None


@pytest.mark.parametrize("cleared", [
    [False, False, True, True], [True, False, True, True], [False, True, False, False], [False] * 4, [True] * 4,
    [True, True, True, False], [False, True, True, False, True]])
def test_sustained_matches_the_loop(cleared):
    steps = [0, 100, 200, 300, 400][:len(cleared)]
    found = stats.sustained(steps, cleared)
    verdict, step, low = plain_sustained(steps, cleared)
    assert found["verdict"] == verdict
    if verdict == "emerged":
        assert found["step"] == step and found["step_high"] == step
        assert (math.isnan(found["step_low"]) if low is None else found["step_low"] == low)
    if any(cleared):
        assert found["first_cleared"] == steps[cleared.index(True)]


def plain_holm(p):
    """Holm (1979) as written: sort, multiply the i-th smallest by m − i, carry the running maximum, cap at 1."""
    kept = [(v, i) for i, v in enumerate(p) if not math.isnan(v)]
    kept.sort()
    m, out, running = len(kept), [math.nan] * len(p), 0.0
    for rank, (v, i) in enumerate(kept):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


def plain_bh(p):
    kept = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m, out, running = len(kept), [math.nan] * len(p), 1.0
    for rank in range(m - 1, -1, -1):
        v, i = kept[rank]
        running = min(running, v * m / (rank + 1))
        out[i] = min(running, 1.0)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_holm_and_benjamini_hochberg_match_their_definitions(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=12)
    p[rng.integers(0, 12, size=2)] = np.nan
    assert np.allclose(stats.holm(p), plain_holm(list(p)), equal_nan=True, rtol=0, atol=1e-15)
    assert np.allclose(stats.benjamini_hochberg(p), plain_bh(list(p)), equal_nan=True, rtol=0, atol=1e-15)


def test_p_value_and_detectable_effect_follow_the_normal_approximation():
    se = stats.interval_se(0.2, 0.4)
    assert se == pytest.approx(0.2 / (2 * 1.959963984540054))
    z = (0.3 - 0.1) / math.sqrt(se ** 2 + se ** 2)
    assert stats.p_above(0.3, se, 0.1, se) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)
    assert stats.smallest_detectable(se) == pytest.approx((1.959963984540054 + 0.8416212335729143) * se)
    assert stats.p_above(0.3, 0.0, 0.1) == 0.0 and stats.p_above(0.1, 0.0, 0.1) == 1.0


# ---------------------------------------------------------------- the fixture's claims


@pytest.fixture(scope="module")
def found() -> pd.DataFrame:
    return build(claims.tables())


def one(found, kind, analysis, subject, **equal) -> pd.Series:
    rows = select(found, kind, analysis, subject=subject, **equal)
    assert len(rows) == 1, (kind, analysis, subject, rows)
    return rows.iloc[0]


def test_the_table_has_the_declared_columns_and_every_row_a_rule(found):
    assert list(found.columns) == FINDINGS.names
    assert found["rule"].notna().all() and (found["rule"].str.len() > 20).all()
    assert "findings" in TABLES


def test_facts_are_learned_when_injected_minus_held_back_clears_zero(found):
    diff = one(found, "difference", "facts", "capital")
    assert diff["verdict"] == "above" and diff["value"] == pytest.approx(1.0) and diff["n"] == 20
    came = one(found, "emerged", "facts", "capital")
    assert (came["verdict"], came["step_low"], came["step"]) == ("emerged", 200, 300)


def test_a_transient_signal_is_not_emerged(found):
    agr = one(found, "emerged", "pairs", "agr")
    assert agr["verdict"] == "transient" and agr["first_cleared"] == 100 and pd.isna(agr["step_high"])
    assert one(found, "above_chance", "pairs", "agr")["verdict"] == "chance"
    upos = one(found, "emerged", "probes", "upos")
    assert upos["verdict"] == "transient"
    assert one(found, "selective", "probes", "upos", group="probe")["verdict"] == "not_selective"


def test_phenomena_are_corrected_over_their_family(found):
    rows = select(found, "above_chance", "pairs", benchmark="blimp")
    phenomena = rows[rows["subject"] != "all"]
    assert set(phenomena["family_size"]) == {2} and set(phenomena["correction"]) == {"holm"}
    assert np.allclose(phenomena["p_adjusted"], plain_holm(list(phenomena["p_value"])))


def test_syntax_needs_random_init_and_the_structural_baseline(found):
    det = one(found, "learned", "syntax-heads", "det dep->head")
    assert det["verdict"] == "learned" and det["detail"] == "L0H1"
    assert one(found, "emerged", "syntax-heads", "det dep->head")[["step_low", "step"]].tolist() == [300, 400]
    uuas = one(found, "learned", "syntax-heads", "UUAS")
    assert uuas["verdict"] == "not_learned" and uuas["bar"] == pytest.approx(0.55)  # the adjacent-word baseline
    assert one(found, "emerged", "syntax-heads", "UUAS")["verdict"] == "not_established"


def test_arrivals_are_intervals_and_overlapping_ones_tie(found):
    arrives = select(found, "arrives", "timeline").set_index("subject")
    assert arrives.loc["facts: facts", ["step_low", "step_high"]].tolist() == [200, 300]
    assert arrives.loc["grammar: blimp", "verdict"] == "arrived"
    assert arrives.loc["depth probe", "verdict"] == "not_established"
    order = select(found, "order", "timeline").set_index("subject")
    assert order.loc["facts: facts | grammar: blimp", "verdict"] == "tie"
    assert order.loc["facts: facts | syntactic heads: a relation", ["verdict", "detail"]].tolist() == [
        "before", "facts: facts"]
    assert order.loc["grammar: blimp | depth probe", "verdict"] == "not_established"


def test_tracing_reports_the_effect_and_never_names_a_site_built_to_restore(found):
    best = select(found, "best_site", "tracing").set_index("step")
    assert not best["detail"].str.startswith("resid L1 mask").any()  # largest Δp, but by construction
    assert best.loc[400, ["detail", "verdict"]].tolist() == ["attn L1 mask", "stands_out"]
    assert best.loc[200, "verdict"] == "not_standing_out"
    built = select(found, "stands_out", "tracing")
    assert set(built.loc[built["by_construction"], "verdict"]) == {"by_construction"}
    shares = select(found, "share", "tracing").set_index("step")
    assert shares.loc[400, "verdict"] == "defined" and shares.loc[200, "verdict"] == "undefined"
    formed = one(found, "emerged", "tracing", "capital", detail="attn L1 mask")
    assert formed[["verdict", "step_low", "step"]].tolist() == ["emerged", 200, 400]


def test_a_wider_site_of_larger_mean_does_not_hide_one_that_stands_out():
    scores = claims.tracing_scores()
    wide = scores[(scores["step"] == 400) & (scores["component"] == "mlp") & (scores["layer"] == 0)
                  & (scores["role"] == "mask")].index
    scores.loc[wide, ["effect", "effect_low", "effect_high"]] = [0.3, -0.1, 0.7]
    best = select(build({"tracing_scores": scores}), "best_site", "tracing").set_index("step").loc[400]
    assert best[["detail", "verdict"]].tolist() == ["attn L1 mask", "stands_out"]
    quiet = scores.assign(effect_low=scores["effect_low"].where(scores["by_construction"], -0.5))
    best = select(build({"tracing_scores": quiet}), "best_site", "tracing").set_index("step").loc[400]
    assert best[["detail", "verdict"]].tolist() == ["mlp L0 mask", "not_standing_out"]  # the largest Δp of all


def test_without_a_random_init_row_no_site_is_claimed():
    scores = claims.tracing_scores(random_init=False)
    found = build({"tracing_scores": scores[scores["step"] != 0]})  # nor a step 0 to stand for it
    rows = select(found, "stands_out", "tracing")
    assert set(rows.loc[~rows["by_construction"], "verdict"]) == {"no_random_init"}
    assert set(select(found, "best_site", "tracing")["verdict"]) == {"no_random_init"}


def test_without_injected_facts_p_at_1_is_judged_against_random_init():
    scores = pd.DataFrame({
        "checkpoint": ["random-init", "c1", "c2", "c3", "c4"], "run": "r", "step": [0, 1, 2, 3, 4],
        "benchmark": "b", "relation": "capital", "group": "all", "n_seeds": 1, "n": 40,
        "p_at_1": [0.05, 0.1, 0.3, 0.5, 0.6], "p_at_1_low": [0.0, 0.02, 0.08, 0.35, 0.45],
        "p_at_1_high": [0.1, 0.2, 0.45, 0.6, 0.7]})
    found = one(build({"scores": scores}), "emerged", "facts", "capital")
    assert found[["verdict", "step_low", "step", "low", "bar"]].tolist() == ["emerged", 2, 3, 0.35, 0.1]
    without = scores.iloc[1:].assign(step=[0, 1, 2, 3])  # then the run's own step 0 is the random-init model
    found = one(build({"scores": without}), "emerged", "facts", "capital")
    assert found[["verdict", "step_low", "step"]].tolist() == ["emerged", 1, 2]
    never = scores.assign(p_at_1_low=0.0)
    assert one(build({"scores": never}), "emerged", "facts", "capital")["verdict"] == "not_established"


def test_too_few_items_are_said():
    accuracy = claims.pair_accuracy().assign(n=3)
    found = build({"pair_accuracy": accuracy})
    assert set(select(found, "above_chance", "pairs")["verdict"]) == {"too_few"}
    assert "emerged" not in set(select(found, "emerged", "pairs")["verdict"])


# ---------------------------------------------------------------- pages word the rows, compute nothing


STATISTICS = {"emergence_steps", "group_differences", "head_emergence", "probe_emergence", "site_emergence",
              "best_sites", "share_intervals", "bootstrap", "compare", "intervals", "build", "holm",
              "benjamini_hochberg", "sustained", "first_and_last", "checkpoint_differences"}


def test_no_report_module_imports_a_statistics_function():
    offenders = []
    for path in sorted(REPORT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {a.name for a in node.names}
                if node.module == "probekit.analyses.stats" or (
                        node.module.startswith("probekit.analyses") and names & STATISTICS):
                    offenders.append(f"{path.name}: from {node.module} import {', '.join(sorted(names))}")
            if isinstance(node, ast.Import) and any(a.name == "probekit.analyses.stats" for a in node.names):
                offenders.append(f"{path.name}: import probekit.analyses.stats")
    assert not offenders, offenders


results_of = claims.results_of


@pytest.fixture(scope="module")
def site(tmp_path_factory, found) -> Path:
    return claims.built_site(claims.tables(), found, tmp_path_factory.mktemp("claims"))


def text_of(site: Path, page: str) -> str:
    html = (site / page).read_text()
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_every_page_says_what_the_findings_rows_say(site, found):
    overview = text_of(site, "index.html")
    assert "arrived after step 200, by step 300" in overview  # the facts' emerged row
    assert "injected above held back" in overview
    grammar = text_of(site, "grammar.html")
    assert "transient" in grammar and "above chance after Holm" in grammar
    timeline = text_of(site, "timeline.html")
    assert "tied with it, grammar: blimp" in timeline or "tied with it, facts: facts" in timeline
    assert "not established: syntactic heads: UUAS, depth probe" in timeline
    assert "transient (cleared, but not at the last step): upos probe" in timeline
    probes = text_of(site, "syntax-probes.html")
    for row in select(found, "selective", "probes", group="probe").itertuples():
        name = "UPOS" if row.subject == "upos" else r"depth \(root accuracy\)"
        said = re.search(rf"{name} at step [\d,]+: most selective at layer \d+, selectivity \S+ \[\S+ \S+\] against "
                         r"the random-init model's \S+: (not selective|selective)", probes)
        assert said and said.group(1) == row.verdict.replace("_", " "), row.subject
    tracing = text_of(site, "tracing.html")
    assert "the attention output at layer 1, [MASK] gives Δp +0.200 [+0.180, +0.220] at step 400" in tracing
    assert "judged at the traced steps 0, 200, 400 against the random-init model" in tracing
    syntax = text_of(site, "syntax.html")
    assert "for 1 of 1 relations (det dep->head)" in syntax and "is not learned" in syntax


def test_the_overview_answers_the_three_questions_from_the_rows(site):
    html = (site / "index.html").read_text()
    cards = html[html.index("probekit-answers"):]
    cards = cards[:cards.index("</div>")]
    text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", cards)))
    assert "When was it learned? injected − held back arrived for capital after step 200, by 300" in text
    assert "Where in the model? capital: attn L1 mask, Δp +0.200 [+0.180, +0.220] at step 400" in text
    assert "Did it learn syntax? 1 of 1 head relations learned; UUAS not learned; probes selective: none" in text
    for target in ("benchmarks.html", "tracing.html", "syntax.html"):
        assert f'href="{target}"' in cards, target


def test_no_page_calls_a_never_established_or_transient_signal_emerged(site):
    for page in ("index.html", "timeline.html", "syntax-probes.html", "grammar.html"):
        text = text_of(site, page)
        assert not re.search(r"depth probe[^.;]*\b(arrived|emerged)\b", text), page
        assert not re.search(r"agr[^.;]*\barrived\b", text), page


def test_a_series_own_step_0_is_the_random_init_model_when_the_run_has_no_random_init_row():
    scores = claims.tracing_scores()
    scores = scores[scores["checkpoint"] != "random-init"]
    found = build({"tracing_scores": scores})
    best = select(found, "best_site", "tracing").set_index("step")
    assert 0 not in best.index  # step 0 is the bar, not a step judged
    assert best.loc[400, ["detail", "verdict"]].tolist() == ["attn L1 mask", "stands_out"]
