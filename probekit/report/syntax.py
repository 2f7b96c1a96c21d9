"""The Syntax page, from the syntax-heads analysis: does a single head come to find words' syntactic heads?

Made from the `syntax_best_heads`, `syntax_heads` and `syntax_uuas` tables only: per relation, the best head's
accuracy (dependent → head) against step with its 95% bootstrap band over arcs, beside its fixed-offset
baseline and band; when each relation's best head first beats its baseline (`head_emergence`); a relation ×
layer heatmap of the best head in each layer at every step behind a step slider; and the last step's table. A
relation "beats its baseline" only where the intervals do not overlap, and the page and the Overview say so in
words (including when none does). With several seeds, the lines and tables are the rows pooled over them.
The page's figures are interactive charts (`probekit.report.charts_inside`: hover for values, intervals and arcs;
the heatmap one chart with a step slider), each chart's and table's numbers downloadable as CSV and Parquet; the
matplotlib functions here (`best_head_curves`, `layer_heatmap`) draw the same for notebooks.
The "Which arrives first" page (`probekit.report.timeline`) is added from here too.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probekit.analyses.findings import main_findings, main_rows, select
from probekit.core.schema import CONTROL
from probekit.figures import plain, step_axis, subplots
from probekit.palette import BASELINE, SEQUENTIAL, colour, mpl_dash
from probekit.report import charts_inside
from probekit.report.page import Page

PAGE, TITLE = "syntax.md", "Syntax"
DIRECTION = "dep->head"
SHOWN = 8
"""Relations drawn against step: the most frequent ones."""


def _series(best: pd.DataFrame) -> pd.DataFrame:
    """The dependent → head rows drawn against step: pooled over seeds where there are several, the
    random-init control and rows without a step left out."""
    rows = main_rows(best[best["direction"] == DIRECTION])
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
            ax.plot(line["step"], line["accuracy"], color=colour(0), label="best head")
            ax.fill_between(line["step"], line["accuracy_low"], line["accuracy_high"], color=colour(0), alpha=0.2)
            ax.plot(line["step"], line["baseline"], color=BASELINE[0], ls=mpl_dash(BASELINE[1]), label="offset baseline")
            ax.fill_between(line["step"], line["baseline_low"], line["baseline_high"], color=BASELINE[0], alpha=0.15)
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


# ---------------------------------------------------------------- the page's interactive charts


def best_head_chart(best: pd.DataFrame, relations: list[str]) -> tuple[alt.TopLevelMixin, pd.DataFrame]:
    """Best-head accuracy (dependent → head) against step, a panel per relation drawn, with its 95% band, the
    fixed-offset baseline (dashed) and the random-init model's best head (dotted) with theirs; returns the chart
    and its numbers (a row per relation, run and step; the random-init model's value, low and high in their own
    columns)."""
    rows = _series(best)
    rows = rows[rows["relation"].isin(relations)]
    control = best[(best["checkpoint"] == CONTROL) & (best["direction"] == DIRECTION)]
    control = control.drop_duplicates("relation").set_index("relation")
    init = {c: [control.loc[r, k] if r in control.index else np.nan for r in rows["relation"]]
            for c, k in (("random_init", "accuracy"), ("random_init_low", "accuracy_low"),
                         ("random_init_high", "accuracy_high"))}
    frame = pd.DataFrame({
        "relation": rows["relation"].astype(str).to_numpy(), "run": rows["run"].astype(str).to_numpy(),
        "step": rows["step"].astype(int).to_numpy(), "layer": rows["layer"].astype("Int64").to_numpy(),
        "head": rows["head"].astype("Int64").to_numpy(), "n": rows["n"].astype(int).to_numpy(),
        "accuracy": rows["accuracy"].astype(float).to_numpy(), "low": rows["accuracy_low"].astype(float).to_numpy(),
        "high": rows["accuracy_high"].astype(float).to_numpy(), "offset": rows["offset"].astype("Int64").to_numpy(),
        "baseline": rows["baseline"].astype(float).to_numpy(),
        "baseline_low": rows["baseline_low"].astype(float).to_numpy(),
        "baseline_high": rows["baseline_high"].astype(float).to_numpy(),
        **{k: np.asarray(v, float) for k, v in init.items()}})
    several = frame["run"].nunique() > 1
    own = lambda name, run: f"{name} ({run})" if several else name  # noqa: E731
    parts, styles = [], {}
    for name, value, low, high in (("best head", "accuracy", "low", "high"),
                                   ("fixed-offset baseline", "baseline", "baseline_low", "baseline_high"),
                                   (charts_inside.RANDOM, "random_init", "random_init_low", "random_init_high")):
        for run, part in frame.groupby("run", sort=False):
            if part[value].isna().all():
                continue
            series = own(name, run)
            parts.append(pd.DataFrame({"relation": part["relation"], "series": series, "step": part["step"],
                                       "value": part[value], "low": part[low], "high": part[high], "n": part["n"],
                                       "head": [f"L{a} H{b}" if name == "best head" and pd.notna(a) else ""
                                                for a, b in zip(part["layer"], part["head"])]}))
            styles[series] = BASELINE if name.startswith("fixed") else None
    long = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["relation", "series", "step", "value", "low", "high", "n", "head"])
    styles = charts_inside.styles_of(list(styles), {k: v for k, v in styles.items() if v is not None})
    dotted = "; dotted: random init" if any(s.startswith(charts_inside.RANDOM) for s in styles) else ""
    chart = charts_inside.step_lines(
        long, styles, "accuracy (dependent → head)", "Best head's accuracy per relation (band: 95% interval over "
        f"arcs; dashed: fixed-offset baseline{dotted})", facet="relation", facet_title="relation",
        y_domain=[0, 1], n_title="arcs", extra_tooltip=[alt.Tooltip("head:N", title="head")], facet_order=relations)
    return chart, frame


def layer_cells(heads: pd.DataFrame, relations: list[str]) -> pd.DataFrame:
    """Relation × layer × step: the best head of each layer's accuracy (dependent → head; with several seeds,
    each seed's best head of the layer, averaged over seeds, as `layer_heatmap`), the head, its arcs."""
    rows = heads[(heads["direction"] == DIRECTION) & (heads["layer"] >= 0) & (heads["relation"].isin(relations))
                 & (heads["checkpoint"] != CONTROL)].dropna(subset=["step", "accuracy"])
    if rows.empty:
        return pd.DataFrame(columns=["relation", "layer", "step", "accuracy", "head", "n", "seeds", "heads"])
    top = rows.loc[rows.groupby(["run", "relation", "layer", "step"])["accuracy"].idxmax()]
    out = top.groupby(["relation", "layer", "step"], sort=False).agg(
        accuracy=("accuracy", "mean"), heads=("head", lambda h: ", ".join(str(int(v)) for v in sorted(set(h)))),
        n=("n", "max"), seeds=("run", "nunique")).reset_index()
    rank = {r: i for i, r in enumerate(relations)}
    out = out.assign(_rank=out["relation"].map(rank)).sort_values(["step", "_rank", "layer"], kind="stable")
    return pd.DataFrame({"relation": out["relation"].astype(str).to_numpy(), "layer": out["layer"].astype(int).to_numpy(),
                         "step": out["step"].astype(int).to_numpy(), "accuracy": out["accuracy"].astype(float).to_numpy(),
                         "head": pd.array([int(h) if "," not in h else pd.NA for h in out["heads"]], dtype="Int64"),
                         "n": out["n"].astype(int).to_numpy(), "seeds": out["seeds"].astype(int).to_numpy(),
                         "heads": out["heads"].to_numpy()})


def layer_chart(cells: pd.DataFrame, relations: list[str]) -> alt.TopLevelMixin:
    """ONE chart of the relation × layer map at every step, a slider bound in the spec picking the step."""
    shown = [r for r in relations if r in set(cells["relation"])]
    tooltip = [alt.Tooltip("relation:N"), alt.Tooltip("layer:O"), alt.Tooltip("step:Q", format=",d"),
               alt.Tooltip("accuracy:Q", format=".3f", title="best head's accuracy"),
               alt.Tooltip("heads:N", title="head (of the layer; per seed)"), alt.Tooltip("n:Q", title="arcs"),
               alt.Tooltip("seeds:Q", title="seeds averaged")]
    return charts_inside.step_maps(
        cells.assign(map="relation × layer"), "map", ["relation × layer"],
        x=alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0)), y=alt.Y("relation:N", sort=shown, title=None),
        color=alt.Color("accuracy:Q", title="best head's accuracy",
                        scale=alt.Scale(scheme=SEQUENTIAL, domain=[0, 1])),
        tooltip=tooltip, title="The best head of each layer per relation (dependent → head)", cell=(34, 22))


def _interval(value, low, high, spec: str = ".2f") -> str:
    return "" if pd.isna(value) else (f"{value:{spec}}" if pd.isna(low) else f"{value:{spec}} [{low:{spec}}, "
                                                                             f"{high:{spec}}]")


def _step(value) -> str:
    return "" if pd.isna(value) else f"{value:,.0f}"


def emergence_table(found: pd.DataFrame) -> pd.DataFrame:
    """Per relation and direction (most arcs first), from the findings rows: whether its best head is learned at
    the last step (above its fixed-offset baseline and the random-init model's best head, Holm over the
    relations) and when that arrived."""
    learned = main_findings(select(found, "learned", "syntax-heads"))
    learned = learned[learned["subject"] != "UUAS"]
    if learned.empty:
        return pd.DataFrame()
    emerged = main_findings(select(found, "emerged", "syntax-heads")).drop_duplicates(["run", "benchmark", "subject"])
    emerged = emerged.set_index(["run", "benchmark", "subject"])
    rows = []
    for _, row in learned.iterrows():
        key = (row["run"], row["benchmark"], row["subject"])
        came = emerged.loc[key] if key in emerged.index else None
        rows.append({"relation": row["subject"], "arcs": int(row["n"]), "best head": row["detail"],
                     "accuracy": row["value"], "low": row["low"], "high": row["high"], "bar": row["bar"],
                     "p_holm": row["p_adjusted"], "verdict": row["verdict"],
                     "emerged": came["verdict"] if came is not None else "",
                     "arrived_after": came["step_low"] if came is not None else float("nan"),
                     "arrived_by": came["step"] if came is not None and came["verdict"] == "emerged" else float("nan")})
    return pd.DataFrame(rows).sort_values("arcs", ascending=False, kind="stable").reset_index(drop=True)


def verdict(found: pd.DataFrame) -> str:
    """One sentence from the findings rows: how many relations' best heads are learned at the last step, and the
    UUAS claim."""
    learned = main_findings(select(found, "learned", "syntax-heads"))
    if learned.empty:
        return "no syntactic head was judged"
    relations = learned[learned["subject"] != "UUAS"]
    beats = relations.loc[relations["verdict"] == "learned", "subject"].tolist()
    step = learned["step"].max()
    text = (f"at step {step:,.0f}, the best head beats both its fixed-offset baseline and the random-init model's "
            f"best head for {len(beats)} of {len(relations)} relations"
            + (f" ({', '.join(beats[:8])}{', …' if len(beats) > 8 else ''})" if beats else "")
            + " (95% intervals over arcs, Holm over the relations)")
    uuas = learned[learned["subject"] == "UUAS"]
    if len(uuas):
        u = uuas.iloc[0]
        text += (f"; the best head's UUAS {u['value']:.2f} [{u['low']:.2f}, {u['high']:.2f}] is "
                 + ("learned" if u["verdict"] == "learned" else "not learned")
                 + f" (bar {u['bar']:.2f}: the random-init model's and the structural baseline's)")
    return text


def definitions_text(manifest: dict) -> str:
    """What this run's syntactic heads implement (`probekit.analyses.syntax_heads.definitions`), if stated."""
    from probekit.analyses import syntax_heads

    define = getattr(syntax_heads, "definitions", None)
    return define(dict(manifest.get("options", {}).get("syntax-heads", {}))) if define is not None else ""


def section(page: Page, tables: dict, results) -> None:
    best, heads = tables.get("syntax_best_heads"), tables.get("syntax_heads")
    if best is None or best.empty:
        return
    rows = _series(best)
    step = rows["step"].max() if len(rows) else best["step"].max()
    last = rows[rows["step"] == step] if len(rows) else best[(best["step"] == step) & (best["direction"] == DIRECTION)]
    relations = top_relations(best)
    found = tables.get("findings")
    said = verdict(found) if found is not None else ""
    page.add(PAGE, f"# {TITLE}", "",
             "Does one attention head attend from a word to its syntactic head (Clark et al. 2019)? The baseline "
             "is the best fixed offset per relation; a relation's best head is *learned* when its 95% interval "
             "(bootstrap over arcs) lies above both the baseline's and the random-init model's best head's, after "
             "Holm's correction over the relations (the findings' rule).", "", f"{said[0].upper() + said[1:]}.", "")
    if text := definitions_text(tables.get("manifest", {})):
        page.add(PAGE, '??? info "Definitions: what this run computes"', "",
                 *["    " + line if line else "" for line in text.splitlines()], "")
    page.finding(f"Syntax: {said}.")
    if len(rows):
        chart, numbers = best_head_chart(best, relations)
        page.chart(PAGE, ("syntax", "best-head-accuracy", "by-step"), chart,
                   "Best head's accuracy per relation against step (band: 95% interval over arcs), with the "
                   "fixed-offset baseline (dashed) and the random-init model's best head (dotted); hover for the "
                   "values, click the legend to fade the others", data=numbers)
    table = emergence_table(found) if found is not None else pd.DataFrame()
    if len(table):
        shown = pd.DataFrame({
            "relation": table["relation"], "arcs": table["arcs"], "best head": table["best head"],
            "accuracy [95%]": [_interval(v, lo, hi) for v, lo, hi in zip(table["accuracy"], table["low"],
                                                                          table["high"])],
            "bar": [_interval(v, np.nan, np.nan) for v in table["bar"]],
            "p_holm": ["" if pd.isna(v) else f"{v:.3g}" for v in table["p_holm"]],
            "verdict": table["verdict"], "emerged": table["emerged"],
            "arrived_after": [_step(v) for v in table["arrived_after"]],
            "arrived_by": [_step(v) for v in table["arrived_by"]]})
        numbers = table.assign(arrived_after=table["arrived_after"].astype("Int64"),
                               arrived_by=table["arrived_by"].astype("Int64"))
        page.add(PAGE, "## Each relation's best head: learned, and since when", "",
                 "Per relation at the last step (`bar`: the higher of the baseline's and the random-init model's "
                 "upper bound; `p_holm`: Holm-adjusted over the relations) and the arrival interval of a lasting "
                 "clearance of both bars.", "", *page.table(shown, ("syntax", "emergence"), data=numbers))
    cells = layer_cells(heads, relations) if heads is not None and len(heads) else pd.DataFrame()
    if len(cells):
        page.add(PAGE, "## Relation × layer at every step", "",
                 "Each cell: the best head of that layer for the relation (dependent → head). Move the slider to "
                 "choose the checkpoint; hover a cell for its accuracy, head and arcs.", "")
        page.chart(PAGE, ("syntax", "layer-accuracy", "by-step"), layer_chart(cells, relations),
                   "Relation × layer: the best head of each layer's accuracy at the step the slider picks (the "
                   "last first)", step_axis=False, data=cells.drop(columns="heads"))
    measured = last[["relation", "n", "layer", "head", "accuracy", "accuracy_low", "accuracy_high", "offset",
                     "baseline", "baseline_low", "baseline_high"]].sort_values("n", ascending=False, kind="stable")
    shown = pd.DataFrame({
        "relation": measured["relation"], "arcs": measured["n"], "best head": [
            f"L{a} H{b}" if pd.notna(a) else "" for a, b in zip(measured["layer"], measured["head"])],
        "accuracy [95%]": [_interval(v, lo, hi, ".3f") for v, lo, hi in zip(
            measured["accuracy"], measured["accuracy_low"], measured["accuracy_high"])],
        "offset": measured["offset"], "baseline [95%]": [_interval(v, lo, hi, ".3f") for v, lo, hi in zip(
            measured["baseline"], measured["baseline_low"], measured["baseline_high"])]})
    numbers = measured.assign(step=int(step) if pd.notna(step) else pd.NA).rename(columns={
        "accuracy_low": "low", "accuracy_high": "high"})
    page.add(PAGE, "## Last step, every relation (the measurements; the verdicts are above)", "",
             *page.table(shown, ("syntax", "best-heads", "last-step"), data=numbers[["relation", "step", *[
                 c for c in numbers.columns if c not in ("relation", "step")]]]))
    uuas = tables.get("syntax_uuas")
    if uuas is not None and len(uuas):
        per_layer = main_rows(uuas[(uuas["step"] == step) & uuas["best_in_layer"] & (uuas["layer"] >= 0)])
        per_layer = per_layer[["step", "layer", "head", "n", "uuas", "uuas_low", "uuas_high"]]
        shown = pd.DataFrame({"layer": per_layer["layer"], "head": per_layer["head"], "n": per_layer["n"],
                              "UUAS [95%]": [_interval(v, lo, hi, ".3f") for v, lo, hi in zip(
                                  per_layer["uuas"], per_layer["uuas_low"], per_layer["uuas_high"])]})
        numbers = per_layer.assign(step=per_layer["step"].astype(int)).rename(
            columns={"uuas_low": "low", "uuas_high": "high"})
        page.add(PAGE, "## UUAS of each layer's best head (maximum spanning tree of its attention)", "",
                 *page.table(shown, ("syntax", "uuas", "by-layer"), data=numbers))
    page.configure(PAGE, title=TITLE)
    from probekit.report import timeline

    timeline.section(page, tables)
