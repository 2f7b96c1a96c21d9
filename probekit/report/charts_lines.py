"""Interactive line charts of the Grammar, Choices and Which-arrives-first pages: values against training step
with their 95% bands, reference lines (chance, baselines) as rules, one panel per subject.

Every chart is drawn from one long frame, `band_frame`'s columns: `series` (the legend entry), `step`,
`value`, `low`, `high`, `n`, `kind` ("line" or "reference": a horizontal rule at `value`) and, for panels,
`panel`. Colours and dashes come from `probekit.palette` only (`series_scales`); a click on a legend entry fades
the other series; the x field is `step` so that the page's linear/log toggle swaps its scale.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from probekit.palette import BASELINE, DOTTED, vega_dash
from probekit.report.charts import HEIGHT, STEP, WIDTH, plain_data

COLUMNS = ["series", "step", "value", "low", "high", "n", "kind"]
FADED = 0.12


def band_frame(series, step, value, low=None, high=None, n=None, kind: str = "line", **extra) -> pd.DataFrame:
    """The long frame of one set of lines (or, with kind="reference", rules): steps as integers (nullable),
    values, bounds and n as floats."""
    frame = pd.DataFrame({"series": series, "step": step, "value": value, "low": low, "high": high, "n": n,
                          **extra})
    frame["kind"] = kind
    frame["step"] = pd.to_numeric(frame["step"], errors="coerce").round().astype("Int64")
    for column in ("value", "low", "high", "n"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["series"] = frame["series"].astype(str)
    return frame


def series_scales(styles: dict[str, tuple[str, tuple[int, ...]]]) -> tuple[alt.Scale, alt.Scale]:
    """Colour and strokeDash scales of a {series: (colour, dash)} map of `probekit.palette` styles."""
    return (alt.Scale(domain=list(styles), range=[c for c, _ in styles.values()]),
            alt.Scale(domain=list(styles), range=[vega_dash(d) for _, d in styles.values()]))


def tooltips(value_title: str, extra: tuple = ()) -> list[alt.Tooltip]:
    """The exact value with its 95% interval and n, at its step."""
    return [*extra, alt.Tooltip("series:N", title="line"), alt.Tooltip("step:Q", format=",d", title="step"),
            alt.Tooltip("value:Q", format=".3f", title=value_title),
            alt.Tooltip("low:Q", format=".3f", title="95% low"), alt.Tooltip("high:Q", format=".3f", title="95% high"),
            alt.Tooltip("n:Q", format=",d", title="n")]


def band_chart(long: pd.DataFrame, styles: dict[str, tuple[str, tuple[int, ...]]], y_title: str, title: str,
               legend_title: str = "line", panel_title: str | None = None, columns: int = 3,
               domain: tuple[float, float] | None = (0, 1), independent_y: bool = False,
               spans: pd.DataFrame | None = None, extra_tooltips: tuple = ()) -> alt.TopLevelMixin:
    """Lines with their 95% bands and rules at reference values, one panel per `panel` value present (when the
    frame has a `panel` column), series styled by `styles`. `spans` (columns `panel`, `series`, `from`, `step`,
    `signal`) shades intervals on the step axis, a rule at each `step`."""
    frame = long.copy()
    if spans is not None and len(spans):
        frame = pd.concat([frame, spans.assign(kind="span")], ignore_index=True)
    data = plain_data(frame)
    color, dash = series_scales(styles)
    legend = alt.selection_point(fields=["series"], bind="legend")
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    fade = alt.condition(legend, alt.value(1), alt.value(FADED))
    y = alt.Y("value:Q", title=y_title, scale=alt.Scale(domain=list(domain)) if domain else alt.Scale(zero=False))
    colour = alt.Color("series:N", scale=color, title=legend_title, legend=alt.Legend(symbolStrokeWidth=2))
    stroke = alt.StrokeDash("series:N", scale=dash, title=legend_title)
    tips = tooltips(y_title, extra_tooltips)
    lines = alt.Chart().transform_filter("datum.kind == 'line'")
    band = lines.mark_area(opacity=0.18).encode(
        x=STEP, y=alt.Y("low:Q", title=y_title), y2="high:Q", color=colour,
        opacity=alt.condition(legend, alt.value(0.18), alt.value(0.03)))
    line = lines.mark_line(point=alt.OverlayMarkDef(size=25)).encode(
        x=STEP, y=y, color=colour, strokeDash=stroke, opacity=fade, tooltip=tips).add_params(legend, zoom)
    rule = alt.Chart().transform_filter("datum.kind == 'reference'").mark_rule(strokeWidth=1.2).encode(
        y="value:Q", color=colour, strokeDash=stroke, opacity=fade,
        tooltip=[*extra_tooltips, alt.Tooltip("series:N", title="reference"),
                 alt.Tooltip("value:Q", format=".3f", title=y_title)])
    layers = [band, line, rule]
    if spans is not None and len(spans):
        shaded = alt.Chart().transform_filter("datum.kind == 'span'")
        span_tips = [alt.Tooltip("signal:N"), alt.Tooltip("from:Q", format=",d", title="after step"),
                     alt.Tooltip("step:Q", format=",d", title="by step")]
        layers = [shaded.mark_rect(opacity=0.12, color=BASELINE[0]).encode(
                      x=alt.X("from:Q", scale=alt.Scale(type="linear"), title="training step"), x2="step:Q",
                      tooltip=span_tips),
                  shaded.mark_rule(strokeDash=vega_dash(DOTTED), color=BASELINE[0]).encode(x=STEP, tooltip=span_tips),
                  *layers]
    layered = alt.layer(*layers, data=data).properties(width=WIDTH, height=HEIGHT)
    if "panel" not in long:
        return layered.properties(title=title)
    panels = list(dict.fromkeys(long["panel"].dropna()))
    faceted = layered.facet(facet=alt.Facet("panel:N", title=panel_title, sort=panels,
                                            header=alt.Header(labelFontSize=13, labelFontWeight="bold")),
                            columns=max(1, min(columns, len(panels))))
    if independent_y:
        faceted = faceted.resolve_scale(y="independent")
    return faceted.properties(title=title)


def download(long: pd.DataFrame, renames: dict[str, str] | None = None) -> pd.DataFrame:
    """The numbers a `band_chart` draws, as one row per line and step (integer `step`, float `value`, `low`,
    `high`, `n`), each reference (chance, a baseline) a column of its value in that row's panel."""
    lines = long[long["kind"] == "line"].drop(columns="kind").reset_index(drop=True)
    refs = long[long["kind"] == "reference"]
    if len(refs) and "panel" in long:
        wide = refs.pivot_table(index="panel", columns="series", values="value", aggfunc="first")
        wide.columns = [str(c) for c in wide.columns]
        lines = lines.merge(wide.reset_index(), on="panel", how="left")
    else:
        for series, value in zip(refs["series"], refs["value"]):
            lines[series] = value
    lines["n"] = lines["n"].round().astype("Int64")
    first = [c for c in ("panel", "series") if c in lines]
    lines = lines[[*first, *(c for c in lines.columns if c not in first)]]
    return lines.rename(columns=renames or {})
