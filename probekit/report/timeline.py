"""Facts, grammar and syntax on one training-step axis: which arrives first.

Drawn from the summary tables (facts: P@1 of each injected relation; grammar: minimal-pair accuracy over the whole
benchmark; syntactic heads: the best head's UUAS; probes: selectivity at the most selective layer) and worded
from the findings rows (`probekit.analyses.findings`): each signal's `arrives` row — its arrival interval (last
probed step not cleared, first step of the lasting clearance] on its own checkpoints, or transient, or not
established — and the `order` rows: two signals are ordered only when their intervals do not overlap, else they
tie. The page computes no statistic.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
from matplotlib.figure import Figure

from probekit.analyses.findings import main_findings, main_rows, select
from probekit.figures import plain, step_axis, subplots
from probekit.palette import BASELINE, DOTTED, SOLID, colour, group_styles, mpl_dash
from probekit.report.charts_lines import band_chart, band_frame, download
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "timeline.md", "Which arrives first"
ARRIVAL = ["signal", "kind", "verdict", "after", "by", "first_cleared", "through", "steps_probed", "run"]
NAMES = {"upos": "UPOS probe", "deprel": "arc-label probe", "distance": "structural probe", "depth": "depth probe"}


def _main(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the series' main line (`probekit.analyses.findings.main_rows`), of its first run."""
    rows = main_rows(rows)
    return rows[rows["run"] == rows["run"].iloc[0]] if len(rows) else rows


def facts_lines(scores: pd.DataFrame | None) -> pd.DataFrame:
    """Per step and fact relation (injected ones where the series has them): P@1 with its interval."""
    if scores is None or scores.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high"])
    rows = _main(scores)
    if (rows["group"] == "injected").any():
        rows = rows[rows["group"] == "injected"]
    return pd.DataFrame({"line": rows["relation"].astype(str), "run": rows["run"], "step": rows["step"].astype(float),
                         "value": rows["p_at_1"], "low": rows["p_at_1_low"], "high": rows["p_at_1_high"],
                         "benchmark": rows["benchmark"], "group": rows["group"], "n": rows["n"]})


def grammar_lines(accuracy: pd.DataFrame | None) -> pd.DataFrame:
    """Per step and minimal-pair benchmark: accuracy over all pairs with its interval."""
    if accuracy is None or accuracy.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high"])
    rows = _main(accuracy[(accuracy["level"] == "all")])
    return pd.DataFrame({"line": rows["benchmark"].astype(str), "run": rows["run"], "step": rows["step"].astype(float),
                         "value": rows["accuracy"], "low": rows["accuracy_low"], "high": rows["accuracy_high"],
                         "n": rows["n"]})


def head_lines(uuas: pd.DataFrame | None) -> pd.DataFrame:
    """Per step: the UUAS of the best layer's best head (by UUAS) with its interval."""
    if uuas is None or uuas.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high", "layer"])
    rows = _main(uuas[uuas["best_in_layer"] & (uuas["layer"] >= 0)]).dropna(subset=["uuas"])
    if rows.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high", "layer"])
    best = rows.loc[rows.groupby("step")["uuas"].idxmax()].sort_values("step")
    return pd.DataFrame({"line": "best head's UUAS", "run": best["run"], "step": best["step"].astype(float),
                         "value": best["uuas"], "low": best["uuas_low"], "high": best["uuas_high"],
                         "layer": best["layer"]})


def probe_lines(scores: pd.DataFrame | None) -> pd.DataFrame:
    """Per step and probe: the selectivity of the layer most selective at that step, with its interval."""
    if scores is None or scores.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high", "layer"])
    rows = _main(scores).dropna(subset=["selectivity"])
    if rows.empty:
        return pd.DataFrame(columns=["line", "run", "step", "value", "low", "high", "layer"])
    best = rows.loc[rows.groupby(["probe", "step"])["selectivity"].idxmax()].sort_values(["probe", "step"])
    return pd.DataFrame({"line": best["probe"].map(lambda p: NAMES.get(p, p)), "run": best["run"],
                         "step": best["step"].astype(float), "value": best["selectivity"],
                         "low": best["selectivity_low"], "high": best["selectivity_high"], "layer": best["layer"]})


def arrival_table(tables: dict) -> pd.DataFrame:
    """One row per signal, from the findings' `arrives` rows: its verdict (arrived, transient, not_established),
    the arrival interval (`after`, `by`], the first step it cleared at all, through what (the relation, layer or
    phenomenon that arrived first) and on how many probed steps it was judged."""
    found = tables.get("findings")
    if found is None or found.empty:
        return pd.DataFrame(columns=ARRIVAL)
    rows = main_findings(select(found, "arrives", "timeline"))
    step = lambda c: pd.to_numeric(rows[c], errors="coerce").round().astype("Int64")  # noqa: E731
    return pd.DataFrame({"signal": rows["subject"], "kind": rows["statistic"], "verdict": rows["verdict"],
                         "after": step("step_low"), "by": step("step_high"), "first_cleared": step("first_cleared"),
                         "through": rows["detail"], "steps_probed": rows["steps"].fillna("").str.count(",") + 1,
                         "run": rows["run"]}).reset_index(drop=True)


def which_first(tables: dict) -> str:
    """The sentence, from the findings' `order` and `arrives` rows: the signals that arrived in order where their
    intervals allow it (ties said), then those transient or never established."""
    found = tables.get("findings")
    arrival = arrival_table(tables)
    if arrival.empty:
        return "nothing to compare: the run has none of facts, minimal pairs, syntax heads or probes"
    came = arrival[arrival["verdict"] == "arrived"].sort_values(["by", "after"], kind="stable")
    if came.empty:
        text = "no signal arrives (clears its bar from some step to the last)"
    else:
        order = main_findings(select(found, "order", "timeline"))
        verdict = {frozenset(str(s).split(" | ")): (v, d) for s, v, d in zip(order["subject"], order["verdict"],
                                                                             order["detail"])}
        names = came["signal"].tolist()
        spans = [_span(r) for r in came.itertuples()]
        parts = [f"{names[0]} ({spans[0]})"]
        for k in range(1, len(names)):
            v, first = verdict.get(frozenset((names[k - 1], names[k])), ("tie", ""))
            joint = "then" if v == "before" and first == names[k - 1] else "tied with it,"
            parts.append(f"{joint} {names[k]} ({spans[k]})")
        text = "in order of arrival: " + " ".join(parts)
    transient = arrival.loc[arrival["verdict"] == "transient", "signal"].tolist()
    never = arrival.loc[~arrival["verdict"].isin(["arrived", "transient"]), "signal"].tolist()
    if transient:
        text += f"; transient (cleared, but not at the last step): {', '.join(transient)}"
    if never:
        text += f"; not established: {', '.join(never)}"
    return text + (" (each arrival is an interval on its own probed steps; overlapping intervals tie)")


def _span(row) -> str:
    return (f"after step {row.after:,.0f}, by {row.by:,.0f}" if pd.notna(row.after)
            else f"by step {row.by:,.0f}, its first probed")


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
            ax.fill_between(line["step"], line["low"], line["high"], color=colour(k), alpha=0.2, lw=0)
            ax.plot(line["step"], line["value"], color=colour(k), marker="o", ms=2.5, label=str(name))
        if reference is not None:
            ax.axhline(reference, color=BASELINE[0], lw=1, ls=mpl_dash(BASELINE[1]))
        mine = arrival[(arrival["signal"].map(_kind_of) == kind) & (arrival["verdict"] == "arrived")]
        for k, row in enumerate(mine.itertuples()):
            start = row.after if pd.notna(row.after) else row.by
            ax.axvspan(start, row.by, color=BASELINE[0], alpha=0.12, lw=0)
            ax.axvline(row.by, color=BASELINE[0], lw=1, ls=mpl_dash(DOTTED))
            ax.annotate(row.signal.split(": ")[-1], (row.by, 1 - 0.12 * (k + 1)), fontsize=6,
                        xycoords=("data", "axes fraction"), xytext=(3, 0), textcoords="offset points")
        ax.set_ylabel(label, fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        step_axis(ax, steps)
        ax.set_xlabel("")
    axes[-1, 0].set_xlabel("training step")
    fig.suptitle("Raw values, one row per kind (scales differ), on a shared step axis; band: 95% interval; "
                 "dashed: chance or 0; shaded to the dotted line: the arrival interval (findings)", fontsize=8)
    fig.tight_layout()
    return fig


KINDS = [("facts", "facts: P@1"), ("grammar", "minimal pairs: accuracy"), ("syntax heads", "best head: UUAS"),
         ("probes", "probes: selectivity")]
REFERENCE = {"grammar": ("chance", 0.5), "probes": ("no selectivity", 0.0)}


def timeline_frame(tables: dict) -> pd.DataFrame:
    """What `timeline_chart` draws: per kind of signal (`panel`) and line, the raw value at each step with its
    95% interval (and the layer, for heads and probes); chance (grammar) and 0 (probes) as reference rows."""
    facts = facts_lines(tables.get("scores"))
    if len(facts) and facts["group"].nunique() > 1:
        facts = facts.assign(line=[f"{r} ({str(g).replace('_', '-')})" for r, g in zip(facts["line"], facts["group"])])
    lines = {"facts": facts, "grammar": grammar_lines(tables.get("pair_accuracy")),
             "syntax heads": head_lines(tables.get("syntax_uuas")), "probes": probe_lines(tables.get("probe_scores"))}
    parts = []
    for kind, label in KINDS:
        rows = lines[kind]
        if not len(rows):
            continue
        extra = {"layer": rows["layer"].astype(float)} if "layer" in rows else {}
        if kind == "facts":
            extra["group"] = rows["group"].astype(str)
        parts.append(band_frame(rows["line"], rows["step"], rows["value"], rows["low"], rows["high"], rows.get("n"),
                                panel=label, **extra))
        if kind in REFERENCE:
            name, value = REFERENCE[kind]
            parts.append(band_frame([name], None, value, kind="reference", panel=label))
    return pd.concat(parts, ignore_index=True) if parts else band_frame([], [], [])


def arrival_spans(tables: dict) -> pd.DataFrame:
    """The arrival interval (after, by] of each signal that arrived, in its kind's panel."""
    arrival = arrival_table(tables)
    came = arrival[arrival["verdict"] == "arrived"]
    labels = dict(KINDS)
    return pd.DataFrame({"panel": came["signal"].map(lambda s: labels[_kind_of(s)]), "signal": came["signal"],
                         "from": came["after"].fillna(came["by"]).astype(float), "step": came["by"].astype(float)})


def timeline_chart(long: pd.DataFrame, spans: pd.DataFrame | None = None) -> alt.TopLevelMixin:
    """Facts, grammar, syntactic heads and probes on one step axis, one panel each (own y scale), raw values
    with their 95% bands; references dashed; the arrival intervals shaded up to a dotted rule."""
    lines = long[long["kind"] == "line"].drop_duplicates("series")
    dashes = {g: d for g, (_, d) in group_styles(lines["group"].dropna()).items()} if "group" in lines else {}
    styles = {row.series: (colour(k), dashes.get(getattr(row, "group", None), SOLID))
              for k, row in enumerate(lines.itertuples())}
    styles.update({name: BASELINE for name, _ in REFERENCE.values() if name in set(long["series"])})
    return band_chart(long, styles, "value", "Raw values, one panel per kind (scales differ), on a shared step "
                      "axis; band: 95% interval; dashed grey: chance or 0; shaded to the dotted line: the arrival "
                      "interval (findings)", legend_title="line", columns=1, domain=None, independent_y=True,
                      spans=spans, extra_tooltips=(alt.Tooltip("panel:N", title="kind"),
                                                   alt.Tooltip("layer:Q", title="layer")))


def arrival_display(arrival: pd.DataFrame) -> pd.DataFrame:
    """The arrival table as shown: steps with thousands separators, empty where there is none."""
    shown = arrival.copy()
    for column in ("after", "by", "first_cleared"):
        shown[column] = [f"{v:,.0f}" if pd.notna(v) else "" for v in arrival[column]]
    return shown


def _kind_of(signal: str) -> str:
    """The row of the figure a signal is drawn in."""
    if signal.startswith("facts"):
        return "facts"
    if signal.startswith("grammar"):
        return "grammar"
    if signal.startswith("syntactic heads"):
        return "syntax heads"
    return "probes"


def section(page: Page, tables: dict) -> None:
    """The page "Which arrives first": the chart, the sentence and the table, when the run holds at least two
    kinds of signal."""
    arrival = arrival_table(tables)
    if arrival.empty or arrival["signal"].map(_kind_of).nunique() < 2:
        return
    sentence = which_first(tables)
    page.add(PAGE, f"# {TITLE}: facts, grammar, syntax", "",
             "Each signal against its own bar (the findings' rules) — facts: injected − held back above 0; grammar: "
             "minimal-pair accuracy above chance; syntactic heads: a relation's best head, and the best head's "
             "UUAS, above both the random-init model's and the structural baseline; probes: selectivity above the "
             "random-init model's. A signal *arrives* in (after, by] when it clears its bar at `by` and at every "
             "later probed step, `after` being the last probed step before that it did not; signals are probed at "
             "different steps, so each interval is on the signal's own checkpoints and two signals are ordered "
             "only when their intervals do not overlap.", "", f"**{esc(sentence[0].upper() + sentence[1:])}.**", "")
    page.finding(f"Which arrives first: {esc(sentence)}.")
    long = timeline_frame(tables)
    page.chart(PAGE, ("timeline", "by-step"), timeline_chart(long, arrival_spans(tables)),
               "Facts, grammar, syntactic heads and probes on one step axis (raw values, 95% bands; shaded: "
               "arrival interval); click a legend entry to pick out its line",
               data=download(long, {"panel": "kind", "series": "line"}))
    page.add(PAGE, *page.table(arrival_display(arrival), ("timeline", "arrivals"), data=arrival))
    page.configure(PAGE, title=TITLE)
