"""The Choices page, from the choice analysis: prompts with foils (oLMpics' multiple choice, `choice:PAIRS`)
scored as a choice, their accuracy per relation against training step beside chance.

Made from the `choice_accuracy` table (with its 95% bootstrap bounds, `accuracy_low`, `accuracy_high`) and,
for chance (1 / (foils + 1), averaged over a relation's prompts), the `choices` table. Whether an accuracy
is above chance is the findings' `above_chance` row for it (Holm over the benchmark's relations × groups).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from probekit.analyses.findings import chance_levels, main_findings, main_rows, select
from probekit.palette import BASELINE, group_styles
from probekit.report.charts_lines import band_chart, band_frame, download
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "choices.md", "Choices"
CHANCE = "chance"
VERDICTS = {"above": "above chance", "below": "below chance", "chance": "chance", "too_few": "too few prompts"}


def choice_frame(accuracy: pd.DataFrame, chance: dict[tuple[str, str], float] | None = None) -> pd.DataFrame:
    """What `choice_chart` draws for one benchmark: per relation (`panel`) and fact group (`series`), the choice
    accuracy at each step with its 95% interval and n; chance per relation as a reference row."""
    rows = main_rows(accuracy).dropna(subset=["step"])
    rows = rows[rows["run"] == rows["run"].iloc[0]] if len(rows) else rows
    rows = rows.drop_duplicates(["relation", "group", "step"]).sort_values(["relation", "group", "step"],
                                                                            kind="stable")
    parts = [band_frame(rows["group"].astype(str), rows["step"], rows["accuracy"], rows["accuracy_low"],
                        rows["accuracy_high"], rows["n"], panel=rows["relation"].astype(str),
                        unscorable=rows["n_unscorable"].astype(float))]
    bench = rows["benchmark"].iloc[0] if len(rows) else None
    levels = {r: (chance or {}).get((bench, r)) for r in dict.fromkeys(rows["relation"])}
    levels = {r: v for r, v in levels.items() if v is not None}
    if levels:
        parts.append(band_frame([CHANCE] * len(levels), None, list(levels.values()), kind="reference",
                                panel=list(levels)))
    return pd.concat(parts, ignore_index=True)


def choice_chart(long: pd.DataFrame, benchmark: str) -> alt.TopLevelMixin:
    """Choice accuracy against step, one panel per relation, a line per fact group (injected solid, held back
    dashed) with its 95% band; chance (1 / (foils + 1)) as a rule."""
    styles = {**group_styles(long.loc[long["kind"] == "line", "series"]), CHANCE: BASELINE}
    return band_chart(long, styles, "choice accuracy", f"{benchmark}: choice accuracy per relation (band: 95% "
                      "bootstrap interval; dashed grey: chance)", legend_title="fact group",
                      extra_tooltips=(alt.Tooltip("panel:N", title="relation"),))


def last_step_table(accuracy: pd.DataFrame, chance: dict[tuple[str, str], float],
                    found: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per relation and group at the last step: accuracy with its interval, chance, and the findings' verdict on
    it (above chance, chance, below chance, too few prompts)."""
    rows = main_rows(accuracy)
    claims = pd.DataFrame() if found is None else main_findings(select(found, "above_chance", "choices"))
    out = []
    for (bench, relation, group), line in rows.groupby(["benchmark", "relation", "group"], sort=False):
        end = line.sort_values("step").iloc[-1]
        level = chance.get((bench, relation))
        claim = claims[(claims["benchmark"] == bench) & (claims["subject"] == relation)
                       & (claims["group"] == group)] if len(claims) else claims
        verdict = VERDICTS.get(claim["verdict"].iloc[0], claim["verdict"].iloc[0]) if len(claim) else ""
        out.append({"relation": relation, "group": group, "step": int(end["step"]), "prompts": int(end["n"]),
                    "unscorable": int(end["n_unscorable"]), "accuracy": float(end["accuracy"]),
                    "low": float(end["accuracy_low"]), "high": float(end["accuracy_high"]),
                    "chance": float("nan") if level is None else float(level), "verdict": verdict})
    return pd.DataFrame(out)


def last_step_display(table: pd.DataFrame) -> pd.DataFrame:
    """`last_step_table` as shown: the accuracy with its interval in one cell, the step with thousands
    separators (the download keeps the numbers)."""
    return pd.DataFrame({"relation": table["relation"], "group": table["group"],
                         "step": [f"{s:,.0f}" for s in table["step"]], "prompts": table["prompts"],
                         "unscorable": table["unscorable"],
                         "accuracy [95%]": [f"{a:.3f} [{lo:.3f}, {hi:.3f}]" for a, lo, hi in
                                            zip(table["accuracy"], table["low"], table["high"])],
                         "chance": ["" if pd.isna(c) else f"{c:.3f}" for c in table["chance"]],
                         "verdict": table["verdict"]})


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
        long = choice_frame(rows, chance)
        page.chart(PAGE, (bench, "choice-accuracy", "by-step"), choice_chart(long, bench),
                   f"{bench}: choice accuracy per relation against training step; click a legend entry to pick out "
                   "its line", data=download(long, {"panel": "relation", "series": "group", "value": "accuracy"}))
        table = last_step_table(rows, chance, tables.get("findings"))
        page.add(PAGE, *page.table(last_step_display(table), (bench, "choice-accuracy", "last-step"), data=table))
    page.configure(PAGE, title=TITLE)
