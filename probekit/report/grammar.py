"""The Grammar page, from the pairs analysis: minimal-pair accuracy against training step, beside the facts.

Made from the `pair_accuracy` table (and `scores` for the facts) only, with the table's own 95% bootstrap
intervals over pairs (`accuracy_low`, `accuracy_high`; with several seeds, the rows pooled over them), the
one definition of the interval everywhere on the page and in the Overview. Chance is 0.5; for BLiMP the
paper's 5-gram, LSTM, Transformer-XL and GPT-2 and the human agreement are drawn as reference lines. The page
says in words what the last checkpoint shows, chance included: an accuracy whose interval contains 0.5 is
reported as chance, never as learning; ties (both sentences scored alike, e.g. when they tokenize alike) are
misses and said so.
"""

from __future__ import annotations

import math

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from probekit.benchmarks.pairs import BLIMP, blimp_baselines
from probekit.figures import plain, step_axis, subplots
from probekit.report.findings import main_rows
from probekit.report.markdown import esc
from probekit.report.page import Page
from probekit.core.schema import CONTROL, POOLED

PAGE, TITLE = "grammar.md", "Grammar"
REFERENCES = {"5-gram": ":", "LSTM": "-.", "GPT-2": "--", "human": "-"}  # Transformer-XL ≈ LSTM: left out
SERIES = ["run", "name", "step", "accuracy", "accuracy_low", "accuracy_high", "n", "ties"]


def _series(accuracy: pd.DataFrame, level: str) -> pd.DataFrame:
    """The rows of one level drawn as lines: per run × name × step, accuracy with its interval, n and ties.
    With several seeds, only the rows pooled over them; the random-init control left out; of checkpoints
    given twice under one run name, the first."""
    rows = accuracy[(accuracy["level"] == level) & (accuracy["checkpoint"] != CONTROL)].dropna(subset=["step"])
    pooled = rows["run"] == POOLED
    rows = rows[pooled] if pooled.any() else rows
    rows = rows.assign(**{c: rows[c].astype(float) for c in ("accuracy", "accuracy_low", "accuracy_high", "n")},
                       ties=rows["ties"].astype(float).fillna(0), run=rows["run"].astype(str))
    rows = rows[SERIES].drop_duplicates(["run", "name", "step"])  # one row per run and step, as the table has
    return rows.sort_values(["run", "name", "step"], kind="stable", ignore_index=True)


def _verdict(low: float, high: float) -> str:
    if pd.isna(low) or pd.isna(high):
        return "not scored"
    return "chance" if low <= 0.5 <= high else ("above chance" if low > 0.5 else "below chance")


def _baselines(benchmark: str) -> pd.DataFrame | None:
    return blimp_baselines() if benchmark.split(":")[0].split("@")[0] == BLIMP else None


@plain
def phenomenon_curves(accuracy: pd.DataFrame, baselines: pd.DataFrame | None = None) -> Figure:
    """Accuracy per phenomenon (one panel each, the whole benchmark first) against step, with its 95%
    bootstrap band from the table (a line per run where several models were probed); chance and, for
    BLiMP, the paper's models and humans as horizontal reference lines."""
    curves = pd.concat([_series(accuracy, "all"), _series(accuracy, "phenomenon")], ignore_index=True)
    names = ["all", *sorted(set(curves["name"]) - {"all"})]
    runs = list(dict.fromkeys(curves["run"]))
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, sharey=True)
    colors = dict(zip(REFERENCES, sns.color_palette("Set2")))
    for ax, name in zip(axes.flat, names):
        for i, run in enumerate(runs):
            line = curves[(curves["name"] == name) & (curves["run"] == run)]
            colour = f"C{i}"
            ax.fill_between(line["step"], line["accuracy_low"], line["accuracy_high"], color=colour, alpha=0.2, lw=0)
            ax.plot(line["step"], line["accuracy"], color=colour, marker="o", ms=3,
                    label=run if len(runs) > 1 else None)
        ax.axhline(0.5, color="grey", lw=1, ls="--")
        if baselines is not None:
            level = "all" if name == "all" else "phenomenon"
            ref = baselines[(baselines["level"] == level) & (baselines["name"] == name)]
            for model, style in REFERENCES.items():
                for value in ref.loc[ref["model"] == model, "accuracy"]:
                    ax.axhline(value, color=colors[model], ls=style, lw=1.2, label=model)
        step_axis(ax, curves["step"] if len(curves) else [1])
        ax.set_ylim(0, 1)
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_ylabel("accuracy")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        axes.flat[0].legend(handles, labels, fontsize=7, loc="lower right",
                            title="paper" if baselines is not None else None, title_fontsize=7)
    fig.tight_layout()
    return fig


@plain
def paradigm_heatmap(accuracy: pd.DataFrame, phenomenon_of: dict[str, str] | None = None) -> Figure:
    """Accuracy per paradigm (rows, grouped by `phenomenon_of` when given) × checkpoint step (columns);
    0.5 is white. Of the first run, where several models were probed."""
    rows = _series(accuracy, "paradigm")
    first_run = rows[rows["run"] == rows["run"].iloc[0]] if len(rows) else rows
    grid = first_run.pivot(index="name", columns="step", values="accuracy")
    phenomenon_of = phenomenon_of or {}
    grid = grid.loc[sorted(grid.index, key=lambda p: (str(phenomenon_of.get(p, "")), p))]
    fig, ax = subplots(figsize=(min(2 + 0.45 * grid.shape[1], 16), 1 + 0.2 * len(grid)))
    sns.heatmap(grid, ax=ax, cmap="RdBu", vmin=0, vmax=1, center=0.5, cbar_kws={"label": "accuracy"},
                xticklabels=[f"{s:,.0f}" for s in grid.columns], yticklabels=list(grid.index))
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("training step")
    ax.set_ylabel("paradigm (grouped by phenomenon)")
    fig.tight_layout()
    return fig


@plain
def grammar_and_facts(accuracy: pd.DataFrame, scores: pd.DataFrame | None) -> Figure:
    """Minimal-pair accuracy (top, chance 0.5) and fill-mask P@1 (bottom) on one training-step axis:
    which arrives first."""
    panels = 2 if scores is not None and len(scores) else 1
    fig, axes = subplots(panels, 1, figsize=(8, 3.2 * panels), squeeze=False, sharex=True)
    top = axes[0][0]
    steps = []
    for bench, rows in accuracy.groupby("benchmark", sort=False):
        curves = _series(rows, "all")
        for run, line in curves.groupby("run", sort=False):
            steps += line["step"].tolist()
            top.plot(line["step"], line["accuracy"], marker="o", ms=3,
                     label=bench if curves["run"].nunique() == 1 else f"{bench} ({run})")
    top.axhline(0.5, color="grey", lw=1, ls="--", label="chance")
    top.set_ylim(0, 1)
    top.set_ylabel("minimal pairs: accuracy")
    top.legend(fontsize=8)
    if panels == 2:
        ax = axes[1][0]
        facts = main_rows(scores)
        for (bench, group), rows in facts.groupby(["benchmark", "group"], sort=False):
            line = rows.groupby("step")["p_at_1"].mean()
            steps += line.index.tolist()
            label = bench if group in ("all", "other") else f"{bench} ({group.replace('_', '-')})"
            ax.plot(line.index.astype(float), line.values, marker="o", ms=3, label=label)
        ax.set_ylim(0, 1)
        ax.set_ylabel("facts: P@1 (mean over relations)")
        ax.legend(fontsize=8)
    for row in axes:
        step_axis(row[0], steps or [1])
    fig.tight_layout()
    return fig


def chance_table(accuracy: pd.DataFrame, baselines: pd.DataFrame | None) -> pd.DataFrame:
    """Per phenomenon (and the whole benchmark): accuracy at the last step with its 95% bootstrap interval
    (the table's `accuracy_low`, `accuracy_high`), chance or not, the first step whose interval lies above
    0.5, and the paper's 5-gram and GPT-2 and humans where known. A `run` column leads when several models
    (not seeds of one) were probed."""
    curves = pd.concat([_series(accuracy, "all"), _series(accuracy, "phenomenon")], ignore_index=True)
    several = curves["run"].nunique() > 1
    out = []
    for (run, name), line in curves.groupby(["run", "name"], sort=False):
        last = line["step"].max()
        above = line.loc[line["accuracy_low"] > 0.5, "step"]
        end = line[line["step"] == last].iloc[0]
        pairs = int(end["n"]) if pd.notna(end["n"]) else 0
        row = {**({"run": run} if several else {}), "phenomenon": name, "pairs": pairs, "ties": int(end["ties"]),
               "last step": f"{last:,.0f}",
               "accuracy there [95%]": f"{end['accuracy']:.3f} [{end['accuracy_low']:.3f}, {end['accuracy_high']:.3f}]",
               "verdict": _verdict(end["accuracy_low"], end["accuracy_high"]),
               "first step above chance": f"{above.iloc[0]:,.0f}" if len(above) else "never"}
        if baselines is not None:
            level = "all" if name == "all" else "phenomenon"
            ref = baselines[(baselines["level"] == level) & (baselines["name"] == name)].set_index("model")["accuracy"]
            row.update({model: f"{ref[model]:.3f}" if model in ref else "" for model in ("5-gram", "GPT-2", "human")})
        out.append(row)
    return pd.DataFrame(out)


def findings(tables: dict) -> list[str]:
    """The Overview's bullets: per minimal-pair benchmark the last accuracy with its interval, chance or not,
    and the phenomena above chance and at chance."""
    accuracy = tables.get("pair_accuracy")
    if accuracy is None or not len(accuracy):
        return []
    out = []
    for bench, rows in accuracy.groupby("benchmark", sort=False):
        found = chance_table(rows, _baselines(bench))
        for run, per_run in found.groupby("run", sort=False) if "run" in found else [(None, found)]:
            overall = per_run[per_run["phenomenon"] == "all"]
            if overall.empty:
                continue
            overall = overall.iloc[0]
            phenomena = per_run[per_run["phenomenon"] != "all"]
            above = phenomena[phenomena["verdict"] == "above chance"]["phenomenon"].tolist()
            at_chance = phenomena[phenomena["verdict"] == "chance"]["phenomenon"].tolist()
            name = bench if run is None else f"{bench} ({run})"
            text = (f"- **{esc(name)}** (minimal pairs) — accuracy at step {overall['last step']}: "
                    f"{esc(overall['accuracy there [95%]'])}, **{overall['verdict']}**")
            if len(phenomena):
                text += (f"; above chance: {esc(', '.join(above)) if above else 'no phenomenon'}"
                         f"; at chance: {esc(', '.join(at_chance)) if at_chance else 'none'}")
            out.append(text + ".")
    return out


def grammar(page: Page, tables: dict) -> None:
    """The Grammar page, when the run scored minimal pairs (a `pair_accuracy` table)."""
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
             "Intervals are 95% percentile bootstrap intervals over the pairs (with several seeds, over seeds and "
             "pairs); an accuracy whose interval contains 0.5 is called chance. A tie (both sentences scored "
             "alike, e.g. because they tokenize alike) is a miss, as in the BLiMP paper.", "")
    for bench, rows in accuracy.groupby("benchmark", sort=False):
        baselines = _baselines(bench)
        found = chance_table(rows, baselines)
        for run, per_run in found.groupby("run", sort=False) if "run" in found else [(None, found)]:
            overall = per_run[per_run["phenomenon"] == "all"]
            if overall.empty:
                continue
            overall = overall.iloc[0]
            clear = per_run[(per_run["phenomenon"] != "all") & (per_run["verdict"] == "above chance")]
            clear = clear["phenomenon"].tolist()
            page.add(PAGE, f"## {esc(bench)}" + (f" ({esc(run)})" if run is not None else ""), "",
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
                    f"{bench}: accuracy per phenomenon against training step (band: 95% bootstrap interval)")
        page.add(PAGE, *page.table(found, ("pairs", bench)))
        if rows.loc[rows["level"] == "paradigm", "name"].nunique() > 1:
            page.figure(PAGE, ("paradigms", bench), paradigm_heatmap(rows, phenomenon_of),
                        f"{bench}: accuracy per paradigm and checkpoint")
    page.add(PAGE, "## Grammar and facts", "")
    page.figure(PAGE, ("grammar-and-facts",), grammar_and_facts(accuracy, tables.get("scores")),
                "Minimal-pair accuracy and fill-mask P@1 on one training-step axis")
    page.configure(PAGE, title=TITLE)
