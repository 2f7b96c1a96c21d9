"""Head ablation: each head's output zeroed in turn (at `attn.hook_z`), every prompt rescored in one pass."""

from __future__ import annotations

import pandas as pd

from probekit.analyses.base import Analysis, Context, register
from probekit.families import n_layers
from probekit.hooks import hook_name, hooked, zero_head
from probekit.schema import ABLATION
from probekit.scoring import score_encoded, summarize

KEYS = ["benchmark", "relation", "group"]


class Ablation(Analysis):
    name = "ablation"
    table = ABLATION

    def settings(self, ctx: Context) -> dict:
        return {"groups": ctx.groups_sha}  # results are summarised per fact group

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        model = checkpoint.model(ctx.device)
        encoded = ctx.encoded(checkpoint, bench)
        prompts = bench.prompts.reset_index(drop=True).assign(group=bench.groups)

        def summary() -> pd.DataFrame:
            scored = score_encoded(model, checkpoint.tokenizer, encoded, top_k=1, batch_size=ctx.batch_size)
            frame = prompts[KEYS].assign(gold_rank=scored["gold_rank"], gold_logprob=scored["gold_logprob"])
            return summarize(frame, KEYS).set_index(KEYS)[["n", "p_at_1", "mean_gold_logprob"]]

        base = summary()
        rows = []
        for layer in range(n_layers(model)):
            for head in range(model.config.num_attention_heads):
                with hooked(model, write={hook_name(layer, "attn.hook_z"): zero_head(head)}):
                    ablated = summary()
                delta = (ablated - base)[["p_at_1", "mean_gold_logprob"]].add_prefix("delta_")
                rows.append(ablated.join(delta).reset_index().assign(layer=layer, head=head))
        return pd.concat(rows, ignore_index=True)


register(Ablation)
