"""The Syntax probes page, from the probes analysis: each probe's score and selectivity per layer against
training step, and the structural probe's UUAS against step beside its control.

Drawn from the `probe_scores` table and worded from the findings rows (`probekit.analyses.findings`: per probe
and layer `selective` — selectivity above the random-init model's, Holm over the probe's layers — and
`emerged`); the page computes no statistic. A probe that does as well on its control task has shown the probe's
capacity, not the model's knowledge (Hewitt & Liang 2019); one that is as selective on the untrained model reads
word identity, not what training added. With several seeds, the rows pooled over them.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from probekit.analyses.findings import main_findings, main_rows, select
from probekit.figures import plain, step_axis, subplots
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "syntax-probes.md", "Syntax probes"
NAMES = {"upos": "UPOS", "deprel": "arc label", "distance": "structural (UUAS)", "depth": "depth (root accuracy)"}


def _series(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows drawn against step: the random-init control and rows without a step left out."""
    rows = main_rows(scores)
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
    rows = _series(scores[scores["probe"] == "distance"]).dropna(subset=["score"])
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


def claims_table(found: pd.DataFrame) -> pd.DataFrame:
    """Per probe, from the findings rows: the layer it is read at (its most selective layer that survives Holm's
    correction, else its most selective), selectivity there with its interval, the random-init model's bar, the
    verdict, and when the probe became selective (arrival interval)."""
    probes = main_findings(select(found, "selective", "probes", group="probe"))
    emerged = main_findings(select(found, "emerged", "probes")).set_index(["run", "benchmark", "subject"])
    out = []
    for _, row in probes.iterrows():
        key = (row["run"], row["benchmark"], row["subject"])
        came = emerged.loc[key] if key in emerged.index else None
        came = came.iloc[0] if isinstance(came, pd.DataFrame) else came
        out.append({"probe": row["subject"], "name": NAMES.get(row["subject"], row["subject"]),
                    "step": int(row["step"]), "layer": int(str(row["detail"]).split()[-1]),
                    "selectivity": row["value"], "low": row["low"], "high": row["high"],
                    "random_init_bar": row["bar"], "p_holm": row["p_adjusted"], "sentences": int(row["n"]),
                    "verdict": row["verdict"], "emerged": came["verdict"] if came is not None else "",
                    "arrived_after": came["step_low"] if came is not None else float("nan"),
                    "arrived_by": came["step"] if came is not None and came["verdict"] == "emerged" else float("nan")})
    return pd.DataFrame(out)


def sentence(row) -> str:
    """A probe's claim in words (one bullet of the page and the Overview)."""
    said = (f"**{esc(row['name'])}** at step {row['step']:,}: most selective at layer {row['layer']}, selectivity "
            f"{row['selectivity']:.2f} [{row['low']:.2f}, {row['high']:.2f}] against the random-init model's "
            f"{row['random_init_bar']:.2f}: ")
    if row["verdict"] == "selective":
        said += "**selective**"
        if pd.notna(row["arrived_by"]):
            said += (f", from after step {row['arrived_after']:,.0f} by step {row['arrived_by']:,.0f}"
                     if pd.notna(row["arrived_after"]) else f", from the first probed step ({row['arrived_by']:,.0f})")
    elif row["verdict"] == "too_few":
        said += "**too few eval sentences to tell**"
    else:
        said += "**not selective** beyond the untrained model (Holm over the layers)"
        if row["emerged"] == "transient":
            said += "; it was at an earlier step (transient)"
    return said


def definitions_text(manifest: dict) -> str:
    """What this run's probes implement (`probekit.analyses.probes.definitions`), if stated."""
    from probekit.analyses import probes

    define = getattr(probes, "definitions", None)
    return define(dict(manifest.get("options", {}).get("probes", {}))) if define is not None else ""


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
    found = tables.get("findings")
    claims = claims_table(found) if found is not None else pd.DataFrame()
    if text := definitions_text(tables.get("manifest", {})):
        page.add(PAGE, '??? info "Definitions: what this run computes"', "",
                 *["    " + line if line else "" for line in text.splitlines()], "")
    for _, row in claims.iterrows():
        page.add(PAGE, f"- {sentence(row)}.")
        page.finding(f"- Syntax probe — {sentence(row)}.")
    page.add(PAGE, "")
    page.figure(PAGE, ("probes", "layers"), layer_curves(scores),
                "Each probe's score (solid, band: 95% interval) and selectivity (dashed) per layer against step")
    page.figure(PAGE, ("probes", "heatmaps"), layer_step_heatmaps(scores),
                "Score and selectivity of every probe per layer × step")
    page.figure(PAGE, ("probes", "uuas"), uuas_curve(scores),
                "Structural probe: UUAS against training step at the best layer, with its control task")
    if len(claims):
        page.add(PAGE, "## Each probe: selective, and since when", "",
                 "A probe is *selective* when, at some layer, its selectivity's 95% interval lies above the "
                 "random-init model's at that layer after Holm's correction over the layers; it *arrived* in "
                 "(arrived_after, arrived_by] when it is so from then to the last step.", "",
                 *page.table(claims.drop(columns="name"), ("probes", "claims")))
    page.configure(PAGE, title=TITLE)
    best = tables.get("syntax_best_heads")
    if best is None or best.empty:  # else the Syntax page's section adds it
        from probekit.report import timeline

        timeline.section(page, tables)
