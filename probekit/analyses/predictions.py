"""Fill-mask predictions: every prompt of every benchmark scored on the checkpoint (always run), summed up
as LAMA's P@1, P@10 and MRR per relation with bootstrap intervals (`scores`).

With `bf16`, prompts are scored under bf16 autocast, and the first `FP32_CHECK` prompts of each benchmark
are scored again in fp32: the largest deviation is what the manifest's `bf16_scoring` reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from probekit.core import lazy
from probekit.analyses.base import Analysis, Context, Options, Shape, option, register
from probekit.core.log import logger
from probekit.core.schema import (CHECKPOINT_COLUMNS, CHECKPOINT_ID, CONTROL, N_SEEDS, PROMPT_COLUMNS, RANK_COLUMNS,
                             RELATION_ID, SCORE_COLUMNS, Table, bounds, columns)

np = lazy.module("numpy")
pd = lazy.module("pandas")

FP32_CHECK = 64
"""Prompts per benchmark and checkpoint also scored in fp32 when scoring in bf16."""
_CHECK_COLUMNS = ["fp32_gold_logprob", "fp32_gold_rank"]
SCORE_ID = [*CHECKPOINT_ID, *RELATION_ID]

PREDICTIONS = Table("predictions", "checkpoint × prompt", columns(
    *CHECKPOINT_COLUMNS, ("fingerprint", "str", "hash of the checkpoint's weights"), *PROMPT_COLUMNS,
    ("n_pieces", "int", "wordpieces of the answer (one [MASK] each)"), *RANK_COLUMNS,
    ("gold_prob", "float", "exp(gold_logprob)"),
    ("correct", "bool", "gold_rank == 1"),
    ("top1", "str", "the greedy fill of the masks"),
    ("topk_tokens", "list[str]", "the top-k tokens at the first mask"),
    ("topk_probs", "list[float]", "their probabilities"),
), "Every prompt of every benchmark, scored on every checkpoint.")

SCORES = Table("scores", "checkpoint × benchmark × relation × group", columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"),
    ("group", "str", "fact-injection group"), *SCORE_COLUMNS,
    ("n_multi_piece", "int", "scorable prompts whose answer has several wordpieces"),
    *bounds(("p_at_1", "p_at_10", "mrr")), N_SEEDS,
), "LAMA's P@1, P@10 and MRR per relation, from the predictions table, with bootstrap intervals "
   "(probekit.analyses.stats; the manifest's `statistics` records level, resamples and seed). When the series holds "
   "several runs probed at the same steps (`seed-K/checkpoint-N`), each run is a seed, and the table also holds "
   "one row per step pooled over the seeds: run `all-seeds`, checkpoint `all-seeds/step-N`, its n counting "
   "seeds × prompts and its interval resampling seeds and prompts together (Multi-Bootstrap, Sellam et al. 2022).")


@dataclass(frozen=True)
class PredictionsOptions(Options):
    top_k: int = option(10, "Predictions kept per prompt.", flag="--top-k", low=1, high=1000)
    bf16: bool = option(False, "Score under bf16 autocast; the first 64 prompts of each benchmark are rescored in "
                               "fp32 and the largest deviation goes to the manifest's bf16_scoring.", flag="--bf16")


class Predictions(Analysis):
    name = "predictions"
    help = "every prompt scored: gold rank, log-probability, top-k (always run; tables predictions, scores)"
    options = PredictionsOptions
    tables = (PREDICTIONS, SCORES)
    on_control = True
    always = True
    report = "probekit.report.sections:predictions"
    report_title = "Benchmarks"

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        import torch

        from probekit.analyses.scoring import score_encoded

        opts = ctx.opts(self.name)
        model = checkpoint.model(ctx.device)
        encoded = ctx.encoded(checkpoint, bench)
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=opts.bf16):
            scored = score_encoded(model, checkpoint.tokenizer, encoded, opts.top_k, ctx.batch_size)
        if opts.bf16:
            scored = scored.assign(**_fp32_check(model, checkpoint.tokenizer, encoded, opts.top_k, ctx.batch_size))
        return pd.concat([bench.prompts.reset_index(drop=True), scored], axis=1).assign(
            fingerprint=checkpoint.fingerprint)

    def finish(self, frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        if set(_CHECK_COLUMNS) <= set(frame.columns):
            ctx.state[self.name] = bf16_deviation(frame)
        _report_unscorable(frame)
        return frame.drop(columns=_CHECK_COLUMNS, errors="ignore")

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        return {SCORES.name: score_table(frame)}

    def manifest(self, ctx: Context) -> dict:
        return {"bf16_scoring": ctx.state.get(self.name)}


def score_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """P@1, P@10, MRR per checkpoint × benchmark × relation × group with their intervals (and rows pooled over
    seeds), plus how many scorable answers have several pieces."""
    from probekit.analyses.stats import score_table as scores_with_intervals, with_pooled_seeds

    scored = with_pooled_seeds(predictions)
    scores = scores_with_intervals(scored, SCORE_ID)
    multi = scored[scored["gold_rank"].notna() & (scored["n_pieces"] > 1)]
    counts = multi.groupby(SCORE_ID, dropna=False).size()
    scores["n_multi_piece"] = [int(counts.get(tuple(k), 0)) for k in scores[SCORE_ID].itertuples(index=False)]
    return scores


def _fp32_check(model, tokenizer, encoded: dict, top_k: int, batch_size: int) -> dict[str, np.ndarray]:
    """The first `FP32_CHECK` prompts scored in fp32 (missing for the others)."""
    from probekit.analyses.scoring import score_encoded

    n = len(encoded["input_ids"])
    head = {key: values[:FP32_CHECK] for key, values in encoded.items()}
    exact = score_encoded(model, tokenizer, head, top_k, batch_size)
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


def _report_unscorable(predictions: pd.DataFrame) -> None:
    """Say which prompts could not be scored (they are counted apart, never as misses)."""
    missing = predictions[predictions["gold_rank"].isna() & (predictions["checkpoint"] != CONTROL)]
    for bench, rows in missing.groupby("benchmark"):
        prompts = rows.drop_duplicates("prompt")
        example = prompts.iloc[0]
        logger.warning(f"{bench}: {len(prompts)} prompts unscorable on {rows['checkpoint'].nunique()} checkpoint(s), "
                       f"counted in n_unscorable (e.g. {example['prompt']!r} → {example['answer']!r})")


register(Predictions)
