"""Head metrics over a training series, from captured arrays only (Clark et al. 2019, "What Does BERT Look At?").

`head_metrics` returns a tidy table, one row per checkpoint × layer × head × metric:
  attn_cls, attn_sep, attn_punct   mean attention from a token to [CLS], to [SEP]s, to punctuation
                                   ([CLS]/[SEP] as the tokenizer spells them: RoBERTa's <s>/</s>)
  attn_prev, attn_next, attn_self  mean attention to the previous token, the next one, itself
  entropy, entropy_ratio           mean attention entropy (bits) and its ratio to a uniform distribution
  q_norm, k_norm, v_norm           mean L2 norm of the head's queries, keys, values
  js_prev, js_final                Jensen–Shannon divergence (bits) of the head's attention from the previous
                                   checkpoint's and from the final checkpoint's, on the same sentences
Averages run over real (non-padding) query tokens of all captured sentences.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

import pandas as pd
import torch

from probekit.models import families
from probekit.models.activations import Capture
from probekit.models.hooks import hook_name
from probekit.core.schema import CONTROL
from probekit.analyses.scoring import hits

PUNCTUATION = set(string.punctuation)
EPS = 1e-12


def cls_and_sep(capture: Capture) -> tuple[str, str]:
    """The capture's (classifier, separator) tokens — [CLS]/[SEP], RoBERTa's <s>/</s> — as its tokenizer
    spells them when the capture recorded them, else as its family's tokenizers do."""
    cls, sep = families.special_tokens(capture.meta.get("family"))
    return capture.meta.get("cls_token") or cls, capture.meta.get("sep_token") or sep


def token_masks(capture: Capture) -> dict[str, torch.Tensor]:
    """[batch, token] booleans marking the classifier, separator and punctuation tokens."""
    width = capture.attention_mask.shape[1]
    cls, sep = cls_and_sep(capture)

    def mark(test) -> torch.Tensor:
        return torch.tensor([[test(t) for t in toks] + [False] * (width - len(toks)) for toks in capture.tokens])

    return {"cls": mark(lambda t: t == cls), "sep": mark(lambda t: t == sep),
            "punct": mark(lambda t: bool(t) and all(ch in PUNCTUATION for ch in t))}


def _mean_over_queries(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """values [batch, head, query], weights [batch, query] → [head]."""
    return (values * weights[:, None, :]).sum((0, 2)) / weights.sum().clamp_min(EPS)


def _shifted(pattern: torch.Tensor, valid: torch.Tensor, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention from query i to key i+offset, and where both tokens are real."""
    diagonal = pattern.diagonal(offset=offset, dim1=2, dim2=3)
    if offset >= 0:
        both = valid[:, : valid.shape[1] - offset] & valid[:, offset:]
    else:
        both = valid[:, -offset:] & valid[:, : valid.shape[1] + offset]
    return diagonal, both.float()


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence in bits along the last axis."""
    m = 0.5 * (p + q)

    def kl(a, b):
        return (a * (torch.log2(a + EPS) - torch.log2(b + EPS))).sum(-1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def capture_metrics(capture: Capture) -> dict[tuple[int, str], torch.Tensor]:
    """(layer, metric) → per-head values for one checkpoint."""
    valid = capture.attention_mask.bool()
    weights = valid.float()
    marks = {k: v.float() for k, v in token_masks(capture).items()}
    n_keys = valid.sum(1).float()
    out = {}
    for layer in range(capture.n_layers):
        pattern = capture.pattern(layer)
        for name, mark in marks.items():
            out[layer, f"attn_{name}"] = _mean_over_queries((pattern * mark[:, None, None, :]).sum(-1), weights)
        for name, offset in (("prev", -1), ("next", 1), ("self", 0)):
            diagonal, both = _shifted(pattern, valid, offset)
            q_slice = slice(-offset, None) if offset < 0 else slice(0, valid.shape[1] - offset)
            out[layer, f"attn_{name}"] = _mean_over_queries(diagonal, both if offset else weights[:, q_slice])
        entropy = -(pattern * torch.log2(pattern + EPS)).sum(-1)
        out[layer, "entropy"] = _mean_over_queries(entropy, weights)
        uniform = torch.log2(n_keys.clamp_min(2))[:, None, None]
        out[layer, "entropy_ratio"] = _mean_over_queries(entropy / uniform, weights)
        for short in ("q", "k", "v"):
            norms = capture[hook_name(layer, f"attn.hook_{short}")].norm(dim=-1).transpose(1, 2)
            out[layer, f"{short}_norm"] = _mean_over_queries(norms, weights)
    return out


def attention_drift(a: Capture, b: Capture) -> dict[int, torch.Tensor] | None:
    """Per-layer, per-head mean JS divergence between two captures of the same sentences (None if they differ)."""
    if a.tokens != b.tokens or a.n_layers != b.n_layers or a.n_heads != b.n_heads:
        return None
    weights = a.attention_mask.float()
    return {layer: _mean_over_queries(js_divergence(a.pattern(layer), b.pattern(layer)), weights)
            for layer in range(a.n_layers)}


HEAD_COLUMNS = ["checkpoint", "step", "layer", "head", "metric", "value"]


def checkpoint_head_rows(cap: Capture) -> pd.DataFrame:
    """layer × head × metric rows of one checkpoint's capture (everything but the drift)."""
    rows = [{"layer": layer, "head": head, "metric": metric, "value": float(v)}
            for (layer, metric), per_head in capture_metrics(cap).items() for head, v in enumerate(per_head)]
    return pd.DataFrame(rows, columns=HEAD_COLUMNS[2:])


def drift_rows(series: Iterable[tuple[str, int | None, Capture]], final: Capture | None) -> pd.DataFrame:
    """js_prev and js_final rows of a series of (checkpoint, step, capture) in training order.

    Streams: only the current, the previous and the final capture are held at once.
    """
    rows, previous = [], None
    for checkpoint, step, cap in series:
        for label, other in (("js_prev", previous), ("js_final", final)):
            drift = attention_drift(cap, other) if other is not None else None
            for layer in range(cap.n_layers):
                values = drift[layer] if drift else torch.full((cap.n_heads,), float("nan"))
                rows += [{"checkpoint": checkpoint, "step": step, "layer": layer, "head": head, "metric": label,
                          "value": float(v)} for head, v in enumerate(values)]
        previous = cap
    return pd.DataFrame(rows, columns=HEAD_COLUMNS)


def head_metrics(series: Iterable[tuple[str, int | None, Capture]], final: Capture | None = None) -> pd.DataFrame:
    """The tidy head table for a series of (checkpoint, step, capture) in training order.

    One row per checkpoint × layer × head × metric; each capture is compared with the one before it and
    with `final` (default: the last).
    """
    series = list(series)
    if final is None and series:
        final = series[-1][2]
    frames = [checkpoint_head_rows(cap).assign(checkpoint=name, step=step) for name, step, cap in series]
    frames.append(drift_rows(series, final))
    return pd.concat(frames, ignore_index=True)[HEAD_COLUMNS]


def emergence(predictions: pd.DataFrame) -> pd.DataFrame:
    """For every prompt: the first step from which its gold answer stays rank 1 (and stays within the top 10).

    `first_correct` is the first step it was rank 1 at all; NaN means never (or not by the last checkpoint).
    The random-init control is left out, and so are checkpoints where the prompt was unscorable (the
    scoring module's one rule).
    """
    keys = ["benchmark", "relation", "group", "template", "subject", "answer", "prompt"]
    rows = predictions[(predictions["checkpoint"] != CONTROL) & predictions["gold_rank"].notna()]
    rows = rows.sort_values("step", kind="stable")
    rows = rows.assign(hit1=hits(rows, 1).astype(bool), hit10=hits(rows, 10).astype(bool))
    records = []
    for key, series in rows.groupby(keys, sort=False, dropna=False):
        steps, top1, top10 = series["step"].to_numpy(), series["hit1"].to_numpy(), series["hit10"].to_numpy()
        records.append({**dict(zip(keys, key)), "first_correct": _first(steps, top1),
                        "stable_top1_from": _stable_from(steps, top1),
                        "stable_top10_from": _stable_from(steps, top10)})
    return pd.DataFrame(records, columns=[*keys, "first_correct", "stable_top1_from", "stable_top10_from"])


def _first(steps, hits) -> float:
    return float(steps[hits.argmax()]) if hits.any() else float("nan")


def _stable_from(steps, hits) -> float:
    """The earliest step after which every later checkpoint is a hit."""
    if not hits.any() or not hits[-1]:
        return float("nan")
    misses = (~hits).nonzero()[0]
    return float(steps[misses[-1] + 1]) if len(misses) else float(steps[0])


def known_counts(predictions: pd.DataFrame) -> pd.DataFrame:
    """Prompts answered at rank 1 and within the top 10, per step and fact group (tidy, for plotting)."""
    rows = predictions[predictions["checkpoint"] != CONTROL]
    counts = []
    for criterion, limit in (("rank 1", 1), ("top 10", 10)):
        hit = rows.assign(hit=hits(rows, limit))
        table = hit.groupby(["step", "group"])["hit"].sum().astype(int).reset_index(name="count")
        counts.append(table.assign(criterion=criterion))
    return pd.concat(counts, ignore_index=True)
