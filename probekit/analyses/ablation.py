"""Head ablation: each head's output zeroed in turn (at `attn.hook_z`), every prompt rescored.

All heads of a layer are ablated in one forward pass: each batch of prompts runs tiled once per head, copy h
with head h zeroed (`probekit.models.hooks.zero_each_head`), so a layer costs one pass of heads × batch rows
instead of one pass per head (the same numbers as the head-by-head loop; tests hold them to it).
"""

from __future__ import annotations

from probekit.core import lazy
from probekit.analyses.base import Analysis, Context, Shape, digest, register
from probekit.core.schema import CHECKPOINT_COLUMNS, RELATION_ID, Table, columns

pd = lazy.module("pandas")

ABLATION = Table("ablation", "checkpoint × head × benchmark × relation × group", columns(
    *CHECKPOINT_COLUMNS, ("layer", "int", "layer of the zeroed head"), ("head", "int", "the zeroed head"),
    ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"), ("group", "str", "fact group"),
    ("n", "int", "scorable prompts"), ("p_at_1", "float", "P@1 with the head zeroed"),
    ("mean_gold_logprob", "float", "mean gold log-probability with the head zeroed"),
    ("delta_p_at_1", "float", "change from the unablated model"),
    ("delta_mean_gold_logprob", "float", "change from the unablated model"),
), "Head ablation: each head's output zeroed in turn, every prompt rescored.")


class Ablation(Analysis):
    name = "ablation"
    help = "zero each head in turn and rescore every prompt (table ablation)"
    tables = (ABLATION,)
    report = "probekit.report.sections:ablation"
    report_title = "Logit lens & ablation"

    def settings(self, ctx: Context, bench) -> dict:
        return {**super().settings(ctx, bench), "groups": digest(bench.groups)}  # summed up per fact group

    def cost(self, shape: Shape, item) -> float:
        return float(item.size) * (shape.layers * shape.heads + 1)

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        from probekit.models.families import n_layers
        from probekit.models.hooks import hook_name, zero_each_head
        from probekit.analyses.scoring import gold_scores, summarize

        model = checkpoint.model(ctx.device)
        encoded = ctx.encoded(checkpoint, bench)
        prompts = bench.prompts.reset_index(drop=True).assign(group=bench.groups)[RELATION_ID]

        def summary(rank, logprob) -> pd.DataFrame:
            frame = prompts.assign(gold_rank=rank, gold_logprob=logprob)
            return summarize(frame, RELATION_ID).set_index(RELATION_ID)[["n", "p_at_1", "mean_gold_logprob"]]

        tok, heads = checkpoint.tokenizer, model.config.num_attention_heads
        base = summary(*(scores[0] for scores in gold_scores(model, tok, encoded, ctx.batch_size)))
        rows = []
        for layer in range(n_layers(model)):  # a pass holds `heads` copies of a batch: batch_size rows in all
            ranks, logprobs = gold_scores(model, tok, encoded, max(1, ctx.batch_size // heads), copies=heads,
                                          write={hook_name(layer, "attn.hook_z"): zero_each_head(heads)})
            for head in range(heads):
                ablated = summary(ranks[head], logprobs[head])
                delta = (ablated - base)[["p_at_1", "mean_gold_logprob"]].add_prefix("delta_")
                rows.append(ablated.join(delta).reset_index().assign(layer=layer, head=head))
        return pd.concat(rows, ignore_index=True)


register(Ablation)
