"""The Attention and Q/K/V pages, from the capture analysis: head metrics over training (interactive charts), the
head view of every captured checkpoint behind a step slider, and Q·Kᵀ scores beside their attention,
also behind the step slider.

Both pages load fast: bertviz's code, jQuery and d3 are on the page once (files under assets/), and each
checkpoint's numbers are a script of their own under attention/ (weights rounded to 3 decimals), injected by
assets/probekit.js when the slider first reaches that checkpoint. A `<script src>` loads from file://, where
Chromium refuses fetch() of local files; the page weighs the same with 5 checkpoints or 50.
"""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import torch

from probekit.models.activations import Capture
from probekit.analyses.metrics import js_divergence
from probekit.palette import DIVERGING, RANKS
from probekit.report import charts, charts_model
from probekit.report.markdown import esc
from probekit.models.hooks import hook_name
from probekit.report.page import Page, slider
from probekit.views import head_view_parts, head_view_script

HEAD_VIEW_ASSET = "headview.js"  # bertviz's code once, under assets/
LAZY = "attention"  # the folder of the per-checkpoint scripts

ATTENTION, QKV = "attention.md", "qkv.md"


def capture_pages(page: Page, tables: dict, results: Path) -> None:
    """Both pages, on the sentence whose attention changed most over the captured checkpoints."""
    captures = captured(results, tables)
    if "heads" not in tables or not captures:
        return
    first, last = Capture.load(captures[0][2]), Capture.load(captures[-1][2])
    sentence = telling_sentence(first, last)
    attention(page, tables, captures, sentence)
    qkv(page, tables, captures, last, sentence)


def capture_files(manifest: dict) -> dict[str, str]:
    """checkpoint → its capture file (relative to the results folder), as the run's manifest lists them."""
    return dict(manifest.get("captures") or {})


def captured(results: Path, tables: dict) -> list[tuple[str, int, Path]]:
    """(checkpoint, step, capture file) in training order, for the captures the run's manifest lists."""
    files = capture_files(tables["manifest"])
    order = tables["checkpoints"].dropna(subset=["step"]).sort_values("step", kind="stable")
    return [(name, int(step), results / files[name]) for name, step in zip(order["checkpoint"], order["step"])
            if name in files]


def _picked(captures: list, n: int = 3) -> list:
    return captures if len(captures) <= n else [captures[0], captures[len(captures) // 2], captures[-1]]


def attention(page: Page, tables: dict, captures: list, sentence: int) -> None:
    """Head metrics over training, and the head view of every captured checkpoint."""
    heads = tables["heads"]
    page.add(ATTENTION, "# Attention", "",
             "Head metrics after Clark et al. (2019), averaged over the captured sentences' real tokens.", "")
    shown = [c[0] for c in _picked(captures, 4)]
    grid = ["attn_cls", "attn_sep", "attn_prev", "attn_self", "entropy_ratio"]
    data = charts_model.heads_data(heads, grid, shown)
    page.chart(ATTENTION, ("heads", "by-layer-and-head", "at-checkpoints"), charts_model.head_grid(data, grid),
               "Layer × head: attention to [CLS], to [SEP], to the previous token, to itself; entropy / uniform "
               "(hover a cell for the head, its role and the value)", step_axis=False, data=data)
    trajectories(page, ATTENTION, heads, ["entropy_ratio", "attn_prev", "js_prev", "js_final"],
                 "Each head over training, the heads that end most specialised, named by their role; js_prev / "
                 "js_final: Jensen–Shannon divergence (bits) from the previous / final checkpoint")
    page.add(ATTENTION, *step_slider(page, captures, sentence))
    page.configure(ATTENTION, title="Attention", hide_toc=True)


def trajectories(page: Page, name: str, heads, metrics: list[str], caption: str, labelled: int = 8) -> None:
    """Each head's `metrics` against step: the `labelled` heads that end farthest from the median per metric in
    the chart, every head in its download."""
    data = charts_model.heads_data(heads, metrics)
    page.chart(name, ("heads", "-".join(metrics), "by-head-and-step"),
               charts_model.head_trajectories(data, metrics, labelled),
               f"{caption}. Per metric the {labelled} heads that end farthest from the median (every head in the "
               "download); click a head in a legend to fade the others", data=data)


def step_slider(page: Page, captures: list, sentence: int) -> list[str]:
    """bertviz's head view of every captured checkpoint, one shown at a time, chosen with a slider (the last
    checkpoint first). Each head view's weights are a script of their own, loaded when the slider reaches it.
    The attention of every head as a heat map, beside its Q·K scores, is on the Q/K/V page."""
    (page.docs / "assets" / HEAD_VIEW_ASSET).write_text(head_view_script(), encoding="utf-8")
    panes = []
    for name, step, path in captures:
        cap = Capture.load(path)
        html, params = head_view_parts(cap, sentence)
        lazy = lazy_data(page, page.unique("headview", name), params)
        label = f"{esc(name)} (step {step:,})"
        panes.append((label, f'<div class="probekit-headview" data-probekit-lazy="headview" {lazy}>{html}</div>'))
    tokens = " ".join(Capture.load(captures[-1][2]).tokens[sentence])
    return ["## Head view at every checkpoint (interactive, offline)", "",
            f"Sentence: “{esc(tokens)}”. Move the slider to choose the checkpoint; in the head view hover a token, "
            "double-click a head colour to isolate it. The attention of every head as a heat map, beside the Q·K "
            "scores it comes from, is on the [Q/K/V](qkv.md) page.", "",
            *slider(panes)]


def lazy_data(page: Page, stem: str, value) -> str:
    """Write `value` as attention/`stem`.js (a script that files it under `window.probekitData[stem]`); the
    attributes that let assets/probekit.js load it when its pane is shown."""
    folder = page.docs / LAZY
    folder.mkdir(exist_ok=True)
    key = json.dumps(stem)
    (folder / f"{stem}.js").write_text(
        f"(window.probekitData = window.probekitData || {{}})[{key}] = "
        + json.dumps(value, separators=(",", ":")) + ";\n", encoding="utf-8")
    return f'data-key="{stem}" data-src="{LAZY}/{stem}.js"'


QKV_INTRO = [
    "Each head turns every token's hidden state into a **query** (what this token looks for), a **key** (what "
    "it offers to others) and a **value** (what it passes on when attended to). The score of query token *i* "
    "for key token *j* is the scaled dot product q<sub>i</sub>·k<sub>j</sub>/√d (d: the head's dimension), taken "
    "before the softmax; a softmax over each row turns the scores into the "
    "attention weights the [Attention](attention.md) page draws. Below, per head, the scores (left, red above "
    "zero, blue below) beside the attention they become (right), on the sentence whose attention changed most.",
    "",
    "What to look for, moving the slider from the first checkpoint to the last:",
    "",
    "- **At initialisation** the scores are small and alike, so every row's attention is near uniform.",
    "- **A head that has learnt a pattern** has one score standing out per row: a band just left of the "
    "diagonal for a previous-token head, a bright column at [CLS] or [SEP] for a head that parks its attention "
    "there (a no-op), a bright diagonal for attention to the token itself.",
    "- **Compare within a row, not across rows**: the softmax ignores a constant added to a row, so only the "
    "differences between a row's scores matter. A spread of a few units already gives a near one-hot row.",
    "- **Sharper without turning**: the norms chart shows queries and keys growing over training; longer "
    "vectors spread the scores and sharpen the attention even where their directions stay the same.",
    "",
]


def qk_data(cap: Capture, sentence: int) -> dict:
    """One checkpoint's Q·Kᵀ/√d scores (2 decimals) and attention (3 decimals) of every layer and head on
    `sentence`, as [layer][head][query][key] lists, with its tokens."""
    length = int(cap.attention_mask[sentence].sum())
    scores, attention = [], []
    for layer in range(cap.n_layers):
        q = cap[hook_name(layer, "attn.hook_q")][sentence, :length].transpose(0, 1).double()  # [head, pos, d]
        k = cap[hook_name(layer, "attn.hook_k")][sentence, :length].transpose(0, 1).double()
        scores.append((q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).round(decimals=2).tolist())
        attention.append(cap.pattern(layer)[sentence, :, :length, :length].double().round(decimals=3).tolist())
    return {"tokens": list(cap.tokens[sentence][:length]), "scores": scores, "attention": attention}


def qkv(page: Page, tables: dict, captures: list, final: Capture, sentence: int) -> None:
    """What Q·K scores show and what to look for; Q, K and V norms over training; each layer's Q·Kᵀ scores
    beside their attention at every captured checkpoint behind the step slider (drawn by assets/probekit.js
    from a per-checkpoint script, loaded when the slider reaches it)."""
    page.add(QKV, "# Q/K/V", "", *QKV_INTRO)
    trajectories(page, QKV, tables["heads"], ["q_norm", "k_norm", "v_norm"],
                 "Mean L2 norm of each head's queries, keys and values over training")
    panes = []
    for name, step, path in captures:
        cap = final if path == captures[-1][2] else Capture.load(path)
        lazy = lazy_data(page, page.unique("qk", name), qk_data(cap, sentence))
        panes.append((f"{esc(name)} (step {step:,})",
                      f'<div class="probekit-qk" data-probekit-lazy="qk" {lazy}></div>'))
    tokens = " ".join(final.tokens[sentence])
    page.add(QKV, "## Q·Kᵀ scores and attention at every checkpoint (interactive)", "",
             f"Sentence: “{esc(tokens)}”. Move the slider to choose the checkpoint and the menu to choose the layer; "
             "hover a cell for its query, key, score and weight; the chart's menu (⋯) saves it as SVG or PNG.", "",
             *slider(panes),
             f'<script type="application/json" data-vega id="probekit-qk-chart">'
             f'{qk_chart(final.tokens[sentence][:int(final.attention_mask[sentence].sum())], final.n_heads)}</script>',
             "")
    page.configure(QKV, title="Q/K/V")


def qk_chart(tokens: list[str], heads: int) -> str:
    """The Q·K maps' chart, compiled to Vega: per head, Q·Kᵀ/√d (diverging, centred at 0) beside the attention
    it becomes, query × key; the page fills its `qk` data with the checkpoint and layer chosen."""
    names = [f"{i} {t}" for i, t in enumerate(tokens)]
    side = max(120, min(260, 14 * len(names)))

    def panel(head: str, field: str) -> dict:
        scale = ({"scheme": DIVERGING, "domainMid": 0, "reverse": True} if field == "score" else
                 {"scheme": RANKS, "domain": [0, 1]})
        return {"width": side, "height": side, "mark": "rect",
                "title": f"{head}: Q·Kᵀ/√d" if field == "score" else f"{head}: attention",
                "transform": [{"filter": {"field": "head", "equal": head}}],
                "encoding": {
                    "x": {"field": "key", "type": "ordinal", "sort": names, "axis": {"labelFontSize": 8}},
                    "y": {"field": "query", "type": "ordinal", "sort": names, "axis": {"labelFontSize": 8}},
                    "color": {"field": field, "type": "quantitative", "scale": scale,
                              "title": "Q·K/√d" if field == "score" else field},
                    "tooltip": [{"field": "head"}, {"field": "query"}, {"field": "key"},
                                {"field": "score", "type": "quantitative", "title": "Q·K/√d", "format": ".2f"},
                                {"field": "attention", "type": "quantitative", "format": ".3f"}]}}
    spec = {"$schema": alt.SCHEMA_URL, "data": {"name": "qk", "values": []},
            "vconcat": [{"hconcat": [panel(f"head {h}", "score"), panel(f"head {h}", "attention")],
                         "resolve": {"scale": {"color": "independent"}}} for h in range(heads)],
            "resolve": {"scale": {"color": "independent"}}}
    return charts.script_json(charts.compile_vega(spec))


def telling_sentence(first: Capture, last: Capture) -> int:
    """The captured sentence whose attention changed most from the first to the last captured checkpoint:
    Jensen–Shannon divergence (`probekit.analyses.metrics`) averaged over layers, heads and real query tokens. The
    first sentence when there is one checkpoint or the captures hold different tokens or shapes."""
    if first.tokens != last.tokens or (first.n_layers, first.n_heads) != (last.n_layers, last.n_heads):
        return 0
    weights = first.attention_mask.float()  # [sentence, query]
    change = torch.zeros(weights.shape[0])
    for layer in range(first.n_layers):
        js = js_divergence(first.pattern(layer), last.pattern(layer)).mean(1)  # [sentence, query]
        change += (js * weights).sum(1) / weights.sum(1).clamp_min(1)
    return int(torch.argmax(change)) if bool((change > 0).any()) else 0
