import math

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import pipeline

from probekit.benchmarks import load_benchmark
from probekit.analyses.scoring import encode_prompts, score_encoded, summarize
from probekit.models.series import load_checkpoint


def score(model, tok, prompts, top_k=10):
    scored = score_encoded(model, tok, encode_prompts(prompts, tok, model.config.max_position_embeddings), top_k)
    return pd.concat([prompts.reset_index(drop=True), scored], axis=1)


def test_equals_the_fill_mask_pipeline(hf_series, tiny_benchmark):
    prompts = load_benchmark(tiny_benchmark).prompts
    single = prompts[prompts.answer != "kings"]
    for folder in sorted(hf_series.glob("checkpoint-*")):
        model, tok = load_checkpoint(str(folder))
        ours = score(model, tok, single, top_k=5)
        fill = pipeline("fill-mask", model=str(folder), tokenizer=str(folder), device="cpu")
        for row, prompt in zip(ours.itertuples(), single.prompt):
            theirs = fill(prompt, top_k=5)
            assert row.topk_tokens == [fill.tokenizer.convert_ids_to_tokens(t["token"]) for t in theirs]
            assert row.topk_probs == pytest.approx([t["score"] for t in theirs], abs=1e-5)


def test_multi_piece_answers_are_scored_jointly(tiny_series, tiny_benchmark):
    model, tok = load_checkpoint(str(tiny_series / "checkpoint-8"))
    prompts = load_benchmark(tiny_benchmark).prompts
    row = score(model, tok, prompts).set_index("answer").loc["kings"]
    assert row.n_pieces == 2 == len(tok.tokenize("kings"))
    ids = tok("the king of the [MASK] [MASK].", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
    masks = (ids[0] == tok.mask_token_id).nonzero().flatten()
    gold = tok.convert_tokens_to_ids(["king", "##s"])
    expected = sum(float(logp[m, g]) for m, g in zip(masks, gold))
    assert row.gold_logprob == pytest.approx(expected, abs=1e-4)
    greedy = [int(logp[m].argmax()) for m in masks]
    assert (row.gold_rank == 1) == (greedy == gold)


def test_non_finite_logits_are_unscorable_never_right(tiny_series, tiny_benchmark):
    model, tok = load_checkpoint(str(tiny_series / "checkpoint-8"))
    with torch.no_grad():
        model.cls.predictions.decoder.bias.fill_(float("nan"))
    scored = score(model, tok, load_benchmark(tiny_benchmark).prompts)
    assert scored.gold_rank.isna().all() and not scored.correct.any()
    table = summarize(scored.assign(group="all"), ["relation"])
    assert (table.n == 0).all() and (table.n_unscorable > 0).all() and table.p_at_1.isna().all()


def test_one_rule_for_unscorable_prompts():
    frame = pd.DataFrame({"relation": ["r"] * 4, "gold_rank": [1.0, 12.0, 4.0, np.nan],
                          "gold_logprob": [-0.1, -5.0, -2.0, np.nan]})
    row = summarize(frame, ["relation"]).iloc[0]
    assert (row.n, row.n_unscorable) == (3, 1)
    assert row.p_at_1 == pytest.approx(1 / 3) and row.p_at_10 == pytest.approx(2 / 3)
    assert row.mrr == pytest.approx((1 + 1 / 12 + 1 / 4) / 3)
    assert row.mean_gold_logprob == pytest.approx(-7.1 / 3)
    assert math.isnan(summarize(frame.iloc[3:], ["relation"]).iloc[0].p_at_1)
