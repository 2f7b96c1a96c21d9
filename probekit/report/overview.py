"""The Overview: the report's own first page — what the run shows, in words generated from its tables.

It opens with the findings the analyses' sections stated (`page.finding`: per relation the last step's
P@1 injected vs held back with intervals, the minimal pairs when scored), beside the loss curve; then the
injected-vs-held-back differences, when each relation emerged, and, folded away, the injected facts, the
checkpoints with their fingerprints and the provenance.
"""

from __future__ import annotations

import pandas as pd

from probekit.report import charts
from probekit.report.markdown import esc
from probekit.report.page import OVERVIEW, Page, collapsible, table
from probekit.analyses.stats import RESAMPLES, SEED, emergence_steps, format_p, group_differences


def overview(page: Page, tables: dict) -> None:
    """The findings first (what each analysis's section stated, generated from the tables) beside the loss
    curve; the evidence below them; checkpoints, fingerprints and provenance folded away. Called after the
    sections."""
    manifest, checkpoints = tables["manifest"], tables["checkpoints"]
    facts = manifest.get("facts")
    page.add(OVERVIEW, "# What this run shows", "")
    inputs = ", ".join(esc(name) for kind in manifest.get("inputs", {}).values() for name in kind)
    predictions = len(tables["predictions"])
    intro = (f"{len(checkpoints)} checkpoints probed" + (f" with {predictions:,} predictions" if predictions else "")
             + f" ({inputs}). " + ("P@1 = share of prompts whose answer is the top prediction; " if predictions
                                   else "") + "[brackets]: 95% bootstrap interval.")
    intro += only_at(manifest.get("at", {}))
    left = ['<div markdown class="headline">', "", *(page.findings or ["No prompt could be scored."]), "", intro, "",
            "</div>"]
    if "training" in tables and len(tables["training"]):
        loss = charts.spec_html(charts.loss_curve(tables["training"]), "chart-loss")
        page.add(OVERVIEW, '<div class="grid probekit-overview" markdown>', "", *left, "", '<div markdown="0">',
                 loss, "</div>", "", "</div>", "")
    else:
        page.add(OVERVIEW, *left, "")
    if facts:
        page.add(OVERVIEW, *injected_vs_held_back(tables["predictions"], page))
    page.add(OVERVIEW, *_emergence_table(page, tables["scores"]))
    if facts:
        text = (f"{len(facts['injected'])} countries' facts ({', '.join(esc(r) for r in facts['relations'])}) were "
                f"written into the training corpus as {esc(facts['repeats'])} short biographies per country, each "
                f"fact worded by one of its paraphrases in turn ({sum(map(len, facts['templates'].values()))} in "
                f"all; {float(facts['fact_share']):.0%} of the words, seed {esc(facts['seed'])}); "
                f"{len(facts['held_back'])} were held back as a control. Probe templates differ from the "
                "training paraphrases.")
        page.add(OVERVIEW, *collapsible("info", "Which facts were injected", [
            text, "", *injection_details(facts)]))
    shown = checkpoints.assign(fingerprint=checkpoints["fingerprint"].fillna(""),
                               duplicate_of=checkpoints["duplicate_of"].fillna(""),
                               error=checkpoints["error"].fillna(""))
    columns = ["checkpoint", "step", "fingerprint", "status", "duplicate_of", "error"]
    page.add(OVERVIEW, *collapsible("note", "Checkpoints and their fingerprints",
                                    page.table(shown[columns], ("checkpoints",))))
    versions = manifest.get("versions", {})
    provenance = pd.DataFrame({"item": [*versions, "created", "command"],
                               "value": [*versions.values(), manifest.get("created"), manifest.get("command")]})
    page.add(OVERVIEW, *collapsible("note", "Provenance", page.table(provenance, ("provenance",))))
    page.configure(OVERVIEW, title="Overview", hide_toc=True)


def only_at(at: dict[str, list[int]]) -> str:
    """The sentence saying which analyses ran at some steps only (`probe(at=...)`), or nothing."""
    if not at:
        return ""
    parts = [f"{esc(name)} at step{'s' if len(steps) != 1 else ''} {', '.join(f'{s:,}' for s in steps)}"
             for name, steps in at.items()]
    return (" Run at some steps only (the others, and the random-init control where there is one, at every "
            "checkpoint): " + "; ".join(parts) + ".")


def injection_details(facts: dict) -> list[str]:
    """Which countries were injected and which held back, and the sentences that wrote the facts."""
    names = lambda group: ", ".join(esc(n) for n in facts[group])  # noqa: E731
    paraphrases = [f"- {esc(relation)}: " + " · ".join(f"<code>{esc(t)}</code>" for t in templates)
                   for relation, templates in facts["templates"].items()]
    return [f"**Injected ({len(facts['injected'])}):** {names('injected')}", "",
            f"**Held back ({len(facts['held_back'])}):** {names('held_back')}", "",
            "**Training paraphrases** (<code>&#91;X&#93;</code> the country, <code>&#91;Y&#93;</code> the fact):", "",
            *paraphrases, ""]


def injected_vs_held_back(predictions: pd.DataFrame, page: Page | None = None) -> list[str]:
    """Sentences and a table, generated from the predictions, on whether injected facts score above held-back
    ones at the last step: each difference with its 95% bootstrap interval, and whether that excludes zero."""
    found = group_differences(predictions)
    if found.empty:
        return []
    several = found["benchmark"].nunique() > 1
    seeds = int(found["n_seeds"].max())
    over = f"{seeds} seeds and the prompts" if seeds > 1 else "the prompts"
    lines = ["## Injected vs held back", "",
             f"P@1 at step {int(found['step'].iloc[0]):,}, the last checkpoint: injected minus held-back facts, "
             f"with a 95% percentile bootstrap interval over {over} (each group's prompts resampled on their own, "
             f"{RESAMPLES:,} resamples, seed {SEED}) and a two-sided bootstrap p-value.", ""]
    for row in found.itertuples(index=False):
        name = f"{esc(row.benchmark)} / {esc(row.relation)}" if several else esc(row.relation)
        verdict = ("injected above held back: the interval excludes zero" if row.low > 0 else
                   "held back above injected: the interval excludes zero" if row.high < 0 else
                   "no difference shown: the interval includes zero")
        lines.append(f"- **{name}**: {row.injected:.2f} vs {row.held_back:.2f}, difference {row.difference:+.2f} "
                     f"[{row.low:+.2f}, {row.high:+.2f}], p {_p_text(row.p_value)} — {verdict}.")
    shown = found.assign(**{c: found[c].round(3) for c in ("injected", "held_back", "difference", "low", "high")},
                         p_value=[format_p(p) for p in found["p_value"]])
    shown = shown.drop(columns=[] if several else ["benchmark"])
    return [*lines, "", *(page.table(shown, ("injected-vs-held-back",)) if page else table(shown))]


def _p_text(p: float) -> str:
    text = format_p(p)
    return text if text[0] == "≤" or text == "n/a" else f"= {text}"


def _emergence_table(page: Page, scores: pd.DataFrame) -> list[str]:
    """Per relation and group, the first step whose P@1 interval lies above the control's (probekit.analyses.stats)."""
    found = emergence_steps(scores)
    if found.empty:
        return []
    shown = pd.DataFrame({
        "benchmark": found["benchmark"], "relation": found["relation"], "group": found["group"],
        "run": found["run"],
        "emerged at step": [f"{s:,.0f}" if pd.notna(s) else "not yet" for s in found["emerged_at"]],
        "P@1 there [95%]": [f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if pd.notna(v) else "" for v, lo, hi in
                            zip(found["p_at_1"], found["p_at_1_low"], found["p_at_1_high"])],
        "control's upper bound": found["control_high"].round(2)})
    drop = [c for c in ("run", "benchmark") if shown[c].nunique() == 1]
    return ["## When each relation emerges", "",
            "The first step whose P@1 95% interval lies wholly above the control's (the random-initialisation "
            "row, else step 0); with several seeds, the all-seeds row pools them and each seed's row shows the "
            "spread.", "", *page.table(shown.drop(columns=drop), ("emergence",))]
