"""Figures from probekit's tidy tables and captured arrays: each function returns a matplotlib Figure.

The report saves them as PNG and SVG; in a notebook they display once, as the cell's value. Figures are
made outside pyplot, so none is left open in its registry and no GUI backend is needed. Labels carry user
text (relations, prompts, tokens, checkpoint names), so mathtext is off in every figure: `$x$` is drawn as
typed and an unbalanced `$\frac{$` cannot crash a plot.
"""

from __future__ import annotations

import functools
import io

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from matplotlib.text import Text

from probekit.activations import Capture
from probekit.hooks import hook_name
from probekit.schema import CONTROL, POOLED

sns.set_theme(style="whitegrid", context="notebook")
METRIC_LABELS = {"p_at_1": "P@1", "p_at_10": "P@10", "mrr": "MRR"}
#: Okabe–Ito colours without the yellow (no key line yellow on white); the report's charts use the same
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#999999"]
GROUP_STYLE = {"injected": ("#0072B2", "-"), "held_back": ("#D55E00", "--")}
PLAIN_TEXT = {"text.parse_math": False}


class ShownFigure(Figure):
    """A Figure that shows itself in Jupyter as a PNG, with or without pyplot's inline backend, and draws
    every text as typed (no mathtext), including tick labels made only when it is drawn."""

    def draw(self, renderer) -> None:
        with mpl.rc_context(PLAIN_TEXT):
            for text in self.findobj(Text):
                text.set_parse_math(False)
            super().draw(renderer)

    def savefig(self, *args, **kwargs) -> None:
        with mpl.rc_context(PLAIN_TEXT):
            super().savefig(*args, **kwargs)

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _plain(plot):
    """Make the figure with mathtext off, so texts laid out while plotting (tight_layout) are plain too."""
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(PLAIN_TEXT):
            return plot(*args, **kwargs)
    return wrapper


def _subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None, **kwargs):
    fig = ShownFigure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _step_axis(ax, steps, log: bool = False) -> None:
    """Training steps on a linear axis (where the learning shows), or with `log` a log axis that still shows
    step 0; tick labels as plain numbers 0, 1, 10, 1,000 (mathtext is off, so `$10^{2}$` would print as typed)."""
    if log:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0, right=max(max(steps), 1) * 1.3)
    else:
        ax.set_xlim(left=min(0, min(steps)), right=max(max(steps), 1) * 1.02)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.set_xlabel("training step")


@_plain
def loss_curve(log: pd.DataFrame) -> Figure:
    """Training loss and held-out MLM loss against step."""
    fig, ax = _subplots(figsize=(8, 4))
    for column, label in (("loss", "training loss"), ("eval_loss", "held-out MLM loss")):
        if column in log:
            rows = log.dropna(subset=[column])
            ax.plot(rows["step"], rows[column], marker="o" if column == "eval_loss" else None, ms=3, label=label)
    _step_axis(ax, log["step"])
    ax.set_ylabel("cross-entropy")
    ax.legend()
    fig.tight_layout()
    return fig


@_plain
def score_curves(scores: pd.DataFrame, benchmark: str, log: bool = False) -> Figure:
    """One column per relation, one row per metric (P@1, P@10, MRR) against step: each fact group a line with
    its 95% bootstrap band, injected solid and held-back dashed, the random-init control dotted. With several
    seeds, the line and band are the all-seeds rows (Multi-Bootstrap) and each seed is a faint line behind."""
    data = scores[(scores["benchmark"] == benchmark) & (scores["checkpoint"] != CONTROL)].dropna(subset=["step"])
    control = scores[(scores["benchmark"] == benchmark) & (scores["checkpoint"] == CONTROL)]
    pooled = data["run"] == POOLED
    main, seeds = (data[pooled], data[~pooled]) if pooled.any() else (data, data.iloc[:0])
    relations = list(dict.fromkeys(data["relation"]))
    groups = [g for g in ("injected", "held_back") if g in set(data["group"])] or sorted(set(data["group"]))
    style = {g: GROUP_STYLE.get(g, (PALETTE[i % len(PALETTE)], "-")) for i, g in enumerate(groups)}
    metrics = list(METRIC_LABELS)
    fig, axes = _subplots(len(metrics), max(1, len(relations)), squeeze=False, sharey="row", sharex=True,
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
            _step_axis(ax, data["step"], log)
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


@_plain
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
    fig, ax = _subplots(figsize=(min(3 + 0.45 * table.shape[1], 16), 1.5 + 0.28 * len(table)))
    sns.heatmap(np.log10(table), cmap="mako", ax=ax, cbar_kws={"label": "log10(gold rank): darker = better"},
                xticklabels=[f"{s:,.0f}" for s in table.columns],
                yticklabels=[f"{(p if len(p) < 60 else p[:57] + '…')} [{group_of.get(p, '')}]" for p in table.index])
    ax.set_xlabel("training step (checkpoints)")
    ax.set_ylabel("prompt [fact group]")
    ax.set_title(f"{relation}: gold rank, template “{first_template}”")
    fig.tight_layout()
    return fig


@_plain
def known_facts(emergence: pd.DataFrame) -> Figure:
    """How many prompts are answered correctly (rank 1) and within the top 10, against step."""
    fig, ax = _subplots(figsize=(8, 4))
    sns.lineplot(emergence, x="step", y="count", hue="group", style="criterion", marker="o", ms=4, ax=ax,
                 palette=PALETTE[: emergence["group"].nunique()])
    _step_axis(ax, emergence["step"])
    ax.set_ylabel("prompts")
    fig.tight_layout()
    return fig


@_plain
def head_heatmaps(heads: pd.DataFrame, metrics: list[str], checkpoints: list[str]) -> Figure:
    """Layer × head heatmaps: one row per metric, one column per checkpoint."""
    fig, axes = _subplots(len(metrics), len(checkpoints), squeeze=False,
                          figsize=(2.2 + 2.3 * len(checkpoints), 1.2 + 1.9 * len(metrics)))
    for r, metric in enumerate(metrics):
        values = heads[heads["metric"] == metric]
        vmin, vmax = values["value"].min(), values["value"].max()
        for c, checkpoint in enumerate(checkpoints):
            grid = values[values["checkpoint"] == checkpoint].pivot_table(index="layer", columns="head",
                                                                         values="value", aggfunc="mean")
            sns.heatmap(grid, ax=axes[r][c], vmin=vmin, vmax=vmax, cmap="viridis", annot=grid.size <= 16,
                        fmt=".2f", cbar=c == len(checkpoints) - 1, cbar_kws={"label": metric})
            axes[r][c].set_title(f"{metric}\n{checkpoint}" if r == 0 else metric, fontsize=9)
            axes[r][c].set_xlabel("head" if r == len(metrics) - 1 else "")
            axes[r][c].set_ylabel("layer" if c == 0 else "")
    fig.tight_layout()
    return fig


ROLES = {"attn_prev": "prev-token", "attn_next": "next-token", "attn_self": "self", "attn_cls": "[CLS]",
         "attn_sep": "[SEP]", "attn_punct": "punctuation"}


def head_roles(heads: pd.DataFrame) -> dict[str, str]:
    """"L1.H1" → "L1.H1 prev-token": each head named by where it puts most attention at the last checkpoint
    (Clark et al.'s categories), "broad" when its attention is nearly uniform."""
    last = heads[heads["step"] == heads["step"].max()]
    table = last.pivot_table(index=["layer", "head"], columns="metric", values="value", aggfunc="mean")
    names = {}
    for (layer, head), row in table.iterrows():
        known = {m: row[m] for m in ROLES if m in row and pd.notna(row[m])}
        role = ROLES[max(known, key=known.get)] if known else ""
        if "entropy_ratio" in row and pd.notna(row["entropy_ratio"]) and row["entropy_ratio"] > 0.85:
            role = "broad"
        names[f"L{layer}.H{head}"] = f"L{layer}.H{head} {role}".strip()
    return names


@_plain
def head_trajectories(heads: pd.DataFrame, metrics: list[str], labelled: int = 8) -> Figure:
    """Each head's metric against step, one line per head named by its role ("L1.H1 prev-token"); the
    `labelled` heads that end farthest from the median are coloured and in the legend, the rest grey."""
    fig, axes = _subplots(1, len(metrics), figsize=(4.2 * len(metrics) + 2, 3.8), squeeze=False)
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
        _step_axis(ax, data["step"])
        ax.set_title(metric)
        ax.set_ylabel(metric)
        ax.legend(fontsize=7, loc="best", title="head (role)", title_fontsize=7)
    fig.tight_layout()
    return fig


@_plain
def attention_maps(cap: Capture, sentence: int = 0, title: str = "") -> Figure:
    """Every layer × head's attention for one sentence."""
    length = int(cap.attention_mask[sentence].sum())
    tokens = cap.tokens[sentence]
    fig, axes = _subplots(cap.n_layers, cap.n_heads, squeeze=False,
                          figsize=(2.6 * cap.n_heads + 1, 2.6 * cap.n_layers + 0.6))
    for layer in range(cap.n_layers):
        for head in range(cap.n_heads):
            ax = axes[layer][head]
            image = ax.imshow(cap.pattern(layer)[sentence, head, :length, :length].numpy(), cmap="Blues",
                              vmin=0, vmax=1)
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            _token_ticks(ax, tokens, length)
            ax.set_xlabel("key (attended to)", fontsize=7)
            ax.set_ylabel("query", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, label="attention weight")
    return fig


@_plain
def qk_scores(cap: Capture, layer: int, sentence: int = 0) -> Figure:
    """For each head of one layer: the scaled Q·Kᵀ scores beside the attention they become."""
    length = int(cap.attention_mask[sentence].sum())
    tokens = cap.tokens[sentence]
    q = cap[hook_name(layer, "attn.hook_q")][sentence, :length].transpose(0, 1)  # [head, pos, d_head]
    k = cap[hook_name(layer, "attn.hook_k")][sentence, :length].transpose(0, 1)
    scores = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).numpy()
    fig, axes = _subplots(cap.n_heads, 2, figsize=(7.5, 3.4 * cap.n_heads), squeeze=False)
    for head in range(cap.n_heads):
        image = axes[head][0].imshow(scores[head], cmap="RdBu_r", vmin=-abs(scores[head]).max(),
                                     vmax=abs(scores[head]).max())
        fig.colorbar(image, ax=axes[head][0], fraction=0.046, label="score")
        axes[head][0].set_title(f"head {head}: Q·Kᵀ/√d", fontsize=9)
        weights = axes[head][1].imshow(cap.pattern(layer)[sentence, head, :length, :length].numpy(),
                                       cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(weights, ax=axes[head][1], fraction=0.046, label="attention")
        axes[head][1].set_title(f"head {head}: attention", fontsize=9)
        for ax in axes[head]:
            _token_ticks(ax, tokens, length)
    fig.suptitle(f"layer {layer}")
    fig.tight_layout()
    return fig


def _token_ticks(ax, tokens: list[str], length: int) -> None:
    ax.set_xticks(range(length), tokens[:length], rotation=90, fontsize=6)
    ax.set_yticks(range(length), tokens[:length], fontsize=6)
    ax.grid(False)


@_plain
def logit_lens(lens: pd.DataFrame, relation: str | None = None) -> Figure:
    """Share of prompts answered at rank 1 (and MRR) when the MLM head reads each layer, against step."""
    rows = lens if relation is None else lens[lens["relation"] == relation]
    rows = rows[rows["checkpoint"] != "random-init"]
    table = rows.assign(hit=rows["gold_rank"] <= 1, rr=1.0 / rows["gold_rank"]).groupby(
        ["step", "layer", "group"])[["hit", "rr"]].mean().reset_index()
    fig, axes = _subplots(1, 2, figsize=(11, 3.8))
    for ax, column, label in ((axes[0], "hit", "P@1"), (axes[1], "rr", "MRR")):
        sns.lineplot(table, x="step", y=column, hue="layer", style="group", marker="o", ms=4, ax=ax,
                     palette=PALETTE[: table["layer"].nunique()], legend=ax is axes[1])
        _step_axis(ax, table["step"])
        ax.set_ylabel(label)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize=8)
    fig.suptitle("logit lens" + (f": {relation}" if relation else "") + " — layer 0 = embeddings")
    fig.tight_layout()
    return fig


@_plain
def ablation_effects(ablation: pd.DataFrame, checkpoint: str) -> Figure:
    """Change in mean gold log-probability per relation when each head is zeroed, at one checkpoint."""
    rows = ablation[ablation["checkpoint"] == checkpoint]
    rows = rows.assign(head_id=[f"L{l}.H{h}" for l, h in zip(rows["layer"], rows["head"])])
    grid = rows.groupby(["relation", "head_id"])["delta_mean_gold_logprob"].mean().unstack()
    fig, ax = _subplots(figsize=(1.6 + 0.7 * grid.shape[1], 1.2 + 0.45 * grid.shape[0]))
    limit = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    sns.heatmap(grid, cmap="RdBu", vmin=-limit, vmax=limit, annot=grid.size <= 80, fmt=".2f", ax=ax,
                cbar_kws={"label": "Δ mean gold log-prob"})
    ax.set_title(f"head ablation at {checkpoint}: negative = the head helps")
    ax.set_xlabel("")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig
