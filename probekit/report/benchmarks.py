"""The Benchmarks page: each fill-mask benchmark's scores over training, per relation the gold ranks and the
top predictions, and when each fact is first answered (prior guesses left out)."""

from __future__ import annotations

import pandas as pd

from probekit.analyses.metrics import emergence, known_counts
from probekit.report import charts, charts_model, findings
from probekit.report.markdown import esc
from probekit.report.page import Page
from probekit.core.schema import CONTROL

PAGE = "benchmarks.md"
UNSCORABLE = "no answer of this relation could be scored (every gold rank is missing)."


def benchmarks(page: Page, tables: dict) -> None:
    """Per benchmark: the interactive score curves and known-facts counts, per relation the gold rank per prompt
    and checkpoint and the top predictions where they changed, and the first-correct distribution."""
    predictions, scores = tables["predictions"], tables["scores"]
    if predictions.empty:
        return
    control = ("Dotted lines: the random-initialisation control." if (predictions["checkpoint"] == CONTROL).any()
               else "Step 0 is the random initialisation: the control for prompt bias.")
    page.add(PAGE, "# Benchmarks", "",
             f"{control} Rank 1 = the model's top prediction. Charts: hover for values, scroll to zoom the step "
             "axis, click a legend entry to isolate it, and switch the step axis between linear and log.", "")
    known = emergence(predictions)
    found = tables.get("findings")
    for name in predictions["benchmark"].unique():
        page.add(PAGE, f"## {esc(name)}", "")
        page.chart(PAGE, (name, "scores", "by-relation-and-step"), charts.score_curves(scores, name, found),
                   f"{name}: P@1 (P@10, MRR from the menu) per relation; injected solid, held-back dashed; shaded: "
                   "where injected − held back arrived (findings)", data=score_data(scores, name))
        rows = predictions[predictions["benchmark"] == name]
        known_data = charts_model.known_data(known_counts(rows), rows)
        page.chart(PAGE, (name, "known-facts", "by-group-and-step"), charts_model.known_chart(known_data, name),
                   f"{name}: prompts answered at rank 1 and within the top 10, by fact group", data=known_data)
        for relation in rows["relation"].unique():
            page.add(PAGE, f"### {esc(relation)}", "")
            if rows.loc[rows["relation"] == relation, "gold_rank"].isna().all():
                page.add(PAGE, f"Plots skipped: {UNSCORABLE}", "")
                continue
            page.chart(PAGE, (name, relation, "gold-rank", "by-prompt-and-step"),
                       charts.rank_heatmap(rows, name, relation), f"{relation}: gold rank per prompt and checkpoint",
                       step_axis=False, data=rank_data(rows, name, relation))
            page.add(PAGE, *_top_predictions(page, rows[rows["relation"] == relation]))
        page.add(PAGE, *_first_correct(page, rows, known[known["benchmark"] == name], name))
    page.configure(PAGE, title="Benchmarks", hide_toc=True)


SCORE_COLUMNS = ["run", "checkpoint", "relation", "group", "step", "n", "p_at_1", "p_at_1_low", "p_at_1_high",
                 "p_at_10", "p_at_10_low", "p_at_10_high", "mrr", "mrr_low", "mrr_high"]


def score_data(scores: pd.DataFrame, name: str) -> pd.DataFrame:
    """The `scores` rows of benchmark `name` that its score chart draws (the random-init control included),
    with integer steps and float scores."""
    rows = scores[scores["benchmark"] == name]
    out = rows[[c for c in SCORE_COLUMNS if c in rows]].reset_index(drop=True)
    out = out.assign(step=pd.to_numeric(out["step"]).round().astype("Int64"))
    return out.assign(**{c: pd.to_numeric(out[c], errors="coerce").astype(float) for c in out.columns
                         if c not in ("run", "checkpoint", "relation", "group", "step")})


def rank_data(predictions: pd.DataFrame, name: str, relation: str, per_group: int = 20) -> pd.DataFrame:
    """The rows `charts.rank_heatmap` draws: the sampled prompts' gold rank and top answer at every step."""
    rows = predictions[(predictions["benchmark"] == name) & (predictions["relation"] == relation)
                       & (predictions["checkpoint"] != CONTROL)].dropna(subset=["step"])
    rows = charts.sampled_prompts(rows[rows["template"] == rows["template"].iloc[0]], per_group)
    out = rows[["group", "prompt", "answer", "checkpoint", "step", "gold_rank", "top1"]].reset_index(drop=True)
    return out.assign(step=out["step"].round().astype("Int64"), gold_rank=out["gold_rank"].astype(float))


def _first_correct(page: Page, rows: pd.DataFrame, known: pd.DataFrame, name: str) -> list[str]:
    """When each fact is first answered: the distribution of first-correct steps per relation and group,
    prior guesses left out."""
    counts, summary = findings.first_correct_distribution(rows, known)
    lines = ["### When each fact is first answered", "",
             "Per relation and fact group, how many prompts are first answered at rank 1 at each step. Left out "
             "as prior guesses: answers the random-initialisation control (else step 0) already gives for that "
             "template, and answers a held-back prompt about another country also gets (e.g. a continent or "
             "currency shared by many countries).", ""]
    if counts.empty:
        return [*lines, "No prompt is answered correctly at any checkpoint, prior guesses left out.", ""]
    lines += page.take(PAGE, lambda: page.chart(
        PAGE, (name, "first-correct", "by-relation-and-step"), charts.first_correct(counts),
        f"{name}: prompts first answered at each step (prior guesses left out)", step_axis=False,
        data=counts.rename(columns={"first_correct": "step"})))
    span = counts.groupby(["relation", "group"])["first_correct"].agg(earliest="min", latest="max").reset_index()
    numbers = summary.drop(columns=["benchmark", "first step (earliest–latest)"]).merge(
        span, on=["relation", "group"], how="left")
    return [*lines, *page.table(summary.drop(columns="benchmark"), (name, "first-correct", "by-relation"),
                                data=numbers)]


def _picked_steps(rows: pd.DataFrame, n_checkpoints: int) -> list:
    """The first and last steps and, between them, the steps where a shown prompt's top answer changed."""
    steps = sorted(rows["step"].dropna().unique())
    if len(steps) <= n_checkpoints:
        return steps
    ordered = rows.sort_values(["prompt", "step"], kind="stable")
    top1 = ordered["top1"].astype(object)
    moved = (top1 != top1.groupby(ordered["prompt"]).shift()) & ordered["prompt"].duplicated()
    changed = sorted(set(ordered.loc[moved.to_numpy(bool), "step"].dropna()) - {steps[0], steps[-1]})
    middle = changed if len(changed) <= n_checkpoints - 2 else [
        changed[round(i * (len(changed) - 1) / (n_checkpoints - 3))] for i in range(n_checkpoints - 2)]
    return sorted({steps[0], *middle, steps[-1]})


def _top_predictions(page: Page, rows: pd.DataFrame, n_prompts: int = 6, n_checkpoints: int = 7) -> list[str]:
    """The seed notebook's view: a prompt's top prediction at each checkpoint (is → skye → ireland), at the
    steps where it changes, with the last checkpoint always shown and correct answers in bold."""
    rows = rows[rows["checkpoint"] != CONTROL].dropna(subset=["step"])
    last = rows["step"].max()
    final = rows[rows["step"] == last].groupby("prompt")["gold_rank"].min()
    per_group = max(1, n_prompts // max(1, rows["group"].nunique()))
    best = [p for _, g in rows.groupby("group", sort=True) for p in
            final.reindex(g["prompt"].unique()).sort_values().index[:per_group]]
    shown = rows[rows["prompt"].isin(best)]
    picked = _picked_steps(shown, n_checkpoints)
    view = shown[shown["step"].isin(picked)]
    cell = [f"**{esc(t)}** ✓" if r == 1 else esc(t) for t, r in zip(view["top1"], view["gold_rank"])]
    view = view.assign(cell=[f"{c} ({p[0]:.2f})" if len(p) else c for c, p in zip(cell, view["topk_probs"])])
    grid = view.pivot_table(index=["group", "prompt", "answer"], columns="step", values="cell", aggfunc="first")
    grid.columns = [f"step {int(c):,}" for c in grid.columns]
    grid = grid.reset_index()
    numbers = view.assign(step=view["step"].round().astype("Int64"), gold_rank=view["gold_rank"].astype(float),
                          probability=[float(p[0]) if len(p) else float("nan") for p in view["topk_probs"]])
    numbers = numbers[["group", "prompt", "answer", "step", "top1", "probability", "gold_rank"]]
    return ["Top prediction (probability) at the first and last checkpoints and where the answer changed; "
            "**bold ✓** = the gold answer.", "",
            *page.table(grid, (rows["relation"].iloc[0], "top-predictions", "by-prompt-and-step"),
                        raw=tuple(c for c in grid.columns if c.startswith("step ")), data=numbers)]
