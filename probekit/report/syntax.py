"""The Syntax page, from the syntax-heads analysis: does a single head come to find words' syntactic heads?

Made from the `syntax_best_heads`, `syntax_heads` and `syntax_uuas` tables only: per relation, the best head's
accuracy (dependent → head) against step with its 95% bootstrap band over arcs, beside its fixed-offset
baseline and band; when each relation's best head first beats its baseline (`head_emergence`); a relation ×
layer heatmap of the best head in each layer at every step behind a step slider; and the last step's table. A
relation "beats its baseline" only where the intervals do not overlap, and the page and the Overview say so in
words (including when none does). With several seeds, the lines and tables are the rows pooled over them.
The "Which arrives first" page (`probekit.report.timeline`) is added from here too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probekit.core.schema import CONTROL, POOLED
from probekit.figures import plain, step_axis, subplots
from probekit.report.markdown import esc
from probekit.report.page import Page, figure_link, slider

PAGE, TITLE = "syntax.md", "Syntax"
DIRECTION = "dep->head"
SHOWN = 8
"""Relations drawn against step: the most frequent ones."""


def _series(best: pd.DataFrame) -> pd.DataFrame:
    """The dependent → head rows drawn against step: pooled over seeds where there are several, the
    random-init control and rows without a step left out."""
    rows = best[(best["direction"] == DIRECTION) & (best["checkpoint"] != CONTROL)].dropna(subset=["step"])
    rows = rows[rows["run"] == POOLED] if (rows["run"] == POOLED).any() else rows
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
def layer_heatmap(heads: pd.DataFrame, relations: list[str], step: float | None = None) -> Figure:
    """Relation × layer: the best head of each layer's accuracy (dependent → head) at `step` (default: the last
    step; with several seeds, each seed's best head of the layer, averaged over seeds), each cell's value written
    in it."""
    rows = heads[(heads["direction"] == DIRECTION) & (heads["layer"] >= 0) & (heads["relation"].isin(relations))
                 & (heads["checkpoint"] != CONTROL)]
    step = rows["step"].max() if step is None else step
    rows = rows[rows["step"] == step]
    per_run = rows.groupby(["run", "relation", "layer"])["accuracy"].max()
    grid = per_run.groupby(["relation", "layer"]).mean().unstack("layer").reindex(relations)
    fig, ax = subplots(figsize=(1.6 + 0.6 * grid.shape[1], 0.9 + 0.35 * len(relations)))
    values = grid.to_numpy(float)
    image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.grid(False)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value < 0.6 else "black")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(relations)), relations)
    ax.set_xlabel("layer")
    ax.set_title(f"step {step:,.0f}" if pd.notna(step) else "", fontsize=9)
    fig.colorbar(image, ax=ax, label="best head's accuracy")
    fig.tight_layout()
    return fig


def figure_slider(page: Page, name: tuple, figures: list[tuple[str, Figure]], what: str) -> list[str]:
    """Markdown for figures shown one at a time behind a step slider (the report's `probekit-steps` box, driven
    by assets/probekit.js as on the Attention page), the last one first; each PNG clicks to enlarge."""
    panes = []
    for label, fig in figures:
        stem = page.unique(*name, label)
        fig.savefig(page.docs / "figures" / f"{stem}.png", dpi=90, bbox_inches="tight")
        panes.append((esc(label), figure_link(stem, f"{esc(what)} at {esc(label)}")))
    return slider(panes)


def emergence_table(best: pd.DataFrame) -> pd.DataFrame:
    """Per relation (dependent → head, the main line's run, most arcs first): when its best head first beats its
    fixed-offset baseline, from which step it does to the last, and when it first rises above the random-init
    control's best head."""
    from probekit.analyses.syntax_heads import head_emergence

    found = head_emergence(best)
    main = _series(best)
    found = found[(found["direction"] == DIRECTION) & found["run"].isin(set(main["run"]))]
    step = lambda s: "never" if pd.isna(s) else f"{s:,.0f}"  # noqa: E731
    return pd.DataFrame({"relation": found["relation"], "arcs": found["n"],
                         "first beats its baseline": found["beats_baseline_at"].map(step),
                         "beats it from": found["beats_baseline_from"].map(lambda s: "" if pd.isna(s) else f"{s:,.0f}"),
                         "at the last step": found["beats_at_last"].map({True: "beats", False: "does not"}),
                         "first above random init": found["above_init_at"].map(step)}).reset_index(drop=True)


def emergence_sentence(table: pd.DataFrame) -> str:
    """When the best heads first beat their baselines, in words (including when none ever does)."""
    came = table[table["first beats its baseline"] != "never"]
    if came.empty:
        return (f"no relation's best head beats its fixed-offset baseline at any step ({len(table)} relations, "
                "95% intervals over arcs)")
    first = came.assign(_s=came["first beats its baseline"].str.replace(",", "").astype(float)).sort_values("_s")
    names = ", ".join(f"{r} (step {s})" for r, s in zip(first["relation"][:5], first["first beats its baseline"][:5]))
    return (f"{len(came)} of {len(table)} relations' best heads beat their fixed-offset baseline at some step, "
            f"earliest {names}{', …' if len(came) > 5 else ''}")


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
    last = rows[rows["step"] == step] if len(rows) else best[(best["step"] == step) & (best["direction"] == DIRECTION)]
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
    table = emergence_table(best)
    if len(table):
        page.add(PAGE, "## When each relation's best head beats its baseline", "",
                 f"Over the series: {emergence_sentence(table)}. A step counts when the best head's 95% interval "
                 "lies wholly above the baseline's; \"first above random init\" is the first step its interval lies "
                 "above the random-init control's best head (or step 0's).", "",
                 *page.table(table, ("syntax", "emergence")))
    if heads is not None and len(heads):
        steps = sorted(heads.loc[heads["checkpoint"] != CONTROL, "step"].dropna().unique())
        figures = [(f"step {s:,.0f}", layer_heatmap(heads, relations, s)) for s in steps]
        page.add(PAGE, "## Relation × layer at every step", "",
                 "Each cell: the best head of that layer for the relation (dependent → head). Move the slider to "
                 "choose the checkpoint; click the map to enlarge it.", "",
                 *figure_slider(page, ("syntax", "layers"), figures, "relation × layer accuracy"))
    shown = last[["relation", "n", "layer", "head", "accuracy", "accuracy_low", "accuracy_high", "offset", "baseline",
                  "baseline_low", "baseline_high", "beats_baseline"]].sort_values("n", ascending=False)
    page.add(PAGE, "## Last step, every relation", "", *page.table(shown.round(3), ("syntax", "best-heads")))
    uuas = tables.get("syntax_uuas")
    if uuas is not None and len(uuas):
        per_layer = uuas[(uuas["step"] == step) & uuas["best_in_layer"] & (uuas["checkpoint"] != CONTROL)]
        per_layer = per_layer[per_layer["run"] == POOLED] if (per_layer["run"] == POOLED).any() else per_layer
        page.add(PAGE, "## UUAS of each layer's best head (maximum spanning tree of its attention)", "",
                 *page.table(per_layer[["layer", "head", "n", "uuas", "uuas_low", "uuas_high"]].round(3),
                            ("syntax", "uuas")))
    page.configure(PAGE, title=TITLE)
    from probekit.report import timeline

    timeline.section(page, tables)
