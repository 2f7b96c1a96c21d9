"""The Choices page, from the choice analysis: prompts with foils (oLMpics' multiple choice, `choice:PAIRS`)
scored as a choice, their accuracy per relation against training step beside chance.

Made from the `choice_accuracy` table (with its 95% bootstrap bounds, `accuracy_low`, `accuracy_high`) and,
for chance (1 / (foils + 1), averaged over a relation's prompts), the `choices` table. An accuracy whose
interval contains chance is reported as chance.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from probekit.figures import PALETTE, plain, step_axis, subplots
from probekit.analyses.findings import main_rows
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "choices.md", "Choices"
DASHES = {"injected": "-", "held_back": "--"}


def chance_levels(choices: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    """(benchmark, relation) → the accuracy of guessing: 1 / (foils + 1), averaged over its prompts."""
    if choices is None or not len(choices):
        return {}
    prompts = choices.drop_duplicates(["benchmark", "relation", "prompt", "answer"])
    odds = prompts.assign(_chance=[1 / (len(c) + 1) for c in prompts["candidates"]])
    return odds.groupby(["benchmark", "relation"])["_chance"].mean().to_dict()


@plain
def choice_curves(accuracy: pd.DataFrame, chance: dict[tuple[str, str], float] | None = None) -> Figure:
    """One benchmark's choice accuracy per relation (colour) and fact group (dash) against step, with its 95%
    bootstrap band and, dotted in the relation's colour, chance."""
    rows = main_rows(accuracy)
    relations = list(dict.fromkeys(rows["relation"]))
    fig, axes = subplots(1, 1, figsize=(8, 3.8), squeeze=False)
    ax = axes[0][0]
    for i, relation in enumerate(relations):
        colour = PALETTE[i % len(PALETTE)]
        for group, line in rows[rows["relation"] == relation].groupby("group", sort=False):
            line = line.drop_duplicates("step").sort_values("step")
            ax.fill_between(line["step"].astype(float), line["accuracy_low"].astype(float),
                            line["accuracy_high"].astype(float), color=colour, alpha=0.15, lw=0)
            label = relation if group in ("all", "other") else f"{relation} ({str(group).replace('_', '-')})"
            ax.plot(line["step"].astype(float), line["accuracy"].astype(float), color=colour,
                    ls=DASHES.get(group, "-"), marker="o", ms=3, label=label)
        level = (chance or {}).get((rows["benchmark"].iloc[0], relation))
        if level is not None:
            ax.axhline(level, color=colour, ls=":", lw=1)
    step_axis(ax, rows["step"] if len(rows) else [1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("choice accuracy")
    if relations:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1), title="band: 95%; dotted: chance",
                  title_fontsize=8)
    fig.tight_layout()
    return fig


def last_step_table(accuracy: pd.DataFrame, chance: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Per relation and group at the last step: accuracy with its interval, chance, and which it shows."""
    rows = main_rows(accuracy)
    out = []
    for (bench, relation, group), line in rows.groupby(["benchmark", "relation", "group"], sort=False):
        end = line.sort_values("step").iloc[-1]
        level = chance.get((bench, relation))
        low, high = end["accuracy_low"], end["accuracy_high"]
        verdict = ("" if level is None or pd.isna(low) else "chance" if low <= level <= high else
                   "above chance" if low > level else "below chance")
        out.append({"relation": relation, "group": group, "step": f"{end['step']:,.0f}", "prompts": end["n"],
                    "unscorable": end["n_unscorable"],
                    "accuracy [95%]": f"{end['accuracy']:.3f} [{low:.3f}, {high:.3f}]",
                    "chance": "" if level is None else f"{level:.3f}", "verdict": verdict})
    return pd.DataFrame(out)


def choices(page: Page, tables: dict) -> None:
    """The Choices page, when the run scored prompts with foils (a `choice_accuracy` table)."""
    accuracy = tables.get("choice_accuracy")
    if accuracy is None or not len(main_rows(accuracy)):
        return
    chance = chance_levels(tables.get("choices"))
    page.add(PAGE, "# Choices", "",
             "Prompts that name foils, scored as a choice: right when the gold answer is more probable than every "
             "foil (each scored like the answer, its pieces masked at once); a tie is a miss, a prompt with an "
             "option that cannot be scored is counted apart. Chance is 1 / (foils + 1); bands and brackets: 95% "
             "bootstrap intervals over the prompts.", "")
    for bench, rows in accuracy.groupby("benchmark", sort=False):
        if not len(main_rows(rows)):
            continue
        page.add(PAGE, f"## {esc(bench)}", "")
        page.figure(PAGE, ("choices", bench), choice_curves(rows, chance),
                    f"{bench}: choice accuracy per relation against training step")
        page.add(PAGE, *page.table(last_step_table(rows, chance), ("choices", bench)))
    page.configure(PAGE, title=TITLE)
