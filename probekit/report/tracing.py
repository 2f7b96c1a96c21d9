"""The Causal tracing page, from the tracing analysis: where in depth and at which token the answer comes back.

Made from the `tracing_scores` and `tracing_head_scores` tables only (their 95% bootstrap intervals over
prompts; with several seeds the rows pooled over them). Per relation: the component × layer × position-role
heatmap of mean restoration at the last checkpoint, the best site's restoration against step for each fact
group with its band and the random-init control's, the heads that restore most over the steps, and the step at
which each site first rose above the control (`probekit.analyses.stats.emergence_steps`, the same rule as the
scores). The words on the page are made from the same tables, so the page says when no site stands out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probekit.core.schema import CONTROL, POOLED
from probekit.figures import plain, step_axis, subplots
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "tracing.md", "Causal tracing"
COMPONENT_NAMES = {"resid": "the residual stream", "attn": "the attention output", "mlp": "the MLP output"}
ROLE_NAMES = {"subject_first": "first subject piece", "subject_middle": "middle subject pieces",
              "subject_last": "last subject piece", "mask": "[MASK]", "other": "other tokens",
              "special": "special tokens"}
GROUPS = ("injected", "all", "other", "held_back")
"""The group the heatmap, best site and top heads are read from: the first of these the table has."""
SITE = ["component", "layer", "role"]
TOP_HEADS = 5


def _series(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows drawn against step: the control left out; with several seeds only the pooled rows; else the
    first run."""
    rows = scores[scores["checkpoint"] != CONTROL].dropna(subset=["step"])
    if (rows["run"] == POOLED).any():
        return rows[rows["run"] == POOLED]
    return rows[rows["run"] == rows["run"].iloc[0]] if len(rows) else rows


def main_group(scores: pd.DataFrame) -> str | None:
    """The group a relation is read from: injected facts where the series has them, else all prompts."""
    present = set(scores["group"])
    return next((g for g in GROUPS if g in present), next(iter(sorted(present)), None))


def best_site(last: pd.DataFrame, layers: int, control: pd.DataFrame | None = None) -> pd.Series | None:
    """The site of `last` (one group, one step) whose mean restoration rose most above the random-init
    control's (`control`: its rows of the same group; the highest restoration where there is none), leaving
    out the last layer's residual stream: restoring it at the [MASK] gives the clean answer by construction.
    A site that a random model already routes the answer through (the [MASK]'s own residual stream) is
    thereby not what training built."""
    rows = last[last["component"].isin(list(COMPONENT_NAMES))]
    rows = rows[~((rows["component"] == "resid") & (rows["layer"] == layers - 1))].dropna(subset=["restoration"])
    if rows.empty:
        return None
    gain = rows["restoration"].to_numpy(float)
    if control is not None and len(control):
        base = rows[SITE].merge(control[[*SITE, "restoration"]].drop_duplicates(SITE), on=SITE, how="left")
        gain = gain - base["restoration"].fillna(0).to_numpy(float)
    return rows.iloc[int(np.argmax(gain))]


def control_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The random-init control's rows: the control the runner adds, else the series' own step-0 checkpoint
    (as `emergence_steps` reads it)."""
    control = scores[scores["checkpoint"] == CONTROL]
    return control if len(control) else scores[scores["step"] == 0]


def control_of(scores: pd.DataFrame, site: pd.Series, group: str) -> pd.Series | None:
    """The random-init control's row for `site` and `group`, if the run has one."""
    rows = control_rows(scores)
    rows = rows[rows["group"] == group]
    rows = rows[(rows[SITE] == site[SITE].to_numpy()).all(axis=1)]
    return rows.iloc[0] if len(rows) else None


def stands_out(site: pd.Series | None, control: pd.Series | None) -> bool:
    """Whether the site's interval lies above the control's (above 0 where there is no control)."""
    if site is None or pd.isna(site["restoration_low"]):
        return False
    bar = control["restoration_high"] if control is not None and pd.notna(control["restoration_high"]) else 0.0
    return bool(site["restoration_low"] > bar)


@plain
def heatmap(last: pd.DataFrame, title: str) -> Figure:
    """One panel per component: position role (rows) × layer (columns), mean restoration at one step, 0 white
    to 1 dark, each cell's value written in it."""
    components = [c for c in COMPONENT_NAMES if c in set(last["component"])]
    roles = [r for r in ROLE_NAMES if r in set(last["role"])]
    layers = sorted(int(v) for v in last["layer"].unique())
    fig, axes = subplots(1, len(components), figsize=(1.6 + 1.1 * len(layers) * len(components) + 1.5,
                                                      0.9 + 0.42 * len(roles)), squeeze=False, sharey=True)
    image = None
    for ax, component in zip(axes[0], components):
        rows = last[last["component"] == component]
        grid = rows.pivot_table(index="role", columns="layer", values="restoration", aggfunc="mean")
        grid = grid.reindex(index=roles, columns=layers)
        values = grid.to_numpy(float)
        image = ax.imshow(values, vmin=0, vmax=1, cmap="Blues", aspect="auto")
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.6 else "black")
        ax.set_xticks(range(len(layers)), [str(layer) for layer in layers])
        ax.set_yticks(range(len(roles)), [ROLE_NAMES[r] for r in roles])
        ax.set_xlabel("layer")
        ax.set_title(component, fontsize=10)
        ax.grid(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), label="restoration (1 = clean answer back)")
    fig.suptitle(title, fontsize=10, y=1.04)
    return fig


@plain
def site_curves(scores: pd.DataFrame, site: pd.Series, title: str) -> Figure:
    """The site's mean restoration against step, a line per fact group with its 95% band, and the
    random-init control's as a grey dashed line with its band."""
    rows = _series(scores)
    rows = rows[(rows[SITE] == site[SITE].to_numpy()).all(axis=1)]
    fig, ax = subplots(figsize=(7, 3.2))
    for i, (group, line) in enumerate(rows.groupby("group", sort=False)):
        line = line.sort_values("step")
        steps = line["step"].astype(float)
        ax.fill_between(steps, line["restoration_low"].astype(float), line["restoration_high"].astype(float),
                        color=f"C{i}", alpha=0.2, lw=0)
        ax.plot(steps, line["restoration"].astype(float), color=f"C{i}", marker="o", ms=3,
                label=group.replace("_", " "))
    control = control_rows(scores)
    control = control[(control[SITE] == site[SITE].to_numpy()).all(axis=1)]
    for _, row in control.head(1).iterrows():
        ax.axhline(row["restoration"], color="grey", ls="--", lw=1, label="random-init control")
        if pd.notna(row["restoration_low"]):
            ax.axhspan(row["restoration_low"], row["restoration_high"], color="grey", alpha=0.12, lw=0)
    step_axis(ax, rows["step"].astype(float).tolist() or [1])
    ax.set_ylabel("restoration")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def top_heads(heads: pd.DataFrame, group: str, k: int = TOP_HEADS) -> pd.DataFrame:
    """The `k` heads restoring most at the last step (of `group`), with their mean restoration [95%] at every
    step: a row per head, a column per step."""
    rows = _series(heads)
    rows = rows[rows["group"] == group]
    if rows.empty:
        return pd.DataFrame()
    last = rows[rows["step"] == rows["step"].max()].dropna(subset=["restoration"])
    chosen = last.nlargest(k, "restoration")[["layer", "head"]]
    picked = rows.merge(chosen, on=["layer", "head"])
    picked = picked.assign(cell=[_interval(r) for r in picked.itertuples()])
    table = picked.pivot_table(index=["layer", "head"], columns="step", values="cell", aggfunc="first")
    table = table.reindex(pd.MultiIndex.from_frame(chosen)).reset_index()
    table.columns = [f"step {c:,.0f}" if isinstance(c, (int, float, np.number)) else c for c in table.columns]
    return table


def knockout_table(scores: pd.DataFrame, group: str) -> pd.DataFrame:
    """Attention knockout ([MASK] → subject blocked at one layer, clean run): per layer, the share of the
    answer left [95%] at every step (1 = blocking changes nothing, 0 = as bad as noising the subject)."""
    rows = _series(scores)
    rows = rows[(rows["component"] == "knockout") & (rows["group"] == group)]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(cell=[_interval(r) for r in rows.itertuples()])
    table = rows.pivot_table(index="layer", columns="step", values="cell", aggfunc="first").reset_index()
    table.columns = [f"step {c:,.0f}" if isinstance(c, (int, float, np.number)) else c for c in table.columns]
    return table


def _interval(row) -> str:
    if pd.isna(row.restoration):
        return ""
    return f"{row.restoration:.2f} [{row.restoration_low:.2f}, {row.restoration_high:.2f}]"


def emergence(scores: pd.DataFrame) -> pd.DataFrame:
    """Per site and group: the first step whose interval lies wholly above the random-init control's (the
    scores' emergence rule) and above 0 (a site that only hurts less than at random init restores nothing);
    earliest first."""
    from probekit.analyses.stats import emergence_steps

    found = emergence_steps(scores, metric="restoration",
                            keys=("benchmark", "relation", "group", "component", "layer", "role"))
    found = found[found["emerged_at"].notna() & (found["restoration_low"] > 0)
                  & found["component"].isin(list(COMPONENT_NAMES))]  # knockout: 1 = no effect, another scale
    return found.sort_values(["emerged_at", "restoration"], ascending=[True, False], kind="stable")


def site_words(site: pd.Series) -> str:
    """`mlp at layer 1, last subject piece` in words: the MLP output at layer 1, last subject piece."""
    role = ROLE_NAMES.get(site["role"], site["role"])
    return f"{COMPONENT_NAMES[site['component']]} at layer {int(site['layer'])}, {role}"


def sentence(relation: str, site: pd.Series | None, control: pd.Series | None, step: float,
             formed: float | None) -> str:
    """What a relation's tracing shows, in one sentence (also the Overview's finding)."""
    if site is None or not stands_out(site, control):
        return (f"**{esc(relation)}**: no site stands out at step {step:,.0f} — no restoration's interval lies "
                "above the random-init control's")
    text = (f"**{esc(relation)}**: restoring {site_words(site)} brings back {site['restoration']:.2f} "
            f"[{site['restoration_low']:.2f}, {site['restoration_high']:.2f}] of the answer at step {step:,.0f}")
    if formed is not None and not pd.isna(formed):
        text += f"; it first rose above the random-init control at step {formed:,.0f}"
    return text


HOW_TO_READ = (
    "**How to read this page.** For each prompt (*The capital of France is [MASK].*) the model is run three "
    "ways: as it is (clean), with noise added to the subject's token embeddings so the model loses track of "
    "*France* (corrupted), and corrupted again but with one internal activation copied back from the clean run "
    "(restored). **Restoration** measures how much of the gold answer's probability that one copied activation "
    "brings back: **1** = patching this site brings back the clean answer, **0** = no effect (as corrupted); "
    "values between are partial, and the mean over prompts is shown with its 95% bootstrap interval. A *site* "
    "is a component (*resid*: the hidden state leaving the layer; *attn*: the attention output; *mlp*: the MLP "
    "output) at one layer and one kind of token position (the subject's first, middle or last piece, the "
    "[MASK], other tokens, special tokens; the mean over that kind's positions). A dark cell means the "
    "information needed for the answer passes through that site. Restoring the last layer's residual stream "
    "at the [MASK] gives the clean answer by construction, so it is left out when the best site is picked; the "
    "best site is the one whose restoration rose most above the random-init control's (step 0), i.e. what "
    "training built. "
    "Heads are restored one at a time, at every position at once.")


def _relation_part(page: Page, scores: pd.DataFrame, heads: pd.DataFrame | None, label: str,
                   found: pd.DataFrame) -> str | None:
    """The part of the page for one relation; returns its finding (None when nothing was traced)."""
    series = _series(scores)
    group = main_group(series)
    if group is None:
        return None
    step = float(series["step"].max())
    last = series[(series["step"] == step) & (series["group"] == group)]
    layers = int(scores["layer"].max()) + 1
    controls = control_rows(scores)
    site = best_site(last, layers, controls[controls["group"] == group])
    control = control_of(scores, site, group) if site is not None else None
    formed = None
    if site is not None:
        rose = found[(found["group"] == group) & (found[SITE] == site[SITE].to_numpy()).all(axis=1)]
        formed = float(rose["emerged_at"].iloc[0]) if len(rose) else None
    said = sentence(label, site, control, step, formed)
    page.add(PAGE, f"## {esc(label)}", "", f"Read from the **{esc(group.replace('_', ' '))}** prompts "
             f"({int(last['n'].max()) if len(last) else 0} traced with an effect to restore). {said}.", "")
    page.figure(PAGE, ("tracing", label, "heatmap"), heatmap(last, f"{label} ({group}), step {step:,.0f}"),
                f"{label}: mean restoration per component × layer × position role at step {step:,.0f} "
                f"({group.replace('_', ' ')} prompts; 1 = clean answer back, 0 = no effect)")
    if site is not None:
        page.figure(PAGE, ("tracing", label, "best-site"), site_curves(scores, site, f"{label}: {site_words(site)}"),
                    f"{label}: restoration at the best site ({site_words(site)}) against step, per group "
                    "(band: 95% bootstrap interval over prompts; grey: the random-init control)")
    if heads is not None and len(heads):
        table = top_heads(heads, group)
        if len(table):
            page.add(PAGE, f"**Top heads** ({esc(group.replace('_', ' '))} prompts, ranked at step {step:,.0f}): "
                           "mean restoration [95%] when the head's clean output is restored at every position.", "",
                     *page.table(table, ("tracing", label, "heads")))
    knocked = knockout_table(scores, group)
    if len(knocked):
        page.add(PAGE, "**Attention knockout** (Geva et al. 2023): the clean prompt with attention from the [MASK] "
                       "to the subject blocked at one layer, in every head. The share of the answer left [95%]: "
                       "**1** = blocking that attention changes nothing, **0** = as bad as noising the subject; a "
                       "low value marks the layer where the [MASK] reads the subject.", "",
                 *page.table(knocked, ("tracing", label, "knockout")))
    rose = found[found["group"] == group]
    if len(rose):
        shown = pd.DataFrame({
            "site": [site_words(r) for _, r in rose.iterrows()],
            "first step above the control": [f"{v:,.0f}" for v in rose["emerged_at"]],
            "restoration there [95%]": [f"{r['restoration']:.2f} [{r['restoration_low']:.2f}, "
                                        f"{r['restoration_high']:.2f}]" for _, r in rose.iterrows()],
            "control's upper bound": [f"{v:.2f}" for v in rose["control_high"]]})
        page.add(PAGE, "**When sites formed**: per site, the first step whose interval lies above the random-init "
                       "control's and above 0 (earliest first; at most 12).", "",
                 *page.table(shown.head(12), ("tracing", label, "formed")))
    else:
        page.add(PAGE, "No site's interval rose above the random-init control's (and above 0) at any step.", "")
    return f"- Causal tracing — {said}."


def section(page: Page, tables: dict, results) -> None:
    """The Causal tracing page and, per relation, its finding on the Overview."""
    scores, heads = tables.get("tracing_scores"), tables.get("tracing_head_scores")
    if scores is None or scores.empty or _series(scores).empty:
        return
    page.add(PAGE, f"# {TITLE}", "", HOW_TO_READ, "")
    found = emergence(scores)
    several = scores["benchmark"].nunique() > 1
    for (bench, relation), rows in scores.groupby(["benchmark", "relation"], sort=False):
        label = f"{relation} ({bench})" if several else relation
        relation_heads = None if heads is None else heads[(heads["benchmark"] == bench) &
                                                          (heads["relation"] == relation)]
        said = _relation_part(page, rows, relation_heads, label,
                              found[(found["benchmark"] == bench) & (found["relation"] == relation)])
        if said:
            page.finding(said)
    page.configure(PAGE, title=TITLE)
