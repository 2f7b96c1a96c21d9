"""The Causal tracing page, from the tracing analysis: where in depth and at which token the answer comes back, and
since when.

Made from the tracing tables only (`tracing_scores`, `tracing_head_scores`, `tracing_best_sites`,
`tracing_emergence`, `tracing_agreement`; 95% bootstrap intervals over prompts, with several seeds the rows
pooled over them). Per relation: the component × layer × position-role heatmap of mean restoration at every
step behind a slider (the last step shown first), the best site's absolute effect against step for each fact
group with the random-init control's band, the best site per step and whether it moved between layers, the
heads that restore most, the attention knockout, and the step at which each site first rose above the control.
The words on the page are made from the same tables, so the page says when no site stands out.

Which site "stands out" is decided on the absolute effect (p_restored − p_corrupt), not on the share
(restoration): the share divides by p_clean − p_corrupt and swings wildly where the corruption barely moves p
(a random-init model's p is ~1/vocabulary), while the effect is bounded and pools over prompts.

Notebook: `tracing_heatmap` and `tracing_curves` draw the same figures from a `ProbeResult` or its tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probekit.core.schema import CONTROL, POOLED
from probekit.figures import plain, step_axis, subplots
from probekit.report.markdown import esc
from probekit.report.page import Page, figure_link, slider

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
    return dict(getattr(source, "tables", source))


def _method(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of one method: exact where present, else attribution (tables without a method column: all)."""
    if "method" not in rows.columns or rows.empty:
        return rows
    present = set(rows["method"])
    return rows[rows["method"] == next((m for m in METHODS if m in present), rows["method"].iloc[0])]


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


def control_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The random-init control's rows: the control the runner adds, else the series' own step-0 checkpoint
    (as `emergence_steps` reads it)."""
    from probekit.analyses.stats import control_mask

    return scores[control_mask(scores)]


def _at_site(rows: pd.DataFrame, site: pd.Series) -> pd.DataFrame:
    return rows[(rows["component"] == site["component"]) & (rows["layer"] == site["layer"])
                & (rows["role"] == site["role"])]


def stands_out(site: pd.Series | None) -> bool:
    """Whether a `tracing_best_sites` row's effect interval lies above the control's (and above 0.01)."""
    return site is not None and bool(site["stands_out"])


def _relation_rows(frame: pd.DataFrame | None, relation: str, benchmark: str | None) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame() if frame is None else frame
    rows = frame[frame["relation"] == relation]
    return rows[rows["benchmark"] == benchmark] if benchmark is not None else rows


# ---------------------------------------------------------------- figures (also the notebook's)


@plain
def heatmap(last: pd.DataFrame, title: str) -> Figure:
    """One panel per component: position role (rows) × layer (columns), mean restoration at one step, 0 white
    to 1 dark, each cell's value written in it."""
    components = [c for c in COMPONENT_NAMES if c in set(last["component"])]
    roles = [r for r in ROLE_NAMES if r in set(last["role"])]
    layers = sorted(int(v) for v in last["layer"].dropna().unique())
    fig, axes = subplots(1, max(len(components), 1), figsize=(
        1.6 + 1.1 * max(len(layers), 1) * max(len(components), 1) + 1.5, 0.9 + 0.42 * max(len(roles), 1)),
        squeeze=False, sharey=True)
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
def site_curves(scores: pd.DataFrame, site: pd.Series, title: str, value: str = "effect") -> Figure:
    """The site's mean `value` (effect: p_restored − p_corrupt; or restoration) against step, a line per fact
    group with its 95% band, and the random-init control's as a grey dashed line with its band."""
    rows = _at_site(_series(scores), site)
    fig, ax = subplots(figsize=(7, 3.2))
    for i, (group, line) in enumerate(rows.groupby("group", sort=False)):
        line = line.sort_values("step")
        steps = line["step"].astype(float)
        ax.fill_between(steps, line[f"{value}_low"].astype(float), line[f"{value}_high"].astype(float),
                        color=f"C{i}", alpha=0.2, lw=0)
        ax.plot(steps, line[value].astype(float), color=f"C{i}", marker="o", ms=3, label=group.replace("_", " "))
    control = _at_site(control_rows(scores), site)
    main = main_group(rows) if len(rows) else None
    control = control[control["group"] == main] if main in set(control["group"]) else control
    for _, row in control.head(1).iterrows():
        ax.axhline(row[value], color="grey", ls="--", lw=1, label="random-init control")
        if pd.notna(row[f"{value}_low"]):
            ax.axhspan(row[f"{value}_low"], row[f"{value}_high"], color="grey", alpha=0.12, lw=0)
    step_axis(ax, rows["step"].astype(float).tolist() or [1])
    ax.set_ylabel("p_restored − p_corrupt" if value == "effect" else "restoration")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tracing_heatmap(source, relation: str, step: float | None = None, group: str | None = None,
                    method: str | None = None, benchmark: str | None = None) -> Figure:
    """The layer × position-role heatmap of mean restoration per component, for one relation at one step (the
    last when not given), from a `ProbeResult`, its tables or the `tracing_scores` frame. `group`: the fact
    group (injected where the series has it); `method`: exact or attribution (exact where present)."""
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
    """A site's mean effect (or `value="restoration"`) against step per fact group, with the random-init
    control's band; `site` = (component, layer, role), the best site at the last step when not given."""
    from probekit.core.errors import ProbekitError

    tables = _tables(source)
    scores = _relation_rows(tables.get("tracing_scores"), relation, benchmark)
    if scores.empty:
        raise ProbekitError(f"no tracing scores for relation {relation!r} (run the probe with --with tracing)")
    scores = scores[scores["method"] == method] if method else _method(scores)
    if site is None:
        best = last_best(_relation_rows(tables.get("tracing_best_sites"), relation, benchmark), scores)
        if best is None:
            raise ProbekitError(f"relation {relation!r}: no best site to draw; name one as site=(component, "
                                "layer, role)")
        site = (best["component"], int(best["layer"]), best["role"])
    chosen = pd.Series(dict(zip(SITE, site)))
    return site_curves(scores, chosen, f"{relation}: {site_words(chosen)}", value)


def last_best(best: pd.DataFrame | None, scores: pd.DataFrame) -> pd.Series | None:
    """The `tracing_best_sites` row of the main group and method at the last step (made from `scores` when the
    table is not given)."""
    from probekit.analyses.tracing import best_sites

    if best is None or best.empty:
        best = best_sites(scores)
    best = _method(_series(best))
    if best.empty:
        return None
    best = best[best["group"] == main_group(best)]
    return best[best["step"] == best["step"].max()].iloc[0]


# ---------------------------------------------------------------- tables and words


def top_heads(heads: pd.DataFrame, group: str, k: int = TOP_HEADS) -> pd.DataFrame:
    """The `k` heads restoring most at the last step (of `group`), with their mean restoration [95%] at every
    step: a row per head, a column per step."""
    rows = _method(_series(heads))
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
    answer left [95%] at every step (1 = blocking changes nothing, 0 = as bad as corrupting the subject)."""
    rows = _series(scores)
    rows = rows[(rows["component"] == "knockout") & (rows["group"] == group)]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(cell=[_interval(r) for r in rows.itertuples()])
    table = rows.pivot_table(index="layer", columns="step", values="cell", aggfunc="first").reset_index()
    table.columns = [f"step {c:,.0f}" if isinstance(c, (int, float, np.number)) else c for c in table.columns]
    return table


def _interval(row, value: str = "restoration") -> str:
    estimate = getattr(row, value)
    if pd.isna(estimate):
        return ""
    return f"{estimate:.2f} [{getattr(row, value + '_low'):.2f}, {getattr(row, value + '_high'):.2f}]"


def _effect(row) -> str:
    return f"{row['effect']:+.3f} [{row['effect_low']:+.3f}, {row['effect_high']:+.3f}]"


def site_words(site: pd.Series) -> str:
    """`mlp at layer 1, last subject piece` in words: the MLP output at layer 1, last subject piece."""
    role = ROLE_NAMES.get(site["role"], site["role"])
    return f"{COMPONENT_NAMES[site['component']]} at layer {int(site['layer'])}, {role}"


def sentence(relation: str, site: pd.Series | None, step: float, formed: float | None) -> str:
    """What a relation's tracing shows, in one sentence (also the Overview's finding); `site` a
    `tracing_best_sites` row."""
    if not stands_out(site):
        return (f"**{esc(relation)}**: no site stands out at step {step:,.0f} — no site's effect interval lies "
                "above the random-init control's")
    share = (f"{site['restoration']:.2f} of the answer" if pd.notna(site["restoration"])
             else "part of the answer")
    text = (f"**{esc(relation)}**: restoring {site_words(site)} brings back {share} (p {_effect(site)}) at step "
            f"{step:,.0f}")
    if formed is not None and not pd.isna(formed):
        text += f"; it first rose above the random-init control at step {formed:,.0f}"
    return text


def movement(best: pd.DataFrame) -> str:
    """In words, whether the best site moved between layers over the steps where it stood out."""
    out = best[best["stands_out"]].sort_values("step")
    if out.empty:
        return "No step has a site that stands out, so there is no place to follow over training."
    layers = out["layer"].astype(int).tolist()
    changes = [f"layer {a} → {b} at step {s:,.0f}" for a, b, s in zip(layers, layers[1:], out["step"].iloc[1:])
               if a != b]
    if not changes:
        return (f"The best site stays at layer {layers[0]} over the {len(out)} steps where one stands out "
                f"(from step {out['step'].iloc[0]:,.0f}).")
    return f"The best site moves between layers over training: {'; '.join(changes)}."


HOW_TO_READ = (
    "**How to read this page.** For each prompt (*The capital of France is [MASK].*) the model is run three "
    "ways: as it is (*clean*), with the subject corrupted so the model loses track of *France* (*corrupted*: "
    "noise added to the subject's token embeddings, or the subject swapped for another subject of the same "
    "relation with as many pieces), and corrupted again but with one internal activation copied back from the clean run "
    "(*restored*). If copying one activation back brings the right answer back, that activation carried what "
    "the model needed to know about the subject. **Restoration** is the share of the answer's probability "
    "that comes back: **1** = patching this site brings back the clean answer, **0** = no effect (as "
    "corrupted). A *site* is a component (*resid*: the hidden state leaving the layer; *attn*: the attention "
    "output; *mlp*: the MLP output) at one layer and one kind of token position (the subject's first, middle "
    "or last piece, the [MASK], other tokens, special tokens). In the **heatmap** each panel is one component, "
    "each column a layer (input side left), each row a kind of position; a dark cell is a site the answer "
    "passes through. Move the slider to see the heatmap at another training step.\n\n"
    "Whether a site **stands out** is decided on the *absolute effect*, p_restored − p_corrupt (the share's "
    "numerator): the share divides by p_clean − p_corrupt and swings wildly when the corruption barely moves "
    "the answer, which is the rule in a model that has not learnt the fact. A site stands out when the lower "
    "end of its effect's 95% interval (bootstrap over prompts) lies above the upper end of the random-init "
    "control's at the same site, and above 0.01 (one percentage point of the answer's probability); the "
    "*best site* is, of the sites that stand out (of all when none does), the one whose effect rose most above "
    "the control's. Restoring the last layer's residual "
    "stream at the [MASK] gives the clean answer by construction, so it is never the best site. Heads are "
    "restored one at a time, at every position at once.")


def step_slider(page: Page, series: pd.DataFrame, group: str, label: str) -> list[str]:
    """The heatmap of every traced step, one shown at a time behind a slider (the last step first); the
    report's step-slider mechanism (`probekit.js` `sliders()`), as the attention page's."""
    steps = sorted(float(s) for s in series["step"].unique())
    panes = []
    for step in steps:
        rows = series[(series["step"] == step) & (series["group"] == group)]
        if rows.empty:
            continue
        stem = page.unique("tracing", label, "heatmap", f"{step:.0f}")
        heatmap(rows, f"{label} ({group}), step {step:,.0f}").savefig(
            page.docs / "figures" / f"{stem}.png", dpi=100, bbox_inches="tight")
        caption = (f"{esc(label)}: mean restoration per component × layer × position role at step {step:,.0f} "
                   f"({esc(group.replace('_', ' '))} prompts; 1 = clean answer back, 0 = no effect)")
        panes.append((f"step {step:,.0f}", figure_link(stem, caption, caption)))
    return slider(panes, "training step")


def _relation_part(page: Page, tables: dict, label: str) -> str | None:
    """The part of the page for one relation (`tables`: its rows of each tracing table); returns its
    finding (None when nothing was traced)."""
    from probekit.analyses.tracing import best_sites, site_emergence

    scores = _method(tables["tracing_scores"])
    series = _series(scores)
    group = main_group(series)
    if group is None:
        return None
    method = scores["method"].iloc[0] if "method" in scores.columns else "exact"
    step = float(series["step"].max())
    best = tables.get("tracing_best_sites")
    best = best_sites(scores) if best is None or best.empty else best
    best = _series(_method(best))
    best = best[best["group"] == group].sort_values("step", kind="stable")
    site = best[best["step"] == step].iloc[0] if (best["step"] == step).any() else None
    found = tables.get("tracing_emergence")
    found = site_emergence(scores) if found is None or found.empty else found
    found = _method(found)
    found = found[(found["group"] == group) & found["emerged_at"].notna()].sort_values(
        ["emerged_at", "effect"], ascending=[True, False], kind="stable")
    formed = None
    if site is not None:
        rose = _at_site(found, site)
        formed = float(rose["emerged_at"].iloc[0]) if len(rose) else None
    said = sentence(label, site, step, formed)
    last = series[(series["step"] == step) & (series["group"] == group)]
    skipped = int(last["skipped"].max()) if "skipped" in last.columns and len(last) else 0
    page.add(PAGE, f"## {esc(label)}", "", f"Read from the **{esc(group.replace('_', ' '))}** prompts "
             f"({int(last['n'].max()) if len(last) else 0} traced with an effect to restore"
             + (f"; {skipped} left out: no counterfactual subject of as many pieces" if skipped else "")
             + (", by attribution patching" if method == "attribution" else "") + f"). {said}.", "")
    page.add(PAGE, *step_slider(page, series, group, label))
    if site is not None:
        page.figure(PAGE, ("tracing", label, "best-site"), site_curves(scores, site, f"{label}: {site_words(site)}"),
                    f"{label}: absolute effect (p_restored − p_corrupt) at the best site ({site_words(site)}) "
                    "against step, per group (band: 95% bootstrap interval over prompts; grey: the random-init "
                    "control)")
    if len(best):
        shown = pd.DataFrame({
            "step": [f"{s:,.0f}" for s in best["step"]],
            "best site": [site_words(r) for _, r in best.iterrows()],
            "effect [95%]": [_effect(r) for _, r in best.iterrows()],
            "restoration": [f"{v:.2f}" if pd.notna(v) else "" for v in best["restoration"]],
            "control's upper bound": [f"{v:+.3f}" if pd.notna(v) else "" for v in best["control_high"]],
            "stands out": ["yes" if v else "no" for v in best["stands_out"]]})
        page.add(PAGE, f"**The best site at each step** ({esc(group.replace('_', ' '))} prompts). "
                 f"{movement(best)}", "", *page.table(shown, ("tracing", label, "best")))
    heads = tables.get("tracing_head_scores")
    if heads is not None and len(heads):
        table = top_heads(heads, group)
        if len(table):
            page.add(PAGE, f"**Top heads** ({esc(group.replace('_', ' '))} prompts, ranked at step {step:,.0f}): "
                           "mean restoration [95%] when the head's clean output is restored at every position.", "",
                     *page.table(table, ("tracing", label, "heads")))
    knocked = knockout_table(tables["tracing_scores"], group)
    if len(knocked):
        page.add(PAGE, "**Attention knockout** (Geva et al. 2023): the clean prompt with attention from the [MASK] "
                       "to the subject blocked at one layer, in every head. The share of the answer left [95%]: "
                       "**1** = blocking that attention changes nothing, **0** = as bad as corrupting the subject; "
                       "a low value marks the layer where the [MASK] reads the subject.", "",
                 *page.table(knocked, ("tracing", label, "knockout")))
    if len(found):
        shown = pd.DataFrame({
            "site": [site_words(r) for _, r in found.iterrows()],
            "first step above the control": [f"{v:,.0f}" for v in found["emerged_at"]],
            "effect there [95%]": [_effect(r) for _, r in found.iterrows()],
            "the bar: control's upper bound or 0.01": [f"{v:+.3f}" for v in found["control_high"]]})
        page.add(PAGE, "**When sites formed**: per site, the first step whose effect interval lies above the "
                       "random-init control's and above 0.01 (earliest first; at most 12).", "",
                 *page.table(shown.head(12), ("tracing", label, "formed")))
    else:
        page.add(PAGE, "No site's effect interval rose above the random-init control's (and above 0.01) at any step.",
                 "")
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
        "Spearman per prompt": [f"{v:.2f}" if pd.notna(v) else "" for v in rows["spearman"]],
        "sites": rows["n"].astype(int), "Spearman per site": [f"{v:.2f}" if pd.notna(v) else ""
                                                              for v in rows["spearman_sites"]],
        "mean sites": rows["n_sites"].astype(int)})
    page.add(PAGE, "## Attribution patching against exact patching", "", AGREEMENT, "",
             *page.table(shown, ("tracing", "agreement")))


def settings_line(manifest: dict) -> str:
    """What this run corrupted and how it patched, from the manifest's tracing options."""
    opts = manifest.get("options", {}).get("tracing", {})
    if not opts:
        return ""
    corrupt = ("the subject swapped for another of the same relation with as many pieces (seed "
               f"{opts.get('noise_seed')})" if opts.get("corrupt") == "subject-swap" else
               f"Gaussian noise of {opts.get('noise')} × the subject embeddings' std (seed {opts.get('noise_seed')})")
    sample = opts.get("sample")
    return (f"This run: corruption = {esc(corrupt)}; method {esc(str(opts.get('method')))}; components "
            f"{esc(str(opts.get('components')))}; " + (f"{sample} prompts per relation and fact group." if sample
                                                      else "every prompt.")
            + (" Knockout is exact only: attribution does not estimate it." if opts.get("method") != "exact"
               and "knockout" in str(opts.get("components")) else ""))


def section(page: Page, tables: dict, results) -> None:
    """The Causal tracing page and, per relation, its finding on the Overview."""
    scores = tables.get("tracing_scores")
    if scores is None or scores.empty or _series(scores).empty:
        return
    page.add(PAGE, f"# {TITLE}", "", HOW_TO_READ, "", settings_line(tables.get("manifest", {})), "")
    several = scores["benchmark"].nunique() > 1
    names = ("tracing_scores", "tracing_head_scores", "tracing_best_sites", "tracing_emergence")
    for (bench, relation), _ in scores.groupby(["benchmark", "relation"], sort=False):
        label = f"{relation} ({bench})" if several else relation
        own = {name: _relation_rows(tables.get(name), relation, bench) for name in names}
        said = _relation_part(page, own, label)
        if said:
            page.finding(said)
    agreement_part(page, tables.get("tracing_agreement"))
    page.configure(PAGE, title=TITLE)
