"""Interactive charts of the report: Vega-Lite specs made with altair from the tidy tables.

Each function returns an `altair` chart; `spec_html` turns one into an inert `<div>` and a script of its specs
(the Vega-Lite source and the Vega it compiles to) that the site's `assets/probekit.js` loads and draws with
Vega when the chart comes near the screen. Vega ships inside probekit (`assets/vega/`, its BSD-3-Clause license
beside it), so the charts draw with no network. Every chart on a step axis draws it linear; the page's "log"
button redraws it on a symlog axis (which keeps step 0). Hover shows values, the mouse wheel zooms the step
axis, and clicking a legend entry fades the other series.
"""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from probekit.core.errors import ProbekitError
from probekit.core.schema import CONTROL, POOLED
from probekit.analyses.findings import main_findings, main_rows, select
from probekit.palette import PALETTE, RANDOM_INIT, RANKS, colour, group_order, group_styles, vega_dash

METRICS = {"p_at_1": "P@1", "p_at_10": "P@10", "mrr": "MRR"}
STEP = alt.X("step:Q", title="training step", scale=alt.Scale(type="linear", zero=False),
             axis=alt.Axis(format=",d"))
WIDTH, HEIGHT = 260, 190
CHARTS = "charts"  # the folder of a site's chart scripts, beside its pages
VEGA_LITE = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])  # the version altair writes: "6.4"


def spec_html(chart: alt.TopLevelMixin | dict, chart_id: str, folder: Path, step_axis: bool = True) -> str:
    """The chart as an empty `<div>` (with `step_axis`, a linear/log toggle above it) and, in `folder`/charts/,
    a script holding its Vega-Lite spec (the source: data, encodings; the chart menu saves it) and the Vega spec
    it compiles to (what the page draws, so that a page loads Vega's runtime only, not Vega-Lite's compiler).
    assets/probekit.js loads that script when the chart comes near the screen: a page's first load holds no
    chart's data, however many charts it has."""
    spec = vega_lite(chart)
    vega = compile_vega(spec, keep_data=False)
    (folder / CHARTS).mkdir(parents=True, exist_ok=True)
    (folder / CHARTS / f"{chart_id}.js").write_text(
        f"(window.probekitSpecs = window.probekitSpecs || {{}})[{json.dumps(chart_id)}] = "
        + json.dumps({"vega_lite": spec, "vega": vega}, separators=(",", ":"), allow_nan=False) + ";\n",
        encoding="utf-8")
    toggle = ('<div class="probekit-axis">step axis: <button type="button" data-scale="linear" class="on">linear'
              '</button><button type="button" data-scale="symlog">log</button></div>') if step_axis else ""
    return (f'<div class="probekit-chart" id="{chart_id}" data-src="{CHARTS}/{chart_id}.js" markdown="0">{toggle}'
            '<div class="probekit-view"></div></div>')


def script_json(value) -> str:
    """`value` as JSON to put inside a `<script>` element: no `<`, `>` or `&` that could end it."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c") \
        .replace(">", "\\u003e").replace("&", "\\u0026")


def vega_lite(chart: alt.TopLevelMixin | dict) -> dict:
    """The chart's Vega-Lite spec, each inline dataset named (`pk0`, `pk1`, …: the page fills the compiled
    spec's data from them) and every legend of a legend-bound selection's field drawn opaque."""
    if isinstance(chart, dict):
        spec = json.loads(json.dumps(chart))
    else:
        with alt.data_transformers.enable("default", max_rows=None):
            spec = chart.to_dict()
    named = iter(range(1_000_000))
    for node in _nodes(spec):
        data = node.get("data")
        if isinstance(data, dict) and "values" in data and "name" not in data:
            data["name"] = f"pk{next(named)}"
    _opaque_legends(spec, [])
    return spec


def compile_vega(spec: dict, keep_data: bool = True) -> dict:
    """The Vega spec that the Vega-Lite `spec` compiles to (vl-convert, offline; the same Vega-Lite version
    altair writes); without `keep_data`, the inline datasets' values left out (the page takes them from the
    Vega-Lite spec beside it)."""
    try:
        import vl_convert
    except ImportError:
        raise ProbekitError("the report's charts need vl-convert-python (pip install vl-convert-python)") from None
    vega = vl_convert.vegalite_to_vega(spec, vl_version=VEGA_LITE)
    if not keep_data:
        inline = {d["name"] for d in _nodes(spec) for d in [d.get("data")] if isinstance(d, dict) and "values" in d}
        for data in vega.get("data", []):
            if data.get("name") in inline:
                data["values"] = []
    return vega


def _nodes(node):
    """Every dict in a spec, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


LEGEND_CHANNELS = ("color", "fill", "stroke", "strokeDash", "shape", "size", "opacity")


def _opaque_legends(node, params: list) -> None:
    """Vega-Lite merges the legends of a layered chart's layers; a layer drawn with its own opacity (a band, a
    shaded interval) gives the merged legend a fixed symbol opacity that replaces its click handlers, so a
    legend-bound selection (click an entry: the other series fade) would do nothing. An explicit symbolOpacity
    on each layer's legend of the selection's field keeps them."""
    if isinstance(node, list):
        for item in node:
            _opaque_legends(item, params)
        return
    if not isinstance(node, dict):
        return
    params = params + list(node.get("params", []))
    layers = node.get("layer")
    if isinstance(layers, list):
        bound = lambda layer: any(p.get("bind") == "legend" and (p in layer.get("params", []) or  # noqa: E731
                                                                 layer.get("name") in p.get("views", []))
                                  for p in params + list(layer.get("params", [])) if isinstance(p, dict))
        owner = next((layer for layer in layers if isinstance(layer, dict) and bound(layer)), None)
        if owner is not None and isinstance(owner.get("encoding"), dict):
            for layer in layers:
                for channel in LEGEND_CHANNELS:
                    mine, theirs = owner["encoding"].get(channel), (layer.get("encoding") or {}).get(channel)
                    if (isinstance(mine, dict) and isinstance(theirs, dict) and mine.get("field")
                            and theirs.get("field") == mine.get("field") and theirs.get("legend", {}) is not None):
                        theirs.setdefault("legend", {}).setdefault("symbolOpacity", 1)
    for key, value in node.items():
        if key != "data":
            _opaque_legends(value, params)


def plain_data(frame: pd.DataFrame) -> alt.Data:
    """The rows as inline JSON values: numbers as floats, missing values as null (never NaN)."""
    records = []
    for row in frame.to_dict("records"):
        records.append({k: _json_value(v) for k, v in row.items()})
    return alt.Data(values=records)


def _json_value(value):
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value) if np.isfinite(value) else None
    try:
        return None if pd.isna(value) else str(value)
    except (TypeError, ValueError):
        return str(value)


def group_scales(groups) -> tuple[alt.Scale, alt.Scale]:
    """Colour and strokeDash scales for the fact groups (`probekit.palette`: injected solid, held back dashed)."""
    styles = group_styles(groups)
    return (alt.Scale(domain=list(styles), range=[c for c, _ in styles.values()]),
            alt.Scale(domain=list(styles), range=[vega_dash(d) for _, d in styles.values()]))


def score_curves(scores: pd.DataFrame, benchmark: str, emergence: pd.DataFrame | None = None) -> alt.Chart:
    """One panel per relation: the chosen metric (P@1, P@10, MRR: a dropdown) against step with its 95%
    band, injected solid and held-back dashed, a faint line per seed, the control as a dotted rule, and the
    emergence (the findings' `emerged` rows: injected − held back cleared 0 from then on) shaded over its arrival
    interval."""
    rows = scores[scores["benchmark"] == benchmark]
    data = rows[rows["checkpoint"] != CONTROL].dropna(subset=["step"])
    main = main_rows(data)
    seeds = data[data["run"] != POOLED] if len(main) < len(data) else data.iloc[:0]
    parts = []
    for kind, frame in (("mean", main), ("seed", seeds), ("control", rows[rows["checkpoint"] == CONTROL])):
        for metric, label in METRICS.items():
            parts.append(pd.DataFrame({
                "kind": kind, "relation": frame["relation"], "group": frame["group"], "run": frame["run"],
                "step": frame["step"], "metric": label, "value": frame[metric],
                "low": frame.get(f"{metric}_low"), "high": frame.get(f"{metric}_high"), "n": frame["n"]}))
    if emergence is not None and len(emergence):
        found = main_findings(select(emergence, "emerged", "facts", benchmark=benchmark, verdict="emerged"))
        parts.append(pd.DataFrame({"kind": "emerged", "relation": found["subject"],
                                   "group": found["group"].replace({"injected-held_back": "injected"}),
                                   "step": found["step"], "from": found["step_low"].fillna(found["step"]),
                                   "metric": "P@1"}))
    long = plain_data(pd.concat(parts, ignore_index=True))
    groups = group_order(data["group"])
    color, dash = group_scales(groups)
    metric = alt.param(name="metric", value="P@1", bind=alt.binding_select(options=list(METRICS.values()),
                                                                         name="metric "))
    legend = alt.selection_point(fields=["group"], bind="legend")
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    base = alt.Chart().transform_filter("datum.metric == metric")
    fade = alt.condition(legend, alt.value(1), alt.value(0.12))
    enc = {"color": alt.Color("group:N", scale=color, title="fact group"),
           "strokeDash": alt.StrokeDash("group:N", scale=dash, title="fact group")}
    y = alt.Y("value:Q", title="score", scale=alt.Scale(domain=[0, 1]))
    band = base.transform_filter("datum.kind == 'mean'").mark_area().encode(
        x=STEP, y=alt.Y("low:Q", title="score"), y2="high:Q", color=enc["color"],
        fillOpacity=alt.condition(legend, alt.value(0.18), alt.value(0.03)))  # not opacity: the legend stays solid
    seed_lines = base.transform_filter("datum.kind == 'seed'").mark_line(strokeWidth=0.8).encode(
        x=STEP, y=y, detail="run:N", color=enc["color"], strokeDash=enc["strokeDash"],
        opacity=alt.condition(legend, alt.value(0.3), alt.value(0.05)))
    tooltip = [alt.Tooltip("relation:N"), alt.Tooltip("group:N"), alt.Tooltip("step:Q", format=",d"),
               alt.Tooltip("metric:N"), alt.Tooltip("value:Q", format=".3f", title="value"),
               alt.Tooltip("low:Q", format=".3f", title="95% low"), alt.Tooltip("high:Q", format=".3f",
                                                                               title="95% high"),
               alt.Tooltip("n:Q", title="prompts")]
    lines = base.transform_filter("datum.kind == 'mean'").mark_line(point=alt.OverlayMarkDef(size=25)).encode(
        x=STEP, y=y, color=enc["color"], strokeDash=enc["strokeDash"], opacity=fade, tooltip=tooltip
    ).add_params(legend, zoom)
    control = base.transform_filter("datum.kind == 'control'").mark_rule(strokeDash=vega_dash(RANDOM_INIT[1]), color=RANDOM_INIT[0]).encode(
        y="value:Q", tooltip=[alt.Tooltip("group:N"), alt.Tooltip("value:Q", format=".3f", title="random init")])
    emerged = alt.Chart().transform_filter("datum.kind == 'emerged'").mark_rect(opacity=0.15).encode(
        x=alt.X("from:Q", scale=alt.Scale(type="linear"), title="training step"), x2="step:Q",
        color=enc["color"], tooltip=[alt.Tooltip("group:N"), alt.Tooltip("from:Q", format=",d", title="after step"),
                                     alt.Tooltip("step:Q", format=",d", title="emerged by step")])
    emerged_rule = alt.Chart().transform_filter("datum.kind == 'emerged'").mark_rule(strokeWidth=1.5).encode(
        x=STEP, color=enc["color"])
    layered = alt.layer(emerged, emerged_rule, band, seed_lines, lines, control, data=long).properties(
        width=WIDTH, height=HEIGHT)
    return layered.facet(facet=alt.Facet("relation:N", title=None, header=alt.Header(labelFontSize=13,
                                                                                     labelFontWeight="bold")),
                         columns=3).add_params(metric).properties(
        title=f"{benchmark}: score per relation (band: 95% interval; dotted: random init; shaded: emergence)")


def fact_curves(scores: pd.DataFrame) -> alt.Chart | None:
    """The Overview's answer to "when": P@1 of the injected facts (solid) and the held-back ones (dashed) against
    step, a colour per relation with its 95% band; None when no benchmark has both groups."""
    rows = scores[(scores["checkpoint"] != CONTROL) & scores["group"].isin(["injected", "held_back"])]
    both = rows.groupby("benchmark")["group"].nunique()
    if not (both == 2).any():
        return None
    rows = main_rows(rows[rows["benchmark"] == both[both == 2].index[0]].dropna(subset=["step"]))
    rows = rows[rows["run"] == rows["run"].iloc[0]]
    data = plain_data(rows[["relation", "group", "step", "p_at_1", "p_at_1_low", "p_at_1_high", "n"]])
    relations = list(dict.fromkeys(rows["relation"]))
    legend = alt.selection_point(fields=["relation"], bind="legend")
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    color = alt.Color("relation:N", scale=alt.Scale(domain=relations, range=[colour(i) for i in range(len(relations))]),
                      legend=alt.Legend(orient="top", symbolOpacity=1))
    _, dash = group_scales(["injected", "held_back"])
    base = alt.Chart(data)
    band = base.mark_area().encode(x=STEP, y=alt.Y("p_at_1_low:Q", title="P@1"), y2="p_at_1_high:Q", color=color,
                                   detail="group:N",
                                   fillOpacity=alt.condition(legend, alt.value(0.12), alt.value(0.02)))
    lines = base.mark_line(point=alt.OverlayMarkDef(size=16)).encode(
        x=STEP, y=alt.Y("p_at_1:Q", title="P@1", scale=alt.Scale(domain=[0, 1])), color=color,
        strokeDash=alt.StrokeDash("group:N", scale=dash, title="facts",
                                  legend=alt.Legend(symbolType="stroke", symbolStrokeColor="#777", symbolOpacity=1)),
        opacity=alt.condition(legend, alt.value(1), alt.value(0.12)),
        tooltip=[alt.Tooltip("relation:N"), alt.Tooltip("group:N"), alt.Tooltip("step:Q", format=",d"),
                 alt.Tooltip("p_at_1:Q", format=".3f", title="P@1"),
                 alt.Tooltip("p_at_1_low:Q", format=".3f", title="95% low"),
                 alt.Tooltip("p_at_1_high:Q", format=".3f", title="95% high"), alt.Tooltip("n:Q", title="prompts")]
    ).add_params(legend, zoom)
    return alt.layer(band, lines).properties(width="container", height=240,
                                             title="P@1: injected facts (solid) vs held back (dashed)")


def loss_curve(log: pd.DataFrame) -> alt.Chart:
    """Training and held-out MLM loss against step."""
    parts = [pd.DataFrame({"step": log["step"], "loss": log[c], "series": label}).dropna()
             for c, label in (("loss", "training loss"), ("eval_loss", "held-out MLM loss")) if c in log]
    data = plain_data(pd.concat(parts, ignore_index=True))
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    legend = alt.selection_point(fields=["series"], bind="legend")
    return alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=STEP, y=alt.Y("loss:Q", title="cross-entropy", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", scale=alt.Scale(range=list(PALETTE)), title=None,
                        legend=alt.Legend(orient="top")),
        opacity=alt.condition(legend, alt.value(1), alt.value(0.15)),
        tooltip=[alt.Tooltip("series:N"), alt.Tooltip("step:Q", format=",d"), alt.Tooltip("loss:Q", format=".3f")]
    ).add_params(zoom, legend).properties(width="container", height=220, title="MLM loss")


def sampled_prompts(rows: pd.DataFrame, per_group: int = 20) -> pd.DataFrame:
    """Up to `per_group` prompts of each fact group, spread evenly from best to worst final gold rank, so the
    held-back control shows as well as the injected facts."""
    last = rows[rows["step"] == rows["step"].max()].groupby("prompt")["gold_rank"].min()
    picked = []
    for _, prompts in rows.groupby("group", sort=True)["prompt"]:
        order = last.reindex(prompts.unique()).sort_values(na_position="last").index
        index = np.unique(np.linspace(0, len(order) - 1, min(per_group, len(order))).round().astype(int))
        picked += list(order[index])
    return rows[rows["prompt"].isin(picked)]


def rank_heatmap(predictions: pd.DataFrame, benchmark: str, relation: str, per_group: int = 20) -> alt.Chart:
    """Gold rank per prompt (rows, sorted by final rank, each fact group apart) × checkpoint step; darker =
    better; hover for the prompt, its rank and the top prediction there."""
    rows = predictions[(predictions["benchmark"] == benchmark) & (predictions["relation"] == relation)
                       & (predictions["checkpoint"] != CONTROL)].dropna(subset=["step"])
    rows = rows[rows["template"] == rows["template"].iloc[0]]
    rows = sampled_prompts(rows, per_group)
    final = rows[rows["step"] == rows["step"].max()].groupby("prompt")["gold_rank"].min().sort_values()
    color = alt.Color("gold_rank:Q", title="gold rank", scale=alt.Scale(type="log", scheme=RANKS, reverse=True))
    panels = []
    for group, part in rows.groupby("group", sort=True):
        data = plain_data(part[["prompt", "group", "step", "gold_rank", "top1", "answer"]])
        order = [p for p in final.index if p in set(part["prompt"])]
        panels.append(alt.Chart(data).mark_rect().encode(
            x=alt.X("step:O", title="training step", axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("prompt:N", title=f"{group.replace('_', '-')} prompts", sort=order,
                    axis=alt.Axis(labelLimit=320)),
            color=color,
            tooltip=[alt.Tooltip("prompt:N"), alt.Tooltip("answer:N"), alt.Tooltip("group:N"),
                     alt.Tooltip("step:O"), alt.Tooltip("gold_rank:Q", format=",.0f"), alt.Tooltip("top1:N")]
        ).properties(width=alt.Step(30), height=alt.Step(13)))
    return alt.vconcat(*panels).resolve_scale(color="shared").properties(
        title=f"{relation}: gold rank per prompt (up to {per_group} per group, best to worst)")


def first_correct(distribution: pd.DataFrame) -> alt.Chart:
    """Bars: how many prompts are first answered at each step, per relation (panel) and group (colour)."""
    data = plain_data(distribution)
    groups = sorted(set(distribution["group"]))
    color, _ = group_scales(groups)
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("first_correct:O", title="first step answered at rank 1"),
        xOffset="group:N", y=alt.Y("prompts:Q", title="prompts"),
        color=alt.Color("group:N", scale=color, title="fact group"),
        tooltip=[alt.Tooltip("relation:N"), alt.Tooltip("group:N"), alt.Tooltip("first_correct:O", title="step"),
                 alt.Tooltip("prompts:Q")]
    ).properties(width=WIDTH, height=160).facet(facet=alt.Facet("relation:N", title=None), columns=3)
