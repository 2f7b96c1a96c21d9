"""What the report says in words about the facts: per relation, the findings rows (`probekit.analyses.findings`)
worded — the last step's P@1 per fact group, injected − held back and whether it is shown, and when it arrived.

Nothing here computes a statistic: every number and verdict is a findings row's.
"""

from __future__ import annotations

import pandas as pd

from probekit.analyses.findings import main_findings, select
from probekit.core.schema import CONTROL
from probekit.report.markdown import esc

GROUP_NAMES = {"injected": "injected", "held_back": "held back", "all": "all prompts", "other": "other prompts"}
VERDICTS = {"above": "injected above held back", "below": "held back above injected",
            "tie": "no difference shown (the interval includes zero, or Holm's correction over the relations)",
            "too_few": "too few prompts to tell"}


def bracketed(row, spec: str = ".2f") -> str:
    """`0.43 [0.38, 0.48]` from a findings row."""
    if pd.isna(row["value"]):
        return "n/a"
    if pd.isna(row["low"]) or pd.isna(row["high"]):
        return f"{row['value']:{spec}}"
    return f"{row['value']:{spec}} [{row['low']:{spec}}, {row['high']:{spec}}]"


def arrival(row) -> str:
    """When an `emerged` row says the signal arrived, in words."""
    if row["verdict"] == "emerged":
        if pd.notna(row["step_low"]):
            return f"arrived after step {row['step_low']:,.0f}, by step {row['step']:,.0f}, and stayed to the end"
        return f"cleared from the first probed step ({row['step']:,.0f}) on"
    if row["verdict"] == "transient":
        return f"cleared at step {row['first_cleared']:,.0f} but not at the last step (transient)"
    return "never cleared (not established)"


def relation_findings(tables: dict) -> list[str]:
    """One Markdown bullet per benchmark × relation, worded from the findings rows: final P@1 per fact group
    (`level`), injected − held back (`difference`) and when it arrived (`emerged`)."""
    found = tables.get("findings")
    if found is None or found.empty:
        return []
    found = main_findings(found)
    levels = select(found, "level", "facts")
    several = levels["benchmark"].nunique() > 1
    out = []
    for (bench, relation), rows in levels.groupby(["benchmark", "subject"], sort=False):
        name = f"{bench} / {relation}" if several else relation
        groups = [g for g in ("injected", "held_back") if g in set(rows["group"])] or list(rows["group"])
        by_group = rows.drop_duplicates("group").set_index("group")
        values = " vs ".join(f"{GROUP_NAMES.get(g, g)} **{bracketed(by_group.loc[g])}**" for g in groups)
        parts = [f"P@1 at step {rows['step'].max():,.0f}: {values}"]
        diff = select(found, "difference", "facts", benchmark=bench, subject=relation)
        if len(diff):
            d = diff.iloc[0]
            parts.append(f"difference {d['value']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] "
                         f"(Holm-adjusted p {d['p_adjusted']:.3g}, n {int(d['n'])} per group): "
                         f"**{VERDICTS.get(d['verdict'], d['verdict'])}**")
        emerged = select(found, "emerged", "facts", benchmark=bench, subject=relation)
        if len(emerged):
            e = emerged.iloc[0]
            what = "injected − held back" if e["group"] == "injected-held_back" else "P@1 against random init"
            parts.append(f"{what} {arrival(e)}")
        out.append(f"- **{esc(name)}** — " + "; ".join(parts) + ".")
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
