"""The matplotlib ground every probekit figure stands on, and the figures of one capture's attention.

Both the notebook views (`probekit.views`) and the report (`probekit.report.plots`) draw with these, so they
live below both: the report imports the views, never the other way round. Figures are made outside pyplot,
so none is left open in its registry and no GUI backend is needed. Labels carry user text (relations, prompts,
tokens, checkpoint names), so mathtext is off in every figure: `$x$` is drawn as typed and an unbalanced
`$\\frac{$` cannot crash a plot.
"""

from __future__ import annotations

import functools
import io

import matplotlib as mpl
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter

from probekit.models.activations import Capture
from probekit.models.hooks import hook_name

sns.set_theme(style="whitegrid", context="notebook")
PLAIN_TEXT = {"text.parse_math": False}


class ShownFigure(Figure):
    """A Figure that shows itself in Jupyter as a PNG, with or without pyplot's inline backend, and draws
    every text as typed (no mathtext), including tick labels made only when it is drawn."""

    def draw(self, renderer) -> None:
        with mpl.rc_context(PLAIN_TEXT):
            for text in self.findobj(Text):
                text.set_parse_math(False)
            super().draw(renderer)

    def savefig(self, *args, **kwargs) -> None:
        with mpl.rc_context(PLAIN_TEXT):
            super().savefig(*args, **kwargs)

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def plain(plot):
    """Make the figure with mathtext off, so texts laid out while plotting (tight_layout) are plain too."""
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(PLAIN_TEXT):
            return plot(*args, **kwargs)
    return wrapper


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None, layout: str | None = None,
             **kwargs):
    """A `ShownFigure` and its axes (as `pyplot.subplots`, without pyplot)."""
    fig = ShownFigure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def step_axis(ax, steps, log: bool = False) -> None:
    """Training steps on a linear axis (where the learning shows), or with `log` a log axis that still shows
    step 0; tick labels as plain numbers 0, 1, 10, 1,000 (mathtext is off, so `$10^{2}$` would print as typed)."""
    if log:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0, right=max(max(steps), 1) * 1.3)
    else:
        ax.set_xlim(left=min(0, min(steps)), right=max(max(steps), 1) * 1.02)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.set_xlabel("training step")


def token_ticks(ax, tokens: list[str], length: int) -> None:
    """A [query, key] map's tokens on both axes."""
    ax.set_xticks(range(length), tokens[:length], rotation=90, fontsize=6)
    ax.set_yticks(range(length), tokens[:length], fontsize=6)
    ax.grid(False)


@plain
def attention_maps(cap: Capture, sentence: int = 0, title: str = "") -> Figure:
    """Every layer × head's attention for one sentence of a capture (tokens on the outer axes only: the maps
    of one figure share them)."""
    length = int(cap.attention_mask[sentence].sum())
    tokens = cap.tokens[sentence]
    fig, axes = subplots(cap.n_layers, cap.n_heads, squeeze=False, sharex=True, sharey=True, layout="constrained",
                         figsize=(2.6 * cap.n_heads + 1, 2.6 * cap.n_layers + 0.6))
    for layer in range(cap.n_layers):
        for head in range(cap.n_heads):
            ax = axes[layer][head]
            image = ax.imshow(cap.pattern(layer)[sentence, head, :length, :length].numpy(), cmap="Blues",
                              vmin=0, vmax=1)
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            ax.tick_params(axis="x", labelrotation=90, labelsize=6)
            ax.tick_params(axis="y", labelsize=6)
            ax.grid(False)
            ax.label_outer()
    token_ticks(axes[0][0], tokens, length)  # shared by every map of the figure
    fig.supxlabel("key (attended to)", fontsize=8)
    fig.supylabel("query", fontsize=8)
    fig.suptitle(title)
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, label="attention weight")
    return fig


@plain
def qk_scores(cap: Capture, layer: int, sentence: int = 0) -> Figure:
    """For each head of one layer: the scaled Q·Kᵀ scores beside the attention they become."""
    length = int(cap.attention_mask[sentence].sum())
    tokens = cap.tokens[sentence]
    q = cap[hook_name(layer, "attn.hook_q")][sentence, :length].transpose(0, 1)  # [head, pos, d_head]
    k = cap[hook_name(layer, "attn.hook_k")][sentence, :length].transpose(0, 1)
    scores = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).numpy()
    fig, axes = subplots(cap.n_heads, 2, figsize=(7.5, 3.4 * cap.n_heads), squeeze=False)
    for head in range(cap.n_heads):
        image = axes[head][0].imshow(scores[head], cmap="RdBu_r", vmin=-abs(scores[head]).max(),
                                     vmax=abs(scores[head]).max())
        fig.colorbar(image, ax=axes[head][0], fraction=0.046, label="score")
        axes[head][0].set_title(f"head {head}: Q·Kᵀ/√d", fontsize=9)
        weights = axes[head][1].imshow(cap.pattern(layer)[sentence, head, :length, :length].numpy(),
                                       cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(weights, ax=axes[head][1], fraction=0.046, label="attention")
        axes[head][1].set_title(f"head {head}: attention", fontsize=9)
        for ax in axes[head]:
            token_ticks(ax, tokens, length)
    fig.suptitle(f"layer {layer}")
    fig.tight_layout()
    return fig

