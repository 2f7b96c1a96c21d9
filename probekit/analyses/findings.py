"""The findings table: every claim probekit makes, decided once, by one written rule, from the tidy tables.

Data flows one way: checkpoints → analyses → tables → **findings** → report. The report pages, the Overview,
the terminal summary, the notebook helpers and the README's demo figures read these rows; none of them computes
a statistic. One row per claim (`FINDINGS`), with the rule that decided it in words (`RULES`).

The rules, stated once:
- **sustained** (`probekit.analyses.stats.sustained`): a signal has *emerged* at step s when its interval clears
  its bar at s and at every later probed step; one dip restarts the count; a signal that clears but not at the
  last probed step is *transient*; one that never clears is *not established*. Its *arrival* is the interval
  (last probed step not cleared, first step of the lasting clearance], on the signal's own checkpoints.
- **clears**: the signal's 95% interval lies wholly above the bar's (the bar's upper bound: non-overlapping
  intervals), and, where there is more than one comparison with the bar, every one of them.
- **multiplicity**: where a page makes one claim per member of a family (phenomena of a benchmark, relations of
  a treebank, layers of a probe, sites of a trace), the claim at the last probed step also needs its Holm-adjusted
  p-value (family-wise error 0.05) below 0.05; the p-value comes from the normal approximation of the two
  intervals (`stats.p_above`). Every claim carries `n` and `mde`, the smallest difference from its bar it could
  detect (80% power).
- **facts** are learned when injected minus held back clears 0 (the control is the held-back facts); in a series
  without injected facts, when P@1 clears the random-init model's.
- **the untrained model** is "random init" (the runner's random-initialisation row; a series' own step 0 when
  there is none); "control" is kept for the held-back facts.
- **syntax**: a head relation or UUAS is *learned* when it clears both the random-init model and its structural
  baseline (fixed offset for heads; the adjacent-word tree for UUAS, when the table has it); a probe is
  *selective* only when its selectivity clears the random-init model's.
- **tracing** (ROME's average indirect effect Δp = p_restored − p_corrupt): a site *stands out* when its Δp clears
  the random-init model's at the same site and 0.01 (an absolute floor), with at least `MIN_N` prompts and
  Holm across the sites of the trace; the best site is, of those that stand out, the one of largest Δp (else
  the largest of all), never one that restores by construction; without a random-init row no site is claimed.
- **order**: two arrivals are ordered only when their intervals do not overlap, else they tie; a signal never
  established ends the order.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from probekit.core.schema import CONTROL, POOLED, Table, columns, declare
from probekit.analyses import stats

ALPHA = 0.05
MIN_N = 5
"""No claim rests on fewer items than this (prompts, pairs, arcs, sentences): such a row says `too_few`."""
EFFECT_FLOOR = 0.01
"""A tracing site stands out only above this absolute Δp too (one percentage point of the answer's probability)."""
CHANCE = 0.5
SHARE_RANGE = (-0.5, 1.5)
"""A restoration share outside this range is an artefact of a small denominator, shown as n/a."""

RULES = {
    "level": "the measured value at the last probed step with its 95% bootstrap interval; no claim",
    "difference": "injected − held back at the last probed step: above when its 95% interval lies above 0 and its "
                  "Holm-adjusted p-value over the benchmark's relations is below 0.05",
    "emerged": "sustained: the interval clears the bar at a step and at every later probed step (one dip restarts "
               "the count; clearing but not at the last step is transient); at the last step the claim also "
               "survives the family's correction",
    "above_chance": "the accuracy's 95% interval lies above chance (0.5 for minimal pairs; for choices 1 / (foils + "
                    "1), averaged over the relation's prompts) and, for phenomena and choices, the Holm-adjusted "
                    "p-value over the benchmark's phenomena (relations × fact groups) is below 0.05; below chance "
                    "likewise; else chance",
    "learned": "the 95% interval clears the random-init model's and the structural baseline's (non-overlapping "
               "intervals) at the last probed step, and the Holm-adjusted p-value over the family is below 0.05",
    "selective": "selectivity's 95% interval lies above the random-init model's at the same layer at the last "
                 "probed step, Holm over the probe's layers; a probe is selective when one of its layers is",
    "stands_out": "Δp's 95% interval lies above the random-init model's at the same site and above 0.01, with at "
                  "least 5 prompts, Holm over the trace's sites; no random-init row: no claim",
    "best_site": "of the sites that stand out the one of largest Δp, else the largest of all (a site that restores "
                 "by construction never), at each traced step",
    "share": "restoration share of the best site, a ratio of means (Σ Δp / Σ (p_clean − p_corrupt)), shown only "
             "where the denominator's interval excludes 0 and the share lies in [−0.5, 1.5]",
    "top_head": "the head of largest Δp at each traced step; stands out as a site does",
    "arrives": "the arrival interval (last probed step not cleared, first step of the lasting clearance] of the "
               "signal's emergence, on its own checkpoints",
    "order": "a before b when a's arrival interval ends at or before b's begins; overlapping intervals tie; a "
             "signal not established ends the order",
}

FINDINGS = Table("findings", "claim", columns(
    ("kind", "str", "level, difference, emerged, above_chance, learned, selective, stands_out, best_site, share, "
                    "top_head, arrives, order"),
    ("analysis", "str", "the analysis the claim is about: facts, pairs, syntax-heads, probes, tracing, timeline"),
    ("benchmark", "str", "benchmark, treebank or pairs benchmark"),
    ("subject", "str", "what the claim is about: relation, phenomenon, relation and direction, probe, site, head, "
                       "signal"),
    ("group", "str", "fact group (injected, held_back, injected-held_back, all); method for tracing; empty else"),
    ("detail", "str", "where: the best head (L1H3), layer, site, or the pair ordered"),
    ("verdict", "str", "emerged, transient, not_established, above, below, tie, chance, learned, not_learned, "
                       "selective, not_selective, stands_out, not_standing_out, too_few, no_random_init, "
                       "defined, undefined, before, measured"),
    ("statistic", "str", "what value is: p_at_1, difference of p_at_1, accuracy, uuas, selectivity, effect (Δp), "
                         "restoration share"),
    ("value", "float", "the statistic at `step`"),
    ("low", "float", "lower bound of its 95% bootstrap interval"),
    ("high", "float", "upper bound"),
    ("bar", "float", "what it had to clear: 0, chance, the random-init model's or the baseline's upper bound"),
    ("n", "int", "items behind the value (prompts, pairs, arcs, edges, sentences)"),
    ("mde", "float", "smallest difference from the bar detectable with 80% power at α 0.05 (from the intervals)"),
    ("p_value", "float", "two-sided p-value of value − bar (normal approximation of the intervals; the "
                         "bootstrap's for fact differences)"),
    ("p_adjusted", "float", "p_value adjusted over the family (`correction`)"),
    ("family_size", "int", "claims in the family the correction is over"),
    ("step", "float", "the step the claim is made at (emerged: first step of the lasting clearance)"),
    ("step_low", "float", "arrival interval's open lower end: the last probed step before `step` that did not "
                          "clear; missing when it cleared from the first probed step"),
    ("step_high", "float", "arrival interval's closed upper end (= step for emerged)"),
    ("first_cleared", "float", "the first step the bar was cleared at all (an earlier transient clearance)"),
    ("steps", "str", "the probed steps the claim was judged on, comma-separated"),
    ("rule", "str", "the rule that decided the verdict, in words"),
    ("correction", "str", "holm (family-wise error) or none"),
    ("run", "str", "the run (all-seeds: pooled over seeds)"),
    ("n_seeds", "int", "training seeds behind the value"),
    ("by_construction", "bool", "a tracing site that restores the answer by construction (never named best)"),
), "Every claim of the run, each decided by the rule in its `rule` column (`probekit.analyses.findings`).")
declare(FINDINGS)

NAN = float("nan")


# ---------------------------------------------------------------- reading


def main_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the series' main line, the one rule for every page: pooled over seeds where the table has
    such rows, else every run's own; the random-init row and rows without a step left out."""
    rows = frame[frame["checkpoint"] != CONTROL].dropna(subset=["step"]) if "checkpoint" in frame else frame
    pooled = rows["run"] == POOLED
    return rows[pooled] if pooled.any() else rows


def main_findings(found: pd.DataFrame) -> pd.DataFrame:
    """The findings of the main line (pooled over seeds where there are such rows)."""
    pooled = found["run"] == POOLED
    return found[pooled] if pooled.any() else found


def select(found: pd.DataFrame, kind: str, analysis: str | None = None, **equal) -> pd.DataFrame:
    """The rows of one kind (and analysis, and columns equal to the given values), in table order."""
    rows = found[found["kind"] == kind]
    if analysis is not None:
        rows = rows[rows["analysis"] == analysis]
    for column, value in equal.items():
        rows = rows[rows[column] == value]
    return rows


# ---------------------------------------------------------------- building


def build(tables: dict) -> pd.DataFrame:
    """Every claim of a run from its tables (name → DataFrame, as `ProbeResult.tables`)."""
    records: list[dict] = []
    records += fact_claims(tables.get("scores"), tables.get("predictions"))
    records += pair_claims(tables.get("pair_accuracy"))
    records += choice_claims(tables.get("choice_accuracy"), tables.get("choices"))
    records += head_claims(tables.get("syntax_best_heads"), tables.get("syntax_uuas"))
    records += probe_claims(tables.get("probe_scores"))
    records += tracing_claims(tables.get("tracing_scores"), tables.get("tracing_head_scores"))
    records += arrival_claims(records)
    frame = pd.DataFrame(records)
    for column in FINDINGS.names:
        if column not in frame:
            frame[column] = False if column == "by_construction" else NAN if _is_float(column) else None
    frame["rule"] = frame["kind"].map(RULES)
    frame["correction"] = frame["correction"].fillna("none")
    frame["n_seeds"] = frame["n_seeds"].fillna(1)
    return FINDINGS.conform(frame)


def _is_float(column: str) -> bool:
    return next(c.type for c in FINDINGS.columns if c.name == column) == "float"


def _steps_text(steps) -> str:
    return ",".join(str(int(s)) for s in steps)


def _claim(kind: str, analysis: str, **fields) -> dict:
    return {"kind": kind, "analysis": analysis, **fields}


def _judged(value, low, high, bar, bar_low=NAN, bar_high=NAN) -> dict:
    """The comparison of one interval with a bar (a number, or the bar's interval): p, mde, whether it clears."""
    se = stats.interval_se(low, high)
    bar_se = stats.interval_se(bar_low, bar_high) if np.isfinite(bar_low) and np.isfinite(bar_high) else 0.0
    top = bar_high if np.isfinite(bar_high) else bar
    return {"value": float(value), "low": float(low), "high": float(high), "bar": float(top),
            "p_value": stats.p_above(value, se, bar, bar_se), "mde": stats.smallest_detectable(se, bar_se),
            "clears": bool(np.isfinite(low) and np.isfinite(top) and low > top)}


def _correct(records: list[dict], family: list[int]) -> None:
    """Holm over the records at `family`'s indices: p_adjusted, family_size, correction."""
    adjusted = stats.holm([records[i]["p_value"] for i in family])
    for i, p in zip(family, adjusted):
        records[i].update(p_adjusted=float(p), family_size=len(family), correction="holm")


def _significant(record: dict) -> bool:
    p = record.get("p_adjusted", record.get("p_value"))
    return bool(record.get("clears")) and p is not None and np.isfinite(p) and p < ALPHA


def _random_init(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the random-init rows, the series' rows judged): the runner's random-init row, else the series' own step 0
    (then left out of the steps judged)."""
    rows = rows.dropna(subset=["step"]) if CONTROL not in set(rows["checkpoint"]) else rows
    control = rows["checkpoint"] == CONTROL
    if control.any():
        return rows[control], rows[~control].dropna(subset=["step"])
    first = rows["step"] == 0
    return rows[first], rows[~first]


def _runs(rows: pd.DataFrame):
    """(run, its rows sorted by step) for each run of the series (pooled over seeds and each seed's own)."""
    for run, line in rows.groupby("run", sort=False):
        yield run, line.sort_values("step", kind="stable")


def _emergence(kind_fields: dict, line: pd.DataFrame, cleared, last: dict | None) -> dict:
    """An `emerged` record from per-step clearances, the last step's corrected claim deciding the last step."""
    flags = list(map(bool, cleared))
    if last is not None and flags:
        flags[-1] = _significant(last)
    found = stats.sustained(line["step"].to_numpy(float), flags)
    return {**kind_fields, **found, "steps": _steps_text(line["step"])}


# ---------------------------------------------------------------- facts


def fact_claims(scores: pd.DataFrame | None, predictions: pd.DataFrame | None) -> list[dict]:
    """Per relation: each group's P@1 at the last step (`level`); injected − held back there (`difference`,
    Holm over the benchmark's relations) and over the steps (`emerged`); without injected facts, P@1 against the
    random-init model (`emerged`, group all)."""
    if scores is None or scores.empty:
        return []
    out: list[dict] = []
    rows = main_rows(scores)
    for (bench, relation, group, run), line in rows.groupby(["benchmark", "relation", "group", "run"], sort=False):
        end = line.sort_values("step").iloc[-1]
        if pd.isna(end["p_at_1"]):
            continue
        out.append(_claim("level", "facts", benchmark=bench, subject=relation, group=group, verdict="measured",
                          statistic="p_at_1", value=end["p_at_1"], low=end["p_at_1_low"], high=end["p_at_1_high"],
                          n=end["n"], step=end["step"], run=run, n_seeds=end.get("n_seeds", 1),
                          steps=_steps_text(sorted(line["step"]))))
    groups = set(scores["group"])
    if {"injected", "held_back"} <= groups and predictions is not None and len(predictions):
        out += _difference_claims(predictions)
    else:
        out += _above_init_claims(scores)
    return out


def _difference_claims(predictions: pd.DataFrame) -> list[dict]:
    steps = sorted(predictions.loc[predictions["checkpoint"] != CONTROL, "step"].dropna().unique())
    per_step = [stats.group_differences(predictions, step=s) for s in steps]
    per_step = [d for d in per_step if len(d)]
    if not per_step:
        return []
    found = pd.concat(per_step, ignore_index=True)
    run = POOLED if stats.seeds_of(predictions) else str(predictions["run"].dropna().iloc[0])
    counts = predictions[predictions["checkpoint"] != CONTROL].groupby(["benchmark", "relation", "group"])[
        "prompt"].nunique()
    out: list[dict] = []
    for bench, per_bench in found.groupby("benchmark", sort=False):
        last_step = per_bench["step"].max()
        records, lines = [], []
        for relation, line in per_bench.groupby("relation", sort=False):
            line = line.sort_values("step")
            end = line.iloc[-1]
            if end["step"] != last_step:
                continue
            se = stats.interval_se(end["low"], end["high"])
            n = int(min(counts.get((bench, relation, "injected"), 0), counts.get((bench, relation, "held_back"), 0)))
            record = {"benchmark": bench, "subject": relation, "group": "injected-held_back",
                      "statistic": "difference of p_at_1", "value": end["difference"], "low": end["low"],
                      "high": end["high"], "bar": 0.0, "p_value": end["p_value"], "mde": stats.smallest_detectable(se),
                      "clears": bool(end["low"] > 0), "n": n, "step": end["step"], "run": run,
                      "n_seeds": end["n_seeds"], "steps": _steps_text(line["step"])}
            records.append(record)
            lines.append(line)
        _correct(records, list(range(len(records))))
        for record, line in zip(records, lines):
            verdict = ("too_few" if record["n"] < MIN_N else "above" if _significant(record) else
                       "below" if record["high"] < 0 and record["p_adjusted"] < ALPHA else "tie")
            out.append(_claim("difference", "facts", **record, verdict=verdict))
            fields = {k: record[k] for k in ("benchmark", "subject", "group", "statistic", "bar", "n", "run",
                                             "n_seeds", "p_value", "p_adjusted", "family_size", "correction", "mde")}
            emerged = _emergence(fields, line, line["low"] > 0, record if record["n"] >= MIN_N else {"clears": False})
            at = line[line["step"] == emerged["step"]]
            if len(at):
                emerged.update(value=at["difference"].iloc[0], low=at["low"].iloc[0], high=at["high"].iloc[0])
            out.append(_claim("emerged", "facts", **emerged))
    return out


def _above_init_claims(scores: pd.DataFrame) -> list[dict]:
    out: list[dict] = []
    for (bench, relation, group), rows in scores.groupby(["benchmark", "relation", "group"], sort=False):
        init, series = _random_init(rows)
        if init.empty or series.empty:
            continue
        bar = init.iloc[0]
        for run, line in _runs(main_rows(series)):
            end = line.iloc[-1]
            last = _judged(end["p_at_1"], end["p_at_1_low"], end["p_at_1_high"], bar["p_at_1"], bar["p_at_1_low"],
                           bar["p_at_1_high"])
            cleared = line["p_at_1_low"] > bar["p_at_1_high"]
            fields = {"benchmark": bench, "subject": relation, "group": group, "statistic": "p_at_1",
                      "bar": last["bar"], "n": end["n"], "run": run, "n_seeds": end.get("n_seeds", 1),
                      "p_value": last["p_value"], "mde": last["mde"]}
            emerged = _emergence(fields, line, cleared, last)
            _fill_at(emerged, line, "p_at_1")
            out.append(_claim("emerged", "facts", **emerged))
    return out


def _fill_at(record: dict, line: pd.DataFrame, metric: str) -> None:
    """value/low/high of `metric` at the record's step (the last step when it has none)."""
    step = record.get("step")
    at = line[line["step"] == step] if step is not None and np.isfinite(step) else line.iloc[-1:]
    if len(at):
        record.update(value=at[metric].iloc[0], low=at[f"{metric}_low"].iloc[0], high=at[f"{metric}_high"].iloc[0])


# ---------------------------------------------------------------- grammar


def pair_claims(accuracy: pd.DataFrame | None) -> list[dict]:
    """Per pairs benchmark, overall and per phenomenon: above chance at the last step (Holm over phenomena) and
    when (sustained)."""
    if accuracy is None or accuracy.empty:
        return []
    rows = main_rows(accuracy[accuracy["level"].isin(["all", "phenomenon"])])
    out: list[dict] = []
    for (bench, run), per_run in rows.groupby(["benchmark", "run"], sort=False):
        for level, per_level in per_run.groupby("level", sort=False):
            records, lines = [], []
            last_step = per_level["step"].max()
            for name, line in per_level.groupby("name", sort=False):
                line = line.drop_duplicates("step").sort_values("step")
                end = line.iloc[-1]
                if end["step"] != last_step or pd.isna(end["accuracy"]):
                    continue
                judged = _judged(end["accuracy"], end["accuracy_low"], end["accuracy_high"], CHANCE)
                records.append({"benchmark": bench, "subject": name, "group": "", "statistic": "accuracy",
                                "n": end["n"], "step": end["step"], "run": run, "n_seeds": end.get("n_seeds", 1),
                                "steps": _steps_text(line["step"]), **judged})
                lines.append(line)
            _correct(records, list(range(len(records))))
            for record, line in zip(records, lines):
                below = record["high"] < CHANCE and record["p_adjusted"] < ALPHA
                verdict = ("too_few" if record["n"] < MIN_N else "above" if _significant(record) else
                           "below" if below else "chance")
                out.append(_claim("above_chance", "pairs", **_public(record), verdict=verdict))
                fields = {k: record[k] for k in ("benchmark", "subject", "group", "statistic", "bar", "n", "run",
                                                 "n_seeds", "p_value", "p_adjusted", "family_size", "correction",
                                                 "mde")}
                enough = record if record["n"] >= MIN_N else {"clears": False}
                emerged = _emergence(fields, line, line["accuracy_low"] > CHANCE, enough)
                _fill_at(emerged, line, "accuracy")
                out.append(_claim("emerged", "pairs", **emerged))
    return out


def chance_levels(choices: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    """(benchmark, relation) → the accuracy of guessing a choice: 1 / (foils + 1), averaged over its prompts."""
    if choices is None or not len(choices):
        return {}
    prompts = choices.drop_duplicates(["benchmark", "relation", "prompt", "answer"])
    odds = prompts.assign(_chance=[1 / (len(c) + 1) for c in prompts["candidates"]])
    return odds.groupby(["benchmark", "relation"])["_chance"].mean().to_dict()


def choice_claims(accuracy: pd.DataFrame | None, choices: pd.DataFrame | None) -> list[dict]:
    """Per choice benchmark, relation and fact group: above chance (1 / (foils + 1)) at the last step, Holm over
    the benchmark's relations × groups, and when (sustained)."""
    if accuracy is None or accuracy.empty:
        return []
    levels = chance_levels(choices)
    out: list[dict] = []
    for (bench, run), per_run in main_rows(accuracy).dropna(subset=["step"]).groupby(["benchmark", "run"],
                                                                                     sort=False):
        records, lines = [], []
        for (relation, group), line in per_run.groupby(["relation", "group"], sort=False):
            line = line.drop_duplicates("step").sort_values("step")
            end, chance = line.iloc[-1], levels.get((bench, relation))
            if chance is None or pd.isna(end["accuracy"]):
                continue
            judged = _judged(end["accuracy"], end["accuracy_low"], end["accuracy_high"], chance)
            records.append({"benchmark": bench, "subject": relation, "group": group, "statistic": "accuracy",
                            "n": end["n"], "step": end["step"], "run": run, "n_seeds": end.get("n_seeds", 1),
                            "steps": _steps_text(line["step"]), **judged})
            lines.append((line, chance))
        _correct(records, list(range(len(records))))
        for record, (line, chance) in zip(records, lines):
            below = record["high"] < chance and record["p_adjusted"] < ALPHA
            verdict = ("too_few" if record["n"] < MIN_N else "above" if _significant(record) else
                       "below" if below else "chance")
            out.append(_claim("above_chance", "choices", **_public(record), verdict=verdict))
            fields = {k: record[k] for k in ("benchmark", "subject", "group", "statistic", "bar", "n", "run",
                                             "n_seeds", "p_value", "p_adjusted", "family_size", "correction", "mde")}
            enough = record if record["n"] >= MIN_N else {"clears": False}
            emerged = _emergence(fields, line, line["accuracy_low"] > chance, enough)
            _fill_at(emerged, line, "accuracy")
            out.append(_claim("emerged", "choices", **emerged))
    return out


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "clears"}


# ---------------------------------------------------------------- syntax


def head_claims(best: pd.DataFrame | None, uuas: pd.DataFrame | None) -> list[dict]:
    """Per treebank × relation × direction: the best head against its fixed-offset baseline and the random-init
    model's best head (`learned`, Holm over the treebank's relations and directions; `emerged`); the best head's
    UUAS against the random-init model's and the adjacent-word tree's (`learned`, `emerged`)."""
    out: list[dict] = []
    if best is not None and len(best):
        out += _head_relation_claims(best)
    if uuas is not None and len(uuas):
        out += _uuas_claims(uuas)
    return out


def _head_relation_claims(best: pd.DataFrame) -> list[dict]:
    out: list[dict] = []
    for treebank, per_bank in best.groupby("treebank", sort=False):
        init, series = _random_init(per_bank)
        init = init.set_index(["relation", "direction"])
        for run, per_run in main_rows(series).groupby("run", sort=False):
            records, flags, lines = [], [], []
            last_step = per_run["step"].max()
            for (relation, direction), line in per_run.groupby(["relation", "direction"], sort=False):
                line = line.sort_values("step")
                end = line.iloc[-1]
                if end["step"] != last_step or pd.isna(end["accuracy"]):
                    continue
                ref = init.loc[(relation, direction)] if (relation, direction) in init.index else None
                ref = ref.iloc[0] if isinstance(ref, pd.DataFrame) else ref
                init_high = float(ref["accuracy_high"]) if ref is not None else NAN
                cleared = line["accuracy_low"] > line["baseline_high"]
                if ref is not None:
                    cleared &= line["accuracy_low"] > init_high
                # the stricter bar at the last step decides its p-value
                if ref is not None and init_high > end["baseline_high"]:
                    judged = _judged(end["accuracy"], end["accuracy_low"], end["accuracy_high"], ref["accuracy"],
                                     ref["accuracy_low"], init_high)
                else:
                    judged = _judged(end["accuracy"], end["accuracy_low"], end["accuracy_high"], end["baseline"],
                                     end["baseline_low"], end["baseline_high"])
                judged["clears"] = bool(cleared.iloc[-1])
                records.append({"benchmark": treebank, "subject": f"{relation} {direction}", "group": "",
                                "detail": f"L{int(end['layer'])}H{int(end['head'])}", "statistic": "accuracy",
                                "n": end["n"], "step": end["step"], "run": run, "n_seeds": end.get("n_seeds", 1),
                                "steps": _steps_text(line["step"]), **judged})
                flags.append(cleared)
                lines.append(line)
            _correct(records, list(range(len(records))))
            for record, cleared, line in zip(records, flags, lines):
                verdict = "too_few" if record["n"] < MIN_N else "learned" if _significant(record) else "not_learned"
                out.append(_claim("learned", "syntax-heads", **_public(record), verdict=verdict))
                fields = {k: record.get(k) for k in ("benchmark", "subject", "group", "statistic", "n", "run",
                                                     "n_seeds", "p_value", "p_adjusted", "family_size",
                                                     "correction", "mde")}
                emerged = _emergence(fields, line, cleared, record if record["n"] >= MIN_N else {"clears": False})
                _fill_at(emerged, line, "accuracy")
                at = line[line["step"] == emerged["step"]] if np.isfinite(emerged["step"]) else line.iloc[-1:]
                emerged["detail"] = f"L{int(at['layer'].iloc[0])}H{int(at['head'].iloc[0])}"
                emerged["bar"] = record["bar"]
                out.append(_claim("emerged", "syntax-heads", **emerged))
    return out


def _uuas_claims(uuas: pd.DataFrame) -> list[dict]:
    """The best head's UUAS (over layers) per step against the random-init model's best and the adjacent-word
    baseline (rows with layer −1, when the table has them)."""
    out: list[dict] = []
    heads = uuas[(uuas["layer"] >= 0) & uuas["best_in_layer"]] if "best_in_layer" in uuas else uuas[uuas["layer"] >= 0]
    base = uuas[uuas["layer"] < 0]
    for treebank, per_bank in heads.groupby("treebank", sort=False):
        init, series = _random_init(per_bank)
        init_best = init.loc[init["uuas"].idxmax()] if len(init) and init["uuas"].notna().any() else None
        base_rows = base[base["treebank"] == treebank]
        for run, per_run in main_rows(series).groupby("run", sort=False):
            per_run = per_run.dropna(subset=["uuas"])
            if per_run.empty:
                continue
            line = per_run.loc[per_run.groupby("step")["uuas"].idxmax()].sort_values("step")
            bar_high = pd.Series(init_best["uuas_high"] if init_best is not None else NAN, index=line.index)
            if len(base_rows):
                by_step = base_rows.groupby("step")["uuas_high"].max() if base_rows["step"].notna().any() else None
                structural = line["step"].map(by_step) if by_step is not None else \
                    pd.Series(float(base_rows["uuas_high"].max()), index=line.index)
                bar_high = pd.concat([bar_high, structural], axis=1).max(axis=1)
            if bar_high.isna().all():
                continue
            end = line.iloc[-1]
            cleared = line["uuas_low"] > bar_high
            judged = _judged(end["uuas"], end["uuas_low"], end["uuas_high"], float(bar_high.iloc[-1]))
            judged["clears"] = bool(cleared.iloc[-1])
            record = {"benchmark": treebank, "subject": "UUAS", "group": "", "detail": f"L{int(end['layer'])}H"
                      f"{int(end['head'])}" if pd.notna(end["head"]) else f"layer {int(end['layer'])}",
                      "statistic": "uuas", "n": end["n"], "step": end["step"], "run": run,
                      "n_seeds": end.get("n_seeds", 1), "steps": _steps_text(line["step"]), **judged}
            verdict = "too_few" if record["n"] < MIN_N else "learned" if _significant(record) else "not_learned"
            out.append(_claim("learned", "syntax-heads", **_public(record), verdict=verdict))
            fields = {k: record[k] for k in ("benchmark", "subject", "group", "statistic", "n", "run", "n_seeds",
                                             "p_value", "mde", "bar")}
            emerged = _emergence(fields, line, cleared, record if record["n"] >= MIN_N else {"clears": False})
            _fill_at(emerged, line, "uuas")
            out.append(_claim("emerged", "syntax-heads", **emerged))
    return out


# ---------------------------------------------------------------- probes


def probe_claims(scores: pd.DataFrame | None) -> list[dict]:
    """Per treebank × probe: each layer's selectivity against the random-init model's at the same layer at the
    last step (`selective` per layer, Holm over the probe's layers; per probe, its most selective layer that
    survives), and when the probe became selective (`emerged`: some layer clears at a step)."""
    if scores is None or scores.empty:
        return []
    out: list[dict] = []
    for (treebank, probe), rows in scores.groupby(["treebank", "probe"], sort=False):
        init, series = _random_init(rows)
        if init.empty:
            continue
        init = init.drop_duplicates("layer").set_index("layer")
        for run, per_run in main_rows(series).groupby("run", sort=False):
            last_step = per_run["step"].max()
            records, cleared_by_layer = [], {}
            for layer, line in per_run.groupby("layer", sort=True):
                line = line.sort_values("step")
                if layer not in init.index:
                    continue
                ref = init.loc[layer]
                cleared_by_layer[layer] = pd.Series((line["selectivity_low"] > ref["selectivity_high"]).to_numpy(),
                                                    index=line["step"].to_numpy())
                end = line.iloc[-1]
                if end["step"] != last_step or pd.isna(end["selectivity"]):
                    continue
                judged = _judged(end["selectivity"], end["selectivity_low"], end["selectivity_high"],
                                 ref["selectivity"], ref["selectivity_low"], ref["selectivity_high"])
                records.append({"benchmark": treebank, "subject": probe, "group": "", "detail": f"layer {int(layer)}",
                                "statistic": "selectivity", "n": end["sentences"], "step": end["step"], "run": run,
                                "n_seeds": end.get("n_seeds", 1), "steps": _steps_text(line["step"]), **judged})
            if not records:
                continue
            _correct(records, list(range(len(records))))
            layer_rows = []
            for record in records:
                verdict = ("too_few" if record["n"] < MIN_N else "selective" if _significant(record)
                           else "not_selective")
                layer_rows.append(_claim("selective", "probes", **_public(record), verdict=verdict))
            out += layer_rows
            chosen = [r for r in layer_rows if r["verdict"] == "selective"] or layer_rows
            top = dict(max(chosen, key=lambda r: r["value"] if np.isfinite(r["value"]) else -np.inf))
            out.append({**top, "subject": probe, "kind": "selective", "detail": f"best: {top['detail']}",
                        "group": "probe"})
            steps = sorted(set().union(*(set(s.index) for s in cleared_by_layer.values())))
            flags = [any(bool(s.get(step, False)) for s in cleared_by_layer.values()) for step in steps]
            line = pd.DataFrame({"step": steps})
            fields = {k: top[k] for k in ("benchmark", "subject", "statistic", "n", "run", "n_seeds", "p_value",
                                          "p_adjusted", "family_size", "correction", "mde", "bar")}
            emerged = _emergence({**fields, "group": "probe"}, line, flags,
                                 {"clears": top["verdict"] == "selective", "p_adjusted": top["p_adjusted"]})
            step = emerged["step"]
            cleared = [layer for layer, flags in cleared_by_layer.items() if np.isfinite(step)
                       and bool(flags.get(step, False))]
            at_step = per_run[(per_run["step"] == step) & per_run["layer"].isin(cleared)]
            if len(at_step):  # the layer that cleared (of several, the most selective)
                best = at_step.loc[at_step["selectivity"].idxmax()]
                emerged.update(value=best["selectivity"], low=best["selectivity_low"], high=best["selectivity_high"],
                               detail=f"layer {int(best['layer'])}")
            out.append(_claim("emerged", "probes", **emerged))
    return out


# ---------------------------------------------------------------- tracing


SITE = ["component", "layer", "role"]


def _site_name(row) -> str:
    return f"{row['component']} L{int(row['layer'])} {row['role']}"


def _by_construction(rows: pd.DataFrame) -> pd.Series:
    """Sites that restore the answer by construction: the table's own column, else the last layer's residual
    stream at the [MASK]."""
    if "by_construction" in rows:
        return rows["by_construction"].fillna(False).astype(bool)
    last = rows.loc[rows["component"] == "resid", "layer"].max()
    return (rows["component"] == "resid") & (rows["layer"] == last) & (rows["role"] == "mask")


def tracing_claims(scores: pd.DataFrame | None, heads: pd.DataFrame | None) -> list[dict]:
    """Per relation × group × method × traced step: every site's Δp against the random-init model's at the same
    site and 0.01 (`stands_out`, Holm over the step's sites), the best site (`best_site`) and its share where
    defined (`share`); when each site formed (`emerged`); the top head (`top_head`)."""
    out: list[dict] = []
    if scores is not None and len(scores):
        sites = scores[scores["component"].isin(["resid", "attn", "mlp"])].copy()
        sites["by_construction"] = _by_construction(sites)
        out += _site_claims(sites)
    if heads is not None and len(heads):
        out += _head_site_claims(heads)
    return out


def _site_claims(sites: pd.DataFrame) -> list[dict]:
    out: list[dict] = []
    keys = ["benchmark", "relation", "group", "method"]
    for key, rows in sites.groupby(keys, sort=False):
        bench, relation, group, method = key
        control, series = _random_init(rows)
        has_init = len(control) > 0
        bars = control.drop_duplicates(SITE).set_index(SITE) if has_init else None
        series = main_rows(series)
        for run, per_run in series.groupby("run", sort=False):
            steps = sorted(per_run["step"].unique())
            flags: dict[tuple, dict] = {}
            for step in steps:
                at = per_run[per_run["step"] == step]
                records = []
                for _, row in at.iterrows():
                    site = tuple(row[c] for c in SITE)
                    judged = _effect_judged(row, bars.loc[site] if has_init and site in bars.index else None)
                    records.append({"benchmark": bench, "subject": relation, "group": f"{group} · {method}",
                                    "detail": _site_name(row), "statistic": "effect (Δp)", "n": row["n"],
                                    "step": step, "run": run, "n_seeds": row.get("n_seeds", 1),
                                    "by_construction": bool(row["by_construction"]), **judged})
                family = [i for i, r in enumerate(records) if not r["by_construction"]]
                _correct(records, family)
                for record in records:
                    if not has_init:
                        verdict = "no_random_init"
                    elif record["n"] < MIN_N:
                        verdict = "too_few"
                    elif record["by_construction"]:
                        verdict = "by_construction"
                    else:
                        verdict = "stands_out" if _significant(record) else "not_standing_out"
                    out.append(_claim("stands_out", "tracing", **_public(record), verdict=verdict,
                                      steps=_steps_text(steps)))
                    flags.setdefault(record["detail"], {})[step] = verdict == "stands_out"
                candidates = [r for r in records if not r["by_construction"] and np.isfinite(r["value"])]
                standing = [r for r in candidates if has_init and r["n"] >= MIN_N and _significant(r)]
                if candidates:  # of the sites that stand out the largest Δp, else the largest of all
                    best = max(standing or candidates, key=lambda r: r["value"])
                    stands = has_init and best["n"] >= MIN_N and _significant(best)
                    out.append(_claim("best_site", "tracing", **_public(best), steps=_steps_text(steps),
                                      verdict="stands_out" if stands else "no_random_init" if not has_init
                                      else "not_standing_out"))
                    row = at[at.apply(_site_name, axis=1) == best["detail"]].iloc[0]
                    out.append(_share(row, best))
            for site, by_step in flags.items():
                found = stats.sustained(steps, [by_step.get(s, False) for s in steps])
                this = per_run[per_run.apply(_site_name, axis=1) == site].sort_values("step")
                if this.empty or bool(_by_construction(this).iloc[0]):
                    continue
                record = {"benchmark": bench, "subject": relation, "group": f"{group} · {method}", "detail": site,
                          "statistic": "effect (Δp)", "n": this["n"].iloc[-1], "run": run,
                          "n_seeds": this["n_seeds"].iloc[-1] if "n_seeds" in this else 1,
                          "steps": _steps_text(steps), **found}
                record["verdict"] = found["verdict"] if has_init else "no_random_init"
                _fill_at(record, this, "effect")
                out.append(_claim("emerged", "tracing", **record))
    return out


def _effect_judged(row: pd.Series, ref: pd.Series | None) -> dict:
    """A site's (or head's) Δp against the random-init model's at the same site and `EFFECT_FLOOR`."""
    if ref is None:
        return {**_judged(row["effect"], row["effect_low"], row["effect_high"], NAN), "clears": False}
    bar_high = max(float(ref["effect_high"]), EFFECT_FLOOR)
    judged = _judged(row["effect"], row["effect_low"], row["effect_high"], float(ref["effect"]),
                     float(ref["effect_low"]), bar_high)
    return {**judged, "clears": bool(row["effect_low"] > bar_high)}


def _share(row: pd.Series, best: dict) -> dict:
    """The best site's restoration share, a ratio of means, where its denominator's interval excludes 0."""
    value = row.get("restoration", NAN)
    low, high = row.get("restoration_low", NAN), row.get("restoration_high", NAN)
    gap_low, gap_high = row.get("gap_low", NAN), row.get("gap_high", NAN)
    defined = bool(pd.notna(value) and (pd.isna(gap_low) or gap_low > 0 or gap_high < 0)
                   and SHARE_RANGE[0] <= value <= SHARE_RANGE[1])
    return _claim("share", "tracing", benchmark=best["benchmark"], subject=best["subject"], group=best["group"],
                  detail=best["detail"], statistic="restoration share (ratio of means)",
                  value=value if defined else NAN, low=low if defined else NAN, high=high if defined else NAN,
                  n=best["n"], step=best["step"], run=best["run"], n_seeds=best["n_seeds"],
                  verdict="defined" if defined else "undefined")


def _head_site_claims(heads: pd.DataFrame) -> list[dict]:
    out: list[dict] = []
    for (bench, relation, group, method), rows in heads.groupby(["benchmark", "relation", "group", "method"],
                                                               sort=False):
        control, series = _random_init(rows)
        bars = control.drop_duplicates(["layer", "head"]).set_index(["layer", "head"]) if len(control) else None
        for run, per_run in main_rows(series).groupby("run", sort=False):
            steps = sorted(per_run["step"].unique())
            for step in steps:
                at = per_run[per_run["step"] == step].dropna(subset=["effect"])
                if at.empty:
                    continue
                records = []
                for _, row in at.iterrows():
                    key = (row["layer"], row["head"])
                    judged = _effect_judged(row, bars.loc[key] if bars is not None and key in bars.index else None)
                    records.append({"benchmark": bench, "subject": relation, "group": f"{group} · {method}",
                                    "detail": f"L{int(row['layer'])}H{int(row['head'])}", "statistic": "effect (Δp)",
                                    "n": row["n"], "step": step, "run": run, "n_seeds": row.get("n_seeds", 1),
                                    "steps": _steps_text(steps), **judged})
                _correct(records, list(range(len(records))))
                best = max(records, key=lambda r: r["value"] if np.isfinite(r["value"]) else -np.inf)
                verdict = ("no_random_init" if bars is None else "too_few" if best["n"] < MIN_N else
                           "stands_out" if _significant(best) else "not_standing_out")
                out.append(_claim("top_head", "tracing", **_public(best), verdict=verdict))
    return out


# ---------------------------------------------------------------- which arrives first


SIGNALS = (("facts", "facts"), ("pairs", "grammar"), ("syntax-heads", "syntactic heads"), ("probes", "probe"))


def arrival_claims(records: list[dict]) -> list[dict]:
    """One `arrives` row per signal (a relation's injected − held back, per benchmark the earliest; grammar over
    the whole benchmark; each relation of the syntactic heads, the earliest; UUAS; each probe) from its `emerged`
    row, and one `order` row per pair of signals: before, or tie where the arrival intervals overlap."""
    emerged = pd.DataFrame([r for r in records if r["kind"] == "emerged" and r["analysis"] != "tracing"])
    if emerged.empty:
        return []
    emerged = main_findings(emerged.assign(run=emerged["run"].astype(str)))
    signals: list[dict] = []
    for analysis, name in SIGNALS:
        rows = emerged[emerged["analysis"] == analysis]
        if analysis == "pairs":
            rows = rows[rows["subject"] == "all"]
        if rows.empty:
            continue
        if analysis == "probes":
            for _, row in rows.iterrows():
                signals.append(_arrival(row, f"{row['subject']} probe", row["subject"]))
            continue
        if analysis == "syntax-heads":
            uuas = rows[rows["subject"] == "UUAS"]
            for _, row in uuas.iterrows():
                signals.append(_arrival(row, "syntactic heads: UUAS", "UUAS"))
            rows = rows[rows["subject"] != "UUAS"]
            if rows.empty:
                continue
        for bench, per_bench in rows.groupby("benchmark", sort=False):
            done = per_bench[per_bench["verdict"] == "emerged"]
            row = done.loc[done["step"].idxmin()] if len(done) else per_bench.iloc[0]
            label = {"facts": f"facts: {bench}", "pairs": f"grammar: {bench}",
                     "syntax-heads": "syntactic heads: a relation"}[analysis]
            signals.append(_arrival(row, label, row["subject"] if len(done) else ""))
    out = list(signals)
    for a, b in combinations(signals, 2):
        out.append(_order(a, b))
    return out


def _arrival(row: pd.Series, signal: str, through: str) -> dict:
    return _claim("arrives", "timeline", benchmark=row["benchmark"], subject=signal, group=row.get("group", ""),
                  detail=through, verdict="arrived" if row["verdict"] == "emerged" else row["verdict"],
                  statistic=row["statistic"], value=row.get("value", NAN), low=row.get("low", NAN),
                  high=row.get("high", NAN), n=row.get("n"), step=row["step"], step_low=row["step_low"],
                  step_high=row["step_high"], first_cleared=row.get("first_cleared", NAN), steps=row["steps"],
                  run=row["run"], n_seeds=row.get("n_seeds", 1))


def _order(a: dict, b: dict) -> dict:
    """a before b, b before a, tie, or not_established (either never arrived)."""
    pair = f"{a['subject']} | {b['subject']}"
    fields = {"benchmark": "", "subject": pair, "group": "", "run": a["run"]}
    if a["verdict"] != "arrived" or b["verdict"] != "arrived":
        return _claim("order", "timeline", **fields, verdict="not_established",
                      detail=a["subject"] if a["verdict"] == "arrived" else b["subject"] if b["verdict"] == "arrived"
                      else "")
    lows = [x["step_low"] if np.isfinite(x["step_low"]) else -np.inf for x in (a, b)]
    if a["step_high"] <= lows[1]:
        return _claim("order", "timeline", **fields, verdict="before", detail=a["subject"])
    if b["step_high"] <= lows[0]:
        return _claim("order", "timeline", **fields, verdict="before", detail=b["subject"])
    return _claim("order", "timeline", **fields, verdict="tie", detail="")
