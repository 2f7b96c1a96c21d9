import math

import pytest

from probekit import ProbekitError
from probekit.analyses.pll import METRICS, pll_reference, pll_scores
from probekit.models.series import resolve_checkpoints

# words of the tiny vocabulary, plural "##s" (several wordpieces), and unknown words ([UNK])
SENTENCES = [
    "the kings of the north is old.",
    "the kings of the north are old.",
    "rivers and queens of italy.",
    "the capital of france is paris.",
    "people's music is new in rome",
    "zebra kings quickly.",
    "a",
]


@pytest.fixture(scope="module")
def trained(tiny_series):
    ckpt = resolve_checkpoints(str(tiny_series))[-1]
    return ckpt.model("cpu"), ckpt.tokenizer


@pytest.mark.parametrize("metric", METRICS)
def test_equals_minicons_per_sentence(trained, metric, monkeypatch):
    from minicons import scorer

    model, tok = trained
    # minicons 0.3.39 calls batch_encode_plus, which transformers 5 removed; __call__ does the same
    monkeypatch.setattr(type(tok), "batch_encode_plus", type(tok).__call__, raising=False)
    reference = scorer.MaskedLMScorer(model, "cpu", tokenizer=tok).sequence_score(
        SENTENCES, PLL_metric=metric, reduction=lambda x: x.sum(0).item())
    ours = pll_scores(model, tok, SENTENCES, metric=metric, batch_size=5)["pll"]
    assert ours.tolist() == pytest.approx(reference, abs=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_batched_equals_one_mask_per_forward(trained, metric):
    model, tok = trained
    loop = [pll_reference(model, tok, s, metric) for s in SENTENCES]
    for batch_size in (1, 3, 1000):  # copies of one sentence split over batches, and all in one
        ours = pll_scores(model, tok, SENTENCES, metric=metric, batch_size=batch_size)["pll"]
        assert ours.tolist() == pytest.approx(loop, abs=1e-4)
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())  # the last-layer hook is gone


def test_word_l2r_differs_from_the_original_only_on_words_of_several_pieces(trained):
    model, tok = trained
    original = pll_scores(model, tok, SENTENCES, metric="original")["pll"]
    l2r = pll_scores(model, tok, SENTENCES, metric="within_word_l2r")["pll"]
    split = [any(t.startswith("##") for t in tok.tokenize(s)) for s in SENTENCES]
    assert any(split) and not all(split)
    for s, o, w in zip(split, original, l2r):
        assert (abs(o - w) > 1e-6) == s


def test_per_token_logprobs_sum_to_the_pll(trained):
    model, tok = trained
    frame = pll_scores(model, tok, SENTENCES)
    for sentence, (pll, n, tokens) in zip(SENTENCES, frame[["pll", "n_tokens", "token_logprobs"]].itertuples(
            index=False)):
        assert n == len(tok.tokenize(sentence)) == len(tokens)
        assert sum(tokens) == pytest.approx(pll, abs=1e-5)
        assert all(t <= 0 for t in tokens)


def test_too_long_or_empty_sentences_are_unscorable_not_scored(trained):
    model, tok = trained
    long = " ".join(["the king"] * 40)  # 80 tokens: more than the model's 64 positions
    frame = pll_scores(model, tok, ["the king is old.", long, ""])
    assert math.isfinite(frame["pll"][0])
    assert math.isnan(frame["pll"][1]) and frame["token_logprobs"][1] == []
    assert math.isnan(frame["pll"][2]) and frame["n_tokens"][2] == 0
    short = pll_scores(model, tok, ["the king is old.", "the king is very old."], max_length=7)["pll"]
    assert math.isfinite(short[0]) and math.isnan(short[1])


def test_bad_arguments_are_one_line_errors(trained):
    model, tok = trained
    with pytest.raises(ProbekitError, match="unknown PLL metric 'l2r'; known: within_word_l2r, original"):
        pll_scores(model, tok, SENTENCES, metric="l2r")
    with pytest.raises(ProbekitError, match="batch_size must be at least 1"):
        pll_scores(model, tok, SENTENCES, batch_size=0)
