"""The Syntax probes page, from the probes analysis: each probe's score and selectivity per layer against
training step, and the structural probe's UUAS against step beside its control.

Made from the `probe_scores` table only, with its own 95% bootstrap intervals over eval sentences. The page
says in words, for the last checkpoint, which layer each probe reads best and whether its selectivity's
interval excludes 0 — a probe that does as well on its control task has shown the probe's capacity, not the
model's knowledge (Hewitt & Liang 2019) — and over the series, per probe, the first step its selectivity's
interval lies above 0 and above the random-init control's (`probe_emergence`); score and selectivity per layer
× step as heatmaps. With several seeds, the rows pooled over them.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from probekit.core.schema import CONTROL, POOLED
from probekit.figures import plain, step_axis, subplots
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "syntax-probes.md", "Syntax probes"
NAMES = {"upos": "UPOS", "deprel": "arc label", "distance": "structural (UUAS)", "depth": "depth (root accuracy)"}


def _series(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows drawn against step: the random-init control and rows without a step left out."""
    rows = scores[scores["checkpoint"] != CONTROL].dropna(subset=["step"])
    rows = rows[rows["run"] == POOLED] if (rows["run"] == POOLED).any() else rows
    return rows.assign(step=rows["step"].astype(int)).sort_values(["probe", "layer", "step"], kind="stable")


@plain
def layer_curves(scores: pd.DataFrame) -> Figure:
    """One panel per probe: its score (solid, with band) and selectivity (dashed) per layer against step."""
    rows = _series(scores)
    probes = [p for p in NAMES if p in set(rows["probe"])]
    fig, axes = subplots(1, len(probes), figsize=(4.2 * len(probes), 3.4), squeeze=False)
    layers = sorted(rows["layer"].unique())
    for ax, probe in zip(axes[0], probes):
        mine = rows[rows["probe"] == probe]
        for k, layer in enumerate(layers):
            line = mine[mine["layer"] == layer]
            colour = f"C{k % 10}"
            ax.plot(line["step"], line["score"], color=colour, label=f"layer {layer}")
            ax.fill_between(line["step"], line["score_low"], line["score_high"], color=colour, alpha=0.15)
            ax.plot(line["step"], line["selectivity"], color=colour, linestyle="--")
        ax.set_title(NAMES[probe])
        ax.set_xlabel("training step")
        step_axis(ax, rows["step"].tolist())
    axes[0][0].set_ylabel("score (solid) · selectivity (dashed)")
    axes[0][-1].legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig


@plain
def uuas_curve(scores: pd.DataFrame) -> Figure:
    """The structural probe's UUAS against step at its best layer at the last step, with its control."""
    rows = _series(scores[scores["probe"] == "distance"])
    fig, ax = subplots(figsize=(6, 3.4))
    if not rows.empty:
        last = rows[rows["step"] == rows["step"].max()]
        layer = int(last.loc[last["score"].idxmax(), "layer"])
        line = rows[rows["layer"] == layer]
        ax.plot(line["step"], line["score"], color="C0", label=f"UUAS, layer {layer}")
        ax.fill_between(line["step"], line["score_low"], line["score_high"], color="C0", alpha=0.2)
        ax.plot(line["step"], line["control"], color="C7", linestyle=":", label="control task")
        ax.fill_between(line["step"], line["control_low"], line["control_high"], color="C7", alpha=0.15)
        step_axis(ax, rows["step"].tolist())
        ax.legend(fontsize="small")
    ax.set_xlabel("training step")
    ax.set_ylabel("UUAS")
    fig.tight_layout()
    return fig


@plain
def layer_step_heatmaps(scores: pd.DataFrame) -> Figure:
    """Per probe (columns), its score (top row) and selectivity (bottom row) for every layer (y) × step (x);
    the selectivity's colours centred on 0. Of the first run drawn (pooled over seeds where there are several)."""
    rows = _series(scores)
    rows = rows[rows["run"] == rows["run"].iloc[0]] if len(rows) else rows
    probes = [p for p in NAMES if p in set(rows["probe"])] or ["upos"]
    fig, axes = subplots(2, len(probes), figsize=(3.4 * len(probes) + 1, 5.6), squeeze=False)
    reach = max(float(rows["selectivity"].abs().max()) if len(rows) else 0.0, 0.05)
    for k, probe in enumerate(probes):
        mine = rows[rows["probe"] == probe]
        for r, (column, cmap, low, high) in enumerate((("score", "viridis", 0, 1),
                                                       ("selectivity", "RdBu", -reach, reach))):
            ax = axes[r][k]
            grid = mine.pivot_table(index="layer", columns="step", values=column)
            image = ax.imshow(grid.to_numpy(float), origin="lower", aspect="auto", cmap=cmap, vmin=low, vmax=high)
            ax.grid(False)
            ticks = list(range(0, grid.shape[1], max(1, grid.shape[1] // 6)))
            ax.set_xticks(ticks, [f"{grid.columns[t]:,.0f}" for t in ticks], fontsize=7, rotation=45)
            ax.set_yticks(range(grid.shape[0]), [str(layer) for layer in grid.index], fontsize=7)
            ax.set_title(f"{NAMES[probe]}: {column}", fontsize=9)
            if k == 0:
                ax.set_ylabel("layer")
            if r == 1:
                ax.set_xlabel("training step")
            if k == len(probes) - 1:
                fig.colorbar(image, ax=ax, label=column)
    fig.tight_layout()
    return fig


def emergence_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per probe (the main line's run): its earliest layer-wise arrivals over the series — the first step some
    layer's selectivity interval lies above 0 (and which layer), and above the random-init control's."""
    from probekit.analyses.probes import probe_emergence

    found = probe_emergence(scores)
    main = _series(scores)
    found = found[found["run"].isin(set(main["run"][:1]))]
    step = lambda s: "never" if pd.isna(s) else f"{s:,.0f}"  # noqa: E731
    out = []
    for probe, rows in found.groupby("probe", sort=False):
        zero, init = rows["selective_at"], rows["selectivity_above_init_at"]
        out.append({"probe": NAMES.get(probe, probe),
                    "selectivity above 0 from": step(zero.min()),
                    "first layer": "" if zero.isna().all() else int(rows.loc[zero.idxmin(), "layer"]),
                    "layers selective at the last step": f"{int(rows['selective_at_last'].sum())} of {len(rows)}",
                    "selectivity above random init from": step(init.min()),
                    "its layer": "" if init.isna().all() else int(rows.loc[init.idxmin(), "layer"])})
    return pd.DataFrame(out)


def last_step_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per probe, at the last step: the best layer's score, control and selectivity with intervals."""
    rows = _series(scores)
    out = []
    for (run, probe), mine in rows.groupby(["run", "probe"], sort=False):
        last = mine[mine["step"] == mine["step"].max()]
        best = last.loc[last["score"].idxmax()]
        verdict = ("selective" if best["selectivity_low"] > 0 else
                   "not selective" if best["selectivity_low"] <= 0 <= best["selectivity_high"] else "below control")
        out.append({"run": run, "probe": NAMES.get(probe, probe), "step": int(best["step"]),
                    "best layer": int(best["layer"]), "score [95%]": _interval(best, "score"),
                    "control [95%]": _interval(best, "control"),
                    "selectivity [95%]": _interval(best, "selectivity"), "verdict": verdict})
    return pd.DataFrame(out)


def _interval(row, column: str) -> str:
    return f"{row[column]:.2f} [{row[f'{column}_low']:.2f}, {row[f'{column}_high']:.2f}]"


def section(page: Page, tables: dict, results) -> None:
    scores = tables.get("probe_scores")
    if scores is None or scores.empty:
        return
    page.add(PAGE, "# Syntax probes", "",
             "Linear probes read each layer's word representations (layer 0 = the embeddings): part of speech "
             "(UPOS), the label of a dependency arc from [head; dependent], the parse tree's distances (the "
             "structural probe of Hewitt & Manning 2019: UUAS of the minimum spanning tree, punctuation left out) "
             "and depths (root accuracy). Each is fitted again on a **control task** — labels fixed per word type "
             "at random (Hewitt & Liang 2019) — and **selectivity** is the task's score minus the control's: a "
             "probe that does as well on its control has shown its own capacity, not the model's knowledge. "
             "Intervals are 95% percentile bootstrap intervals over the eval sentences (selectivity's paired).", "")
    found = last_step_table(scores)
    for row in found.itertuples():
        page.add(PAGE, f"- **{esc(row.probe)}** at step {row.step}: layer {row[4]} scores {row[5]} against "
                       f"{row[6]} on its control: selectivity {row[7]}, **{row.verdict}**.")
    page.add(PAGE, "")
    page.figure(PAGE, ("probes", "layers"), layer_curves(scores),
                "Each probe's score (solid, band: 95% interval) and selectivity (dashed) per layer against step")
    page.figure(PAGE, ("probes", "heatmaps"), layer_step_heatmaps(scores),
                "Score and selectivity of every probe per layer × step")
    arrivals = emergence_table(scores)
    if len(arrivals):
        page.add(PAGE, "## When each probe becomes selective", "",
                 "Over the series: the first step some layer's selectivity interval lies above 0, and the first it "
                 "lies above the random-init control's selectivity (or step 0's) — a probe that is selective on the "
                 "untrained model reads word identity, not what training added.", "",
                 *page.table(arrivals, ("probes", "emergence")))
    page.figure(PAGE, ("probes", "uuas"), uuas_curve(scores),
                "Structural probe: UUAS against training step at the best layer, with its control task")
    page.add(PAGE, *page.table(found.round(3), ("probes", "last")))
    page.configure(PAGE, title=TITLE)
    best = tables.get("syntax_best_heads")
    if best is None or best.empty:  # else the Syntax page's section adds it
        from probekit.report import timeline

        timeline.section(page, tables)
