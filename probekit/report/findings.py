"""What the report says in words: the per-relation finding of a run, generated from its tables only.

Every number here comes from `probekit.analyses.stats` (score intervals, `group_differences`, `emergence_steps`) or
from the predictions; nothing is typed in. A difference is called a difference only when its 95% interval
excludes zero, and the sentence says which.
"""

from __future__ import annotations

import pandas as pd

from probekit.report.markdown import esc as _esc
from probekit.core.schema import CONTROL, POOLED
from probekit.analyses.stats import emergence_steps, format_p, group_differences

REACHED = 0.9  # "rose until": the first step at 90% of the last checkpoint's value
GROUP_NAMES = {"injected": "injected", "held_back": "held back", "all": "all prompts", "other": "other prompts"}


def main_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows a line is drawn from: pooled over seeds when the series has several, the control left out."""
    rows = scores[scores["checkpoint"] != CONTROL].dropna(subset=["step"])
    pooled = rows["run"] == POOLED
    return rows[pooled] if pooled.any() else rows


def rise(line: pd.DataFrame, emerged_at: float, metric: str = "p_at_1") -> tuple[int | None, int | None, int | None]:
    """(checkpoint before emergence, emergence step, first step at `REACHED` of the final value) of one line
    (one relation × group, sorted by step); Nones when it never emerged."""
    if pd.isna(emerged_at):
        return None, None, None
    line = line.sort_values("step")
    steps = line["step"].astype(int).tolist()
    before = max((s for s in steps if s < emerged_at), default=int(emerged_at))
    final = float(line[metric].iloc[-1])
    reached = line[(line["step"] >= emerged_at) & (line[metric] >= REACHED * final)]["step"]
    return before, int(emerged_at), int(reached.iloc[0]) if len(reached) else None


def _value(row: pd.Series, metric: str = "p_at_1") -> str:
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if pd.notna(low) and pd.notna(high):
        return f"**{row[metric]:.2f}** [{low:.2f}, {high:.2f}]"
    return f"**{row[metric]:.2f}**"


def _rise_text(line: pd.DataFrame, found: pd.DataFrame) -> str:
    emerged = found["emerged_at"].iloc[0] if len(found) else float("nan")
    before, at, reached = rise(line, emerged)
    if at is None:
        return "never rose above the random-init control"
    text = f"rose above the control between steps {before:,} and {at:,}"
    return text + (f", reaching 90% of its final value by step {reached:,}" if reached is not None else "")


def relation_findings(tables: dict) -> list[str]:
    """One Markdown bullet per benchmark × relation: final P@1 per fact group with its interval, the
    injected − held-back difference with its interval and what it shows, and the steps where it rose."""
    scores, predictions = tables["scores"], tables["predictions"]
    lines = main_rows(scores)
    if lines.empty:
        return []
    emerged = emergence_steps(scores)
    runs = set(lines["run"])
    emerged = emerged[emerged["run"].isin(runs)]
    differences = group_differences(predictions)
    several = lines["benchmark"].nunique() > 1
    out = []
    for (bench, relation), rows in lines.groupby(["benchmark", "relation"], sort=False):
        if rows["n"].fillna(0).max() == 0:
            continue
        name = f"{bench} / {relation}" if several else relation
        end = rows[rows["step"] == rows["step"].max()].drop_duplicates("group").set_index("group")
        groups = [g for g in ("injected", "held_back") if g in end.index] or list(end.index)
        values = " vs ".join(f"{GROUP_NAMES.get(g, g)} {_value(end.loc[g])}" for g in groups)
        parts = [f"P@1 at step {int(rows['step'].max()):,}: {values}"]
        diff = differences[(differences["benchmark"] == bench) & (differences["relation"] == relation)]
        if len(diff):
            d = diff.iloc[0]
            verdict = ("injected above held back" if d["low"] > 0 else "held back above injected"
                       if d["high"] < 0 else "no difference shown (the interval includes zero)")
            parts.append(f"difference {d['difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}], "
                         f"p {format_p(d['p_value'])}: **{verdict}**")
        lead = "injected" if "injected" in groups else groups[0]
        line = rows[rows["group"] == lead]
        found = emerged[(emerged["benchmark"] == bench) & (emerged["relation"] == relation)
                        & (emerged["group"] == lead)]
        rise_text = _rise_text(line, found)
        parts.append((f"the {GROUP_NAMES.get(lead, lead)} facts " if len(groups) > 1 else "") + rise_text)
        out.append(f"- **{_esc(name)}** — " + "; ".join(parts) + ".")
    return out


def prior_guesses(predictions: pd.DataFrame, known: pd.DataFrame) -> pd.Series:
    """For each row of `known` (one per prompt): True when its answer needs no knowledge of its subject —
    the random-initialisation control (else the step-0 checkpoint) answers that template with it at rank 1,
    or a held-back prompt about another subject does at some checkpoint."""
    keys = ["benchmark", "relation", "template", "answer"]
    hit = predictions[predictions["gold_rank"] == 1]
    at_control = (hit["checkpoint"] == CONTROL) if (predictions["checkpoint"] == CONTROL).any() else hit["step"] == 0
    control = set(map(tuple, hit.loc[at_control.fillna(False).astype(bool), keys].itertuples(index=False)))
    held = {k: set(v) for k, v in hit[hit["group"] == "held_back"].groupby(keys)["subject"]}
    return pd.Series([tuple(k) in control or bool(held.get(tuple(k), set()) - {subject})
                      for k, subject in zip(known[keys].itertuples(index=False), known["subject"])],
                     index=known.index, dtype=bool)


def first_correct_distribution(predictions: pd.DataFrame, known: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per relation × group: how many prompts are first answered at each step (integer steps), leaving out
    prompts whose answer is a prior guess (`prior_guesses`); and a summary per relation × group.

    `known` is `probekit.analyses.metrics.emergence(predictions)`. Held-back prompts are counted with the same rule,
    so their bars show what is learnt without the facts in the corpus.
    """
    marked = known.assign(_prior=prior_guesses(predictions, known))
    kept = marked[~marked["_prior"]].dropna(subset=["first_correct"])
    kept = kept.assign(first_correct=kept["first_correct"].astype(int))
    counts = kept.groupby(["benchmark", "relation", "group", "first_correct"]).size().reset_index(name="prompts")
    summary = []
    for (bench, relation, group), rows in marked.groupby(["benchmark", "relation", "group"], sort=False):
        learned = rows[~rows["_prior"]].dropna(subset=["first_correct"])["first_correct"].astype(int)
        summary.append({"benchmark": bench, "relation": relation, "group": group, "prompts": len(rows),
                        "prior guesses left out": int(rows["_prior"].sum()), "answered at some step": len(learned),
                        "first step (median)": int(learned.median()) if len(learned) else None,
                        "first step (earliest–latest)": f"{learned.min():,}–{learned.max():,}" if len(learned)
                        else "never"})
    return counts, pd.DataFrame(summary)
