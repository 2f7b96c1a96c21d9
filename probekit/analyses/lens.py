"""The logit lens: the MLM head read at every layer's hidden state — where in depth an answer appears.

Each layer is read through the family's own head (and final norm, ModernBERT's), so the last layer's
reading is the model's own output."""

from __future__ import annotations

import pandas as pd

from probekit.analyses.base import Analysis, Context, register
from probekit.families import n_layers
from probekit.hooks import hook_name
from probekit.schema import LENS
from probekit.scoring import score_encoded


def readout(layer: int) -> str:
    """The hook point holding layer `layer`'s output (0 = the embeddings, entering layer 0)."""
    return hook_name(0, "hook_resid_pre") if layer == 0 else hook_name(layer - 1, "hook_resid_post")


class Lens(Analysis):
    name = "lens"
    table = LENS

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        model = checkpoint.model(ctx.device)
        encoded = ctx.encoded(checkpoint, bench)
        prompts = bench.prompts.reset_index(drop=True)
        frames = []
        for layer in range(n_layers(model) + 1):
            scored = score_encoded(model, checkpoint.tokenizer, encoded, top_k=1, batch_size=ctx.batch_size,
                                   readout=readout(layer))
            frames.append(prompts.assign(layer=layer, gold_rank=scored["gold_rank"],
                                         gold_logprob=scored["gold_logprob"]))
        return pd.concat(frames, ignore_index=True)


register(Lens)
