"""The Overview: the report's own first page — what the run shows, worded from the findings rows.

It opens with the findings the analyses' sections stated (`page.finding`: per relation the last step's
P@1 injected vs held back with intervals, the minimal pairs when scored), beside the loss curve; then the
injected-vs-held-back differences and when each arrived (the findings' `difference` and `emerged` rows), the
P@1 curves and the run's own files to download, how to cite the run, and, folded away, the injected facts, the
checkpoints with their fingerprints and the provenance. It computes no statistic.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import yaml

from probekit.report import charts
from probekit.report.markdown import esc
from probekit.report.page import OVERVIEW, Page, collapsible, table
from probekit.analyses.findings import main_findings, main_rows, select
from probekit.report.findings import VERDICTS, arrival


def overview(page: Page, tables: dict, results: Path | None = None) -> None:
    """The findings first (what each analysis's section stated, generated from the tables) beside the loss
    curve; the evidence below them; the run's data (`results`: the folder the site is built from) and how to
    cite it; checkpoints, fingerprints and provenance folded away. Called after the sections."""
    manifest, checkpoints = tables["manifest"], tables["checkpoints"]
    facts = manifest.get("facts")
    page.add(OVERVIEW, "# What this run shows", "")
    inputs = ", ".join(esc(name) for kind in manifest.get("inputs", {}).values() for name in kind)
    predictions = len(tables["predictions"])
    statistics = manifest.get("statistics", {})
    seeds = int(tables["findings"]["n_seeds"].max()) if len(tables.get("findings", [])) else 1
    over = (f"over {seeds} training seeds and the prompts (Multi-Bootstrap)" if seeds > 1 else
            "over the prompts; one training seed, so no interval covers another training run")
    intro = (f"{len(checkpoints)} checkpoints probed" + (f" with {predictions:,} predictions" if predictions else "")
             + f" ({inputs}). " + ("P@1 = share of prompts whose answer is the top prediction; " if predictions
                                   else "") + f"[brackets]: 95% percentile bootstrap interval {over} "
             f"({statistics.get('resamples', 1000):,} resamples, seed {statistics.get('seed', 0)}). *Random init* is "
             "the untrained model; the *control* is the held-back facts. Every claim is a row of "
             "`findings.parquet`, decided by the rule in its `rule` column.")
    intro += only_at(manifest.get("at", {}))
    left = [*answer_cards(tables.get("findings"), set(page.parts)), '<div markdown class="headline">', "",
            *(page.findings or ["No prompt could be scored."]), "", intro, "", "</div>"]
    curves = charts.fact_curves(tables["scores"]) if "scores" in tables and len(tables["scores"]) else None
    stem = page.unique("p_at_1", "by-step")  # the curves' download, linked beside them and written below
    if curves is not None or ("training" in tables and len(tables["training"])):
        right = [charts.spec_html(curves, "chart-p-at-1", page.docs),
                 f'<p class="downloads">Download these curves: <a href="data/{stem}.csv">CSV</a> · '
                 f'<a href="data/{stem}.parquet">Parquet</a></p>'] if curves is not None else []
        if "training" in tables and len(tables["training"]):
            right.append(charts.spec_html(charts.loss_curve(tables["training"]), "chart-loss", page.docs))
        page.add(OVERVIEW, '<div class="grid probekit-overview" markdown>', "", "<div markdown>", "", *left, "",
                 "</div>", "", '<div markdown="0">', *right, "</div>", "", "</div>", "")  # words | curves
    else:
        page.add(OVERVIEW, *left, "")
    if facts:
        page.add(OVERVIEW, *injected_vs_held_back(tables["findings"], page))
    page.add(OVERVIEW, *_emergence_table(page, tables["findings"]))
    page.add(OVERVIEW, *run_data(page, tables, results, stem))
    page.add(OVERVIEW, *cite(tables, results))
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


def answer_cards(found: pd.DataFrame | None, pages: set[str]) -> list[str]:
    """The three questions answered in one sentence each, from the findings rows, with a link to the page that
    shows it: when (per relation, injected − held back), where (the tracing's best site), syntax (heads, UUAS,
    probes). A question the run did not ask is left out."""
    if found is None or found.empty:
        return []
    found = main_findings(found)
    cards = []
    emerged = select(found, "emerged", "facts")
    if len(emerged):
        came = emerged[emerged["verdict"] == "emerged"].sort_values("step", kind="stable")
        text = "; ".join(f"{esc(r['subject'])} after step {r['step_low']:,.0f}, by {r['step']:,.0f}"
                         if pd.notna(r["step_low"]) else f"{esc(r['subject'])} by step {r['step']:,.0f}"
                         for _, r in came.iterrows())
        rest = len(emerged) - len(came)
        what = ("injected − held back" if (emerged["group"] == "injected-held_back").any()
                else "P@1 against random init")
        said = (f"{what} arrived for {text}" if len(came) else f"{what} arrived for no relation")
        said += f" ({rest} not (yet) established)" if rest and len(came) else ""
        cards.append(("When was it learned?", said, "benchmarks.md", "Benchmarks"))
    best = select(found, "best_site", "tracing")
    if len(best):
        best = best[best["group"].str.startswith(("injected", "all"))]
        exact = best["group"].str.endswith("exact")
        best = best[exact] if exact.any() else best  # exact patching where the run has it
        last = best[best["step"] == best["step"].max()]
        standing = last[last["verdict"] == "stands_out"]
        if len(standing):
            r = standing.iloc[0]
            said = (f"{esc(r['subject'])}: {esc(r['detail'])}, Δp {r['value']:+.3f} [{r['low']:+.3f}, "
                    f"{r['high']:+.3f}] at step {r['step']:,.0f}"
                    + (f" (and {len(standing) - 1} more relation{'s' if len(standing) > 2 else ''})"
                       if len(standing) > 1 else ""))
        elif len(last):
            said = f"no site stands out at step {last['step'].max():,.0f}, the last traced"
        else:
            said = "nothing traced"
        cards.append(("Where in the model?", said, "tracing.md", "Causal tracing"))
    heads = select(found, "learned", "syntax-heads")
    probes = select(found, "selective", "probes", group="probe")
    if len(heads) or len(probes):
        parts = []
        relations = heads[heads["subject"] != "UUAS"]
        if len(relations):
            parts.append(f"{int((relations['verdict'] == 'learned').sum())} of {len(relations)} head relations "
                         "learned")
        uuas = heads[heads["subject"] == "UUAS"]
        if len(uuas):
            parts.append(f"UUAS {uuas['verdict'].iloc[0].replace('_', ' ')}")
        if len(probes):
            selective = probes.loc[probes["verdict"] == "selective", "subject"].tolist()
            parts.append("probes selective: " + (", ".join(map(esc, selective)) if selective else "none"))
        cards.append(("Did it learn syntax?", "; ".join(parts), "syntax.md" if len(heads) else "syntax-probes.md",
                      "Syntax"))
    lines = ['<div class="grid cards probekit-answers" markdown>', ""]
    for title, said, target, name in cards:
        link = f" [{name} →]({target})" if target in pages else ""
        lines += [f"-   **{title}**", "", f"    {said}.{link}", ""]
    return [*lines, "</div>", ""] if cards else []


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


def injected_vs_held_back(found: pd.DataFrame, page: Page | None = None) -> list[str]:
    """Sentences and a table, worded from the findings' `difference` rows, on whether injected facts score above
    held-back ones at the last step: each difference with its 95% bootstrap interval and Holm-adjusted p-value."""
    rows = main_findings(select(found, "difference", "facts")) if found is not None and len(found) else found
    if rows is None or rows.empty:
        return []
    several = rows["benchmark"].nunique() > 1
    seeds = int(rows["n_seeds"].max())
    over = f"{seeds} seeds and the prompts" if seeds > 1 else "the prompts"
    lines = ["## Injected vs held back", "",
             f"P@1 at step {rows['step'].max():,.0f}, the last checkpoint: injected minus held-back facts, with a "
             f"95% percentile bootstrap interval over {over} (each group's prompts resampled on their own) and a "
             "two-sided bootstrap p-value, Holm-adjusted over the relations. A relation's facts are *learned* when "
             "the difference is above 0, not when the injected facts beat the untrained model (the held-back "
             "facts are the control).", ""]
    for row in rows.itertuples(index=False):
        name = f"{esc(row.benchmark)} / {esc(row.subject)}" if several else esc(row.subject)
        lines.append(f"- **{name}**: difference {row.value:+.2f} [{row.low:+.2f}, {row.high:+.2f}], Holm p "
                     f"{row.p_adjusted:.3g}, n {int(row.n)} per group — {VERDICTS.get(row.verdict, row.verdict)}.")
    shown = pd.DataFrame({"benchmark": rows["benchmark"], "relation": rows["subject"], "step": rows["step"].astype(int),
                          "difference": rows["value"], "low": rows["low"], "high": rows["high"],
                          "p_value": rows["p_value"], "p_holm": rows["p_adjusted"], "n": rows["n"],
                          "verdict": rows["verdict"]})
    shown = shown.drop(columns=[] if several else ["benchmark"])
    return [*lines, "", *(page.table(shown, ("injected-vs-held-back",)) if page else table(shown))]


def _emergence_table(page: Page, found: pd.DataFrame) -> list[str]:
    """Per relation, when the facts arrived (the findings' `emerged` rows for facts)."""
    rows = select(found, "emerged", "facts") if found is not None and len(found) else pd.DataFrame()
    if rows.empty:
        return []
    shown = pd.DataFrame({
        "benchmark": rows["benchmark"], "relation": rows["subject"], "signal": rows["group"], "run": rows["run"],
        "verdict": rows["verdict"], "arrived_after": rows["step_low"], "arrived_by": rows["step"],
        "first_cleared": rows["first_cleared"], "value": rows["value"], "low": rows["low"], "high": rows["high"],
        "steps_probed": rows["steps"].str.count(",") + 1})
    steps = ["arrived_after", "arrived_by", "first_cleared"]
    shown[steps] = shown[steps].round().astype("Int64")  # steps are whole numbers (missing: not arrived)
    drop = [c for c in ("run", "benchmark") if shown[c].nunique() == 1]
    return ["## When each relation arrives", "",
            "A relation's facts *arrived* in (arrived_after, arrived_by] when injected − held back (without "
            "injected facts: P@1 against the random-init model) clears its bar at arrived_by and at every later "
            "probed step; *transient*: cleared (first_cleared) but not at the last step; *not established*: never. "
            f"Example: {esc(rows['subject'].iloc[0])} {arrival(rows.iloc[0])}.", "",
            *page.table(shown.drop(columns=drop), ("emergence",))]


P_AT_1 = ["benchmark", "relation", "group", "run", "checkpoint", "step", "p_at_1", "p_at_1_low", "p_at_1_high", "n"]


def p_at_1_curves(scores: pd.DataFrame | None) -> pd.DataFrame:
    """The P@1 curves as data: every benchmark × relation × group × step of the scores table's main rows (pooled
    over seeds where it has such rows), with the interval and the prompts counted; integer steps."""
    if scores is None or scores.empty:
        return pd.DataFrame(columns=P_AT_1)
    rows = main_rows(scores)
    rows = rows[[c for c in P_AT_1 if c in rows]].sort_values(["benchmark", "relation", "group", "step"],
                                                                kind="stable")
    return rows.astype({"step": "int64", "n": "Int64"}).astype(
        {c: "float64" for c in ("p_at_1", "p_at_1_low", "p_at_1_high")}).reset_index(drop=True)


def run_data(page: Page, tables: dict, results: Path | None, stem: str) -> list[str]:
    """The P@1 curves to download (data/`stem`.csv and .parquet: p_at_1-by-step unless a section took that) and
    the run's own files shipped with the site (data/manifest.json, data/findings.parquet and .csv), with the
    results folder named."""
    lines = ["## The run's data", ""]
    curves = p_at_1_curves(tables.get("scores"))
    if len(curves):
        lines += ["P@1 of every benchmark, relation and fact group at every probed step (the main line: pooled over "
                  "seeds where there are several), with its 95% interval (`p_at_1_low`, `p_at_1_high`) and the "
                  "prompts scored (`n`).", "",
                  *page.downloads(curves, stem, what="the P@1 curves")]
    data = page.docs / "data"
    manifest = Path(results) / "manifest.json" if results is not None else None
    if manifest is not None and manifest.is_file():
        shutil.copyfile(manifest, data / "manifest.json")
    else:
        (data / "manifest.json").write_text(json.dumps(tables.get("manifest", {}), indent=2, default=str) + "\n",
                                            encoding="utf-8")
    files = ["[manifest.json](data/manifest.json) (what was run, on what, with which options)"]
    found = tables.get("findings")
    if found is not None:
        source = Path(results) / "findings.parquet" if results is not None else None
        if source is not None and source.is_file():
            shutil.copyfile(source, data / "findings.parquet")
        else:
            found.to_parquet(data / "findings.parquet", index=False)
        found.to_csv(data / "findings.csv", index=False)
        files.append("the findings, every claim of this report with the rule that decided it: "
                     "[findings.parquet](data/findings.parquet) · [CSV](data/findings.csv)")
    where = (f"This site was built from the results folder <code>{esc(Path(results).resolve())}</code>, which "
             "holds every table of the run as Parquet. " if results is not None else "")
    return [*lines, where + "Shipped with this site: " + "; ".join(files) + ".", ""]


def citation(tables: dict, results: Path | None = None) -> dict:
    """What identifies this run, from its manifest and checkpoints table: probekit's version (and commit where
    the manifest has one), the run id and results folder, the checkpoints and their steps, the seeds, the
    inputs with their checksums, the analyses with their options and the statistics' settings."""
    manifest, checkpoints = tables.get("manifest", {}), tables.get("checkpoints")
    versions = manifest.get("versions", {})
    cited: dict = {"probekit": str(versions.get("probekit", "unknown"))}
    commit = manifest.get("commit") or versions.get("commit") or versions.get("probekit_commit")
    if commit:
        cited["commit"] = str(commit)
    cited["run_id"] = str(manifest.get("run_id", ""))
    if results is not None:
        cited["results"] = Path(results).resolve().name
    cited["created"] = str(manifest.get("created", ""))
    if checkpoints is not None and len(checkpoints):
        probed = checkpoints[checkpoints["step"].notna()] if "step" in checkpoints else checkpoints
        steps = probed["step"].astype(int) if "step" in probed else pd.Series(dtype=int)
        cited["checkpoints"] = {"count": int(len(probed)),
                                "series": sorted({str(r) for r in probed.get("run", pd.Series(dtype=str)).dropna()}),
                                "steps": f"{steps.min()}..{steps.max()}" if len(steps) else None}
        seeds = checkpoints["seed"].dropna() if "seed" in checkpoints else pd.Series(dtype=str)
        cited["seeds"] = sorted({int(s) if str(s).isdigit() else str(s) for s in seeds}, key=str)
    inputs = {}
    for kind, items in manifest.get("inputs", {}).items():
        for name, entry in items.items():
            entry = entry if isinstance(entry, dict) else {}
            inputs[f"{kind}/{name}"] = {k: str(entry[k]) for k in ("sha256", "file_sha256") if entry.get(k)}
    cited["inputs"] = inputs
    cited["analyses"] = {name: manifest.get("options", {}).get(name, {}) or {}
                         for name in manifest.get("analyses", [])}
    if manifest.get("at"):
        cited["at"] = manifest["at"]
    if manifest.get("statistics"):
        cited["statistics"] = manifest["statistics"]
    return json.loads(json.dumps(cited, default=str))  # plain values only


def cite(tables: dict, results: Path | None = None) -> list[str]:
    """The "Cite this run" block: `citation` as YAML in a code block (Markdown escapes a code block's text)."""
    text = yaml.safe_dump(citation(tables, results), sort_keys=False, allow_unicode=True, width=1000)
    block = ["    " + line.replace("\r", " ") for line in text.splitlines()]
    return ["## Cite this run", "",
            "Name these with any figure or number taken from this report (the same in `data/manifest.json`):", "",
            *block, ""]
