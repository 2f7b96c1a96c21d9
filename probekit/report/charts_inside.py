"""Interactive charts of the pages that look inside the model: Causal tracing, Syntax (syntactic heads) and
Syntax probes. Vega-Lite specs made with altair from long frames the page modules build from their tables.

Lines against step share one encoding (`step_lines`): x is `charts.STEP` (the page's linear/log toggle), a
95% band per series, hover for the value, its interval and n, and a legend click fades the other series. Maps
over steps are one chart each with a step slider bound in the spec (`step_maps`): the slider picks a checkpoint
and the data are filtered to it, the panel titles say which step is shown. Colours and dashes come from
`probekit.palette` only: fact groups via `group_styles`, the random-init model `RANDOM_INIT`, structural and
control baselines `BASELINE`, other series (layers, probes, the best head) `colour(i)`.
"""

from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd

from probekit.palette import BASELINE, DIVERGING, RANDOM_INIT, colour, group_styles, vega_dash
from probekit.report.charts import HEIGHT, STEP, WIDTH, plain_data

FADED = 0.12
SLIDER = "step_index"
"""The name of the heatmaps' step-slider parameter (an index into the steps present, the last one first)."""
RANDOM = "random init"


def styles_of(series: list[str], own: dict[str, tuple[str, tuple[int, ...]]] | None = None) \
        -> dict[str, tuple[str, tuple[int, ...]]]:
    """(colour, dash) per series name: `own` where given, else fact groups' styles for fact groups, the
    random-init model's for "random init", else the palette's i-th colour, solid."""
    own = dict(own or {})
    groups = group_styles([s for s in series if s in ("injected", "held_back", "all", "other")])
    out, k = {}, 0
    for name in series:
        if name in own:
            out[name] = own[name]
        elif name in groups:
            out[name] = groups[name]
        elif name == RANDOM:
            out[name] = RANDOM_INIT
        else:
            out[name] = (colour(k), ())
            k += 1
    return out


def _scales(styles: dict) -> tuple[alt.Scale, alt.Scale]:
    names = list(styles)
    return (alt.Scale(domain=names, range=[c for c, _ in styles.values()]),
            alt.Scale(domain=names, range=[vega_dash(d) for _, d in styles.values()]))


def step_lines(long: pd.DataFrame, styles: dict, y_title: str, title: str, facet: str | None = None,
               facet_title: str | None = None, y_domain: list[float] | None = None, value_format: str = ".3f",
               extra_tooltip: list | None = None, n_title: str = "n", legend_title: str | None = None,
               columns: int = 4, facet_order: list[str] | None = None) -> alt.TopLevelMixin:
    """Lines against step from `long` (columns series, step, value, low, high, n; `facet` when given): a line
    and its 95% band per series in `styles` order, hover for the exact value, its interval and n, a legend
    click fades the other series, the mouse wheel zooms the step axis. One panel per value of `facet` present
    (so none is empty), in `facet_order` where given."""
    data = plain_data(long)
    color, dash = _scales(styles)
    legend = alt.selection_point(fields=["series"], bind="legend")
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    key = alt.Legend(orient="top", symbolType="stroke", symbolStrokeWidth=2, symbolOpacity=1, labelLimit=260)
    enc_colour = alt.Color("series:N", scale=color, title=legend_title, legend=key)
    enc_dash = alt.StrokeDash("series:N", scale=dash, title=legend_title, legend=key)
    y = alt.Y("value:Q", title=y_title, scale=alt.Scale(domain=y_domain) if y_domain else alt.Scale(zero=False))
    tooltip = ([alt.Tooltip(f"{facet}:N", title=facet_title or facet)] if facet else []) + [
        alt.Tooltip("series:N", title=legend_title or "series"), alt.Tooltip("step:Q", format=",d"),
        alt.Tooltip("value:Q", format=value_format, title="value"),
        alt.Tooltip("low:Q", format=value_format, title="95% low"),
        alt.Tooltip("high:Q", format=value_format, title="95% high"), alt.Tooltip("n:Q", title=n_title),
        *(extra_tooltip or [])]
    band = alt.Chart().mark_area().encode(
        x=STEP, y=alt.Y("low:Q", title=y_title), y2="high:Q", color=enc_colour, detail="series:N",
        opacity=alt.condition(legend, alt.value(0.16), alt.value(0.03)))
    lines = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=22)).encode(
        x=STEP, y=y, color=enc_colour, strokeDash=enc_dash,
        opacity=alt.condition(legend, alt.value(1), alt.value(FADED)), tooltip=tooltip).add_params(legend, zoom)
    layered = alt.layer(band, lines, data=data).properties(width=WIDTH, height=HEIGHT)
    if facet:
        present = list(dict.fromkeys(long[facet]))
        order = [f for f in facet_order or [] if f in present] + [f for f in present if f not in (facet_order or [])]
        return layered.facet(facet=alt.Facet(f"{facet}:N", title=None, sort=order,
                                             header=alt.Header(labelFontWeight="bold")),
                             columns=columns).properties(title=title)
    return layered.properties(title=title)


def flat(values: dict, steps) -> pd.DataFrame:
    """One reference (the random-init model's value, low, high, n) drawn as a flat line: repeated at `steps`."""
    return pd.DataFrame([{**values, "step": s} for s in sorted(steps)])


def _slider(steps: list) -> alt.Parameter:
    last = max(len(steps) - 1, 0)
    return alt.param(name=SLIDER, value=last, bind=alt.binding_range(
        min=0, max=last, step=1, name="checkpoint (0 = first; the map's title gives its step) "))


def step_maps(cells: pd.DataFrame, panel: str, panel_order: list[str], x: alt.X, y: alt.Y, color: alt.Color,
              tooltip: list, title: str, marked: str | None = None, cell: tuple[int, int] = (52, 28),
              mark_text: str = "by\nconstruction") -> alt.TopLevelMixin:
    """ONE chart of maps over steps: `cells` (columns step, `panel`, and the x, y, colour fields) filtered to
    the checkpoint a slider bound in the spec picks (the last first); a panel per value of `panel` at that step,
    titled "`panel` · step N". Cells where the boolean column `marked` holds are outlined (dashed, the palette's
    baseline style) and labelled `mark_text`. The slider's place, the panel titles and order are computed in the
    spec (the data hold only the numbers)."""
    steps = sorted(int(s) for s in cells["step"].dropna().unique())
    at = _slider(steps)
    layers = [alt.Chart().mark_rect().encode(x=x, y=y, color=color, tooltip=tooltip)]
    if marked is not None and cells[marked].any():
        built = alt.Chart().transform_filter(f"datum.{marked}")
        layers += [built.mark_rect(fillOpacity=0, stroke=BASELINE[0], strokeWidth=2.5,
                                   strokeDash=vega_dash(BASELINE[1])).encode(x=x, y=y, tooltip=tooltip),
                   built.mark_text(text=mark_text, lineBreak="\n", fontSize=8, fontWeight="bold",
                                   color=BASELINE[0]).encode(x=x, y=y, tooltip=tooltip)]
    grid = alt.layer(*layers).properties(width=alt.Step(cell[0]), height=alt.Step(cell[1]))
    return grid.facet(facet=alt.Facet("panel_title:N", title=None, header=alt.Header(labelFontWeight="bold"),
                                      sort=alt.EncodingSortField(field="panel_rank", op="min")),
                      columns=1, data=plain_data(cells)).transform_calculate(
        **{SLIDER: f"indexof({json.dumps(steps)}, datum.step)"}).transform_filter(
        f"datum.{SLIDER} == {SLIDER}").transform_calculate(
        panel_title=f"datum.{panel} + ' · step ' + format(datum.step, ',d')",
        panel_rank=f"indexof({json.dumps(list(panel_order))}, datum.{panel})").add_params(at).properties(title=title)


def diverging(reach: float, title: str) -> alt.Scale:
    """A diverging colour scale centred at 0 over [−reach, reach] (red: positive, blue: negative)."""
    reach = float(reach) if np.isfinite(reach) and reach > 0 else 1e-3
    return alt.Scale(scheme=DIVERGING, reverse=True, domain=[-reach, reach], domainMid=0)


def step_heatmap(cells: pd.DataFrame, value: str, color: alt.Color, facet: str, facet_order: list[str],
                 tooltip: list, title: str) -> alt.TopLevelMixin:
    """Layer (y) × training step (x) maps, one panel per value of `facet` present: each cell spans its step's
    share of the axis (half-way to the neighbouring steps, fields `from`/`to`) so that x is the training step,
    linear or log like the line charts."""
    steps = sorted(float(s) for s in cells["step"].unique())
    edges = {}
    for i, s in enumerate(steps):
        before = s - (s - steps[i - 1]) / 2 if i else s - ((steps[1] - s) / 2 if len(steps) > 1 else 0.5)
        after = s + (steps[i + 1] - s) / 2 if i + 1 < len(steps) else s + ((s - steps[i - 1]) / 2 if i else 0.5)
        edges[s] = (max(before, 0.0) if s >= 0 else before, after)
    rows = cells.assign(**{"from": [edges[float(s)][0] for s in cells["step"]],
                           "to": [edges[float(s)][1] for s in cells["step"]]})
    x = alt.X("from:Q", title="training step", scale=alt.Scale(type="linear", zero=False, nice=False),
              axis=alt.Axis(format=",d"))
    chart = alt.Chart().mark_rect().encode(
        x=x, x2="to:Q", y=alt.Y("layer:O", title="layer", sort="descending"), color=color, tooltip=tooltip,
    ).properties(width=WIDTH, height=alt.Step(18))
    return chart.facet(facet=alt.Facet(f"{facet}:N", title=None, sort=facet_order,
                                       header=alt.Header(labelFontWeight="bold")),
                       columns=4, data=plain_data(rows)).properties(title=title)
