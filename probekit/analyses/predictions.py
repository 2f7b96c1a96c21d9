"""Fill-mask predictions: every prompt of every benchmark scored on the checkpoint (always run).

With `half`, prompts are scored under bf16 autocast, and the first `FP32_CHECK` prompts of each benchmark
are scored again in fp32: the largest deviation is what the manifest's `bf16_scoring` reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from probekit.analyses.base import Analysis, Context, register
from probekit.schema import PREDICTIONS
from probekit.scoring import score_encoded

FP32_CHECK = 64
"""Prompts per benchmark and checkpoint also scored in fp32 when scoring in bf16."""
BF16_DEVIATION = "bf16_deviation"
"""`ctx.state` key: bf16's deviation from fp32 on the checked prompts, set by `finish`."""
_CHECK_COLUMNS = ["fp32_gold_logprob", "fp32_gold_rank"]


class Predictions(Analysis):
    name = "predictions"
    table = PREDICTIONS
    on_control = True

    def settings(self, ctx: Context) -> dict:
        return {"top_k": ctx.top_k, **({"scoring": "bf16"} if ctx.half else {})}

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        model = checkpoint.model(ctx.device)
        encoded = ctx.encoded(checkpoint, bench)
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=ctx.half):
            scored = score_encoded(model, checkpoint.tokenizer, encoded, ctx.top_k, ctx.batch_size)
        if ctx.half:
            scored = scored.assign(**_fp32_check(model, checkpoint.tokenizer, encoded, ctx))
        return pd.concat([bench.prompts.reset_index(drop=True), scored], axis=1).assign(
            fingerprint=checkpoint.fingerprint)

    def finish(self, frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        if set(_CHECK_COLUMNS) <= set(frame.columns):
            ctx.state[BF16_DEVIATION] = bf16_deviation(frame)
        return frame.drop(columns=_CHECK_COLUMNS, errors="ignore")


def _fp32_check(model, tokenizer, encoded: dict, ctx: Context) -> dict[str, np.ndarray]:
    """The first `FP32_CHECK` prompts scored in fp32 (missing for the others)."""
    n = len(encoded["input_ids"])
    head = {key: values[:FP32_CHECK] for key, values in encoded.items()}
    exact = score_encoded(model, tokenizer, head, ctx.top_k, ctx.batch_size)
    pad = np.full(max(n - len(exact), 0), np.nan)
    return {"fp32_gold_logprob": np.concatenate([exact["gold_logprob"].to_numpy(), pad]),
            "fp32_gold_rank": np.concatenate([exact["gold_rank"].to_numpy(), pad])}


def bf16_deviation(frame: pd.DataFrame) -> dict:
    """How far bf16 scores are from fp32 on the checked rows: the largest |Δ gold_logprob| and the share of
    rows whose gold_rank changes."""
    checked = frame[frame["fp32_gold_rank"].notna() & frame["gold_rank"].notna()]
    delta = (checked["gold_logprob"] - checked["fp32_gold_logprob"]).abs()
    changed = checked["gold_rank"] != checked["fp32_gold_rank"]
    return {"dtype": "bfloat16 (autocast)", "checked_rows": len(checked), "prompts_per_benchmark": FP32_CHECK,
            "max_abs_delta_gold_logprob": float(delta.max()) if len(checked) else None,
            "gold_rank_changed_share": float(changed.mean()) if len(checked) else None}


register(Predictions)
