"""Figures from probekit's tidy tables: each function returns a matplotlib Figure.

The report saves them as PNG and SVG; in a notebook they display once, as the cell's value. They are drawn
on `probekit.figures` (no pyplot, no mathtext: labels carry user text), which also holds the figures of one
capture's attention (`attention_maps`, `qk_scores`), drawn for the notebook views as well.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from probekit.figures import plain, step_axis, subplots
from probekit.palette import PALETTE, group_order, group_styles, mpl_dash
from probekit.analyses.findings import main_rows
from probekit.core.schema import CONTROL, POOLED
from probekit.report.charts_model import head_names

METRIC_LABELS = {"p_at_1": "P@1", "p_at_10": "P@10", "mrr": "MRR"}


@plain
def loss_curve(log: pd.DataFrame) -> Figure:
    """Training loss and held-out MLM loss against step."""
    fig, ax = subplots(figsize=(8, 4))
    for column, label in (("loss", "training loss"), ("eval_loss", "held-out MLM loss")):
        if column in log:
            rows = log.dropna(subset=[column])
            ax.plot(rows["step"], rows[column], marker="o" if column == "eval_loss" else None, ms=3, label=label)
    step_axis(ax, log["step"])
    ax.set_ylabel("cross-entropy")
    ax.legend()
    fig.tight_layout()
    return fig


@plain
def score_curves(scores: pd.DataFrame, benchmark: str, log: bool = False) -> Figure:
    """One column per relation, one row per metric (P@1, P@10, MRR) against step: each fact group a line with
    its 95% bootstrap band, injected solid and held-back dashed, the random-init control dotted. With several
    seeds, the line and band are the all-seeds rows (Multi-Bootstrap) and each seed is a faint line behind."""
    data = scores[(scores["benchmark"] == benchmark) & (scores["checkpoint"] != CONTROL)].dropna(subset=["step"])
    control = scores[(scores["benchmark"] == benchmark) & (scores["checkpoint"] == CONTROL)]
    main = main_rows(data)
    seeds = data[data["run"] != POOLED] if len(main) < len(data) else data.iloc[:0]
    relations = list(dict.fromkeys(data["relation"]))
    groups = group_order(data["group"])
    style = {g: (c, mpl_dash(d)) for g, (c, d) in group_styles(groups).items()}
    metrics = list(METRIC_LABELS)
    fig, axes = subplots(len(metrics), max(1, len(relations)), squeeze=False, sharey="row", sharex=True,
                          figsize=(2.2 + 3.0 * max(1, len(relations)), 1.0 + 2.4 * len(metrics)))
    for c, relation in enumerate(relations):
        for r, metric in enumerate(metrics):
            ax = axes[r][c]
            for group in groups:
                color, dash = style[group]
                rows = main[(main["group"] == group) & (main["relation"] == relation)]
                for _, seed in seeds[(seeds["group"] == group) & (seeds["relation"] == relation)].groupby("run"):
                    seed = seed.sort_values("step")
                    ax.plot(seed["step"], seed[metric], color=color, ls=dash, alpha=0.3, lw=0.8)
                bounds = [f"{metric}_low", f"{metric}_high"]
                line = rows.groupby("step")[[metric, *(b for b in bounds if b in rows)]].mean()
                if all(b in line for b in bounds):
                    ax.fill_between(line.index.astype(float), line[bounds[0]], line[bounds[1]], color=color,
                                    alpha=0.18, lw=0)
                ax.plot(line.index.astype(float), line[metric], color=color, ls=dash, marker="o", ms=3,
                        label=group.replace("_", "-"))
                base = control[(control["group"] == group) & (control["relation"] == relation)][metric]
                for value in base:
                    ax.axhline(value, color=color, ls=":", lw=1)
            step_axis(ax, data["step"], log)
            ax.set_ylim(-0.02, 1.02)
            if r < len(metrics) - 1:
                ax.set_xlabel("")
            if c == 0:
                ax.set_ylabel(METRIC_LABELS[metric])
            if r == 0:
                ax.set_title(relation, fontsize=11, fontweight="bold")
    if relations:
        axes[0][-1].legend(title="fact group (band: 95%)", loc="upper left", bbox_to_anchor=(1, 1), fontsize=8)
    fig.tight_layout()
    return fig


@plain
def rank_heatmap(predictions: pd.DataFrame, benchmark: str, relation: str, max_prompts: int = 40) -> Figure:
    """Gold answer's rank for prompts (rows) × checkpoints (columns); darker = better. Up to `max_prompts`
    prompts, shared between the fact groups and spread from best to worst, so the held-back control shows."""
    from probekit.report.charts import sampled_prompts

    rows = predictions[(predictions["benchmark"] == benchmark) & (predictions["relation"] == relation)]
    first_template = rows["template"].iloc[0]
    rows = rows[rows["template"] == first_template]
    rows = sampled_prompts(rows, max(1, max_prompts // max(1, rows["group"].nunique())))
    last = rows[rows["step"] == rows["step"].max()]
    order = last.sort_values(["group", "gold_rank"])["prompt"].drop_duplicates()
    table = rows.pivot_table(index="prompt", columns="step", values="gold_rank", aggfunc="min").reindex(order)
    group_of = rows.drop_duplicates("prompt").set_index("prompt")["group"]
    fig, ax = subplots(figsize=(min(3 + 0.45 * table.shape[1], 16), 1.5 + 0.28 * len(table)))
    sns.heatmap(np.log10(table), cmap="mako", ax=ax, cbar_kws={"label": "log10(gold rank): darker = better"},
                xticklabels=[f"{s:,.0f}" for s in table.columns],
                yticklabels=[f"{(p if len(p) < 60 else p[:57] + '…')} [{group_of.get(p, '')}]" for p in table.index])
    ax.set_xlabel("training step (checkpoints)")
    ax.set_ylabel("prompt [fact group]")
    ax.set_title(f"{relation}: gold rank, template “{first_template}”")
    fig.tight_layout()
    return fig


@plain
def known_facts(emergence: pd.DataFrame) -> Figure:
    """How many prompts are answered correctly (rank 1) and within the top 10, against step."""
    fig, ax = subplots(figsize=(8, 4))
    sns.lineplot(emergence, x="step", y="count", hue="group", style="criterion", marker="o", ms=4, ax=ax,
                 palette={g: c for g, (c, _) in group_styles(emergence["group"]).items()})
    step_axis(ax, emergence["step"])
    ax.set_ylabel("prompts")
    fig.tight_layout()
    return fig


def head_roles(heads: pd.DataFrame) -> dict[str, str]:
    """"L1.H1" → "L1.H1 prev-token": the interactive charts' names (`charts_model.head_names`, one rule)."""
    return {f"L{layer}.H{head}": name for (layer, head), name in head_names(heads).items()}


@plain
def head_trajectories(heads: pd.DataFrame, metrics: list[str], labelled: int = 8) -> Figure:
    """Each head's metric against step, one line per head named by its role ("L1.H1 prev-token"); the
    `labelled` heads that end farthest from the median are coloured and in the legend, the rest grey."""
    fig, axes = subplots(1, len(metrics), figsize=(4.2 * len(metrics) + 2, 3.8), squeeze=False)
    data = heads.assign(head_id=[f"L{l}.H{h}" for l, h in zip(heads["layer"], heads["head"])])
    names = head_roles(heads)
    for ax, metric in zip(axes[0], metrics):
        rows = data[data["metric"] == metric]
        last = rows[rows["step"] == rows["step"].max()].groupby("head_id")["value"].mean()
        picked = list((last - last.median()).abs().sort_values(ascending=False).index[:labelled])
        for head_id, line in rows.groupby("head_id", sort=True):
            line = line.groupby("step")["value"].mean()
            if head_id in picked:
                color = PALETTE[picked.index(head_id) % len(PALETTE)]
                ax.plot(line.index.astype(float), line.values, color=color, marker=".", lw=1.4,
                        label=names.get(head_id, head_id))
            else:
                ax.plot(line.index.astype(float), line.values, color="#bbbbbb", lw=0.8)
        step_axis(ax, data["step"])
        ax.set_title(metric)
        ax.set_ylabel(metric)
        ax.legend(fontsize=7, loc="best", title="head (role)", title_fontsize=7)
    fig.tight_layout()
    return fig


@plain
def logit_lens(lens_scores: pd.DataFrame, relation: str | None = None) -> Figure:
    """P@1 and MRR when the MLM head reads each layer, against step, from the `lens_scores` table: a line
    per layer (colour, layer 0 = the embeddings) and fact group (injected solid, held back dashed), with its
    95% bootstrap band. The numbers are the table's, by the rule of `scores`: unscorable prompts are left out
    of every metric (counted in `n_unscorable`), never counted as misses. With several seeds, the rows pooled
    over them. Where one line stands for several rows (`relation` None over several relations, or several
    runs that are not seeds of one series), each step's value is their mean weighted by scorable prompts,
    drawn without a band (an interval does not average)."""
    from matplotlib.lines import Line2D

    if "p_at_1" not in lens_scores.columns:
        raise ValueError("logit_lens draws the lens_scores table (result.tables['lens_scores']), not the "
                         "row-level lens table")
    rows = main_rows(lens_scores)
    if relation is not None:
        rows = rows[rows["relation"] == relation]
    layers = sorted(int(v) for v in rows["layer"].dropna().unique())
    groups = group_order(rows["group"])
    colours = dict(zip(layers, sns.color_palette("viridis", max(1, len(layers)))))
    dashes = {g: mpl_dash(d) for g, (_, d) in group_styles(groups).items()}
    fig, axes = subplots(1, 2, figsize=(11, 3.8), squeeze=False)
    for ax, metric in zip(axes[0], ("p_at_1", "mrr")):
        for (layer, group), line in rows.groupby(["layer", "group"], sort=True):
            line = _per_step(line, metric)
            colour, dash = colours[int(layer)], dashes[group]
            if line[["low", "high"]].notna().all().all():
                ax.fill_between(line.index.astype(float), line["low"], line["high"], color=colour, alpha=0.12,
                                lw=0)
            ax.plot(line.index.astype(float), line["value"], color=colour, ls=dash, marker="o", ms=3)
        step_axis(ax, rows["step"] if len(rows) else [1])
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(METRIC_LABELS[metric])
    handles = [Line2D([], [], color=colours[layer], marker="o", ms=3, label=f"layer {layer}") for layer in layers]
    handles += [Line2D([], [], color="#555555", ls=dashes[g], label=str(g).replace("_", "-")) for g in groups]
    axes[0][1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1, 1), fontsize=8,
                      title="band: 95%", title_fontsize=8)
    fig.suptitle("logit lens" + (f": {relation}" if relation else "") + " — layer 0 = embeddings")
    fig.tight_layout()
    return fig


def _per_step(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One line of a summary table by step: value and 95% bounds where each step is one row; where a step
    has several rows, their mean weighted by scorable prompts (`n`) and no bounds."""
    out = {}
    for step, at in rows.groupby("step", sort=True):
        if len(at) == 1:
            row = at.iloc[0]
            out[step] = (row[metric], row.get(f"{metric}_low"), row.get(f"{metric}_high"))
            continue
        weights = at["n"].astype(float).fillna(0).where(at[metric].notna(), 0)
        value = float((at[metric].fillna(0) * weights).sum() / weights.sum()) if weights.sum() else np.nan
        out[step] = (value, np.nan, np.nan)
    return pd.DataFrame.from_dict(out, orient="index", columns=["value", "low", "high"]).astype(float)


@plain
def ablation_effects(ablation: pd.DataFrame, checkpoint: str) -> Figure:
    """Change in mean gold log-probability per relation when each head is zeroed, at one checkpoint."""
    rows = ablation[ablation["checkpoint"] == checkpoint]
    rows = rows.assign(head_id=[f"L{l}.H{h}" for l, h in zip(rows["layer"], rows["head"])])
    grid = rows.groupby(["relation", "head_id"])["delta_mean_gold_logprob"].mean().unstack()
    fig, ax = subplots(figsize=(1.6 + 0.7 * grid.shape[1], 1.2 + 0.45 * grid.shape[0]))
    limit = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    sns.heatmap(grid, cmap="RdBu", vmin=-limit, vmax=limit, annot=grid.size <= 80, fmt=".2f", ax=ax,
                cbar_kws={"label": "Δ mean gold log-prob"})
    ax.set_title(f"head ablation at {checkpoint}: negative = the head helps")
    ax.set_xlabel("")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig
