"""The Causal tracing page, from the tracing analysis: where in depth and at which token the answer comes back, and
since when — as ROME (Meng et al. 2022) reports it: the average indirect effect Δp = p_restored − p_corrupt.

Drawn from the tracing tables (`tracing_scores`, `tracing_head_scores`, `tracing_agreement`) and worded from the
findings rows (`probekit.analyses.findings`: `stands_out`, `best_site`, `share`, `emerged`, `top_head`); the page
computes no statistic. Per relation, as interactive charts (`probekit.report.charts_inside`) whose numbers are
downloadable: the component × layer × position-role heatmap of mean Δp at every traced step, one chart with a step
slider, on a diverging scale centred at 0 (sites that restore by construction outlined), the best site's Δp
against step per fact group with the random-init model's band; and as tables, the best site per step, the heads
of largest Δp, the attention knockout, and when each site formed.

Notebook: `tracing_heatmap` and `tracing_curves` draw the same figures (matplotlib) from a `ProbeResult` or its
tables.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probekit.analyses.findings import main_findings, main_rows, select
from probekit.core.schema import CONTROL
from probekit.figures import plain, step_axis, subplots
from probekit.palette import BASELINE, RANDOM_INIT, group_order, group_styles, mpl_dash
from probekit.report import charts_inside
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "tracing.md", "Causal tracing"
COMPONENT_NAMES = {"resid": "the residual stream", "attn": "the attention output", "mlp": "the MLP output"}
ROLE_NAMES = {"subject_first": "first subject piece", "subject_middle": "middle subject pieces",
              "subject_last": "last subject piece", "mask": "[MASK]", "other": "other tokens",
              "special": "special tokens"}
GROUPS = ("injected", "all", "other", "held_back")
"""The group the heatmap, best site and top heads are read from: the first of these the table has."""
METHODS = ("exact", "attribution")
"""The method a page is read from: exact patching where the run has it."""
SITE = ["component", "layer", "role"]
TOP_HEADS = 5


# ---------------------------------------------------------------- reading the tables


def _tables(source) -> dict:
    """The tables of a `ProbeResult`, a dict of tables, or a `tracing_scores` frame alone."""
    if isinstance(source, pd.DataFrame):
        return {"tracing_scores": source}
    tables = dict(getattr(source, "tables", source))
    if "findings" not in tables and hasattr(source, "findings"):
        tables["findings"] = source.findings
    return tables


def _method(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of one method: exact where present, else attribution (tables without a method column: all)."""
    if "method" not in rows.columns or rows.empty:
        return rows
    present = set(rows["method"])
    return rows[rows["method"] == next((m for m in METHODS if m in present), rows["method"].iloc[0])]


def _series(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows drawn against step: the main line (`probekit.analyses.findings.main_rows`), of its first run."""
    rows = main_rows(scores)
    return rows[rows["run"] == rows["run"].iloc[0]] if len(rows) else rows


def main_group(scores: pd.DataFrame) -> str | None:
    """The group a relation is read from: injected facts where the series has them, else all prompts."""
    present = set(scores["group"])
    return next((g for g in GROUPS if g in present), next(iter(sorted(present)), None))


def random_init_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The random-init model's rows (the runner's random-initialisation row)."""
    return scores[scores["checkpoint"] == CONTROL]


def _at_site(rows: pd.DataFrame, site: pd.Series) -> pd.DataFrame:
    return rows[(rows["component"] == site["component"]) & (rows["layer"] == site["layer"])
                & (rows["role"] == site["role"])]


def _relation_rows(frame: pd.DataFrame | None, relation: str, benchmark: str | None) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame() if frame is None else frame
    rows = frame[frame["relation"] == relation]
    return rows[rows["benchmark"] == benchmark] if benchmark is not None else rows


def _claims(found: pd.DataFrame | None, relation: str, benchmark: str | None, group: str, method: str,
            kind: str) -> pd.DataFrame:
    """The tracing findings of one kind for a relation, group and method (`group` column `group · method`)."""
    if found is None or found.empty:
        return pd.DataFrame(columns=["step"])
    rows = select(main_findings(found), kind, "tracing", subject=relation, group=f"{group} · {method}")
    rows = rows[rows["benchmark"] == benchmark] if benchmark is not None else rows
    return rows.sort_values("step", kind="stable")


def site_of(detail: str) -> pd.Series:
    """A findings row's site (`attn L1 mask`) as component, layer, role."""
    component, layer, role = str(detail).split(" ", 2)
    return pd.Series({"component": component, "layer": int(layer.lstrip("L")), "role": role})


def _by_construction(rows: pd.DataFrame) -> pd.Series:
    if "by_construction" in rows:
        return rows["by_construction"].fillna(False).astype(bool)
    last = rows.loc[rows["component"] == "resid", "layer"].max()
    return (rows["component"] == "resid") & (rows["layer"] == last) & (rows["role"] == "mask")


# ---------------------------------------------------------------- figures (also the notebook's)


@plain
def heatmap(last: pd.DataFrame, title: str) -> Figure:
    """One panel per component: position role (rows) × layer (columns), mean Δp = p_restored − p_corrupt at one
    step on a diverging scale centred at 0 (red: restores, blue: hurts; unclipped: the scale spans the largest
    |Δp|), each cell's value written in it; sites that restore by construction hatched."""
    components = [c for c in COMPONENT_NAMES if c in set(last["component"])]
    roles = [r for r in ROLE_NAMES if r in set(last["role"])]
    layers = sorted(int(v) for v in last["layer"].dropna().unique())
    fig, axes = subplots(1, max(len(components), 1), figsize=(
        1.6 + 1.1 * max(len(layers), 1) * max(len(components), 1) + 1.5, 0.9 + 0.42 * max(len(roles), 1)),
        squeeze=False, sharey=True)
    reach = float(np.nanmax(np.abs(last["effect"].to_numpy(float)))) if last["effect"].notna().any() else 0.0
    reach = reach if reach > 0 else 1e-3
    image = None
    marked = last.assign(_built=_by_construction(last))
    for ax, component in zip(axes[0], components):
        rows = marked[marked["component"] == component]
        grid = rows.pivot_table(index="role", columns="layer", values="effect", aggfunc="mean")
        grid = grid.reindex(index=roles, columns=layers)
        values = grid.to_numpy(float)
        image = ax.imshow(values, vmin=-reach, vmax=reach, cmap="RdBu_r", aspect="auto")
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:+.3f}", ha="center", va="center", fontsize=6.5,
                        color="white" if abs(value) > 0.6 * reach else "black")
        for _, row in rows[rows["_built"]].iterrows():
            if row["role"] in roles and int(row["layer"]) in layers:
                i, j = roles.index(row["role"]), layers.index(int(row["layer"]))
                ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
                    (j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor=BASELINE[0], lw=0))
        ax.set_xticks(range(len(layers)), [str(layer) for layer in layers])
        ax.set_yticks(range(len(roles)), [ROLE_NAMES[r] for r in roles])
        ax.set_xlabel("layer")
        ax.set_title(component, fontsize=10)
        ax.grid(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), label="Δp = p_restored − p_corrupt")
    fig.suptitle(title + " — hatched: restores by construction", fontsize=10, y=1.04)
    return fig


@plain
def site_curves(scores: pd.DataFrame, site: pd.Series, title: str, value: str = "effect") -> Figure:
    """The site's mean `value` (effect: Δp = p_restored − p_corrupt; or restoration) against step, a line per
    fact group with its 95% band, and the random-init model's as a grey dotted line with its band."""
    rows = _at_site(_series(scores), site)
    fig, ax = subplots(figsize=(7, 3.2))
    styles = group_styles(rows["group"])
    for group, line in rows.groupby("group", sort=False):
        line = line.sort_values("step")
        steps = line["step"].astype(float)
        colour, dash = styles[group][0], mpl_dash(styles[group][1])
        ax.fill_between(steps, line[f"{value}_low"].astype(float), line[f"{value}_high"].astype(float),
                        color=colour, alpha=0.2, lw=0)
        ax.plot(steps, line[value].astype(float), color=colour, ls=dash, marker="o", ms=3,
                label=group.replace("_", " "))
    control = _at_site(random_init_rows(scores), site)
    main = main_group(rows) if len(rows) else None
    control = control[control["group"] == main] if main in set(control["group"]) else control
    for _, row in control.head(1).iterrows():
        ax.axhline(row[value], color=RANDOM_INIT[0], ls=mpl_dash(RANDOM_INIT[1]), lw=1, label="random init")
        if pd.notna(row[f"{value}_low"]):
            ax.axhspan(row[f"{value}_low"], row[f"{value}_high"], color=RANDOM_INIT[0], alpha=0.12, lw=0)
    step_axis(ax, rows["step"].astype(float).tolist() or [1])
    ax.set_ylabel("Δp = p_restored − p_corrupt" if value == "effect" else "restoration share")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tracing_heatmap(source, relation: str, step: float | None = None, group: str | None = None,
                    method: str | None = None, benchmark: str | None = None) -> Figure:
    """The layer × position-role heatmap of mean Δp per component, for one relation at one step (the last when
    not given), from a `ProbeResult`, its tables or the `tracing_scores` frame. `group`: the fact group
    (injected where the series has it); `method`: exact or attribution (exact where present)."""
    from probekit.core.errors import ProbekitError

    scores = _relation_rows(_tables(source).get("tracing_scores"), relation, benchmark)
    if scores.empty:
        raise ProbekitError(f"no tracing scores for relation {relation!r} (run the probe with --with tracing)")
    scores = scores[scores["method"] == method] if method else _method(scores)
    series = _series(scores)
    group = group or main_group(series)
    step = float(series["step"].max()) if step is None else float(step)
    last = series[(series["step"] == step) & (series["group"] == group)]
    if last.empty:
        raise ProbekitError(f"relation {relation!r}: no tracing rows at step {step:,.0f} for group {group!r}; "
                            f"steps: {', '.join(f'{s:,.0f}' for s in sorted(series['step'].unique()))}")
    return heatmap(last, f"{relation} ({group}), step {step:,.0f}")


def tracing_curves(source, relation: str, site: tuple[str, int, str] | None = None, value: str = "effect",
                   method: str | None = None, benchmark: str | None = None) -> Figure:
    """A site's mean Δp (or `value="restoration"`) against step per fact group, with the random-init model's
    band; `site` = (component, layer, role), the best site at the last traced step (findings) when not given."""
    from probekit.core.errors import ProbekitError

    tables = _tables(source)
    scores = _relation_rows(tables.get("tracing_scores"), relation, benchmark)
    if scores.empty:
        raise ProbekitError(f"no tracing scores for relation {relation!r} (run the probe with --with tracing)")
    scores = scores[scores["method"] == method] if method else _method(scores)
    if site is None:
        group, used = main_group(_series(scores)), scores["method"].iloc[0]
        best = _claims(tables.get("findings"), relation, benchmark, group, used, "best_site")
        if best.empty:
            raise ProbekitError(f"relation {relation!r}: no best site to draw; name one as site=(component, "
                                "layer, role)")
        chosen = site_of(best.iloc[-1]["detail"])
    else:
        chosen = pd.Series(dict(zip(SITE, site)))
    return site_curves(scores, chosen, f"{relation}: {site_words(chosen)}", value)


# ---------------------------------------------------------------- tables and words


def _picked_heads(heads: pd.DataFrame, group: str, k: int = TOP_HEADS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `k` heads of largest Δp at the last traced step (layer, head, in that order) and their rows."""
    rows = _method(_series(heads))
    rows = rows[rows["group"] == group]
    if rows.empty:
        return pd.DataFrame(columns=["layer", "head"]), rows
    last = rows[rows["step"] == rows["step"].max()].dropna(subset=["effect"])
    chosen = last.sort_values("effect", ascending=False, kind="stable").head(k)[["layer", "head"]]
    return chosen, rows.merge(chosen, on=["layer", "head"])


def top_head_rows(heads: pd.DataFrame, group: str, k: int = TOP_HEADS) -> pd.DataFrame:
    """The numbers of `top_heads`: a row per head and traced step, mean Δp with its 95% interval and prompts."""
    chosen, picked = _picked_heads(heads, group, k)
    if picked.empty:
        return pd.DataFrame(columns=["layer", "head", "step", "delta_p", "low", "high", "n"])
    rank = {(int(a), int(b)): i for i, (a, b) in enumerate(chosen.itertuples(index=False))}
    picked = picked.assign(_rank=[rank[(int(a), int(b))] for a, b in zip(picked["layer"], picked["head"])])
    picked = picked.sort_values(["_rank", "step"], kind="stable")
    return pd.DataFrame({"layer": picked["layer"].astype(int).to_numpy(), "head": picked["head"].astype(int).to_numpy(),
                         "step": picked["step"].astype(int).to_numpy(),
                         "delta_p": picked["effect"].astype(float).to_numpy(),
                         "low": picked["effect_low"].astype(float).to_numpy(),
                         "high": picked["effect_high"].astype(float).to_numpy(), "n": picked["n"].astype(int).to_numpy()})


def knockout_rows(scores: pd.DataFrame, group: str) -> pd.DataFrame:
    """The numbers of `knockout_table`: per layer and step, the share of the answer left with its interval."""
    rows = _series(scores)
    rows = rows[(rows["component"] == "knockout") & (rows["group"] == group)].sort_values(["layer", "step"],
                                                                                          kind="stable")
    return pd.DataFrame({"layer": rows["layer"].astype(int).to_numpy(), "step": rows["step"].astype(int).to_numpy(),
                         "share_left": rows["restoration"].astype(float).to_numpy(),
                         "low": rows["restoration_low"].astype(float).to_numpy(),
                         "high": rows["restoration_high"].astype(float).to_numpy(), "n": rows["n"].astype(int).to_numpy()})


def top_heads(heads: pd.DataFrame, group: str, k: int = TOP_HEADS) -> pd.DataFrame:
    """The `k` heads of largest Δp at the last traced step (of `group`), with their mean Δp [95%] at every
    traced step: a row per head, a column per step."""
    chosen, picked = _picked_heads(heads, group, k)
    if picked.empty:
        return pd.DataFrame()
    picked = picked.assign(cell=[_interval(r, "effect", "+.3f") for r in picked.itertuples()])
    table = picked.pivot_table(index=["layer", "head"], columns="step", values="cell", aggfunc="first")
    table = table.reindex(pd.MultiIndex.from_frame(chosen)).reset_index()
    table.columns = [f"step {c:,.0f}" if isinstance(c, (int, float, np.number)) else c for c in table.columns]
    return table


def knockout_table(scores: pd.DataFrame, group: str) -> pd.DataFrame:
    """Attention knockout ([MASK] → subject blocked at one layer, clean run): per layer, the share of the
    answer left [95%] at every step (1 = blocking changes nothing, 0 = as bad as corrupting the subject)."""
    rows = _series(scores)
    rows = rows[(rows["component"] == "knockout") & (rows["group"] == group)]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(cell=[_interval(r) for r in rows.itertuples()])
    table = rows.pivot_table(index="layer", columns="step", values="cell", aggfunc="first").reset_index()
    table.columns = [f"step {c:,.0f}" if isinstance(c, (int, float, np.number)) else c for c in table.columns]
    return table


def _interval(row, value: str = "restoration", spec: str = ".2f") -> str:
    estimate = getattr(row, value)
    if pd.isna(estimate):
        return ""
    return f"{estimate:{spec}} [{getattr(row, value + '_low'):{spec}}, {getattr(row, value + '_high'):{spec}}]"


def _effect(row) -> str:
    return f"Δp {row['value']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def site_words(site: pd.Series) -> str:
    """`mlp at layer 1, last subject piece` in words: the MLP output at layer 1, last subject piece."""
    role = ROLE_NAMES.get(site["role"], site["role"])
    return f"{COMPONENT_NAMES[site['component']]} at layer {int(site['layer'])}, {role}"


def _steps(text) -> str:
    steps = [int(s) for s in str(text or "").split(",") if s]
    return ", ".join(f"{s:,}" for s in steps)


def sentence(relation: str, best: pd.Series | None, share: pd.Series | None, formed: pd.Series | None) -> str:
    """What a relation's tracing shows, in one sentence (also the Overview's), from its findings rows: the best
    site at the last traced step (`best_site`), its share where defined (`share`) and when it formed (`emerged`)."""
    if best is None:
        return f"**{esc(relation)}**: nothing traced"
    traced = f"judged at the traced steps {_steps(best['steps'])} against the random-init model"
    step = f"{best['step']:,.0f}"
    if best["verdict"] == "no_random_init":
        return (f"**{esc(relation)}**: no site is claimed — the run has no random-init row to compare with "
                f"({traced}); the largest Δp at step {step} is at {site_words(site_of(best['detail']))} "
                f"({_effect(best)})")
    if best["verdict"] != "stands_out":
        return (f"**{esc(relation)}**: no site stands out at step {step} ({traced}): the largest Δp, at "
                f"{site_words(site_of(best['detail']))}, {_effect(best)}, does not clear the random-init model's "
                "and 0.01 after Holm's correction over the sites")
    text = f"**{esc(relation)}**: restoring {site_words(site_of(best['detail']))} gives {_effect(best)} at step {step}"
    if share is not None and share["verdict"] == "defined":
        text += f" (share of the answer {share['value']:.2f} [{share['low']:.2f}, {share['high']:.2f}])"
    if formed is not None and formed["verdict"] == "emerged":
        since = (f"after step {formed['step_low']:,.0f}, by step {formed['step']:,.0f}" if pd.notna(formed["step_low"])
                 else f"by step {formed['step']:,.0f}, the first traced")
        text += f"; it stands out from {since}"
    return text + f" ({traced})"


def movement(best: pd.DataFrame) -> str:
    """In words, whether the best site moved between layers over the traced steps where it stood out."""
    out = best[best["verdict"] == "stands_out"].sort_values("step")
    if out.empty:
        return "No traced step has a site that stands out, so there is no place to follow over training."
    layers = [int(site_of(d)["layer"]) for d in out["detail"]]
    changes = [f"layer {a} → {b} at step {s:,.0f}" for a, b, s in zip(layers, layers[1:], out["step"].iloc[1:])
               if a != b]
    if not changes:
        return (f"The best site stays at layer {layers[0]} over the {len(out)} traced steps where one stands out "
                f"(from step {out['step'].iloc[0]:,.0f}).")
    return f"The best site moves between layers over training: {'; '.join(changes)}."


HOW_TO_READ = (
    "**How to read this page.** For each prompt (*The capital of France is [MASK].*) the model is run three "
    "ways: as it is (*clean*), with the subject corrupted so the model loses track of *France* (*corrupted*), "
    "and corrupted again but with one internal activation copied back from the clean run (*restored*). If "
    "copying one activation back brings the right answer back, that activation carried what the model needed "
    "to know about the subject. As in ROME (Meng et al. 2022), the page reports the **average indirect effect** "
    "**Δp = p_restored − p_corrupt**, the answer's probability won back, with its 95% interval (bootstrap over "
    "prompts): 0 = no effect, positive = restores, negative = hurts. A *site* is a component (*resid*: the "
    "hidden state leaving the layer; *attn*: the attention output; *mlp*: the MLP output) at one layer and one "
    "kind of token position (the subject's first, middle or last piece, the [MASK], other tokens, special "
    "tokens). In the **heatmap** each panel is one component, each column a layer (input side left), each row "
    "a kind of position, coloured on a scale centred at 0 (red restores, blue hurts). The last layer's "
    "residual stream at the [MASK] restores the answer *by construction* (the prediction is read from it): it "
    "is outlined (dashed) and labelled *by construction*, and never named. Move the slider to see another traced "
    "step; hover a cell for its Δp, interval and prompts.\n\n"
    "A site **stands out** when its Δp's interval lies above the random-init model's at the same site and above "
    "0.01, with at least 5 prompts, after Holm's correction over the sites of the trace (the findings' rule, "
    "`probekit.analyses.findings`); the **best site** is the one of largest Δp. The **share** of the answer "
    "brought back, Σ Δp / Σ (p_clean − p_corrupt) (a ratio of means over prompts), is shown only where its "
    "denominator's interval excludes 0; else n/a. Heads are restored one at a time, at every position at once, "
    "and ranked by Δp.")


def heatmap_chart(series: pd.DataFrame, group: str, label: str) -> tuple[alt.TopLevelMixin, pd.DataFrame]:
    """ONE interactive chart of the component × layer × position-role map of mean Δp at every traced step, a
    slider bound in the spec picking the step (the last first), on a diverging scale centred at 0 that spans the
    largest |Δp| of every step (unclipped, the same colours at every step); the sites that restore by
    construction outlined and labelled. Returns it and the numbers it draws (a row per site and step)."""
    rows = series[(series["group"] == group) & series["component"].isin(list(COMPONENT_NAMES))]
    rows = rows.dropna(subset=["step"]).sort_values(["step", "component", "layer", "role"], kind="stable")
    frame = pd.DataFrame({
        "component": rows["component"].astype(str).to_numpy(), "layer": rows["layer"].astype(int).to_numpy(),
        "role": rows["role"].astype(str).to_numpy(), "step": rows["step"].astype(int).to_numpy(),
        "delta_p": rows["effect"].astype(float).to_numpy(), "low": rows["effect_low"].astype(float).to_numpy(),
        "high": rows["effect_high"].astype(float).to_numpy(), "n": rows["n"].astype(int).to_numpy(),
        "by_construction": _by_construction(rows).to_numpy()})
    roles = [ROLE_NAMES[r] for r in ROLE_NAMES if r in set(frame["role"])]
    cells = frame.assign(position=[ROLE_NAMES.get(r, r) for r in frame["role"]],
                         **{c: frame[c].round(6) for c in ("delta_p", "low", "high")}).drop(columns="role")
    reach = float(np.nanmax(np.abs(frame["delta_p"]))) if frame["delta_p"].notna().any() else 0.0
    tooltip = [alt.Tooltip("component:N"), alt.Tooltip("layer:O"), alt.Tooltip("position:N"),
               alt.Tooltip("step:Q", format=",d"), alt.Tooltip("delta_p:Q", format="+.3f", title="Δp"),
               alt.Tooltip("low:Q", format="+.3f", title="95% low"),
               alt.Tooltip("high:Q", format="+.3f", title="95% high"), alt.Tooltip("n:Q", title="prompts"),
               alt.Tooltip("by_construction:N", title="restores by construction (never named)")]
    chart = charts_inside.step_maps(
        cells, "component", [c for c in COMPONENT_NAMES if c in set(frame["component"])],
        x=alt.X("layer:O", title="layer (input side left)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("position:N", sort=roles, title=None),
        color=alt.Color("delta_p:Q", scale=charts_inside.diverging(reach, "Δp"),
                        title="Δp", legend=alt.Legend(titleLimit=200)),
        tooltip=tooltip, marked="by_construction",
        title=f"{label} ({group.replace('_', ' ')}): mean Δp per site — red restores, blue hurts; dashed "
              "outline: restores by construction")
    return chart, frame


def site_chart(scores: pd.DataFrame, site: pd.Series, label: str) -> tuple[alt.TopLevelMixin, pd.DataFrame]:
    """The site's mean Δp against step, a line and 95% band per fact group, the random-init model's value and
    band as a dotted line; returns it and its numbers (a row per group and step, the random-init model's
    value, low and high in their own columns)."""
    rows = _at_site(_series(scores), site).dropna(subset=["step"])
    groups = group_order(rows["group"])
    control = _at_site(random_init_rows(scores), site)
    main = main_group(rows) if len(rows) else None
    control = control[control["group"] == main] if main in set(control["group"]) else control
    first = control.head(1)
    init = {k: float(first[c].iloc[0]) if len(first) else np.nan
            for k, c in (("random_init", "effect"), ("random_init_low", "effect_low"),
                         ("random_init_high", "effect_high"))}
    rows = rows.sort_values(["step"], kind="stable")
    if rows.empty:
        return None, pd.DataFrame(columns=["group", "step", "delta_p", "low", "high", "n", *init])
    frame = pd.concat([pd.DataFrame({
        "group": group, "step": line["step"].astype(int).to_numpy(), "delta_p": line["effect"].astype(float).to_numpy(),
        "low": line["effect_low"].astype(float).to_numpy(), "high": line["effect_high"].astype(float).to_numpy(),
        "n": line["n"].astype(int).to_numpy(), **init}) for group in groups
        for line in [rows[rows["group"] == group]]], ignore_index=True)
    long = frame.rename(columns={"group": "series", "delta_p": "value"})[["series", "step", "value", "low", "high",
                                                                           "n"]]
    series = [g for g in groups]
    if len(first) and pd.notna(init["random_init"]):
        long = pd.concat([long, charts_inside.flat({"series": charts_inside.RANDOM, "value": init["random_init"],
                                                    "low": init["random_init_low"], "high": init["random_init_high"],
                                                    "n": float(first["n"].iloc[0])}, frame["step"].unique())],
                         ignore_index=True)
        series.append(charts_inside.RANDOM)
    chart = charts_inside.step_lines(long, charts_inside.styles_of(series), "Δp = p_restored − p_corrupt",
                                     f"{label}: {site_words(site)}", value_format="+.3f", n_title="prompts",
                                     legend_title="fact group")
    return chart, frame


def _cell(value, low, high, spec: str = "+.3f") -> str:
    return "" if pd.isna(value) else f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"


def _last(rows: pd.DataFrame) -> pd.Series | None:
    return rows.iloc[-1] if len(rows) else None


def _relation_part(page: Page, tables: dict, label: str, relation: str, benchmark: str) -> str | None:
    """The part of the page for one relation (`tables`: its rows of each tracing table); returns its
    finding (None when nothing was traced)."""
    scores = _method(tables["tracing_scores"])
    series = _series(scores)
    group = main_group(series)
    if group is None:
        return None
    method = scores["method"].iloc[0] if "method" in scores.columns else "exact"
    found = tables.get("findings")
    best = _claims(found, relation, benchmark, group, method, "best_site")
    shares = _claims(found, relation, benchmark, group, method, "share")
    formed = _claims(found, relation, benchmark, group, method, "emerged")
    site = _last(best)
    share = _last(shares)
    site_formed = _last(formed[formed["detail"] == site["detail"]]) if site is not None else None
    said = sentence(label, site, share, site_formed)
    step = float(series["step"].max())
    last = series[(series["step"] == step) & (series["group"] == group)]
    skipped = int(last["skipped"].max()) if "skipped" in last.columns and len(last) else 0
    page.add(PAGE, f"## {esc(label)}", "", f"Read from the **{esc(group.replace('_', ' '))}** prompts "
             f"({int(last['n'].max()) if len(last) else 0} traced"
             + (f"; {skipped} sampled prompts left out, counted by reason in the `tracing` table" if skipped else "")
             + (", by attribution patching" if method == "attribution" else "") + f"). {said}.", "")
    chart, numbers = heatmap_chart(series, group, label)
    if len(numbers):
        page.chart(PAGE, (label, "delta-p", "by-site"), chart,
                   f"{label}: mean Δp = p_restored − p_corrupt per component × layer × position role at every traced "
                   f"step ({group.replace('_', ' ')} prompts; centred at 0; dashed outline: by construction) — "
                   "move the slider to choose the step; hover a cell for its value, interval and prompts",
                   step_axis=False, data=numbers)
    if site is not None:
        chosen = site_of(site["detail"])
        chart, numbers = site_chart(scores, chosen, label)
        if len(numbers):
            page.chart(PAGE, (label, "delta-p", "best-site"), chart,
                       f"{label}: Δp = p_restored − p_corrupt at the best site ({site_words(chosen)}) against step, "
                       "per group (band: 95% bootstrap interval over prompts; grey dotted: the random-init model)",
                       data=numbers)
    if len(best):
        share_at = shares.set_index("step")
        share = [share_at.loc[s, "value"] if s in share_at.index else np.nan for s in best["step"]]
        sites = [site_of(d) for d in best["detail"]]
        shown = pd.DataFrame({
            "step": [f"{s:,.0f}" for s in best["step"]], "best site": [site_words(x) for x in sites],
            "Δp [95%]": [_cell(v, lo, hi) for v, lo, hi in zip(best["value"], best["low"], best["high"])],
            "share": ["n/a" if pd.isna(v) else f"{v:.2f}" for v in share],
            "random init's bar": ["" if pd.isna(v) else f"{v:+.3f}" for v in best["bar"]],
            "p (Holm)": ["" if pd.isna(v) else f"{v:.3g}" for v in best["p_adjusted"]],
            "prompts": best["n"].astype(int).to_numpy(),
            "stands out": [str(v).replace("_", " ") for v in best["verdict"]]})
        numbers = pd.DataFrame({
            "step": best["step"].astype(int).to_numpy(), "component": [x["component"] for x in sites],
            "layer": [int(x["layer"]) for x in sites], "role": [x["role"] for x in sites],
            "delta_p": best["value"].astype(float).to_numpy(), "low": best["low"].astype(float).to_numpy(),
            "high": best["high"].astype(float).to_numpy(), "share": np.asarray(share, float),
            "random_init_bar": best["bar"].astype(float).to_numpy(),
            "p_holm": best["p_adjusted"].astype(float).to_numpy(), "n": best["n"].astype(int).to_numpy(),
            "verdict": best["verdict"].astype(str).to_numpy()})
        page.add(PAGE, f"**The best site at each traced step** ({esc(group.replace('_', ' '))} prompts). "
                 f"{movement(best)} The share is n/a where its denominator's interval includes 0.", "",
                 *page.table(shown, (label, "best-site", "by-step"), data=numbers))
    heads = tables.get("tracing_head_scores")
    if heads is not None and len(heads):
        table = top_heads(heads, group)
        if len(table):
            top = _last(_claims(found, relation, benchmark, group, method, "top_head"))
            lead = (f" The head of largest Δp, {top['detail']}, "
                    + ("stands out" if top["verdict"] == "stands_out" else "does not stand out")
                    + " (the sites' rule)." if top is not None else "")
            page.add(PAGE, f"**Top heads** ({esc(group.replace('_', ' '))} prompts, ranked by Δp at step "
                           f"{step:,.0f}): mean Δp [95%] when the head's clean output is restored at every "
                           f"position.{lead}", "", *page.table(table, (label, "top-heads", "delta-p"),
                                                                     data=top_head_rows(heads, group)))
    knocked = knockout_table(tables["tracing_scores"], group)
    if len(knocked):
        page.add(PAGE, "**Attention knockout** (Geva et al. 2023): the clean prompt with attention from the [MASK] "
                       "to the subject blocked at one layer, in every head — exact, with no noise to sample. The "
                       "share of the answer left [95%]: **1** = blocking that attention changes nothing, **0** = "
                       "as bad as corrupting the subject; a low value marks the layer where the [MASK] reads the "
                       "subject.", "", *page.table(knocked, (label, "knockout", "share-left"),
                                   data=knockout_rows(tables["tracing_scores"], group)))
    done = formed[formed["verdict"] == "emerged"].sort_values(["step", "value"], ascending=[True, False],
                                                              kind="stable")
    if len(done):
        done = done.head(12)
        sites = [site_of(d) for d in done["detail"]]
        shown = pd.DataFrame({
            "site": [site_words(x) for x in sites],
            "stands out from (after)": ["" if pd.isna(v) else f"{v:,.0f}" for v in done["step_low"]],
            "by step": [f"{v:,.0f}" for v in done["step"]],
            "Δp there [95%]": [_cell(v, lo, hi) for v, lo, hi in zip(done["value"], done["low"], done["high"])]})
        numbers = pd.DataFrame({
            "component": [x["component"] for x in sites], "layer": [int(x["layer"]) for x in sites],
            "role": [x["role"] for x in sites], "after_step": done["step_low"].astype("Int64").to_numpy(),
            "by_step": done["step"].astype(int).to_numpy(), "delta_p": done["value"].astype(float).to_numpy(),
            "low": done["low"].astype(float).to_numpy(), "high": done["high"].astype(float).to_numpy()})
        page.add(PAGE, f"**When sites formed** (judged at the traced steps {_steps(done['steps'].iloc[0])}): per site, the "
                       "arrival interval of its standing out, which lasts to the last traced step (earliest first; "
                       "at most 12).", "", *page.table(shown, (label, "sites-formed"), data=numbers))
    else:
        page.add(PAGE, "No site stands out from some traced step to the last.", "")
    return f"- Causal tracing — {said}."


AGREEMENT = (
    "**Attribution patching against exact patching.** Attribution patching (Nanda 2023) estimates every site's "
    "effect at once from one forward and one backward pass — a first-order (gradient) approximation of the "
    "exact restored runs. Where both were run (`--trace-method both`), the rank correlation (Spearman) of the "
    "two methods' effects tells how far to trust the fast estimate: over every prompt's sites (*per prompt*) "
    "and over the sites' means (*per site*, what the heatmap shows). Near 1: attribution orders the sites as "
    "exact patching does; it falls where restoring crosses a non-linearity (a saturated softmax, a LayerNorm).")


def agreement_part(page: Page, agreement: pd.DataFrame) -> None:
    """A table checkpoint × component of the two methods' rank correlations."""
    if agreement is None or agreement.empty:
        return
    rows = agreement.sort_values(["step", "component"], kind="stable", na_position="first")
    shown = pd.DataFrame({
        "checkpoint": rows["checkpoint"].astype(str), "component": rows["component"].astype(str),
        "Spearman per prompt": rows["spearman"].astype(float).round(3), "sites": rows["n"].astype(int),
        "Spearman per site": rows["spearman_sites"].astype(float).round(3), "mean sites": rows["n_sites"].astype(int)})
    numbers = pd.DataFrame({
        "checkpoint": rows["checkpoint"].astype(str), "step": rows["step"].astype("Int64"),
        "component": rows["component"].astype(str), "spearman_per_prompt": rows["spearman"].astype(float),
        "sites": rows["n"].astype(int), "spearman_per_site": rows["spearman_sites"].astype(float),
        "mean_sites": rows["n_sites"].astype(int)})
    page.add(PAGE, "## Attribution patching against exact patching", "", AGREEMENT, "",
             *page.table(shown, ("tracing", "agreement", "spearman"), data=numbers))


def settings_line(manifest: dict) -> str:
    """What this run corrupted and how it patched, from the manifest's tracing options."""
    opts = manifest.get("options", {}).get("tracing", {})
    if not opts:
        return ""
    corrupt = ("the subject swapped for another of the same relation with as many pieces (seed "
               f"{opts.get('noise_seed')})" if opts.get("corrupt") == "subject-swap" else
               f"Gaussian noise of {opts.get('noise')} × σ (seed {opts.get('noise_seed')})")
    sample = opts.get("sample")
    return (f"This run: corruption = {esc(corrupt)}; method {esc(str(opts.get('method')))}; components "
            f"{esc(str(opts.get('components')))}; " + (f"{sample} prompts per relation and fact group." if sample
                                                      else "every prompt.")
            + (" Knockout is exact only: attribution does not estimate it." if opts.get("method") != "exact"
               and "knockout" in str(opts.get("components")) else ""))


def definitions_text(manifest: dict) -> str:
    """The definitions this run's tracing implements (`probekit.analyses.tracing.definitions`), when it has them."""
    from probekit.analyses import tracing

    define = getattr(tracing, "definitions", None)
    if define is None:
        return ""
    settings = dict(manifest.get("options", {}).get("tracing", {}))
    settings.update(manifest.get("tracing", {}) if isinstance(manifest.get("tracing"), dict) else {})
    return define(settings)


def section(page: Page, tables: dict, results) -> None:
    """The Causal tracing page and, per relation, its finding on the Overview."""
    scores = tables.get("tracing_scores")
    if scores is None or scores.empty or _series(scores).empty:
        return
    manifest = tables.get("manifest", {})
    page.add(PAGE, f"# {TITLE}", "", HOW_TO_READ, "", settings_line(manifest), "")
    if text := definitions_text(manifest):
        page.add(PAGE, '??? info "Definitions: what this run computes"', "",
                 *["    " + line if line else "" for line in text.splitlines()], "")
    several = scores["benchmark"].nunique() > 1
    names = ("tracing_scores", "tracing_head_scores")
    for (bench, relation), _ in scores.groupby(["benchmark", "relation"], sort=False):
        label = f"{relation} ({bench})" if several else relation
        own = {name: _relation_rows(tables.get(name), relation, bench) for name in names}
        own["findings"] = tables.get("findings")
        said = _relation_part(page, own, label, relation, bench)
        if said:
            page.finding(said)
    agreement_part(page, tables.get("tracing_agreement"))
    page.configure(PAGE, title=TITLE)
