"""Pseudo-log-likelihood (PLL) of whole sentences under a masked LM: how minimal pairs are scored.

PLL (Salazar et al., ACL 2020) masks each token of a sentence in turn and sums the log-probabilities of the
true tokens. PLL-word-l2r (Kauf & Ivanova, ACL 2023; `within_word_l2r`, the default) also masks the later
wordpieces of the same word, so a word split into many pieces cannot predict itself from its own tail.
Both follow PyPI `minicons` 0.3.39 exactly (the tests check it): the special tokens ([CLS], [SEP], [PAD]) are
never scored, words are the tokenizer's `word_ids`.

A sentence of n tokens is n masked copies. Copies of many sentences of the same length (sorted by length,
so no batch is padded and none needs an attention mask) go through the encoder in one batch; the last
layer finishes only the scored position of each copy (after its attention, a forward pre-hook keeps that
one position), and the MLM head runs only there: for a small BERT the vocabulary projection at every
position would be most of the work, and the last layer's feed-forward at every position a third of the rest. A sentence is unscorable (PLL missing) when it is longer than the model's positions, has no scorable
token, or the logits at one of its copies are not finite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from probekit.core.errors import ProbekitError
from probekit.models.families import attention_output_block, blocks, body, max_tokens, mlm_head

METRICS = ("within_word_l2r", "original")
DEFAULT_METRIC = "within_word_l2r"
#: Changes whenever a PLL could change for the same model and sentence: part of the pairs cache key.
PLL_VERSION = 1
BATCH = 1024
"""Masked copies per forward pass by default (larger batches measured no faster on 2 CPU cores)."""


def encode_sentences(sentences: list[str], tokenizer: PreTrainedTokenizerBase) -> dict:
    """Token ids and word ids (-1 for special tokens) of every sentence, with [CLS] and [SEP], unpadded."""
    encoded = tokenizer(list(sentences), add_special_tokens=True)
    try:
        words = [[-1 if w is None else w for w in encoded.word_ids(i)] for i in range(len(sentences))]
    except (ValueError, AttributeError) as exc:
        raise ProbekitError(f"{type(tokenizer).__name__}: PLL needs a fast tokenizer (word ids); "
                            f"got none ({exc.__class__.__name__})") from exc
    return {"input_ids": encoded["input_ids"], "word_ids": words}


@torch.inference_mode()
def pll_scores(model, tokenizer: PreTrainedTokenizerBase, sentences: list[str], metric: str = DEFAULT_METRIC,
               batch_size: int = BATCH, max_length: int | None = None) -> pd.DataFrame:
    """PLL of each sentence: columns `pll` (sum of the scored tokens' log-probabilities, natural log),
    `n_tokens` (scored tokens) and `token_logprobs` (one per scored token, in order), one row per sentence.

    batch_size: masked copies per forward pass. max_length: longest sentence scored, in tokens with
    [CLS] and [SEP] (default: the model's `max_position_embeddings`).
    """
    if metric not in METRICS:
        raise ProbekitError(f"unknown PLL metric {metric!r}; known: {', '.join(METRICS)}")
    if batch_size < 1:
        raise ProbekitError(f"batch_size must be at least 1 (got {batch_size})")
    max_length = max_length or max_tokens(model.config)
    encoded = encode_sentences(sentences, tokenizer)
    ids, words = encoded["input_ids"], encoded["word_ids"]
    n = len(ids)
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    special = {tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id} - {None}
    fits = lengths <= max_length
    width = int(lengths[fits].max()) if fits.any() else 1
    order = np.argsort(np.where(fits, lengths, 0), kind="stable")
    order = order[fits[order]]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    table = np.full((n, width), pad, dtype=np.int64)
    word = np.full((n, width), -1, dtype=np.int64)
    for i in order:
        table[i, : lengths[i]] = ids[i]
        word[i, : lengths[i]] = words[i]
    scored = (np.arange(width)[None, :] < lengths[:, None]) & ~np.isin(table, list(special))
    scored[~fits] = False
    # one copy per scored token, sentences in length order: (sentence, position)
    copy_sentence, copy_position = np.nonzero(scored[order])
    copy_sentence = order[copy_sentence]
    device = next(model.parameters()).device
    table_t, word_t = torch.from_numpy(table).to(device), torch.from_numpy(word).to(device)
    logprob = torch.empty(len(copy_sentence), dtype=torch.float32, device=device)
    encoder, head = body(model), mlm_head(model)
    for start, stop in _batches(lengths[copy_sentence], batch_size):
        s = torch.from_numpy(copy_sentence[start:stop]).to(device)
        p = torch.from_numpy(copy_position[start:stop]).to(device)
        w = int(lengths[copy_sentence[start]])
        rows, row_words = table_t[s, :w], word_t[s, :w]
        columns = torch.arange(w, device=device)[None, :]
        masked = columns == p[:, None]
        if metric == "within_word_l2r":
            own_word = row_words.gather(1, p[:, None])
            masked |= (row_words == own_word) & (own_word >= 0) & (columns > p[:, None])
        inputs = rows.masked_fill(masked, tokenizer.mask_token_id)
        at = torch.arange(len(s), device=device)
        with _last_layer_at(model, at, p):
            hidden = encoder(input_ids=inputs).last_hidden_state  # one length a batch: no padding, no mask
        hidden = hidden[:, 0] if hidden.shape[1] == 1 else hidden[at, p]
        logits = head(hidden).float()
        logprob[start:stop] = logits.log_softmax(-1).gather(1, rows[at, p][:, None]).squeeze(1)
    values = logprob.cpu().numpy().astype(np.float64)
    counts = np.bincount(copy_sentence, minlength=n)
    totals = np.bincount(copy_sentence, weights=values, minlength=n)
    finite = np.bincount(copy_sentence, weights=~np.isfinite(values), minlength=n) == 0
    ok = fits & (counts > 0) & finite
    per_token: list[list[float]] = [[] for _ in range(n)]
    bounds = np.concatenate([[0], np.cumsum(counts[order])])
    for k, i in enumerate(order):  # the copies come grouped by sentence, in `order`
        if ok[i]:
            per_token[i] = values[bounds[k]:bounds[k + 1]].tolist()
    return pd.DataFrame({"pll": np.where(ok, totals, np.nan), "n_tokens": counts, "token_logprobs": per_token})


@contextlib.contextmanager
def _last_layer_at(model, copies: torch.Tensor, positions: torch.Tensor) -> Iterator[None]:
    """Within the block, the last layer finishes only the scored position of each copy.

    A forward pre-hook on the last layer's attention-output block (BertSelfOutput: output projection,
    residual, LayerNorm) keeps, of its two inputs, only row `positions[i]` of copy i; what follows (that
    block and the feed-forward) then runs on one position per copy instead of all, and the encoder returns
    [copies, 1, hidden]. Attention itself still reads every position. Removed on exit, like every hook.
    Families without BERT's attention-output block (DistilBERT, ALBERT, ModernBERT) run the last layer in
    full; the caller then picks the scored positions.
    """
    block = attention_output_block(model, blocks(model)[-1])
    if block is None or len(set(blocks(model))) < len(blocks(model)):  # no such block, or shared (ALBERT)
        yield
        return

    def keep_scored(module, args):
        hidden, residual, *rest = args
        return (hidden[copies, positions][:, None], residual[copies, positions][:, None], *rest)

    handle = block.register_forward_pre_hook(keep_scored)
    try:
        yield
    finally:
        handle.remove()


def _batches(copy_lengths: np.ndarray, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of batches of at most `batch_size` consecutive copies of one sentence length each
    (`copy_lengths` is sorted), so that no batch is padded."""
    edges = [0, *(np.flatnonzero(np.diff(copy_lengths)) + 1).tolist(), len(copy_lengths)]
    return [(start, min(start + batch_size, stop)) for first, stop in zip(edges[:-1], edges[1:])
            for start in range(first, stop, batch_size)]


@torch.inference_mode()
def pll_reference(model, tokenizer: PreTrainedTokenizerBase, sentence: str, metric: str = DEFAULT_METRIC) -> float:
    """The PLL of one sentence the plain way: one masked copy per forward pass, full logits. For tests."""
    encoded = encode_sentences([sentence], tokenizer)
    ids, words = encoded["input_ids"][0], encoded["word_ids"][0]
    special = {tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id}
    targets = [j for j, t in enumerate(ids) if t not in special]
    total = 0.0
    device = next(model.parameters()).device
    for p in targets:
        masked = list(ids)
        for j in targets:
            if j == p or (metric == "within_word_l2r" and j > p and words[j] == words[p] >= 0):
                masked[j] = tokenizer.mask_token_id
        logits = model(input_ids=torch.tensor([masked], device=device)).logits[0, p].float()
        total += float(logits.log_softmax(-1)[ids[p]])
    return total
