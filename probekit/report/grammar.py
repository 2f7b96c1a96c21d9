"""The report's Grammar page: minimal-pair accuracy against training step, beside the facts.

Made from the `pair_accuracy` table (and `scores` for the facts) only. Chance is 0.5; for BLiMP the paper's
5-gram, LSTM, Transformer-XL and GPT-2 and the human agreement are drawn as reference lines. The page says
in words what the last checkpoint shows, chance included: an accuracy whose 95% interval (Wilson
score interval over its pairs) contains 0.5 is reported as chance, never as learning; ties (both sentences
scored alike, e.g. when they tokenize alike) are misses and said so.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from probekit.benchmarks.pairs import BLIMP, blimp_baselines
from probekit.report.plots import _plain, _step_axis, _subplots

PAGE, TITLE = "grammar.md", "Grammar"
CONTROL = "random-init"
REFERENCES = {"5-gram": ":", "LSTM": "-.", "GPT-2": "--", "human": "-"}  # Transformer-XL ≈ LSTM: left out
Z95 = 1.96


def interval(accuracy: float, n: float) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy over n pairs (NaN without pairs); stays inside [0, 1] and
    keeps its width at 0 and 1, where the normal approximation collapses."""
    if not n or pd.isna(accuracy):
        return math.nan, math.nan
    z2 = Z95 * Z95
    centre = (accuracy + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(accuracy * (1 - accuracy) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def _series(accuracy: pd.DataFrame, level: str) -> pd.DataFrame:
    """Per name × step: accuracy and n pooled over runs (seeds), the random-init control left out."""
    rows = accuracy[(accuracy["level"] == level) & (accuracy["checkpoint"] != CONTROL)].dropna(subset=["step"])
    n = rows["n"].astype(float)
    rows = rows.assign(hits=rows["accuracy"].astype(float).fillna(0) * n, n=n)
    rows = rows.assign(ties=rows["ties"].astype(float))
    pooled = rows.groupby(["name", "step"], sort=True).agg(hits=("hits", "sum"), n=("n", "sum"),
                                                           ties=("ties", "sum")).reset_index()
    return pooled.assign(accuracy=pooled["hits"] / pooled["n"].where(pooled["n"] > 0))


def _step_ticks(ax, steps) -> None:
    """The shared log step axis, its tick labels as plain numbers (the figures draw no mathtext)."""
    _step_axis(ax, steps)


def _baselines(benchmark: str) -> pd.DataFrame | None:
    return blimp_baselines() if benchmark.split(":")[0].split("@")[0] == BLIMP else None


@_plain
def phenomenon_curves(accuracy: pd.DataFrame, baselines: pd.DataFrame | None = None) -> Figure:
    """Accuracy per phenomenon (one panel each, the whole benchmark first) against step; chance and, for
    BLiMP, the paper's models and humans as horizontal reference lines."""
    curves = pd.concat([_series(accuracy, "all"), _series(accuracy, "phenomenon")], ignore_index=True)
    names = ["all", *sorted(set(curves["name"]) - {"all"})]
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = _subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, sharey=True)
    colors = dict(zip(REFERENCES, sns.color_palette("Set2")))
    for ax, name in zip(axes.flat, names):
        line = curves[curves["name"] == name]
        bounds = [interval(a, n) for a, n in zip(line["accuracy"], line["n"])]
        ax.fill_between(line["step"].astype(float), [b[0] for b in bounds], [b[1] for b in bounds], alpha=0.2, lw=0)
        ax.plot(line["step"].astype(float), line["accuracy"], marker="o", ms=3)
        ax.axhline(0.5, color="grey", lw=1, ls="--")
        if baselines is not None:
            level = "all" if name == "all" else "phenomenon"
            ref = baselines[(baselines["level"] == level) & (baselines["name"] == name)]
            for model, style in REFERENCES.items():
                for value in ref.loc[ref["model"] == model, "accuracy"]:
                    ax.axhline(value, color=colors[model], ls=style, lw=1.2, label=model)
        _step_ticks(ax, curves["step"])
        ax.set_ylim(0, 1)
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_ylabel("accuracy")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        axes.flat[0].legend(handles, labels, fontsize=7, loc="lower right", title="paper", title_fontsize=7)
    fig.tight_layout()
    return fig


@_plain
def paradigm_heatmap(accuracy: pd.DataFrame, phenomenon_of: dict[str, str] | None = None) -> Figure:
    """Accuracy per paradigm (rows, grouped by `phenomenon_of` when given) × checkpoint step (columns);
    0.5 is white."""
    grid = _series(accuracy, "paradigm").pivot(index="name", columns="step", values="accuracy")
    phenomenon_of = phenomenon_of or {}
    grid = grid.loc[sorted(grid.index, key=lambda p: (str(phenomenon_of.get(p, "")), p))]
    fig, ax = _subplots(figsize=(min(2 + 0.45 * grid.shape[1], 16), 1 + 0.2 * len(grid)))
    sns.heatmap(grid, ax=ax, cmap="RdBu", vmin=0, vmax=1, center=0.5, cbar_kws={"label": "accuracy"},
                xticklabels=[f"{s:,.0f}" for s in grid.columns], yticklabels=list(grid.index))
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("training step")
    ax.set_ylabel("paradigm (grouped by phenomenon)")
    fig.tight_layout()
    return fig


@_plain
def grammar_and_facts(accuracy: pd.DataFrame, scores: pd.DataFrame | None) -> Figure:
    """Minimal-pair accuracy (top, chance 0.5) and fill-mask P@1 (bottom) on one training-step axis:
    which arrives first."""
    panels = 2 if scores is not None and len(scores) else 1
    fig, axes = _subplots(panels, 1, figsize=(8, 3.2 * panels), squeeze=False, sharex=True)
    top = axes[0][0]
    steps = []
    for bench, rows in accuracy.groupby("benchmark", sort=False):
        line = _series(rows, "all")
        steps += line["step"].tolist()
        top.plot(line["step"].astype(float), line["accuracy"], marker="o", ms=3, label=bench)
    top.axhline(0.5, color="grey", lw=1, ls="--", label="chance")
    top.set_ylim(0, 1)
    top.set_ylabel("minimal pairs: accuracy")
    top.legend(fontsize=8)
    if panels == 2:
        ax = axes[1][0]
        facts = scores[scores["checkpoint"] != CONTROL].dropna(subset=["step"])
        for (bench, group), rows in facts.groupby(["benchmark", "group"], sort=False):
            line = rows.groupby("step")["p_at_1"].mean()
            steps += line.index.tolist()
            label = bench if group in ("all", "other") else f"{bench} ({group.replace('_', '-')})"
            ax.plot(line.index.astype(float), line.values, marker="o", ms=3, label=label)
        ax.set_ylim(0, 1)
        ax.set_ylabel("facts: P@1 (mean over relations)")
        ax.legend(fontsize=8)
    for row in axes:
        _step_ticks(row[0], steps or [1])
    fig.tight_layout()
    return fig


def chance_table(accuracy: pd.DataFrame, baselines: pd.DataFrame | None) -> pd.DataFrame:
    """Per phenomenon (and the whole benchmark): accuracy at the last step with its 95% interval, the first
    step whose interval lies above 0.5, and the paper's 5-gram and GPT-2 and humans where known."""
    curves = pd.concat([_series(accuracy, "all"), _series(accuracy, "phenomenon")], ignore_index=True)
    last = curves["step"].max()
    out = []
    for name, line in curves.groupby("name", sort=False):
        line = line.sort_values("step")
        low = [interval(a, n)[0] for a, n in zip(line["accuracy"], line["n"])]
        above = line["step"][np.array(low) > 0.5]
        end = line[line["step"] == last]
        acc, n = (float(end["accuracy"].iloc[0]), int(end["n"].iloc[0])) if len(end) else (math.nan, 0)
        lo, hi = interval(acc, n)
        ties = int(end["ties"].iloc[0]) if len(end) else 0
        row = {"phenomenon": name, "pairs": n, "ties": ties, "last step": f"{last:,.0f}",
               "accuracy there [95%]": f"{acc:.3f} [{lo:.3f}, {hi:.3f}]",
               "verdict": "chance" if lo <= 0.5 <= hi else ("above chance" if lo > 0.5 else "below chance"),
               "first step above chance": f"{above.iloc[0]:,.0f}" if len(above) else "never"}
        if baselines is not None:
            level = "all" if name == "all" else "phenomenon"
            ref = baselines[(baselines["level"] == level) & (baselines["name"] == name)].set_index("model")["accuracy"]
            row.update({model: f"{ref[model]:.3f}" if model in ref else "" for model in ("5-gram", "GPT-2", "human")})
        out.append(row)
    return pd.DataFrame(out)


def grammar(page, tables: dict, esc: Callable[[object], str], table: Callable[[pd.DataFrame], list[str]]) -> None:
    """Add the Grammar page to `page` when the run scored minimal pairs (a `pair_accuracy` table).

    `esc` and `table` are the report's escaping and Markdown-table helpers, passed in because
    `probekit.report` imports this module (no import cycle).
    """
    accuracy = tables.get("pair_accuracy")
    if accuracy is None or not len(accuracy):
        return
    pairs = tables.get("pairs")
    phenomenon_of = dict(zip(pairs["paradigm"], pairs["phenomenon"])) if pairs is not None else {}
    metric = ", ".join(sorted(set(accuracy["metric"])))
    page.add(PAGE, "# Grammar: minimal pairs", "",
             "A minimal pair is two sentences that differ in one place, one acceptable and one not. A checkpoint "
             "gets a pair right when it gives the acceptable sentence the higher pseudo-log-likelihood "
             f"(here: {esc(metric)}; `within_word_l2r` is PLL-word-l2r, Kauf & Ivanova 2023). Chance is 0.5. "
             "Intervals are 95% Wilson score intervals over the pairs; an accuracy whose interval contains 0.5 "
             "is called chance. A tie (both sentences scored alike, e.g. because they tokenize alike) is a miss, "
             "as in the BLiMP paper.", "")
    for bench, rows in accuracy.groupby("benchmark", sort=False):
        baselines = _baselines(bench)
        found = chance_table(rows, baselines)
        overall = found[found["phenomenon"] == "all"].iloc[0]
        clear = found[(found["phenomenon"] != "all") & (found["verdict"] == "above chance")]["phenomenon"].tolist()
        page.add(PAGE, f"## {esc(bench)}", "",
                 f"At the last checkpoint (step {overall['last step']}) the model scores "
                 f"{esc(overall['accuracy there [95%]'])} over {int(overall['pairs']):,} pairs: "
                 f"**{overall['verdict']}**"
                 + (f" ({int(overall['ties']):,} of them ties, counted as misses). " if overall["ties"] else ". ")
                 + (f"Phenomena above chance there: {esc(', '.join(clear))}." if clear else
                    "No phenomenon is above chance there."), "")
        if baselines is not None:
            page.add(PAGE, "Reference lines: the BLiMP paper's models (trained on far more text) and human "
                           "agreement, over all 1,000 pairs of each paradigm (Warstadt et al. 2020, CC BY 4.0); "
                           "a `blimp@N` benchmark is a seeded sample of N pairs per paradigm.", "")
        page.figure(PAGE, ("pairs", bench), phenomenon_curves(rows, baselines),
                    f"{bench}: accuracy per phenomenon against training step")
        page.add(PAGE, *table(found))
        if rows.loc[rows["level"] == "paradigm", "name"].nunique() > 1:
            page.figure(PAGE, ("paradigms", bench), paradigm_heatmap(rows, phenomenon_of),
                        f"{bench}: accuracy per paradigm and checkpoint")
    page.add(PAGE, "## Grammar and facts", "")
    page.figure(PAGE, ("grammar-and-facts",), grammar_and_facts(accuracy, tables.get("scores")),
                "Minimal-pair accuracy and fill-mask P@1 on one training-step axis")
    page.write(PAGE)
