"""The What-changed page: what changed between neighbouring checkpoints (`probekit.diff`)."""

from __future__ import annotations

from pathlib import Path

from probekit.report.attention import capture_files
from probekit.report.markdown import esc
from probekit.report.page import Page, collapsible

PAGE = "changes.md"


def changes(page: Page, tables: dict, results: Path) -> None:
    """What changed between neighbouring checkpoints: +N newly right / −M lost per relation and group, and
    the prompts whose gold rank moved most."""
    from probekit.diff import head_change, neighbour_pairs, neighbour_summary, rank_changes

    predictions = tables["predictions"]
    pairs = neighbour_pairs(predictions)
    if not pairs:
        return
    summary = neighbour_summary(predictions)
    summary = summary.assign(cell=[f"+{r} / −{m}" if r or m else "·" for r, m in
                                   zip(summary["newly_right"], summary["lost"])])
    several = summary["benchmark"].nunique() > 1
    summary["column"] = [(f"{b} / " if several else "") + f"{r} ({g.replace('_', '-')})"
                         for b, r, g in zip(summary["benchmark"], summary["relation"], summary["group"])]
    wide = summary.pivot_table(index=["from_step", "to_step"], columns="column", values="cell", aggfunc="first",
                               sort=False).reset_index()
    wide.insert(0, "steps", [f"{int(a):,} → {int(b):,}" for a, b in zip(wide.pop("from_step"), wide.pop("to_step"))])
    page.add(PAGE, "# What changed at each step", "",
             "Between each pair of neighbouring checkpoints: prompts newly answered at rank 1 (+N) and prompts "
             "that lost rank 1 (−M), per relation and fact group (· = none either way). Below, each step's prompts whose gold rank "
             "moved most. `probekit diff RESULTS 3000` prints the same for one step.", "",
             *page.table(wide, ("changes",)))
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
