"""Interactive charts of the model's inside (logit lens, head ablation, head metrics) and of the benchmarks'
known-facts counts: Vega-Lite specs made with altair, drawn by the report's `assets/probekit.js`.

Each `*_data` function returns the tidy numbers a chart draws (integer steps, float values, `low`/`high`
where the table has an interval), which the page offers for download; the chart function draws exactly
those rows. Styles come from `probekit.palette` only: fact groups through `charts.group_scales` (injected
solid, held back dashed), the random-init model dotted (`palette.RANDOM_INIT`), layers and heads
`palette.colour(i)`. Clicking a legend entry fades the other series. These functions compute no statistic:
they reshape the analyses' tables.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from probekit.analyses.findings import main_rows
from probekit.core.schema import CONTROL
from probekit.palette import DIVERGING, RANDOM_INIT, SEQUENTIAL, colour, group_order, vega_dash
from probekit.report.charts import HEIGHT, STEP, WIDTH, group_scales, plain_data

LENS_METRICS = {"p_at_1": "P@1", "mrr": "MRR"}
HEAD_ROLES = {"attn_prev": "prev-token", "attn_next": "next-token", "attn_self": "self", "attn_cls": "[CLS]",
              "attn_sep": "[SEP]", "attn_punct": "punctuation"}


def _fade(legend, on: float = 1.0, off: float = 0.12):
    return alt.condition(legend, alt.value(on), alt.value(off))


def _steps(frame: pd.DataFrame) -> pd.DataFrame:
    """`step` as integers (nullable where a row has none, e.g. the random-init control)."""
    return frame.assign(step=pd.to_numeric(frame["step"]).round().astype("Int64"))


def _slim(frame: pd.DataFrame, columns: list[str], digits: int = 6) -> pd.DataFrame:
    """Only the `columns` a chart draws or shows on hover, floats to `digits` significant digits: the page
    stays light (the download keeps every column at full precision)."""
    out = frame[[c for c in columns if c in frame]].copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = [float(f"{v:.{digits}g}") if v == v else v for v in out[column]]
    return out


def _floats(frame: pd.DataFrame, columns) -> pd.DataFrame:
    return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce").astype(float) for c in columns if c in frame})


# ------------------------------------------------------------------------------------------------ logit lens


def lens_data(lens_scores: pd.DataFrame, relation: str) -> pd.DataFrame:
    """The `lens_scores` rows of `relation` drawn by `lens_chart`, long: one row per checkpoint × layer × group
    × metric (P@1, MRR) with its 95% interval and scorable prompts; the random-init rows with `kind` control."""
    rows = lens_scores[lens_scores["relation"] == relation]
    main = main_rows(rows).assign(kind="checkpoint")
    control = rows[rows["checkpoint"] == CONTROL].assign(kind="control")
    parts = []
    for metric, label in LENS_METRICS.items():
        for frame in (main, control):
            if not len(frame):
                continue
            parts.append(pd.DataFrame({
                "kind": frame["kind"], "benchmark": frame["benchmark"], "run": frame["run"],
                "checkpoint": frame["checkpoint"], "relation": frame["relation"], "group": frame["group"],
                "layer": frame["layer"], "step": frame["step"], "metric": label, "value": frame[metric],
                "low": frame.get(f"{metric}_low"), "high": frame.get(f"{metric}_high"), "n": frame.get("n")}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["kind", "benchmark", "run", "checkpoint", "relation", "group", "layer", "step", "metric", "value",
                 "low", "high", "n"])
    out = _floats(_steps(out), ("value", "low", "high", "n"))
    return out.assign(layer=pd.to_numeric(out["layer"]).astype(int))


def lens_chart(data: pd.DataFrame, relation: str) -> alt.FacetChart:
    """P@1 and MRR (a panel each) read at every layer against step: a line per layer (colour; layer 0 = the
    embeddings) and fact group (injected solid, held back dashed) with its 95% band; the random-init model's
    reading as dotted rules. Click a layer in the legend to fade the others."""
    layers = sorted(set(data["layer"]))
    names = {layer: f"layer {layer}" for layer in layers}
    several = [c for c in ("run", "benchmark") if data[c].nunique() > 1]
    values = plain_data(_slim(data.assign(layer_name=data["layer"].map(names)),
                              ["kind", "group", "layer_name", "step", "metric", "value", "low", "high", "n", *several]))
    scale = alt.Scale(domain=[names[l] for l in layers], range=[colour(i) for i in layers])
    color = alt.Color("layer_name:N", title="read at", sort=[names[l] for l in layers], scale=scale)
    _, dash = group_scales(group_order(data["group"]))  # groups told apart by their dash; colour is the layer
    stroke = alt.StrokeDash("group:N", scale=dash, title="fact group")
    legend = alt.selection_point(fields=["layer_name"], bind="legend")
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    y = alt.Y("value:Q", title="score", scale=alt.Scale(domain=[0, 1]))
    tooltip = [*(alt.Tooltip(f"{c}:N") for c in several), alt.Tooltip("group:N"),
               alt.Tooltip("layer_name:N", title="read at"), alt.Tooltip("step:Q", format=",d"),
               alt.Tooltip("metric:N"),
               alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("low:Q", format=".3f", title="95% low"),
               alt.Tooltip("high:Q", format=".3f", title="95% high"), alt.Tooltip("n:Q", title="prompts scored")]
    base = alt.Chart()
    series = base.transform_filter("datum.kind == 'checkpoint'")
    band = series.mark_area(fillOpacity=0.1).encode(
        x=STEP, y=alt.Y("low:Q", title="score"), y2="high:Q", color=color,
        detail=["group:N", *(f"{c}:N" for c in several)])
    lines = series.mark_line(point=alt.OverlayMarkDef(size=20)).encode(
        x=STEP, y=y, color=color, strokeDash=stroke, opacity=_fade(legend),
        **({"detail": [f"{c}:N" for c in several]} if several else {}),
        tooltip=tooltip).add_params(legend, zoom)
    control = base.transform_filter("datum.kind == 'control'").mark_rule(
        color=RANDOM_INIT[0], strokeDash=vega_dash(RANDOM_INIT[1])).encode(
        y="value:Q", opacity=_fade(legend, 0.8, 0.1),
        tooltip=[alt.Tooltip("layer_name:N", title="read at"), alt.Tooltip("group:N"),
                 alt.Tooltip("value:Q", format=".3f", title="random init")])
    layered = alt.layer(band, lines, control, data=values).properties(width=WIDTH + 80, height=HEIGHT)
    return layered.facet(column=alt.Column("metric:N", title=None, sort=list(LENS_METRICS.values()),
                                           header=alt.Header(labelFontSize=13, labelFontWeight="bold"))).properties(
        title=f"logit lens: {relation} (layer 0 = embeddings; band: 95% interval; dotted: random init)")


# ------------------------------------------------------------------------------------------------ ablation


def ablation_data(ablation: pd.DataFrame, checkpoint: str) -> pd.DataFrame:
    """The ablation rows of one checkpoint, each head named "L1.H0"."""
    rows = ablation[ablation["checkpoint"] == checkpoint]
    cols = ["benchmark", "relation", "group", "checkpoint", "step", "layer", "head", "n", "p_at_1", "delta_p_at_1",
            "mean_gold_logprob", "delta_mean_gold_logprob"]
    out = _steps(rows[[c for c in cols if c in rows]].reset_index(drop=True))
    out = _floats(out, ("n", "p_at_1", "delta_p_at_1", "mean_gold_logprob", "delta_mean_gold_logprob"))
    return out.assign(layer=out["layer"].astype(int), head=out["head"].astype(int),
                      head_id=[f"L{l}.H{h}" for l, h in zip(out["layer"], out["head"])])


def ablation_chart(data: pd.DataFrame, checkpoint: str) -> alt.Chart:
    """Relation (rows) × head (columns), one panel per fact group: the change in mean gold log-probability when
    the head is zeroed (blue: the head helps; red: it hurts); hover for P@1 and its change."""
    several = data["benchmark"].nunique() > 1
    data = data.assign(row=(data["benchmark"] + ": " + data["relation"]) if several else data["relation"])
    limit = float(data["delta_mean_gold_logprob"].abs().max()) if len(data) else 1.0
    limit = limit if limit == limit and limit > 0 else 1.0
    heads = list(dict.fromkeys(data.sort_values(["layer", "head"])["head_id"]))
    return alt.Chart(plain_data(data)).mark_rect().encode(
        x=alt.X("head_id:O", title="zeroed head", sort=heads),
        y=alt.Y("row:N", title=None),
        color=alt.Color("delta_mean_gold_logprob:Q", title="Δ gold log-prob",
                        scale=alt.Scale(scheme=DIVERGING, domain=[-limit, limit], reverse=True)),
        tooltip=[alt.Tooltip("benchmark:N"), alt.Tooltip("relation:N"), alt.Tooltip("group:N"),
                 alt.Tooltip("head_id:N", title="head"),
                 alt.Tooltip("delta_mean_gold_logprob:Q", format=".3f", title="Δ mean gold log-prob"),
                 alt.Tooltip("mean_gold_logprob:Q", format=".3f", title="mean gold log-prob (zeroed)"),
                 alt.Tooltip("delta_p_at_1:Q", format=".3f", title="Δ P@1"),
                 alt.Tooltip("p_at_1:Q", format=".3f", title="P@1 (zeroed)"), alt.Tooltip("n:Q", title="prompts")]
    ).properties(width=alt.Step(22), height=alt.Step(22)).facet(
        column=alt.Column("group:N", title=None, sort=group_order(data["group"]))).properties(
        title=f"head ablation at {checkpoint}: change in mean gold log-probability (blue = the head helps)")


# ------------------------------------------------------------------------------------------------ head metrics


def head_names(heads: pd.DataFrame) -> dict[tuple[int, int], str]:
    """(layer, head) → "L1.H1 prev-token": each head named by where it puts most attention at the last
    checkpoint (Clark et al.'s categories; the mean over runs where there are several), "broad" when its
    attention is nearly uniform (entropy over 85% of the uniform distribution's)."""
    last = heads[heads["step"] == heads["step"].max()]
    table = last.pivot_table(index=["layer", "head"], columns="metric", values="value", aggfunc="mean")
    names = {}
    for (layer, head), row in table.iterrows():
        known = {m: row[m] for m in HEAD_ROLES if m in row and pd.notna(row[m])}
        role = HEAD_ROLES[max(known, key=known.get)] if known else ""
        if "entropy_ratio" in row and pd.notna(row["entropy_ratio"]) and row["entropy_ratio"] > 0.85:
            role = "broad"
        names[(int(layer), int(head))] = f"L{int(layer)}.H{int(head)} {role}".strip()
    return names


def heads_data(heads: pd.DataFrame, metrics: list[str], checkpoints: list[str] | None = None) -> pd.DataFrame:
    """The `heads` rows of `metrics` (at `checkpoints`, else every one), each head named by its role."""
    rows = heads[heads["metric"].isin(metrics) & heads["step"].notna()]
    if checkpoints is not None:
        rows = rows[rows["checkpoint"].isin(checkpoints)]
    names = head_names(heads)
    cols = ["run", "checkpoint", "step", "layer", "head", "metric", "value"]
    out = _floats(_steps(rows[cols].reset_index(drop=True)), ("value",))
    out = out.assign(layer=out["layer"].astype(int), head=out["head"].astype(int))
    return out.assign(head_name=[names.get((l, h), f"L{l}.H{h}") for l, h in zip(out["layer"], out["head"])])


def head_grid(data: pd.DataFrame, metrics: list[str]) -> alt.VConcatChart:
    """Layer × head heat maps: a row per metric (its own colour scale), a column per checkpoint's step."""
    width = max(70, 16 * data["head"].nunique())  # room for the column's label on a small model
    height = max(50, 16 * data["layer"].nunique())
    rows = []
    for metric in metrics:
        part = data[data["metric"] == metric]
        if not len(part):
            continue
        rows.append(alt.Chart(plain_data(_slim(part, ["step", "layer", "head", "value", "head_name"]))).mark_rect()
                    .encode(x=alt.X("head:O", title="head"), y=alt.Y("layer:O", title="layer"),
                            color=alt.Color("value:Q", title=metric, scale=alt.Scale(scheme=SEQUENTIAL)),
                            tooltip=[alt.Tooltip("head_name:N", title="head"), alt.Tooltip("step:Q", format=",d"),
                                     alt.Tooltip("value:Q", format=".3f", title=metric)])
                    .properties(width=width, height=height)
                    .facet(column=alt.Column("step:O", title=metric, header=alt.Header(
                        labelExpr="'step ' + format(datum.value, ',d')"))))
    return alt.vconcat(*rows).resolve_scale(color="independent")


def picked_heads(data: pd.DataFrame, metric: str, n: int) -> list[str]:
    """The `n` heads whose `metric` ends farthest from the heads' median at the last step (all when few)."""
    rows = data[data["metric"] == metric]
    last = rows[rows["step"] == rows["step"].max()].groupby("head_name")["value"].first()
    return list((last - last.median()).abs().sort_values(ascending=False, kind="stable").index[:n])


def head_trajectories(data: pd.DataFrame, metrics: list[str], labelled: int = 8) -> alt.ConcatChart:
    """A panel per metric: each of the `labelled` heads that end farthest from the median (named by role) against
    step. Click a head in a panel's legend to fade the others."""
    panels = []
    for i, metric in enumerate(metrics):
        heads = picked_heads(data, metric, labelled)
        part = data[(data["metric"] == metric) & data["head_name"].isin(heads)]
        if not len(part):
            continue
        legend = alt.selection_point(fields=["head_name"], bind="legend", name=f"heads_{i}")
        zoom = alt.selection_interval(bind="scales", encodings=["x"], name=f"zoom_{i}")
        part = _slim(part, ["step", "value", "head_name"] + (["run"] if part["run"].nunique() > 1 else []))
        panels.append(alt.Chart(plain_data(part)).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
            x=STEP, y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
            color=alt.Color("head_name:N", title=f"{metric}: head (role)", sort=heads,
                            scale=alt.Scale(domain=heads, range=[colour(i) for i in range(len(heads))])),
            opacity=_fade(legend), **({"detail": "run:N"} if "run" in part else {}),
            tooltip=[alt.Tooltip("head_name:N", title="head"), *([alt.Tooltip("run:N")] if "run" in part else []),
                     alt.Tooltip("step:Q", format=",d"), alt.Tooltip("value:Q", format=".4g", title=metric)]
        ).add_params(legend, zoom).properties(width=WIDTH, height=HEIGHT, title=metric))
    return alt.concat(*panels, columns=2).resolve_scale(color="independent")


# ------------------------------------------------------------------------------------------------ benchmarks


def known_data(counts: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """`known_counts` with the prompts scored per step and group (`n`) beside each count."""
    rows = predictions[(predictions["checkpoint"] != CONTROL) & predictions["gold_rank"].notna()]
    n = rows.groupby(["step", "group"]).size().rename("n").reset_index()
    out = counts.merge(n, on=["step", "group"], how="left")
    return _floats(_steps(out), ("count", "n"))[["group", "criterion", "step", "count", "n"]]


def known_chart(data: pd.DataFrame, benchmark: str) -> alt.FacetChart:
    """Prompts answered at rank 1 and within the top 10 (a panel each) against step, by fact group."""
    groups = group_order(data["group"])
    color, dash = group_scales(groups)
    legend = alt.selection_point(fields=["group"], bind="legend")
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    return alt.Chart(plain_data(data)).mark_line(point=alt.OverlayMarkDef(size=20)).encode(
        x=STEP, y=alt.Y("count:Q", title="prompts"),
        color=alt.Color("group:N", scale=color, title="fact group"),
        strokeDash=alt.StrokeDash("group:N", scale=dash, title="fact group"), opacity=_fade(legend),
        tooltip=[alt.Tooltip("group:N"), alt.Tooltip("criterion:N"), alt.Tooltip("step:Q", format=",d"),
                 alt.Tooltip("count:Q", title="prompts answered"), alt.Tooltip("n:Q", title="prompts scored")]
    ).add_params(legend, zoom).properties(width=WIDTH, height=HEIGHT).facet(
        column=alt.Column("criterion:N", title=None, sort=["rank 1", "top 10"])).properties(
        title=f"{benchmark}: prompts answered at rank 1 and within the top 10")
