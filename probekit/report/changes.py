"""The What-changed page: what changed between neighbouring checkpoints (`probekit.diff`).

A chart of the prompts newly right (+) and lost (−) per relation and fact group at each pair of neighbouring
checkpoints, a sentence naming each relation's largest churn (the pair with the most newly right + lost, with a
few of its prompts), the same counts as a table, and each pair's prompts whose gold rank moved most. These are
counts of prompts, not statistical claims.
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd

from probekit.report.attention import capture_files
from probekit.report.charts import WIDTH, group_scales, plain_data
from probekit.report.markdown import esc
from probekit.report.page import Page, collapsible

PAGE = "changes.md"
COUNTS = ["from_step", "to_step", "from", "to", "benchmark", "relation", "group", "prompts", "unscorable",
          "newly_right", "lost", "top1_changed"]
CALLED_OUT = 8  # relations named in the churn sentence, largest churn first


def change_counts(summary: pd.DataFrame) -> pd.DataFrame:
    """`probekit.diff.neighbour_summary` as plain numbers: integer steps and counts, one row per pair of
    neighbouring checkpoints × benchmark × relation × fact group, and `pair`, the pair as the chart labels it."""
    out = summary.copy()
    for column in ("from_step", "to_step", "prompts", "unscorable", "newly_right", "lost", "top1_changed"):
        out[column] = pd.to_numeric(out[column], errors="coerce").round().astype("Int64")
    by_steps = [f"{int(a):,} → {int(b):,}" for a, b in zip(out["from_step"], out["to_step"])]
    unique = len(out[["from_step", "to_step"]].drop_duplicates()) == len(out[["from", "to"]].drop_duplicates())
    out["pair"] = by_steps if unique else [f"{a} → {b}" for a, b in zip(out["from"], out["to"])]
    several = out["benchmark"].nunique() > 1
    out["subject"] = [(f"{b} / " if several else "") + str(r) for b, r in zip(out["benchmark"], out["relation"])]
    return out[[*COUNTS, "pair", "subject"]].reset_index(drop=True)


def churn_chart(counts: pd.DataFrame) -> alt.TopLevelMixin:
    """Diverging bars per pair of neighbouring checkpoints: prompts newly right above 0, lost below, one panel
    per relation, a bar per fact group (injected solid colour, held back its own); a legend click fades the
    other groups."""
    order = list(dict.fromkeys(counts.sort_values(["from_step", "to_step"], kind="stable")["pair"]))
    subjects = list(dict.fromkeys(counts["subject"]))
    color, _ = group_scales(counts["group"])
    legend = alt.selection_point(fields=["group"], bind="legend")
    fade = alt.condition(legend, alt.value(1), alt.value(0.12))
    tips = [alt.Tooltip("subject:N", title="relation"), alt.Tooltip("group:N"), alt.Tooltip("pair:N", title="steps"),
            alt.Tooltip("newly_right:Q", title="newly right"), alt.Tooltip("lost:Q"),
            alt.Tooltip("prompts:Q", title="prompts at both"), alt.Tooltip("unscorable:Q")]
    x = alt.X("pair:N", sort=order, title="neighbouring checkpoints (steps)", axis=alt.Axis(labelAngle=-45))
    colour = alt.Color("group:N", scale=color, title="fact group")
    base = alt.Chart().encode(x=x, xOffset=alt.XOffset("group:N"), color=colour, opacity=fade, tooltip=tips)
    right = base.mark_bar().encode(y=alt.Y("newly_right:Q", title="prompts: + newly right / − lost")
                                   ).add_params(legend)
    lost = base.transform_calculate(minus_lost="-datum.lost").mark_bar(fillOpacity=0.55).encode(y="minus_lost:Q")
    zero = alt.Chart().mark_rule(strokeWidth=1).encode(y=alt.datum(0))
    layered = alt.layer(right, lost, zero, data=plain_data(counts)).properties(width=WIDTH, height=170)
    faceted = layered.facet(facet=alt.Facet("subject:N", title=None, sort=subjects),
                            columns=max(1, min(3, len(subjects))))
    return faceted.properties(title="Prompts newly right (+, above 0) and lost (−, below) between neighbouring "
                                    "checkpoints")


def largest_churns(counts: pd.DataFrame, predictions: pd.DataFrame, examples: int = 2) -> list[dict]:
    """Per benchmark and relation (its fact groups together), the pair of neighbouring checkpoints with the most
    prompts newly right + lost (the earliest of equals), with up to `examples` of its prompts of each kind;
    relations that never changed left out; the largest churn first."""
    from probekit.diff import rank_changes

    totals = counts.groupby(["benchmark", "relation", "subject", "from", "to", "from_step", "to_step", "pair"],
                            sort=False)[["newly_right", "lost"]].sum().reset_index()
    totals["churn"] = totals["newly_right"] + totals["lost"]
    totals = totals[totals["churn"] > 0].sort_values(["from_step", "to_step"], kind="stable")
    best = totals.loc[totals.groupby(["benchmark", "relation"], sort=False)["churn"].idxmax()]
    best = best.sort_values("churn", ascending=False, kind="stable")
    out = []
    for row in best.to_dict("records"):
        moved = rank_changes(predictions, row["from"], row["to"])
        moved = moved[(moved["benchmark"] == row["benchmark"]) & (moved["relation"] == row["relation"])]
        out.append({"subject": row["subject"], "pair": row["pair"], "from_step": row["from_step"],
                    "to_step": row["to_step"], "newly_right": int(row["newly_right"]), "lost": int(row["lost"]),
                    "right_prompts": moved.loc[moved["change"] == "newly right", "prompt"].head(examples).tolist(),
                    "lost_prompts": moved.loc[moved["change"] == "lost", "prompt"].head(examples).tolist()})
    return out


def churn_sentence(churns: list[dict]) -> str:
    """Markdown: each relation's largest churn, e.g. "capital: step 1,500 → 2,000, +55 / −48 (newly right:
    “…”; lost: “…”)"; empty when no prompt changed."""
    if not churns:
        return ""
    parts = []
    for c in churns[:CALLED_OUT]:
        said = [f"{kind}: " + ", ".join(f"“{esc(p)}”" for p in c[key])
                for kind, key in (("newly right", "right_prompts"), ("lost", "lost_prompts")) if c[key]]
        pair = f"step {esc(c['pair'])}" if c["pair"][0].isdigit() else esc(c["pair"])
        parts.append(f"**{esc(c['subject'])}**: {pair}, +{c['newly_right']} / −{c['lost']}"
                     + (f" (e.g. {'; '.join(said)})" if said else ""))
    more = len(churns) - CALLED_OUT
    return ("Largest churn per relation (the neighbouring checkpoints with the most prompts newly right + lost): "
            + "; ".join(parts) + (f"; and {more} more relation{'s' if more > 1 else ''}" if more > 0 else "") + ".")


def changes(page: Page, tables: dict, results: Path) -> None:
    """What changed between neighbouring checkpoints: +N newly right / −M lost per relation and group (a chart,
    the largest churns in words, a table), and the prompts whose gold rank moved most."""
    from probekit.diff import head_change, neighbour_pairs, neighbour_summary, rank_changes

    predictions = tables["predictions"]
    pairs = neighbour_pairs(predictions)
    if not pairs:
        return
    counts = change_counts(neighbour_summary(predictions))
    summary = counts.assign(cell=[f"+{r} / −{m}" if r or m else "·" for r, m in
                                  zip(counts["newly_right"], counts["lost"])])
    summary["column"] = [f"{s} ({str(g).replace('_', '-')})" for s, g in zip(summary["subject"], summary["group"])]
    wide = summary.pivot_table(index=["from_step", "to_step"], columns="column", values="cell", aggfunc="first",
                               sort=False).reset_index()
    wide.insert(0, "steps", [f"{int(a):,} → {int(b):,}" for a, b in zip(wide.pop("from_step"), wide.pop("to_step"))])
    page.add(PAGE, "# What changed at each step", "",
             "Between each pair of neighbouring checkpoints: prompts newly answered at rank 1 (+N) and prompts "
             "that lost rank 1 (−M), per relation and fact group (· = none either way). These are counts of "
             "prompts, not tests. Below, each step's prompts whose gold rank moved most. `probekit diff RESULTS "
             "3000` prints the same for one step.", "")
    sentence = churn_sentence(largest_churns(counts, predictions))
    if sentence:
        page.add(PAGE, sentence, "")
        page.chart(PAGE, ("changes", "newly-right-lost", "by-step-pair"), churn_chart(counts),
                   "Prompts newly right (+) and lost (−) per relation and fact group between neighbouring "
                   "checkpoints; hover for the counts, click a legend entry to pick out a group", step_axis=False,
                   data=counts.drop(columns=["pair", "subject"]))
    else:
        page.add(PAGE, "No prompt was newly answered at rank 1 or lost it between any neighbouring checkpoints.", "")
    page.add(PAGE, *page.table(wide, ("changes", "newly-right-lost"), data=counts.drop(columns=["pair", "subject"])))
    steps = predictions.drop_duplicates("checkpoint").set_index("checkpoint")["step"]
    for a, b in reversed(pairs):
        moved = rank_changes(predictions, a, b)
        right, lost = int((moved["change"] == "newly right").sum()), int((moved["change"] == "lost").sum())
        shown = moved.head(12).rename(columns={f"top1_{a}": "top-1 before", f"top1_{b}": "top-1 after",
                                               f"gold_rank_{a}": "rank before", f"gold_rank_{b}": "rank after"})
        body = page.table(shown, ("moved", a, b)) if len(shown) else ["No prompt changed.", ""]
        page.add(PAGE, *collapsible("note", f"step {int(steps[a]):,} → {int(steps[b]):,} "
                                            f"({esc(a)} → {esc(b)}): +{right} newly right / −{lost} lost", body))
    a, b = pairs[-1]
    heads = head_change(results, capture_files(tables["manifest"]), a, b)
    if len(heads):
        page.add(PAGE, f"## Attention, {esc(a)} → {esc(b)}", "",
                 "Heads whose attention changed most on the captured sentences (Jensen–Shannon divergence, "
                 "bits); `probekit diff` also measures how far each block of weights moved.", "",
                 *page.table(heads.head(8).round(3), ("heads-changed",)))
    page.configure(PAGE, title="What changed", hide_toc=True)
