"""Fill-mask predictions: every prompt of every benchmark scored on the checkpoint (always run)."""

from __future__ import annotations

import pandas as pd

from probekit.analyses.base import Analysis, Context, register
from probekit.schema import PREDICTIONS
from probekit.scoring import score_encoded


class Predictions(Analysis):
    name = "predictions"
    table = PREDICTIONS
    on_control = True

    def settings(self, ctx: Context) -> dict:
        return {"top_k": ctx.top_k}

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        model = checkpoint.model(ctx.device)
        scored = score_encoded(model, checkpoint.tokenizer, ctx.encoded(checkpoint, bench), ctx.top_k, ctx.batch_size)
        return pd.concat([bench.prompts.reset_index(drop=True), scored], axis=1).assign(
            fingerprint=checkpoint.fingerprint)


register(Predictions)
