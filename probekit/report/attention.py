"""The Attention and Q/K/V pages, from the capture analysis: head metrics over training, the head view and
attention maps of every captured checkpoint behind a step slider, and Q·Kᵀ scores beside their attention."""

from __future__ import annotations

from pathlib import Path

import torch

from probekit.models.activations import Capture
from probekit.figures import attention_maps, qk_scores
from probekit.analyses.metrics import js_divergence
from probekit.report import plots
from probekit.report.markdown import esc
from probekit.report.page import Page, figure_link, slider
from probekit.views import head_view

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
    """Head metrics over training, and the head view and attention maps of every captured checkpoint."""
    heads = tables["heads"]
    page.add(ATTENTION, "# Attention", "",
             "Head metrics after Clark et al. (2019), averaged over the captured sentences' real tokens.", "")
    shown = [c[0] for c in _picked(captures, 4)]
    page.figure(ATTENTION, ("heads-grid",),
                plots.head_heatmaps(heads, ["attn_cls", "attn_sep", "attn_prev", "attn_self", "entropy_ratio"], shown),
                "Layer × head: attention to [CLS], to [SEP], to the previous token, to itself; entropy / uniform")
    page.figure(ATTENTION, ("heads-change",),
                plots.head_trajectories(heads, ["entropy_ratio", "attn_prev", "js_prev", "js_final"]),
                "Each head over training, the heads that end most specialised labelled by their role; js_prev / "
                "js_final: Jensen–Shannon divergence (bits) from the previous / final checkpoint")
    page.add(ATTENTION, *step_slider(page, captures, sentence))
    page.configure(ATTENTION, title="Attention", hide_toc=True)


def step_slider(page: Page, captures: list, sentence: int) -> list[str]:
    """bertviz's head view and the attention maps of every captured checkpoint, one shown at a time, chosen
    with a slider (the last checkpoint first)."""
    panes = []
    for name, step, path in captures:
        cap = Capture.load(path)
        html = head_view(cap, sentence=sentence, html_action="return", asset_prefix="assets/").data
        stem = page.unique("maps", name)
        attention_maps(cap, sentence, f"{name} (step {step:,})").savefig(
            page.docs / "figures" / f"{stem}.png", dpi=90)  # laid out already (constrained)
        label = f"{esc(name)} (step {step:,})"
        panes.append((label, f'<div class="probekit-headview">{html}</div>'
                             + figure_link(stem, f"attention of every head at {label}")))
    tokens = " ".join(Capture.load(captures[-1][2]).tokens[sentence])
    return ["## Head view and attention maps at every checkpoint (interactive, offline)", "",
            f"Sentence: “{esc(tokens)}”. Move the slider to choose the checkpoint; in the head view hover a token, "
            "double-click a head colour to isolate it; click the maps to enlarge them.", "",
            *slider(panes)]


def qkv(page: Page, tables: dict, captures: list, final: Capture, sentence: int) -> None:
    """Q, K and V norms over training, and at the last captured checkpoint each layer's Q·Kᵀ scores."""
    page.add(QKV, "# Q/K/V", "")
    page.figure(QKV, ("norms",), plots.head_trajectories(tables["heads"], ["q_norm", "k_norm", "v_norm"]),
                "Mean L2 norm of each head's queries, keys and values over training")
    for layer in range(final.n_layers):
        page.figure(QKV, ("qk-layer", layer), qk_scores(final, layer, sentence),
                    f"Layer {layer} at {captures[-1][0]}: Q·Kᵀ/√d scores beside the attention they become")
    page.configure(QKV, title="Q/K/V")


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
