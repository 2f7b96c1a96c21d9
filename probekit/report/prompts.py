"""The Prompts page and the prompt page: every prompt in a searchable table, each opening its gold rank and
top 5 over training. Their data ships with the site as scripts, compact: the table's index (a row per prompt),
and per hundred prompts one detail file (every prompt's gold rank and top 5 at every checkpoint, tokens stored
once and referenced by index) that a prompt's page loads for that prompt alone."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd

from probekit.report.markdown import esc
from probekit.report import charts
from probekit.report.page import Page
from probekit.core.schema import CONTROL

KEYS = ["benchmark", "relation", "group", "template", "subject", "answer", "prompt"]
TOP = 5


def prompt_data(predictions: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """(data for `window.probekitPrompts`, the index table): one run's checkpoints in training order (the
    first run; with several seeds, the first seed), each prompt's final rank and first step at rank 1."""
    rows = predictions[(predictions["checkpoint"] != CONTROL)].dropna(subset=["step"])
    run = str(rows["run"].iloc[0]) if len(rows) else ""
    rows = rows[rows["run"] == run].sort_values("step", kind="stable")
    steps = [int(s) for s in sorted(rows["step"].unique())]
    position = {s: i for i, s in enumerate(steps)}
    codes = rows.groupby(KEYS, sort=False, dropna=False).ngroup().to_numpy()
    firsts = rows.drop_duplicates(KEYS)[KEYS].astype(str).to_dict("records")
    ranks: list[list] = [[None] * len(steps) for _ in firsts]
    top: list[list] = [[[] for _ in steps] for _ in firsts]
    vocab: dict[str, int] = {}
    for code, step, rank, tokens in zip(codes, rows["step"], rows["gold_rank"], rows["topk_tokens"]):
        i = position[int(step)]
        ranks[code][i] = None if pd.isna(rank) else int(rank)
        top[code][i] = [vocab.setdefault(str(t), len(vocab)) for t in list(tokens)[:TOP]]
    records, index = [], []
    for number, info in enumerate(firsts):
        hits = [s for s, r in zip(steps, ranks[number]) if r == 1]
        final = next((r for r in reversed(ranks[number]) if r is not None), None)
        summary = {"id": number, **info, "final_rank": final, "first_correct": hits[0] if hits else None}
        records.append({**summary, "ranks": ranks[number], "top": top[number]})
        index.append(summary)
    data = {"run": run, "steps": steps, "vocab": list(vocab), "prompts": records}
    frame = pd.DataFrame(index, columns=["id", *KEYS, "final_rank", "first_correct"])
    return data, frame.astype({"final_rank": "Int64", "first_correct": "Int64"})


INDEX_COLUMNS = ["id", "relation", "group", "prompt", "answer", "final_rank", "first_correct"]
"""What the prompt table lists and searches (assets/prompt-index.js): one array per prompt, no key repeated."""
CHUNK = 100
"""Prompts per detail file (assets/prompts/<n>.js, the prompts numbered n·CHUNK to n·CHUNK + CHUNK − 1): a
prompt's page loads its own file only, so neither page loads every prompt's ranks and top 5 (megabytes on
a run of thousands of prompts)."""


def write_prompt_files(folder: Path, data: dict, chunk: int = CHUNK) -> None:
    """The table's index (`window.probekitPrompts`: run, columns and a row per prompt) and the detail files of
    `chunk` prompts each (`window.probekitPromptChunks[n]`: steps, the top-5 tokens' vocabulary and each
    prompt's ranks and top 5), as scripts, since Chromium refuses fetch() from file://."""
    script = charts.script_json
    rows = [[record[c] for c in INDEX_COLUMNS] for record in data["prompts"]]
    (folder / "prompt-index.js").write_text(
        "window.probekitPrompts = " + script({"run": data["run"], "columns": INDEX_COLUMNS, "rows": rows}) + ";\n",
        encoding="utf-8")
    chunks = folder / "prompts"
    chunks.mkdir(parents=True, exist_ok=True)
    for n in range(0, len(data["prompts"]), chunk):
        part = data["prompts"][n:n + chunk]
        used = sorted({k for record in part for top in record["top"] for k in top})
        local = {k: i for i, k in enumerate(used)}
        prompts = {str(r["id"]): {**{c: r[c] for c in ("relation", "group", "prompt", "answer")},
                                  "ranks": r["ranks"], "top": [[local[k] for k in top] for top in r["top"]]}
                   for r in part}
        (chunks / f"{n // chunk}.js").write_text(
            f"(window.probekitPromptChunks = window.probekitPromptChunks || {{}})[{n // chunk}] = "
            + script({"steps": data["steps"], "vocab": [data["vocab"][k] for k in used], "prompts": prompts})
            + ";\n", encoding="utf-8")


def prompt_pages(page: Page, tables: dict) -> None:
    """Every prompt in a searchable, sortable table, each opening its page: gold rank and top 5 over training."""
    predictions = tables["predictions"]
    if predictions.empty:
        return
    data, index = prompt_data(predictions)
    write_prompt_files(page.docs / "assets", data)
    groups = "".join(f'<option value="{esc(g)}">{esc(g)}</option>' for g in sorted(index["group"].unique()))
    heads = "".join(f'<th data-key="{key}">{label}</th>' for key, label in (
        ("relation", "relation"), ("group", "group"), ("prompt", "prompt"), ("answer", "answer"),
        ("final_rank", "final rank"), ("first_correct", "first step correct")))
    page.add("prompts.md", "# Prompts", "",
             f"All {len(index):,} prompts (seed shown: {esc(data['run'])}). Type to filter; click a column to sort; "
             "click a prompt for its gold rank and top 5 over training.", "",
             '<div class="probekit-prompts" markdown="0"><input type="search" placeholder="filter: country, '
             f'answer, relation…" aria-label="filter prompts"><select name="group"><option value="">every group'
             f'</option>{groups}</select><span class="probekit-count"></span><table><thead><tr>{heads}</tr></thead>'
             "<tbody></tbody></table></div>", "",
             '<script src="assets/prompt-index.js"></script>', "",
             *page.downloads(index.drop(columns=["id"]), page.unique("prompts")))
    page.configure("prompts.md", title="Prompts", hide_toc=True)
    page.add("prompt.md", "# Prompt", "",
             f'<div class="probekit-prompt" data-chunk="{CHUNK}" data-count="{len(index)}" markdown="0">'
             '<h2 class="probekit-prompt-title"></h2>'
             '<div class="probekit-view"></div><table><thead><tr><th>step</th><th>gold rank</th><th>1st</th>'
             "<th>2nd</th><th>3rd</th><th>4th</th><th>5th</th></tr></thead><tbody></tbody></table></div>", "",
             f'<script type="application/json" data-vega id="probekit-prompt-chart">{prompt_chart()}</script>', "",
             "[All prompts](prompts.md)", "")
    page.configure("prompt.md", title="Prompt", hide_toc=True, nav=False)  # opened from the table


def prompt_chart() -> str:
    """The prompt page's chart, compiled to Vega: one prompt's gold rank (log, 1 at the top) against step; the
    page fills its `ranks` data with the prompt chosen."""
    spec = {"$schema": alt.SCHEMA_URL, "width": "container", "height": 220,
            "data": {"name": "ranks", "values": []}, "mark": {"type": "line", "point": True},
            "params": [{"name": "zoom", "select": {"type": "interval", "encodings": ["x"]}, "bind": "scales"}],
            "encoding": {
                "x": {"field": "step", "type": "quantitative", "title": "training step",
                      "scale": {"type": "linear"}, "axis": {"format": ",d"}},
                "y": {"field": "gold_rank", "type": "quantitative", "title": "gold rank (1 = top)",
                      "scale": {"type": "log", "reverse": True}},
                "tooltip": [{"field": "step", "type": "quantitative", "format": ",d"},
                            {"field": "gold_rank", "type": "quantitative"}]}}
    return charts.script_json(charts.compile_vega(spec))
