"""The Syntax probes page, from the probes analysis: each probe's score and selectivity per layer against
training step, and the structural probe's UUAS against step beside its control.

Drawn from the `probe_scores` table and worded from the findings rows (`probekit.analyses.findings`: per probe
and layer `selective` — selectivity above the random-init model's, Holm over the probe's layers — and
`emerged`); the page computes no statistic. A probe that does as well on its control task has shown the probe's
capacity, not the model's knowledge (Hewitt & Liang 2019); one that is as selective on the untrained model reads
word identity, not what training added. With several seeds, the rows pooled over them. The page's figures are
interactive charts (`probekit.report.charts_inside`), their numbers and the claims table downloadable as plain
numbers; the matplotlib functions here (`layer_curves`, `uuas_curve`, `layer_step_heatmaps`) draw the same for
notebooks.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probekit.analyses.findings import main_findings, main_rows, select
from probekit.core.schema import CONTROL
from probekit.figures import plain, step_axis, subplots
from probekit.palette import BASELINE, DASHED, RANDOM_INIT, SEQUENTIAL, colour, mpl_dash, vega_dash
from probekit.report import charts_inside
from probekit.report.charts import HEIGHT, STEP, WIDTH, plain_data
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
            shade = colour(k)
            ax.plot(line["step"], line["score"], color=shade, label=f"layer {layer}")
            ax.fill_between(line["step"], line["score_low"], line["score_high"], color=shade, alpha=0.15)
            ax.plot(line["step"], line["selectivity"], color=shade, linestyle=mpl_dash(DASHED))
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
        ax.plot(line["step"], line["score"], color=colour(0), label=f"UUAS, layer {layer}")
        ax.fill_between(line["step"], line["score_low"], line["score_high"], color=colour(0), alpha=0.2)
        ax.plot(line["step"], line["control"], color=BASELINE[0], linestyle=mpl_dash(BASELINE[1]), label="control task")
        ax.fill_between(line["step"], line["control_low"], line["control_high"], color=BASELINE[0], alpha=0.15)
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


# ---------------------------------------------------------------- the page's interactive charts

MEASURES = {"score": "score", "selectivity": "selectivity", "control": "control task"}
MAPPED = ("probe", "layer", "step", "score", "score_low", "score_high", "selectivity", "selectivity_low",
          "selectivity_high", "sentences")
"""The columns the layer × step maps draw (and their download holds)."""


def score_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The numbers the page draws: a row per probe, layer and step (of the first run drawn), score, control and
    selectivity with their 95% intervals, and the random-init model's at that probe and layer."""
    rows = _series(scores)
    rows = rows[rows["run"] == rows["run"].iloc[0]] if len(rows) else rows
    init = scores[scores["checkpoint"] == CONTROL].drop_duplicates(["probe", "layer"]).set_index(["probe", "layer"])
    out = pd.DataFrame({"probe": rows["probe"].astype(str).to_numpy(), "layer": rows["layer"].astype(int).to_numpy(),
                        "step": rows["step"].astype(int).to_numpy()})
    for column in ("score", "control", "selectivity"):
        for end in ("", "_low", "_high"):
            out[column + end] = rows[column + end].astype(float).to_numpy()
    for column in ("score", "selectivity"):
        for end in ("", "_low", "_high"):
            out[f"random_init_{column}{end}"] = [
                float(init.loc[(p, layer), column + end]) if (p, layer) in init.index else np.nan
                for p, layer in zip(out["probe"], out["layer"])]
    out["sentences"] = rows["sentences"].astype("Int64").to_numpy()
    out["n"] = rows["n"].astype("Int64").to_numpy()
    return out


def layer_chart(numbers: pd.DataFrame) -> alt.TopLevelMixin:
    """One panel per probe: a line per layer (the palette's colours) against step of the measure a dropdown
    picks (score, selectivity, control task) with its 95% band, and the random-init model's value for that layer
    as a dotted rule; hover for values, intervals and sentences, a legend click fades the other layers."""
    probes = [p for p in NAMES if p in set(numbers["probe"])] + sorted(set(numbers["probe"]) - set(NAMES))
    parts = []
    for key, label in MEASURES.items():
        init = f"random_init_{key}"
        parts.append(pd.DataFrame({
            "probe": [NAMES.get(p, p) for p in numbers["probe"]], "layer": [f"layer {v}" for v in numbers["layer"]],
            "step": numbers["step"], "measure": label, "value": numbers[key], "low": numbers[f"{key}_low"],
            "high": numbers[f"{key}_high"], "n": numbers["sentences"],
            "random_init": numbers[init] if init in numbers else np.nan,
            "random_init_low": numbers[f"{init}_low"] if init in numbers else np.nan,
            "random_init_high": numbers[f"{init}_high"] if init in numbers else np.nan}))
    long = pd.concat(parts, ignore_index=True)
    layers = [f"layer {v}" for v in sorted(set(numbers["layer"]))]
    color = alt.Scale(domain=layers, range=[colour(i) for i in range(len(layers))])
    legend = alt.selection_point(fields=["layer"], bind="legend")
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    measure = alt.param(name="measure", value="selectivity", bind=alt.binding_select(
        options=list(MEASURES.values()), name="measure "))
    base = alt.Chart().transform_filter("datum.measure == measure")
    enc = alt.Color("layer:N", scale=color, title="layer", legend=alt.Legend(orient="top", symbolType="stroke",
                                                                            symbolStrokeWidth=2, symbolOpacity=1))
    tooltip = [alt.Tooltip("probe:N"), alt.Tooltip("layer:N"), alt.Tooltip("step:Q", format=",d"),
               alt.Tooltip("measure:N"), alt.Tooltip("value:Q", format=".3f"),
               alt.Tooltip("low:Q", format=".3f", title="95% low"), alt.Tooltip("high:Q", format=".3f", title="95% high"),
               alt.Tooltip("n:Q", title="sentences"), alt.Tooltip("random_init:Q", format=".3f", title="random init")]
    y_title = "value"
    band = base.mark_area().encode(x=STEP, y=alt.Y("low:Q", title=y_title), y2="high:Q", color=enc,
                                   opacity=alt.condition(legend, alt.value(0.14), alt.value(0.02)))
    lines = base.mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=STEP, y=alt.Y("value:Q", title=y_title), color=enc,
        opacity=alt.condition(legend, alt.value(1), alt.value(charts_inside.FADED)), tooltip=tooltip,
    ).add_params(legend, zoom)
    rules = base.transform_filter("isValid(datum.random_init)").transform_aggregate(
        random_init="min(random_init)", random_init_low="min(random_init_low)",
        random_init_high="min(random_init_high)", groupby=["probe", "layer"]).mark_rule(
        color=RANDOM_INIT[0], strokeDash=vega_dash(RANDOM_INIT[1])).encode(
        y="random_init:Q", opacity=alt.condition(legend, alt.value(0.9), alt.value(0.08)),
        tooltip=[alt.Tooltip("probe:N"), alt.Tooltip("layer:N"),
                 alt.Tooltip("random_init:Q", format=".3f", title="random init"),
                 alt.Tooltip("random_init_low:Q", format=".3f", title="95% low"),
                 alt.Tooltip("random_init_high:Q", format=".3f", title="95% high")])
    layered = alt.layer(band, lines, rules, data=plain_data(long)).properties(width=WIDTH, height=HEIGHT)
    return layered.facet(facet=alt.Facet("probe:N", title=None, sort=[NAMES.get(p, p) for p in probes],
                                         header=alt.Header(labelFontWeight="bold")), columns=4).add_params(
        measure).properties(title="Each probe per layer against step: the measure the dropdown picks (band: 95% "
                                  "interval" + ("; dotted: the random-init model at that layer)"
                                                if long["random_init"].notna().any() else ")"))


def heatmap_chart(numbers: pd.DataFrame) -> alt.TopLevelMixin:
    """Layer × training step maps, a panel per probe: its score (0 to 1) above, its selectivity (diverging,
    centred at 0) below."""
    present = set(numbers["probe"])
    probes = [NAMES[p] for p in NAMES if p in present] + sorted(present - set(NAMES))
    cells = numbers[list(MAPPED)].assign(probe=[NAMES.get(p, p) for p in numbers["probe"]])
    maps = []
    reach = float(np.nanmax(np.abs(cells["selectivity"]))) if cells["selectivity"].notna().any() else 0.0
    for key, scale in (("score", alt.Scale(scheme=SEQUENTIAL, domain=[0, 1])),
                       ("selectivity", charts_inside.diverging(max(reach, 0.05), "selectivity"))):
        tooltip = [alt.Tooltip("probe:N"), alt.Tooltip("layer:O"), alt.Tooltip("step:Q", format=",d"),
                   alt.Tooltip(f"{key}:Q", format=".3f"), alt.Tooltip(f"{key}_low:Q", format=".3f", title="95% low"),
                   alt.Tooltip(f"{key}_high:Q", format=".3f", title="95% high"),
                   alt.Tooltip("sentences:Q", title="sentences")]
        maps.append(charts_inside.step_heatmap(cells, key, alt.Color(f"{key}:Q", scale=scale, title=key), "probe",
                                               probes, tooltip, f"{key} per layer × step"))
    return alt.vconcat(*maps).resolve_scale(color="independent")


def uuas_chart(numbers: pd.DataFrame) -> tuple[alt.TopLevelMixin | None, pd.DataFrame]:
    """The structural probe's UUAS against step at its best layer at the last step, with its control task
    (dashed, a baseline) and the random-init model's (dotted), each with its 95% band; None without it."""
    rows = numbers[(numbers["probe"] == "distance")].dropna(subset=["score"])
    if rows.empty:
        return None, rows
    last = rows[rows["step"] == rows["step"].max()]
    layer = int(last.loc[last["score"].idxmax(), "layer"])
    line = rows[rows["layer"] == layer]
    parts = [pd.DataFrame({"series": f"UUAS, layer {layer}", "step": line["step"], "value": line["score"],
                           "low": line["score_low"], "high": line["score_high"], "n": line["sentences"]}),
             pd.DataFrame({"series": "control task", "step": line["step"], "value": line["control"],
                           "low": line["control_low"], "high": line["control_high"], "n": line["sentences"]})]
    if line["random_init_score"].notna().any():
        parts.append(pd.DataFrame({"series": charts_inside.RANDOM, "step": line["step"],
                                   "value": line["random_init_score"], "low": line["random_init_score_low"],
                                   "high": line["random_init_score_high"], "n": np.nan}))
    long = pd.concat(parts, ignore_index=True)
    styles = charts_inside.styles_of(list(dict.fromkeys(long["series"])), {"control task": BASELINE})
    chart = charts_inside.step_lines(long, styles, "UUAS", f"Structural probe: UUAS at layer {layer} (its best "
                                     "at the last step)", y_domain=[0, 1], n_title="sentences")
    keep = ["probe", "layer", "step", "score", "score_low", "score_high", "control", "control_low", "control_high",
            "random_init_score", "random_init_score_low", "random_init_score_high", "sentences"]
    return chart, line[keep].rename(columns={"score": "uuas", "score_low": "low", "score_high": "high",
                                             "random_init_score": "random_init",
                                             "random_init_score_low": "random_init_low",
                                             "random_init_score_high": "random_init_high"})


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
    numbers = score_rows(scores)
    if len(numbers):
        page.chart(PAGE, ("probes", "by-layer", "by-step"), layer_chart(numbers),
                   "Each probe's selectivity, score or control task (the dropdown) per layer against step (band: "
                   "95% interval; dotted: the random-init model at that layer); click a layer in the legend to "
                   "fade the others", data=numbers)
        page.chart(PAGE, ("probes", "layer-by-step", "maps"), heatmap_chart(numbers),
                   "Score and selectivity of every probe per layer × step (selectivity centred at 0)",
                   data=numbers[list(MAPPED)])
        chart, uuas = uuas_chart(numbers)
        if chart is not None:
            page.chart(PAGE, ("probes", "uuas", "by-step"), chart,
                       "Structural probe: UUAS against training step at the best layer, with its control task "
                       "(dashed) and the random-init model (dotted)", data=uuas)
    if len(claims):
        shown = claims.drop(columns="name").assign(
            step=[f"{v:,}" for v in claims["step"]],
            selectivity=[f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(v) else ""
                         for v, lo, hi in zip(claims["selectivity"], claims["low"], claims["high"])],
            random_init_bar=["" if pd.isna(v) else f"{v:.3f}" for v in claims["random_init_bar"]],
            p_holm=["" if pd.isna(v) else f"{v:.3g}" for v in claims["p_holm"]],
            arrived_after=["" if pd.isna(v) else f"{v:,.0f}" for v in claims["arrived_after"]],
            arrived_by=["" if pd.isna(v) else f"{v:,.0f}" for v in claims["arrived_by"]]).drop(columns=["low", "high"])
        data = claims.drop(columns="name").assign(arrived_after=claims["arrived_after"].astype("Int64"),
                                                  arrived_by=claims["arrived_by"].astype("Int64"))
        page.add(PAGE, "## Each probe: selective, and since when", "",
                 "A probe is *selective* when, at some layer, its selectivity's 95% interval lies above the "
                 "random-init model's at that layer after Holm's correction over the layers; it *arrived* in "
                 "(arrived_after, arrived_by] when it is so from then to the last step.", "",
                 *page.table(shown, ("probes", "claims"), data=data))
    page.configure(PAGE, title=TITLE)
    best = tables.get("syntax_best_heads")
    if best is None or best.empty:  # else the Syntax page's section adds it
        from probekit.report import timeline

        timeline.section(page, tables)
