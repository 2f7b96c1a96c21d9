"""The scoring kernel: every place that ranks a gold answer (predictions, logit lens, ablation) calls this.

Prompts are masked with the model's own mask token (`[MASK]`, `<mask>`), and the gold answer is spelled as
it reads in the prompt (a word after a space as a word-initial piece). A gold answer of several pieces gets
one mask per piece and is scored jointly: its log-probability is the sum over the pieces (all masked at
once) and its rank the worst per-piece rank, so rank 1 means the greedy fill spells the answer exactly.
Single-piece answers reduce to LAMA's definitions.

One rule for unscorable prompts, used by every table and plot: a prompt is unscorable when its answer's
pieces do not fit the prompt (truncation, an answer the tokenizer cannot spell as masks, an answer that
needs the unknown token) or the model's logits there are not finite. Its rank is missing; it is counted in
`n_unscorable` and left out of every denominator — never counted as a miss, never as a hit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from probekit.models.families import body, max_tokens, mlm_head, unembed
from probekit.models.hooks import hooked

#: Changes whenever ranks, probabilities or the unscorable rule change: part of every cache key.
SCORING_VERSION = 3
SUMMARY_COLUMNS = ["n", "n_unscorable", "p_at_1", "p_at_10", "mrr", "mean_gold_logprob"]
MASK = "[MASK]"  # a benchmark prompt's slot; the model's own mask token replaces it


def encode_prompts(prompts: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict:
    """Token ids of every prompt with one mask per gold piece, tokenized once per benchmark.

    The masked text is what `pipeline("fill-mask")` would be given (the prompt's `[MASK]` replaced by the
    tokenizer's own mask token, once per piece); the gold pieces are the answer as spelled at that place
    in the filled sentence (`answer_pieces`).
    """
    pieces = answer_pieces(prompts, tokenizer)
    texts = [p.replace(MASK, " ".join([tokenizer.mask_token] * max(len(ids), 1)))
             for p, ids in zip(prompts["prompt"], pieces)]
    ids = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    return {"input_ids": ids, "pieces": pieces}


def answer_pieces(prompts: pd.DataFrame, tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Each prompt's answer as token ids, spelled as it reads in the prompt: a word after a space is a
    word-initial piece (byte-level BPE's " Rome" is `ĠRome`, not `Rome`; SentencePiece's `▁Rome`), a word
    opening the prompt is spelled as text-initial. Read off the tokenization of the prompt up to its slot
    with and without the answer. Empty (so the prompt is unscorable) when the answer merges with the text
    before it, or needs the unknown token: it cannot be spelled in this vocabulary.
    """
    slot = [p.index(MASK) for p in prompts["prompt"]]
    before = [p[:i] for p, i in zip(prompts["prompt"], slot)]
    pairs = list(dict.fromkeys(zip(before, prompts["answer"])))
    stems = [b.rstrip() for b, _ in pairs]
    with_answer = [b + a for b, a in pairs]
    encoded = tokenizer([*stems, *with_answer], add_special_tokens=False)["input_ids"]
    stem_ids, full_ids = encoded[: len(pairs)], encoded[len(pairs):]
    unknown = tokenizer.unk_token_id
    spelled = {}
    for pair, stem, full in zip(pairs, stem_ids, full_ids):
        ids = full[len(stem):] if full[: len(stem)] == stem else []
        spelled[pair] = [] if unknown is not None and unknown in ids else ids
    return [spelled[pair] for pair in zip(before, prompts["answer"])]


@torch.inference_mode()
def score_encoded(model, tokenizer: PreTrainedTokenizerBase, encoded: dict, top_k: int = 10,
                  batch_size: int = 128, readout: str | None = None) -> pd.DataFrame:
    """Rank, log-probability and top-k of each prompt's gold answer; the MLM head runs only at mask positions.

    With `readout` (a hook name such as `blocks.0.hook_resid_pre`), the MLM head reads that hook point's
    hidden state instead of the last layer's, through the family's final norm where it has one: the logit
    lens.
    """
    device = next(model.parameters()).device
    head = unembed(model) if readout else mlm_head(model)
    ids, pieces = encoded["input_ids"], encoded["pieces"]
    limit = max_tokens(model.config)  # RoBERTa's positions: two fewer than max_position_embeddings
    fits = np.array([len(x) <= limit for x in ids])
    ids = [x[:limit] for x in ids]
    order = np.argsort([len(x) for x in ids], kind="stable")
    n = len(ids)
    rank, logprob = np.full(n, np.nan), np.full(n, np.nan)
    top_ids, top_probs = np.zeros((n, top_k), dtype=np.int64), np.zeros((n, top_k), dtype=np.float32)
    greedy: list[list[int]] = [[] for _ in range(n)]
    for start in range(0, n, batch_size):
        batch = order[start:start + batch_size]
        input_ids, attention = _pad([ids[i] for i in batch], tokenizer.pad_token_id, device)
        with hooked(model, read=[readout] if readout else []) as seen:
            out = body(model)(input_ids=input_ids, attention_mask=attention)
        hidden = seen[readout] if readout else out.last_hidden_state
        is_mask = input_ids == tokenizer.mask_token_id
        logits = head(hidden[is_mask]).float()  # one row per mask, prompt by prompt
        top = logits.topk(top_k)
        peak = top.values[:, :1]
        log_norm = peak.squeeze(1) + (logits - peak).exp_().sum(-1).log_()
        n_masks = is_mask.sum(1).cpu().numpy()
        first = np.concatenate([[0], np.cumsum(n_masks)[:-1]])
        owner = torch.from_numpy(np.repeat(np.arange(len(batch)), n_masks)).to(device)
        finite = torch.ones(len(batch), device=device).scatter_reduce(
            0, owner, torch.isfinite(logits).all(1).float(), "amin").cpu().numpy() > 0
        ok = np.array([len(pieces[i]) == m > 0 for i, m in zip(batch, n_masks)]) & finite & fits[batch]
        gold = torch.tensor([t for i, good, m in zip(batch, ok, n_masks) for t in (pieces[i] if good else [0] * m)],
                            dtype=torch.long, device=device)
        gold_logit = logits.gather(1, gold[:, None])
        row_rank = (logits > gold_logit).sum(1, dtype=torch.int32).long() + 1
        per_prompt_rank = torch.zeros(len(batch), dtype=torch.long, device=device).scatter_reduce(
            0, owner, row_rank, "amax")
        per_prompt_logprob = torch.zeros(len(batch), device=device).index_add(
            0, owner, gold_logit.squeeze(1) - log_norm)
        rank[batch[ok]] = per_prompt_rank.cpu().numpy()[ok]
        logprob[batch[ok]] = per_prompt_logprob.cpu().numpy()[ok]
        at_first = torch.from_numpy(first[ok]).to(device)
        top_ids[batch[ok]] = top.indices[at_first].cpu().numpy()
        top_probs[batch[ok]] = (top.values[at_first] - log_norm[at_first, None]).exp().cpu().numpy()
        argmax = top.indices[:, 0].tolist()
        for j, i in enumerate(batch):
            if ok[j]:
                greedy[i] = argmax[first[j]:first[j] + n_masks[j]]
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    frame = pd.DataFrame({"gold_rank": rank, "gold_logprob": logprob})
    frame["top1"] = [tokenizer.convert_tokens_to_string([vocab[t] for t in g]).strip() if g else ""
                     for g in greedy]
    scorable = ~np.isnan(rank)
    frame["topk_tokens"] = [[vocab[t] for t in ids] if s else [] for ids, s in zip(top_ids.tolist(), scorable)]
    frame["topk_probs"] = [p.tolist() if s else [] for p, s in zip(top_probs, scorable)]
    frame["n_pieces"] = [len(p) for p in pieces]
    frame["gold_prob"] = np.exp(frame["gold_logprob"])
    frame["correct"] = frame["gold_rank"] == 1
    return frame


def _pad(rows: list[list[int]], pad_id: int | None, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id if pad_id is not None else 0, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, row in enumerate(rows):
        ids[j, : len(row)] = torch.tensor(row)
        mask[j, : len(row)] = 1
    return ids.to(device), mask.to(device)


def summarize(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of `keys`: n (scorable), n_unscorable, P@1, P@10, MRR and mean gold log-probability.

    The one definition of these metrics: unscorable rows (missing rank) are counted apart and left out.
    """
    rank = frame["gold_rank"]
    work = frame[keys].assign(
        scorable=rank.notna(), hit1=hits(frame, 1), hit10=hits(frame, 10),
        rr=1.0 / rank, logprob=frame["gold_logprob"].where(rank.notna()))
    grouped = work.groupby(keys, sort=False, dropna=False)
    out = grouped.agg(n=("scorable", "sum"), total=("scorable", "size"), p_at_1=("hit1", "mean"),
                      p_at_10=("hit10", "mean"), mrr=("rr", "mean"), mean_gold_logprob=("logprob", "mean"))
    out["n_unscorable"] = out["total"] - out["n"]
    return out.drop(columns="total").reset_index()[[*keys, *SUMMARY_COLUMNS]]


def hits(frame: pd.DataFrame, k: int = 1) -> pd.Series:
    """Rank within `k` per row, missing where the row is unscorable (so sums and means skip it)."""
    rank = frame["gold_rank"]
    return (rank <= k).astype(float).where(rank.notna())
