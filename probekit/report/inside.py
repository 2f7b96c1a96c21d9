"""The Logit lens & ablation page: where in depth (logit lens) and through which heads (ablation) the answers
come. The lens and the ablation sections each add their part; whichever runs first heads the page."""

from __future__ import annotations

from probekit.report import charts_model
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "inside.md", "Logit lens & ablation"
NOTHING_SCORED = "no answer of this relation could be scored at any layer (every prompt unscorable)."


def _head(page: Page) -> None:
    if PAGE not in page.parts:
        page.add(PAGE, "# Logit lens and head ablation", "")
        page.configure(PAGE, title=TITLE)


def lens(page: Page, tables: dict) -> None:
    """Per relation, P@1 and MRR read at each layer over training, from `lens_scores`."""
    scores = tables.get("lens_scores")
    if scores is None or not len(scores):
        return
    _head(page)
    page.add(PAGE, "## Logit lens", "",
             "The MLM head applied to each layer's hidden state at the [MASK]: where in depth the answer appears, "
             "and since when in training. P@1 and MRR are over the prompts that could be scored (unscorable ones "
             "are counted apart, as in every probekit score); bands: 95% bootstrap intervals.", "")
    for relation in scores["relation"].unique():
        rows = scores[scores["relation"] == relation]
        if rows["n"].fillna(0).max() == 0:
            page.add(PAGE, f"{esc(relation)}: logit lens skipped, {NOTHING_SCORED}", "")
            continue
        data = charts_model.lens_data(scores, relation)
        page.chart(PAGE, (relation, "lens", "by-layer-and-step"), charts_model.lens_chart(data, relation),
                   f"{relation}: P@1 and MRR read at each layer (colour: layer; injected solid, held back dashed); "
                   "hover for the value, its 95% interval and the prompts scored, click a layer in the legend to "
                   "fade the others", data=data)


def ablation(page: Page, tables: dict) -> None:
    """Each head zeroed in turn at the last checkpoint: the change per relation, and the heads that matter most."""
    frame = tables.get("ablation")
    if frame is None or not len(frame) or frame["step"].isna().all():
        return
    _head(page)
    last = frame.loc[frame["step"].idxmax(), "checkpoint"]
    page.add(PAGE, "## Head ablation", "",
             "Each head's output zeroed in turn; all prompts rescored in one batched pass per head.", "")
    data = charts_model.ablation_data(frame, last)
    page.chart(PAGE, ("ablation", last, "by-relation-and-head"), charts_model.ablation_chart(data, last),
               f"Change in mean gold log-probability per relation when each head is zeroed ({last}); hover a cell "
               "for P@1 and its change", step_axis=False, data=data)
    worst = frame[frame["checkpoint"] == last].nsmallest(8, "delta_mean_gold_logprob")
    cols = ["relation", "group", "layer", "head", "p_at_1", "delta_p_at_1", "delta_mean_gold_logprob"]
    page.add(PAGE, "Heads the facts depend on most:", "", *page.table(worst[cols].round(4), ("ablation",)))
