"""Facts, grammar and syntax on one training-step axis: which arrives first.

Made from the summary tables only, each signal with its own 95% interval and its own bar to clear:
- facts: P@1 of each injected relation (`scores`; every group when none is injected), cleared when its interval
  lies above the random-init control's (`probekit.analyses.stats.emergence_steps`, as on the Overview);
- grammar: minimal-pair accuracy over the whole benchmark (`pair_accuracy`, level `all`), cleared when its
  interval lies above chance, 0.5 (as on the Grammar page);
- syntactic heads: the UUAS of the best head of the best layer (`syntax_uuas`), cleared when its interval lies
  above the random-init control's best (or the run's step 0); and the first step any relation's best head beats
  its fixed-offset baseline (`syntax_best_heads`, `head_emergence`);
- probes: each probe's selectivity at its most selective layer (`probe_scores`), cleared when some layer's
  selectivity interval lies above the random-init control's (`probe_emergence`).
With several seeds the rows pooled over them are used; with several unrelated runs, the run with the most steps.
The values are drawn raw, one row per kind of signal on a shared step axis (their scales differ: P@1, accuracy
against 0.5, UUAS, a difference of accuracies), each arrival marked; the sentence is generated from the table.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from probekit.core.schema import CONTROL, POOLED
from probekit.figures import plain, step_axis, subplots
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "timeline.md", "Which arrives first"
ARRIVAL = ["signal", "kind", "run", "cleared", "arrives_at", "stays_from", "at_last"]
NAMES = {"upos": "UPOS probe", "deprel": "arc-label probe", "distance": "structural probe", "depth": "depth probe"}


def _main(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the series' main line: pooled over seeds where there are, else the run with most steps; the
    random-init control and rows without a step left out."""
    rows = rows[rows["checkpoint"] != CONTROL].dropna(subset=["step"])
    if rows.empty:
        return rows
    if (rows["run"] == POOLED).any():
        return rows[rows["run"] == POOLED]
    longest = rows.groupby("run", sort=False)["step"].nunique().idxmax()
    return rows[rows["run"] == longest]


def _stays(steps: list, flags: list) -> float:
    from probekit.analyses.stats import first_and_last

    return first_and_last(steps, flags)[1]


def _bar(table: pd.DataFrame) -> str:
    """What `probekit.analyses.stats.emergence_steps` compares with: the random-init control, else step 0."""
    return "the random-init control's" if (table["checkpoint"] == CONTROL).any() else "step 0's"


def facts_lines(scores: pd.DataFrame | None) -> pd.DataFrame:
    """Per step and fact relation (injected ones where the series has them): P@1 with its interval."""
    if scores is None or scores.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high"])
    rows = _main(scores)
    if (rows["group"] == "injected").any():
        rows = rows[rows["group"] == "injected"]
    return pd.DataFrame({"line": rows["relation"].astype(str), "run": rows["run"], "step": rows["step"].astype(float),
                         "value": rows["p_at_1"], "low": rows["p_at_1_low"], "high": rows["p_at_1_high"],
                         "benchmark": rows["benchmark"], "group": rows["group"]})


def grammar_lines(accuracy: pd.DataFrame | None) -> pd.DataFrame:
    """Per step and minimal-pair benchmark: accuracy over all pairs with its interval."""
    if accuracy is None or accuracy.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high"])
    rows = _main(accuracy[(accuracy["level"] == "all")])
    return pd.DataFrame({"line": rows["benchmark"].astype(str), "run": rows["run"], "step": rows["step"].astype(float),
                         "value": rows["accuracy"], "low": rows["accuracy_low"], "high": rows["accuracy_high"]})


def head_lines(uuas: pd.DataFrame | None) -> pd.DataFrame:
    """Per step: the UUAS of the best layer's best head (by UUAS) with its interval."""
    if uuas is None or uuas.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high", "layer"])
    rows = _main(uuas[uuas["best_in_layer"]])
    best = rows.loc[rows.groupby("step")["uuas"].idxmax()].sort_values("step")
    return pd.DataFrame({"line": "best head's UUAS", "run": best["run"], "step": best["step"].astype(float),
                         "value": best["uuas"], "low": best["uuas_low"], "high": best["uuas_high"],
                         "layer": best["layer"]})


def probe_lines(scores: pd.DataFrame | None) -> pd.DataFrame:
    """Per step and probe: the selectivity of the layer most selective at that step, with its interval."""
    if scores is None or scores.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high", "layer"])
    rows = _main(scores).dropna(subset=["selectivity"])
    best = rows.loc[rows.groupby(["probe", "step"])["selectivity"].idxmax()].sort_values(["probe", "step"])
    return pd.DataFrame({"line": best["probe"].map(lambda p: NAMES.get(p, p)), "run": best["run"],
                         "step": best["step"].astype(float), "value": best["selectivity"],
                         "low": best["selectivity_low"], "high": best["selectivity_high"], "layer": best["layer"]})


def arrival_table(tables: dict) -> pd.DataFrame:
    """One row per signal: the first step it clears its bar (`arrives_at`, NaN: never), the step from which it
    stays above it to the last checkpoint (for single lines: grammar, the heads' UUAS), and whether it is above
    it at the last checkpoint (for groups: any of its relations or layers)."""
    from probekit.analyses.probes import probe_emergence
    from probekit.analyses.stats import emergence_steps
    from probekit.analyses.syntax_heads import head_emergence

    out = []
    scores = tables.get("scores")
    if scores is not None and len(scores):
        facts = facts_lines(scores)
        found = emergence_steps(scores)
        found = found[found["run"].isin(set(facts["run"])) & found["group"].isin(set(facts["group"]))]
        last = facts[facts["step"] == facts["step"].max()].set_index(["benchmark", "group", "line"])["low"]
        for (bench, group), rows in found.groupby(["benchmark", "group"], sort=False):
            first = rows.loc[rows["emerged_at"].idxmin()] if rows["emerged_at"].notna().any() else None
            at_last = [last.get((bench, group, r.relation), float("nan")) > r.control_high
                       for r in rows.itertuples()]
            out.append({"signal": f"facts: {bench} ({group.replace('_', '-')})", "kind": "facts",
                        "run": rows["run"].iloc[0], "cleared": f"P@1 of a relation above {_bar(scores)}"
                        + (f" (first: {first['relation']})" if first is not None else ""),
                        "arrives_at": rows["emerged_at"].min(), "stays_from": float("nan"), "at_last": any(at_last)})
    for bench, line in grammar_lines(tables.get("pair_accuracy")).groupby("line", sort=False):
        line = line.sort_values("step")
        above = (line["low"] > 0.5).tolist()
        out.append({"signal": f"grammar: {bench}", "kind": "grammar", "run": line["run"].iloc[0],
                    "cleared": "accuracy above chance (0.5)",
                    "arrives_at": float(line.loc[line["low"] > 0.5, "step"].min()),
                    "stays_from": _stays(line["step"].tolist(), above), "at_last": bool(above[-1])})
    uuas = tables.get("syntax_uuas")
    heads = head_lines(uuas)
    if len(heads):
        control = uuas[(uuas["checkpoint"] == CONTROL) & uuas["best_in_layer"]]["uuas_high"]
        start = heads.loc[heads["step"] == heads["step"].min(), "high"]
        bar = float(control.max()) if len(control) else float(start.iloc[0])
        later = heads[heads["step"] > (0 if len(control) else heads["step"].min())]
        above = (heads["low"] > bar).tolist()
        out.append({"signal": "syntactic heads: UUAS", "kind": "syntax heads", "run": heads["run"].iloc[0],
                    "cleared": f"best head's UUAS above {_bar(uuas)} ({bar:.2f})",
                    "arrives_at": float(later.loc[later["low"] > bar, "step"].min()),
                    "stays_from": _stays(heads["step"].tolist(), above), "at_last": bool(above[-1])})
    best = tables.get("syntax_best_heads")
    if best is not None and len(best):
        found = head_emergence(best)
        found = found[found["run"] == _main(best)["run"].iloc[0]] if len(_main(best)) else found.iloc[:0]
        if len(found):
            first = found.loc[found["beats_baseline_at"].idxmin()] if found["beats_baseline_at"].notna().any() else None
            out.append({"signal": "syntactic heads: a relation beats its offset", "kind": "syntax heads",
                        "run": found["run"].iloc[0],
                        "cleared": "a relation's best head above its fixed-offset baseline"
                                   + (f" (first: {first['relation']}, {first['direction']})" if first is not None
                                      else ""),
                        "arrives_at": found["beats_baseline_at"].min(), "stays_from": float("nan"),
                        "at_last": bool(found["beats_at_last"].any())})
    probes = tables.get("probe_scores")
    if probes is not None and len(probes):
        main = _main(probes)
        found = probe_emergence(probes)
        found = found[found["run"].isin(set(main["run"]))]
        bars = emergence_steps(probes, metric="selectivity", keys=("treebank", "probe", "layer"))
        keys = ["treebank", "probe", "layer", "run"]
        last = main[main["step"] == main["step"].max()].merge(
            bars[[*keys, "control_high"]].rename(columns={"control_high": "_bar"}), on=keys)
        above_at_last = set(last.loc[last["selectivity_low"] > last["_bar"], "probe"])
        for probe, rows in found.groupby("probe", sort=False):
            first = rows.loc[rows["selectivity_above_init_at"].idxmin()] if rows[
                "selectivity_above_init_at"].notna().any() else None
            out.append({"signal": NAMES.get(probe, probe), "kind": "probes", "run": rows["run"].iloc[0],
                        "cleared": f"selectivity above {_bar(probes)}"
                                   + (f" (first: layer {int(first['layer'])})" if first is not None else ""),
                        "arrives_at": rows["selectivity_above_init_at"].min(), "stays_from": float("nan"),
                        "at_last": probe in above_at_last})
    return pd.DataFrame(out, columns=ARRIVAL)


def which_first(arrival: pd.DataFrame) -> str:
    """The sentence: the signals in the order they clear their bars, those that never do, and the caveat that
    the order is only as fine as the checkpoints."""
    if arrival.empty:
        return "nothing to compare: the run has none of facts, minimal pairs, syntax heads or probes"
    came = arrival.dropna(subset=["arrives_at"]).sort_values("arrives_at", kind="stable")
    never = arrival[arrival["arrives_at"].isna()]["signal"].tolist()
    parts = []
    for step, rows in came.groupby("arrives_at", sort=True):
        names = [name if last else f"{name} (no longer at the last checkpoint)"
                 for name, last in zip(rows["signal"], rows["at_last"])]
        parts.append(f"{' and '.join(names)} at step {step:,.0f}")
    text = ("first " + ", then ".join(parts)) if parts else "no signal clears its bar at any checkpoint"
    if never and parts:
        text += f"; never within these checkpoints: {', '.join(never)}"
    return text + " (an order is only as fine as the checkpoints: one checkpoint apart may be a tie)"


@plain
def timeline(tables: dict) -> Figure:
    """Facts (P@1), grammar (minimal-pair accuracy), syntactic heads (best head's UUAS) and probes (selectivity
    at the most selective layer) on one step axis, one row each, raw values with their 95% bands, a dotted line
    where each first clears its bar (see `arrival_table`)."""
    kinds = [("facts", "facts: P@1", facts_lines(tables.get("scores")), None),
             ("grammar", "minimal pairs: accuracy", grammar_lines(tables.get("pair_accuracy")), 0.5),
             ("syntax heads", "best head: UUAS", head_lines(tables.get("syntax_uuas")), None),
             ("probes", "probes: selectivity", probe_lines(tables.get("probe_scores")), 0.0)]
    kinds = [k for k in kinds if len(k[2])]
    arrival = arrival_table(tables)
    fig, axes = subplots(max(len(kinds), 1), 1, figsize=(8, 2.3 * max(len(kinds), 1) + 0.6), squeeze=False,
                         sharex=True)
    steps = [s for _, _, lines, _ in kinds for s in lines["step"]] or [1]
    for ax, (kind, label, lines, reference) in zip(axes[:, 0], kinds):
        for k, (name, line) in enumerate(lines.groupby("line", sort=False)):
            line = line.sort_values("step")
            colour = f"C{k % 10}"
            ax.fill_between(line["step"], line["low"], line["high"], color=colour, alpha=0.2, lw=0)
            ax.plot(line["step"], line["value"], color=colour, marker="o", ms=2.5, label=str(name))
        if reference is not None:
            ax.axhline(reference, color="grey", lw=1, ls="--")
        for k, row in enumerate(arrival[(arrival["kind"] == kind) & arrival["arrives_at"].notna()].itertuples()):
            ax.axvline(row.arrives_at, color="black", lw=1, ls=":")
            ax.annotate(row.signal.split(": ")[-1], (row.arrives_at, 1 - 0.12 * (k + 1)), fontsize=6,
                        xycoords=("data", "axes fraction"), xytext=(3, 0), textcoords="offset points")
        ax.set_ylabel(label, fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        step_axis(ax, steps)
        ax.set_xlabel("")
    axes[-1, 0].set_xlabel("training step")
    fig.suptitle("Raw values, one row per kind (scales differ), on a shared step axis; band: 95% interval; "
                 "dashed: chance or 0; dotted: first step it clears its bar", fontsize=8)
    fig.tight_layout()
    return fig


def section(page: Page, tables: dict) -> None:
    """The page "Which arrives first": the chart, the sentence and the table, when the run holds syntax and at
    least one other signal (or two probes' worth of signals)."""
    arrival = arrival_table(tables)
    if arrival.empty or arrival["kind"].nunique() < 2:
        return
    sentence = which_first(arrival)
    page.add(PAGE, f"# {TITLE}: facts, grammar, syntax", "",
             "Each signal against its own bar — facts: a relation's P@1 above the random-init control's (step 0's "
             "where the series starts at step 0); grammar: minimal-pair accuracy above chance; syntactic heads: the "
             "best head's UUAS above the random-init control's (or step 0's), and a relation's best head above its "
             "fixed-offset baseline; probes: selectivity above the random-init control's (or step 0's) — all by 95% "
             "intervals that do not overlap. With several seeds, the rows pooled over them.", "", f"**{esc(sentence[0].upper() + sentence[1:])}.**", "")
    page.finding(f"Which arrives first: {esc(sentence)}.")
    page.figure(PAGE, ("timeline",), timeline(tables),
                "Facts, grammar, syntactic heads and probes on one step axis (raw values, 95% bands; dotted: arrival)")
    shown = arrival.assign(arrives_at=arrival["arrives_at"].map(lambda s: "never" if pd.isna(s) else f"{s:,.0f}"),
                           stays_from=arrival["stays_from"].map(lambda s: "" if pd.isna(s) else f"{s:,.0f}"))
    page.add(PAGE, *page.table(shown, ("timeline",)))
    page.configure(PAGE, title=TITLE)
