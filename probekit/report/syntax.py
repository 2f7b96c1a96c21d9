"""The Syntax page, from the syntax-heads analysis: does a single head come to find words' syntactic heads?

Made from the `syntax_best_heads`, `syntax_heads` and `syntax_uuas` tables only: per relation, the best head's
accuracy (dependent → head) against step with its 95% bootstrap band over arcs, beside its fixed-offset
baseline and band; a relation × layer heatmap of the best head in each layer at the last step; and the last
step's table. A relation "beats its baseline" only where the intervals do not overlap, and the page and the
Overview say so in words (including when none does).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from probekit.core.schema import CONTROL
from probekit.figures import plain, step_axis, subplots
from probekit.report.page import Page

PAGE, TITLE = "syntax.md", "Syntax"
DIRECTION = "dep->head"
SHOWN = 8
"""Relations drawn against step: the most frequent ones."""


def _series(best: pd.DataFrame) -> pd.DataFrame:
    rows = best[(best["direction"] == DIRECTION) & (best["checkpoint"] != CONTROL)].dropna(subset=["step"])
    return rows.assign(step=rows["step"].astype(float)).sort_values(["run", "relation", "step"], kind="stable")


def top_relations(best: pd.DataFrame, k: int = SHOWN) -> list[str]:
    """The `k` relations with the most arcs (at the last checkpoint)."""
    last = best[best["step"] == best["step"].max()]
    return last.groupby("relation")["n"].max().sort_values(ascending=False).index[:k].tolist()


@plain
def best_head_curves(best: pd.DataFrame, relations: list[str]) -> Figure:
    """Best-head accuracy (dependent → head) against step per relation, with its band, and the fixed-offset
    baseline dashed with its band."""
    rows = _series(best)
    cols = 4
    fig, axes = subplots((len(relations) + cols - 1) // cols, cols, figsize=(12, 2.6 * ((len(relations) + 3) // 4)),
                         squeeze=False, sharey=True)
    for ax, relation in zip(axes.ravel(), relations):
        for run, line in rows[rows["relation"] == relation].groupby("run", sort=False):
            ax.plot(line["step"], line["accuracy"], label="best head")
            ax.fill_between(line["step"], line["accuracy_low"], line["accuracy_high"], alpha=0.2)
            ax.plot(line["step"], line["baseline"], "--", color="grey", label=f"offset baseline")
            ax.fill_between(line["step"], line["baseline_low"], line["baseline_high"], color="grey", alpha=0.15)
        ax.set_title(relation)
        ax.set_ylim(0, 1)
        if len(rows):
            step_axis(ax, rows["step"].tolist())
    for ax in axes.ravel()[len(relations):]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=8)
    fig.supxlabel("training step")
    fig.supylabel("accuracy")
    fig.tight_layout()
    return fig


@plain
def layer_heatmap(heads: pd.DataFrame, relations: list[str]) -> Figure:
    """Relation × layer: the best head of each layer's accuracy (dependent → head) at the last step."""
    rows = heads[(heads["direction"] == DIRECTION) & (heads["layer"] >= 0) & (heads["relation"].isin(relations))]
    grid = rows.groupby(["relation", "layer"])["accuracy"].max().unstack("layer").reindex(relations)
    fig, ax = subplots(figsize=(1.2 + 0.6 * grid.shape[1], 0.8 + 0.35 * len(relations)))
    image = ax.imshow(grid.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(relations)), relations)
    ax.set_xlabel("layer")
    fig.colorbar(image, ax=ax, label="best head's accuracy")
    fig.tight_layout()
    return fig


def verdict(last: pd.DataFrame) -> str:
    """One sentence on the last step: which relations' best heads beat their baselines."""
    beats = sorted(last.loc[last["beats_baseline"], "relation"].unique())
    if not beats:
        return "no syntactic head beats its fixed-offset baseline (95% intervals over arcs overlap or lie below)"
    return (f"the best head beats its fixed-offset baseline for {len(beats)} of {last['relation'].nunique()} "
            f"relations ({', '.join(beats[:8])}{', …' if len(beats) > 8 else ''})")


def section(page: Page, tables: dict, results) -> None:
    best, heads = tables.get("syntax_best_heads"), tables.get("syntax_heads")
    if best is None or best.empty:
        return
    rows = _series(best)
    step = rows["step"].max() if len(rows) else best["step"].max()
    last = best[(best["step"] == step) & (best["direction"] == DIRECTION)]
    relations = top_relations(best)
    page.add(PAGE, f"# {TITLE}", "",
             "Does one attention head attend from a word to its syntactic head (Clark et al. 2019)? Word-level "
             "attention: mean over a word's query pieces, sum over its key pieces, special tokens out, rows "
             "renormalised; a head is right on an arc when the dependent's most-attended word is its head. The "
             "baseline is the best fixed offset per relation. Bands: 95% bootstrap over arcs.", "",
             f"At step {step:,.0f}: {verdict(last)}.", "")
    page.finding(f"Syntax (step {step:,.0f}): {verdict(last)}.")
    if len(rows):
        page.figure(PAGE, ("syntax", "best-heads"), best_head_curves(best, relations),
                    "Best head's accuracy per relation against step, with the fixed-offset baseline (dashed)")
    if heads is not None and len(heads):
        at_last = heads[heads["step"] == step]
        page.figure(PAGE, ("syntax", "layers"), layer_heatmap(at_last, relations),
                    f"Relation × layer: the layer's best head at step {step:,.0f}")
    shown = last[["relation", "n", "layer", "head", "accuracy", "accuracy_low", "accuracy_high", "offset", "baseline",
                  "baseline_low", "baseline_high", "beats_baseline"]].sort_values("n", ascending=False)
    page.add(PAGE, "## Last step, every relation", "", *page.table(shown.round(3), ("syntax", "best-heads")))
    uuas = tables.get("syntax_uuas")
    if uuas is not None and len(uuas):
        per_layer = uuas[(uuas["step"] == step) & uuas["best_in_layer"]]
        page.add(PAGE, "## UUAS of each layer's best head (maximum spanning tree of its attention)", "",
                 *page.table(per_layer[["layer", "head", "n", "uuas", "uuas_low", "uuas_high"]].round(3),
                            ("syntax", "uuas")))
    page.configure(PAGE, title=TITLE)
