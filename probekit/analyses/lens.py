"""The logit lens: the MLM head read at every layer's hidden state — where in depth an answer appears.

Each layer is read through the family's own head (and final norm, ModernBERT's), so the last layer's
reading is the model's own output; every layer is read from one forward pass. `lens_scores` sums it up per layer by the same rules as `scores`
(`probekit.analyses.scoring.summarize`: unscorable prompts counted apart, never as misses), with intervals.
"""

from __future__ import annotations

from probekit.core import lazy
from probekit.analyses.base import Analysis, Context, Shape, register
from probekit.core.schema import (CHECKPOINT_COLUMNS, CHECKPOINT_ID, N_SEEDS, PROMPT_COLUMNS, RANK_COLUMNS, RELATION_ID,
                             SCORE_COLUMNS, Table, bounds, columns)

pd = lazy.module("pandas")

LENS = Table("lens", "checkpoint × prompt × layer", columns(
    *CHECKPOINT_COLUMNS, *PROMPT_COLUMNS, ("layer", "int", "0 = the embeddings, L = the last layer"), *RANK_COLUMNS,
), "The logit lens: the MLM head read at every layer's hidden state.")
LENS_SCORES = Table("lens_scores", "checkpoint × benchmark × relation × group × layer", columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"),
    ("group", "str", "fact-injection group"), ("layer", "int", "0 = the embeddings, L = the last layer"),
    *SCORE_COLUMNS, *bounds(("p_at_1", "p_at_10", "mrr")), N_SEEDS,
), "P@1, P@10 and MRR of the logit lens per layer, from the lens table by the rules of `scores` (unscorable "
   "prompts counted apart), with bootstrap intervals; the last layer's equal the model's own scores.")
LENS_ID = [*CHECKPOINT_ID, *RELATION_ID, "layer"]


def readout(layer: int) -> str:
    """The hook point holding layer `layer`'s output (0 = the embeddings, entering layer 0)."""
    from probekit.models.hooks import hook_name

    return hook_name(0, "hook_resid_pre") if layer == 0 else hook_name(layer - 1, "hook_resid_post")


class Lens(Analysis):
    name = "lens"
    help = "logit lens: the MLM head read at every layer (tables lens, lens_scores)"
    tables = (LENS, LENS_SCORES)
    report = "probekit.report.sections:lens"
    report_title = "Logit lens & ablation"

    def cost(self, shape: Shape, item) -> float:
        return float(item.size) * (shape.layers + 1)

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        from probekit.models.families import n_layers
        from probekit.analyses.scoring import gold_scores

        model = checkpoint.model(ctx.device)
        layers = list(range(n_layers(model) + 1))
        rank, logprob = gold_scores(model, checkpoint.tokenizer, ctx.encoded(checkpoint, bench),
                                    batch_size=ctx.batch_size, readouts=[readout(layer) for layer in layers])
        prompts = bench.prompts.reset_index(drop=True)
        return pd.concat([prompts.assign(layer=layer, gold_rank=rank[layer], gold_logprob=logprob[layer])
                          for layer in layers], ignore_index=True)

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        return {LENS_SCORES.name: lens_scores(frame)}


def lens_scores(lens: pd.DataFrame) -> pd.DataFrame:
    """P@1, P@10, MRR per checkpoint × relation × layer with intervals (and rows pooled over seeds)."""
    from probekit.analyses.stats import score_table, with_pooled_seeds

    if lens.empty:
        return pd.DataFrame(columns=LENS_SCORES.names)
    return score_table(with_pooled_seeds(lens), LENS_ID)[LENS_SCORES.names]


register(Lens)
