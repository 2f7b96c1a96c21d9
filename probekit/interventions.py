"""Looking inside a checkpoint's predictions: the logit lens and head ablation, batched over all prompts.

- Logit lens: the MLM head applied to every layer's hidden state at the [MASK] positions — where in depth
  the answer appears, and (across checkpoints) since when.
- Head ablation: one head's output zeroed (a forward pre-hook on the attention output projection, removed
  afterwards), all prompts scored in one batched pass per head — which heads the facts depend on.
"""

from __future__ import annotations

import contextlib

import pandas as pd
import torch

from probekit.probe import score_encoded

def logit_lens(model, tokenizer, encoded: dict, prompts: pd.DataFrame, batch_size: int = 128) -> pd.DataFrame:
    """One row per prompt × layer (0 = embeddings … L = last): gold rank and log-probability read there."""
    frames = []
    for layer in range(model.config.num_hidden_layers + 1):
        scored = score_encoded(model, tokenizer, encoded, top_k=1, batch_size=batch_size, layer=layer)
        frames.append(prompts.reset_index(drop=True).assign(
            layer=layer, gold_rank=scored["gold_rank"], gold_logprob=scored["gold_logprob"]))
    return pd.concat(frames, ignore_index=True)


@contextlib.contextmanager
def head_ablated(model, layer: int, head: int):
    """Zero one head's contribution: its slice of the concatenated attention output, before the projection."""
    attention = model.bert.encoder.layer[layer].attention
    d_head = attention.self.attention_head_size

    def zero_head(module, args):
        context = args[0].clone()
        context[..., head * d_head:(head + 1) * d_head] = 0
        return (context, *args[1:])

    handle = attention.output.dense.register_forward_pre_hook(zero_head)
    try:
        yield model
    finally:
        handle.remove()


def ablation_scores(model, tokenizer, encoded: dict, prompts: pd.DataFrame, batch_size: int = 128) -> pd.DataFrame:
    """Per head × relation × group: P@1 and mean gold log-prob with that head zeroed, and their change."""
    keys = ["benchmark", "relation", "group"]

    def summarise(scored: pd.DataFrame) -> pd.DataFrame:
        frame = prompts.reset_index(drop=True)[keys].assign(hit=scored["gold_rank"] <= 1,
                                                             logprob=scored["gold_logprob"])
        return frame.groupby(keys).agg(p_at_1=("hit", "mean"), mean_gold_logprob=("logprob", "mean"))

    base = summarise(score_encoded(model, tokenizer, encoded, top_k=1, batch_size=batch_size))
    rows = []
    for layer in range(model.config.num_hidden_layers):
        for head in range(model.config.num_attention_heads):
            with head_ablated(model, layer, head):
                ablated = summarise(score_encoded(model, tokenizer, encoded, top_k=1, batch_size=batch_size))
            delta = ablated - base
            rows.append(ablated.join(delta.add_prefix("delta_")).reset_index().assign(layer=layer, head=head))
    return pd.concat(rows, ignore_index=True)


def weight_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Relative L2 distance ‖a−b‖/‖a‖ per block of parameters (embeddings, each layer, MLM head)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(set(a) & set(b)):
        parts = name.split(".")
        block = f"layer {parts[3]}" if "encoder.layer" in name else ("embeddings" if "embeddings" in name else
                                                                       "mlm head" if name.startswith("cls") else parts[0])
        groups.setdefault(block, []).append(name)
    rows = []
    for block, names in groups.items():
        diff = sum(float((a[n].float() - b[n].float()).pow(2).sum()) for n in names) ** 0.5
        norm = sum(float(a[n].float().pow(2).sum()) for n in names) ** 0.5
        rows.append({"block": block, "distance": diff, "relative_distance": diff / norm if norm else float("nan")})
    return pd.DataFrame(rows)
