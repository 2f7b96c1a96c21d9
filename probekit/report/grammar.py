"""The Grammar page, from the pairs analysis: minimal-pair accuracy against training step, beside the facts.

Made from the `pair_accuracy` table (and `scores` for the facts) only, with the table's own 95% bootstrap
intervals over pairs (`accuracy_low`, `accuracy_high`; with several seeds, the rows pooled over them), the
one definition of the interval everywhere on the page and in the Overview. Chance is 0.5; for BLiMP the
paper's 5-gram, LSTM, Transformer-XL and GPT-2 and the human agreement are drawn as reference lines. The page
says in words what the last checkpoint shows, chance included: an accuracy whose interval contains 0.5 is
reported as chance, never as learning; ties (both sentences scored alike, e.g. when they tokenize alike) are
misses and said so.
"""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from probekit.benchmarks.pairs import BLIMP, blimp_baselines
from probekit.figures import plain, step_axis, subplots
from probekit.analyses.findings import main_findings, main_rows, select
from probekit.palette import BASELINE, DIVERGING, SOLID, colour, group_styles, mpl_dash
from probekit.report.charts import plain_data
from probekit.report.charts_lines import band_chart, band_frame, download
from probekit.report.findings import arrival, bracketed
from probekit.report.markdown import esc
from probekit.report.page import Page

PAGE, TITLE = "grammar.md", "Grammar"
REFERENCES = ("5-gram", "LSTM", "GPT-2", "human")  # the BLiMP paper's; Transformer-XL ≈ LSTM: left out
CHANCE = "chance"
SERIES = ["run", "name", "step", "accuracy", "accuracy_low", "accuracy_high", "n", "ties"]


def _series(accuracy: pd.DataFrame, level: str) -> pd.DataFrame:
    """The rows of one level drawn as lines: per run × name × step, accuracy with its interval, n and ties.
    With several seeds, only the rows pooled over them; the random-init control left out; of checkpoints
    given twice under one run name, the first."""
    rows = main_rows(accuracy[accuracy["level"] == level])
    rows = rows.assign(**{c: rows[c].astype(float) for c in ("accuracy", "accuracy_low", "accuracy_high", "n")},
                       ties=rows["ties"].astype(float).fillna(0), run=rows["run"].astype(str))
    rows = rows[SERIES].drop_duplicates(["run", "name", "step"])  # one row per run and step, as the table has
    return rows.sort_values(["run", "name", "step"], kind="stable", ignore_index=True)


def _baselines(benchmark: str) -> pd.DataFrame | None:
    return blimp_baselines() if benchmark.split(":")[0].split("@")[0] == BLIMP else None


@plain
def phenomenon_curves(accuracy: pd.DataFrame, baselines: pd.DataFrame | None = None) -> Figure:
    """Accuracy per phenomenon (one panel each, the whole benchmark first) against step, with its 95%
    bootstrap band from the table (a line per run where several models were probed); chance and, for
    BLiMP, the paper's models and humans as horizontal reference lines."""
    curves = pd.concat([_series(accuracy, "all"), _series(accuracy, "phenomenon")], ignore_index=True)
    names = ["all", *sorted(set(curves["name"]) - {"all"})]
    runs = list(dict.fromkeys(curves["run"]))
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, sharey=True)
    colors = {model: colour(len(runs) + k) for k, model in enumerate(REFERENCES)}
    for ax, name in zip(axes.flat, names):
        for i, run in enumerate(runs):
            line = curves[(curves["name"] == name) & (curves["run"] == run)]
            ax.fill_between(line["step"], line["accuracy_low"], line["accuracy_high"], color=colour(i), alpha=0.2,
                            lw=0)
            ax.plot(line["step"], line["accuracy"], color=colour(i), marker="o", ms=3,
                    label=run if len(runs) > 1 else None)
        ax.axhline(0.5, color=BASELINE[0], lw=1, ls=mpl_dash(BASELINE[1]))
        if baselines is not None:
            level = "all" if name == "all" else "phenomenon"
            ref = baselines[(baselines["level"] == level) & (baselines["name"] == name)]
            for model in REFERENCES:
                for value in ref.loc[ref["model"] == model, "accuracy"]:
                    ax.axhline(value, color=colors[model], ls=mpl_dash(BASELINE[1]), lw=1.2, label=model)
        step_axis(ax, curves["step"] if len(curves) else [1])
        ax.set_ylim(0, 1)
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_ylabel("accuracy")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        axes.flat[0].legend(handles, labels, fontsize=7, loc="lower right",
                            title="paper" if baselines is not None else None, title_fontsize=7)
    fig.tight_layout()
    return fig


@plain
def paradigm_heatmap(accuracy: pd.DataFrame, phenomenon_of: dict[str, str] | None = None) -> Figure:
    """Accuracy per paradigm (rows, grouped by `phenomenon_of` when given) × checkpoint step (columns);
    0.5 is white. Of the first run, where several models were probed."""
    rows = _series(accuracy, "paradigm")
    first_run = rows[rows["run"] == rows["run"].iloc[0]] if len(rows) else rows
    grid = first_run.pivot(index="name", columns="step", values="accuracy")
    phenomenon_of = phenomenon_of or {}
    grid = grid.loc[sorted(grid.index, key=lambda p: (str(phenomenon_of.get(p, "")), p))]
    fig, ax = subplots(figsize=(min(2 + 0.45 * grid.shape[1], 16), 1 + 0.2 * len(grid)))
    sns.heatmap(grid, ax=ax, cmap="RdBu", vmin=0, vmax=1, center=0.5, cbar_kws={"label": "accuracy"},
                xticklabels=[f"{s:,.0f}" for s in grid.columns], yticklabels=list(grid.index))
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("training step")
    ax.set_ylabel("paradigm (grouped by phenomenon)")
    fig.tight_layout()
    return fig


@plain
def grammar_and_facts(accuracy: pd.DataFrame, scores: pd.DataFrame | None) -> Figure:
    """Minimal-pair accuracy (top, chance 0.5) and fill-mask P@1 (bottom) on one training-step axis:
    which arrives first."""
    panels = 2 if scores is not None and len(scores) else 1
    fig, axes = subplots(panels, 1, figsize=(8, 3.2 * panels), squeeze=False, sharex=True)
    top = axes[0][0]
    steps = []
    for bench, rows in accuracy.groupby("benchmark", sort=False):
        curves = _series(rows, "all")
        for run, line in curves.groupby("run", sort=False):
            steps += line["step"].tolist()
            top.plot(line["step"], line["accuracy"], marker="o", ms=3,
                     label=bench if curves["run"].nunique() == 1 else f"{bench} ({run})")
    top.axhline(0.5, color=BASELINE[0], lw=1, ls=mpl_dash(BASELINE[1]), label="chance")
    top.set_ylim(0, 1)
    top.set_ylabel("minimal pairs: accuracy")
    top.legend(fontsize=8)
    if panels == 2:
        ax = axes[1][0]
        facts = main_rows(scores)
        for (bench, group), rows in facts.groupby(["benchmark", "group"], sort=False):
            line = rows.groupby("step")["p_at_1"].mean()
            steps += line.index.tolist()
            label = bench if group in ("all", "other") else f"{bench} ({group.replace('_', '-')})"
            ax.plot(line.index.astype(float), line.values, marker="o", ms=3, label=label)
        ax.set_ylim(0, 1)
        ax.set_ylabel("facts: P@1 (mean over relations)")
        ax.legend(fontsize=8)
    for row in axes:
        step_axis(row[0], steps or [1])
    fig.tight_layout()
    return fig


def phenomenon_frame(accuracy: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """What `phenomenon_chart` draws: per phenomenon (`panel`, the whole benchmark `all` first) and run, the
    accuracy at each step with its 95% interval, n and ties; chance and, for BLiMP, the paper's models as
    reference rows (kind "reference", no step)."""
    curves = pd.concat([_series(accuracy, "all"), _series(accuracy, "phenomenon")], ignore_index=True)
    names = ["all", *sorted(set(curves["name"]) - {"all"})]
    parts = [band_frame(curves["run"], curves["step"], curves["accuracy"], curves["accuracy_low"],
                        curves["accuracy_high"], curves["n"], panel=curves["name"], ties=curves["ties"].astype(float))]
    parts.append(band_frame([CHANCE] * len(names), None, 0.5, kind="reference", panel=names))
    if baselines is not None:
        for name in names:
            level = "all" if name == "all" else "phenomenon"
            ref = baselines[(baselines["level"] == level) & (baselines["name"] == name)
                            & baselines["model"].isin(REFERENCES)]
            if len(ref):
                parts.append(band_frame(ref["model"], None, ref["accuracy"], kind="reference", panel=name))
    long = pd.concat(parts, ignore_index=True)
    order = {name: k for k, name in enumerate(names)}
    return long.sort_values("panel", key=lambda p: p.map(order), kind="stable", ignore_index=True)


def phenomenon_chart(long: pd.DataFrame, benchmark: str) -> alt.TopLevelMixin:
    """Accuracy per phenomenon (a panel each, `all` first) against step with its 95% band, a line per run;
    chance and the BLiMP paper's models and humans as rules (`phenomenon_frame`)."""
    runs = list(dict.fromkeys(long.loc[long["kind"] == "line", "series"]))
    refs = [m for m in REFERENCES if m in set(long["series"])]
    styles = {**{run: (colour(i), SOLID) for i, run in enumerate(runs)}, CHANCE: BASELINE,
              **{m: (colour(len(runs) + k), BASELINE[1]) for k, m in enumerate(refs)}}
    return band_chart(long, styles, "accuracy", f"{benchmark}: accuracy per phenomenon (band: 95% bootstrap "
                      "interval; dashed: chance and references)", legend_title="run / reference", columns=4,
                      extra_tooltips=(alt.Tooltip("panel:N", title="phenomenon"),))


def paradigm_frame(accuracy: pd.DataFrame, phenomenon_of: dict[str, str] | None = None) -> pd.DataFrame:
    """Per paradigm (grouped by phenomenon) and step, of the first run: accuracy with its interval and n."""
    rows = _series(accuracy, "paradigm")
    rows = rows[rows["run"] == rows["run"].iloc[0]] if len(rows) else rows
    phenomenon_of = phenomenon_of or {}
    out = pd.DataFrame({"run": rows["run"], "phenomenon": rows["name"].map(lambda p: phenomenon_of.get(p, "")),
                        "paradigm": rows["name"], "step": rows["step"].round().astype("Int64"),
                        "accuracy": rows["accuracy"], "low": rows["accuracy_low"], "high": rows["accuracy_high"],
                        "n": rows["n"]})
    return out.sort_values(["phenomenon", "paradigm", "step"], kind="stable", ignore_index=True)


def paradigm_chart(frame: pd.DataFrame, benchmark: str) -> alt.Chart:
    """Accuracy per paradigm (rows, grouped by phenomenon) × checkpoint step (columns); 0.5 is white."""
    order = list(dict.fromkeys(frame["paradigm"]))
    return alt.Chart(plain_data(frame)).mark_rect().encode(
        x=alt.X("step:O", title="training step", axis=alt.Axis(labelAngle=-45)),
        y=alt.Y("paradigm:N", sort=order, title="paradigm (grouped by phenomenon)", axis=alt.Axis(labelLimit=320)),
        color=alt.Color("accuracy:Q", scale=alt.Scale(scheme=DIVERGING, domain=[0, 1], domainMid=0.5),
                        title="accuracy"),
        tooltip=[alt.Tooltip("paradigm:N"), alt.Tooltip("phenomenon:N"), alt.Tooltip("step:O"),
                 alt.Tooltip("accuracy:Q", format=".3f"), alt.Tooltip("low:Q", format=".3f", title="95% low"),
                 alt.Tooltip("high:Q", format=".3f", title="95% high"), alt.Tooltip("n:Q", format=",d", title="pairs")]
    ).properties(width=alt.Step(24), height=alt.Step(13),
                 title=f"{benchmark}: accuracy per paradigm and checkpoint (0.5 white)")


PAIRS_PANEL, FACTS_PANEL = "minimal pairs: accuracy", "facts: P@1"


def grammar_facts_frame(accuracy: pd.DataFrame, scores: pd.DataFrame | None) -> pd.DataFrame:
    """What `grammar_facts_chart` draws: minimal-pair accuracy over all pairs per benchmark (and run), and
    fill-mask P@1 per benchmark, relation and fact group, each with its 95% interval and n; chance for pairs."""
    parts = []
    for bench, rows in accuracy.groupby("benchmark", sort=False):
        curves = _series(rows, "all")
        label = curves["run"].map(lambda r: bench) if curves["run"].nunique() <= 1 else \
            curves["run"].map(lambda r: f"{bench} ({r})")
        parts.append(band_frame(label, curves["step"], curves["accuracy"], curves["accuracy_low"],
                                curves["accuracy_high"], curves["n"], panel=PAIRS_PANEL, group=None))
    parts.append(band_frame([CHANCE], None, 0.5, kind="reference", panel=PAIRS_PANEL, group=None))
    if scores is not None and len(scores):
        facts = main_rows(scores).dropna(subset=["step"])
        facts = facts[facts["run"] == facts["run"].iloc[0]] if len(facts) else facts
        facts = facts.drop_duplicates(["benchmark", "relation", "group", "step"])
        label = [f"{b}: {r}" + ("" if g in ("all", "other") else f" ({str(g).replace('_', '-')})")
                 for b, r, g in zip(facts["benchmark"], facts["relation"], facts["group"])]
        parts.append(band_frame(label, facts["step"], facts["p_at_1"], facts.get("p_at_1_low"),
                                facts.get("p_at_1_high"), facts["n"], panel=FACTS_PANEL,
                                group=facts["group"].astype(str), relation=facts["relation"].astype(str)))
    return pd.concat(parts, ignore_index=True)


def grammar_facts_chart(long: pd.DataFrame) -> alt.TopLevelMixin:
    """Minimal-pair accuracy (chance 0.5) and fill-mask P@1 per relation on one training-step axis: which
    arrives first. Fact groups keep their dash (injected solid, held back dashed)."""
    lines = long[long["kind"] == "line"].drop_duplicates("series")
    dashes = {g: d for g, (_, d) in group_styles(lines["group"].dropna()).items()}
    relations = list(dict.fromkeys(lines["relation"].dropna())) if "relation" in lines else []
    pairs = lines.loc[lines["panel"] == PAIRS_PANEL, "series"].tolist()
    styles = {name: (colour(i), SOLID) for i, name in enumerate(pairs)}
    styles[CHANCE] = BASELINE
    for row in lines[lines["panel"] == FACTS_PANEL].itertuples():
        styles[row.series] = (colour(len(pairs) + relations.index(row.relation)), dashes.get(row.group, SOLID))
    return band_chart(long, styles, "score", "Minimal-pair accuracy and fill-mask P@1 on one training-step axis "
                      "(band: 95% interval; dashed grey: chance)", legend_title="benchmark / relation", columns=1)


def chance_table(found: pd.DataFrame, benchmark: str, baselines: pd.DataFrame | None) -> pd.DataFrame:
    """Per phenomenon (and the whole benchmark, `all`), from the findings rows (`above_chance`, `emerged`): the
    accuracy at the last step with its 95% interval, the verdict after Holm's correction over the phenomena,
    when it arrived, and the paper's 5-gram, GPT-2 and humans where known. A `run` column leads when several
    models (not seeds of one) were probed."""
    rows = main_findings(select(found, "above_chance", "pairs", benchmark=benchmark))
    if rows.empty:
        return pd.DataFrame()
    emerged = main_findings(select(found, "emerged", "pairs", benchmark=benchmark)).set_index(["run", "subject"])
    several = rows["run"].nunique() > 1
    out = []
    for _, row in rows.iterrows():
        arrived = emerged.loc[(row["run"], row["subject"])] if (row["run"], row["subject"]) in emerged.index else None
        arrived = arrived.iloc[0] if isinstance(arrived, pd.DataFrame) else arrived
        record = {**({"run": row["run"]} if several else {}), "phenomenon": row["subject"], "pairs": int(row["n"]),
                  "step": int(row["step"]), "accuracy": row["value"], "low": row["low"], "high": row["high"],
                  "p_holm": row["p_adjusted"], "smallest_detectable": row["mde"],
                  "verdict": VERDICT_WORDS.get(row["verdict"], row["verdict"]),
                  "emerged": arrived["verdict"] if arrived is not None else "",
                  "arrived_after": arrived["step_low"] if arrived is not None else None,
                  "arrived_by": arrived["step"] if arrived is not None and arrived["verdict"] == "emerged"
                  else None}
        if baselines is not None:
            level = "all" if row["subject"] == "all" else "phenomenon"
            ref = baselines[(baselines["level"] == level) & (baselines["name"] == row["subject"])]
            ref = ref.set_index("model")["accuracy"]
            record.update({model: ref[model] if model in ref else float("nan") for model in ("5-gram", "GPT-2",
                                                                                             "human")})
        out.append(record)
    out = pd.DataFrame(out)
    for column in ("arrived_after", "arrived_by"):
        out[column] = pd.to_numeric(out[column], errors="coerce").round().astype("Int64")
    for column in ("accuracy", "low", "high", "p_holm", "smallest_detectable"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    return out


def _number(value, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def chance_display(table: pd.DataFrame) -> pd.DataFrame:
    """`chance_table` as shown: the accuracy with its interval in one cell, steps with thousands separators;
    the download keeps `chance_table`'s numbers."""
    out = table.drop(columns=["accuracy", "low", "high"]).copy()
    out.insert(list(out.columns).index("step") + 1, "accuracy [95%]",
               [f"{a:.3f} [{lo:.3f}, {hi:.3f}]" for a, lo, hi in zip(table["accuracy"], table["low"], table["high"])])
    out["step"] = table["step"].map(lambda v: _number(v, ",.0f"))
    out["pairs"] = table["pairs"].map(lambda v: _number(v, ",.0f"))
    out["p_holm"] = table["p_holm"].map(lambda v: _number(v, ".3g"))
    out["smallest_detectable"] = table["smallest_detectable"].map(lambda v: _number(v, ".3f"))
    for column in ("arrived_after", "arrived_by"):
        out[column] = table[column].map(lambda v: _number(v, ",.0f"))
    for column in ("5-gram", "GPT-2", "human"):
        if column in out:
            out[column] = table[column].map(lambda v: _number(v, ".3f"))
    return out


VERDICT_WORDS = {"above": "above chance", "below": "below chance", "chance": "chance", "too_few": "too few pairs"}


def findings(tables: dict) -> list[str]:
    """The Overview's bullets, worded from the findings rows: per minimal-pair benchmark the last accuracy with
    its interval against chance and when it arrived, and the phenomena above chance after Holm's correction."""
    found = tables.get("findings")
    if found is None or found.empty:
        return []
    found = main_findings(found)
    out = []
    for (bench, run), rows in select(found, "above_chance", "pairs").groupby(["benchmark", "run"], sort=False):
        overall = rows[rows["subject"] == "all"]
        if overall.empty:
            continue
        overall = overall.iloc[0]
        phenomena = rows[rows["subject"] != "all"]
        above = phenomena[phenomena["verdict"] == "above"]["subject"].tolist()
        emerged = select(found, "emerged", "pairs", benchmark=bench, subject="all", run=run)
        name = bench if rows["run"].nunique() == 1 and found["run"].nunique() == 1 else f"{bench} ({run})"
        text = (f"- **{esc(name)}** (minimal pairs) — accuracy at step {overall['step']:,.0f}: {bracketed(overall)} "
                f"over {int(overall['n']):,} pairs, **{VERDICT_WORDS.get(overall['verdict'], overall['verdict'])}**")
        if len(emerged):
            text += f"; above chance {arrival(emerged.iloc[0])}"
        if len(phenomena):
            text += (f"; phenomena above chance after Holm's correction over {len(phenomena)}: "
                     f"{esc(', '.join(above)) if above else 'none'}")
        out.append(text + ".")
    return out


def grammar(page: Page, tables: dict) -> None:
    """The Grammar page, when the run scored minimal pairs (a `pair_accuracy` table)."""
    accuracy = tables.get("pair_accuracy")
    if accuracy is None or not len(accuracy):
        return
    pairs = tables.get("pairs")
    phenomenon_of = dict(zip(pairs["paradigm"], pairs["phenomenon"])) if pairs is not None else {}
    metric = ", ".join(sorted(set(accuracy["metric"])))
    page.add(PAGE, "# Grammar: minimal pairs", "",
             "A minimal pair is two sentences that differ in one place, one acceptable and one not. A checkpoint "
             "gets a pair right when it gives the acceptable sentence the higher pseudo-log-likelihood "
             f"(here: {esc(metric)}; `within_word_l2r` is PLL-word-l2r, Kauf & Ivanova 2023). Chance is 0.5. "
             "Intervals are 95% percentile bootstrap intervals over the pairs (with several seeds, over seeds and "
             "pairs); an accuracy is above chance when its interval lies above 0.5 and, for a phenomenon, it "
             "survives Holm's correction over the benchmark's phenomena; it *arrived* when it stays above chance "
             "from a step to the last (the findings' rules, `probekit.analyses.findings`). A tie (both sentences scored "
             "alike, e.g. because they tokenize alike) is a miss, as in the BLiMP paper.", "")
    found = tables.get("findings")
    for bench, rows in accuracy.groupby("benchmark", sort=False):
        baselines = _baselines(bench)
        table = chance_table(found, bench, baselines) if found is not None else pd.DataFrame()
        mine = {**tables, "findings": select(found, "above_chance", "pairs", benchmark=bench) if found is not None
                else None}
        mine["findings"] = pd.concat([mine["findings"], select(found, "emerged", "pairs", benchmark=bench)]) \
            if found is not None else None
        page.add(PAGE, f"## {esc(bench)}", "", *[line[2:] for line in findings(mine)], "")
        if baselines is not None:
            page.add(PAGE, "Reference lines: the BLiMP paper's models (trained on far more text) and human "
                           "agreement, over all 1,000 pairs of each paradigm (Warstadt et al. 2020, CC BY 4.0); "
                           "a `blimp@N` benchmark is a seeded sample of N pairs per paradigm.", "")
        long = phenomenon_frame(rows, baselines)
        page.chart(PAGE, (bench, "accuracy", "by-phenomenon"), phenomenon_chart(long, bench),
                   f"{bench}: accuracy per phenomenon against training step (band: 95% bootstrap interval); click a "
                   "legend entry to pick out its line",
                   data=download(long, {"panel": "phenomenon", "series": "run", "value": "accuracy"}))
        if len(table):
            page.add(PAGE, "Per phenomenon at the last step (`p_holm`: Holm-adjusted over the benchmark's phenomena; "
                           "`smallest_detectable`: the smallest distance from 0.5 these pairs could detect with 80% "
                           "power; `arrived_after`/`arrived_by`: the arrival interval of a lasting rise above chance).",
                     "", *page.table(chance_display(table), (bench, "phenomena", "last-step"), data=table))
        if rows.loc[rows["level"] == "paradigm", "name"].nunique() > 1:
            grid = paradigm_frame(rows, phenomenon_of)
            page.chart(PAGE, (bench, "accuracy", "by-paradigm"), paradigm_chart(grid, bench),
                       f"{bench}: accuracy per paradigm and checkpoint (hover for the interval)", step_axis=False,
                       data=grid)
    page.add(PAGE, "## Grammar and facts", "")
    both = grammar_facts_frame(accuracy, tables.get("scores"))
    page.chart(PAGE, ("grammar-and-facts", "by-step"), grammar_facts_chart(both),
               "Minimal-pair accuracy and fill-mask P@1 on one training-step axis",
               data=download(both, {"series": "line"}))
    page.configure(PAGE, title=TITLE)
