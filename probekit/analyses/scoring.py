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
    pieces = encoded["pieces"]
    n = len(pieces)
    rank, logprob = np.full(n, np.nan), np.full(n, np.nan)
    top_ids, top_probs = np.zeros((n, top_k), dtype=np.int64), np.zeros((n, top_k), dtype=np.float32)
    greedy: list[list[int]] = [[] for _ in range(n)]
    for part in _scored(model, tokenizer, encoded, batch_size, top_k, readouts=[readout] if readout else None):
        batch, ok = part.batch, part.ok[0]
        rank[batch[ok]] = part.rank[0][ok]
        logprob[batch[ok]] = part.logprob[0][ok]
        top_ids[batch[ok]] = part.top_ids[part.first[ok]]
        top_probs[batch[ok]] = part.top_probs[part.first[ok]]
        argmax = part.top_ids[:, 0].tolist()
        for j in np.flatnonzero(ok):
            greedy[batch[j]] = argmax[part.first[j]:part.first[j] + part.n_masks[j]]
    scorable = ~np.isnan(rank)
    used = sorted({t for g in greedy for t in g} | set(np.unique(top_ids[scorable]).tolist()))
    vocab = dict(zip(used, tokenizer.convert_ids_to_tokens(used)))  # only the pieces shown, not the vocabulary
    frame = pd.DataFrame({"gold_rank": rank, "gold_logprob": logprob})
    spelled = {g: tokenizer.convert_tokens_to_string([vocab[t] for t in g]).strip()
               for g in dict.fromkeys(map(tuple, greedy)) if g}  # once per distinct fill
    frame["top1"] = [spelled[tuple(g)] if g else "" for g in greedy]
    frame["topk_tokens"] = [[vocab[t] for t in ids] if s else [] for ids, s in zip(top_ids.tolist(), scorable)]
    frame["topk_probs"] = [p.tolist() if s else [] for p, s in zip(top_probs, scorable)]
    frame["n_pieces"] = [len(p) for p in pieces]
    frame["gold_prob"] = np.exp(frame["gold_logprob"])
    frame["correct"] = frame["gold_rank"] == 1
    return frame


@torch.inference_mode()
def gold_scores(model, tokenizer: PreTrainedTokenizerBase, encoded: dict, batch_size: int = 128, copies: int = 1,
                write: dict | None = None, readouts: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(gold_rank, gold_logprob), each [copies, prompts], missing where unscorable: what `score_encoded`
    gives, without the top-k. With `copies`, each batch runs tiled `copies` times in one forward pass (copy c
    is rows c·b … c·b + b − 1) under the hook edits `write`, which tell the copies apart (e.g.
    `probekit.models.hooks.zero_each_head`): one pass scores several interventions. With `readouts` (hook
    names), one forward pass is read at each of them through the family's head (the logit lens): the
    first axis is then the readout."""
    n = len(encoded["pieces"])
    views = len(readouts) if readouts else copies
    rank, logprob = np.full((views, n), np.nan), np.full((views, n), np.nan)
    for part in _scored(model, tokenizer, encoded, batch_size, 0, readouts=readouts, copies=copies, write=write):
        for c in range(views):
            ok = part.ok[c]
            rank[c, part.batch[ok]] = part.rank[c][ok]
            logprob[c, part.batch[ok]] = part.logprob[c][ok]
    return rank, logprob


class _Part:
    """One batch scored: its prompts' indices, per copy their rank, log-probability and whether they are
    scorable; per mask (first copy) the top-k; where each prompt's masks start and how many it has."""

    def __init__(self, batch, n_masks, first, ok, rank, logprob, top_ids=None, top_probs=None):
        self.batch, self.n_masks, self.first, self.ok = batch, n_masks, first, ok
        self.rank, self.logprob, self.top_ids, self.top_probs = rank, logprob, top_ids, top_probs


CHUNK_ROWS = 128
"""Mask rows projected onto the vocabulary at a time: enough rows for an efficient projection (fewer make it
slower at BERT-base size), few enough that their logits (16 MB at a 30k vocabulary) stay in a CPU's cache
across the passes over them, however many copies a batch runs as."""


def _scored(model, tokenizer: PreTrainedTokenizerBase, encoded: dict, batch_size: int, top_k: int,
            readouts: list[str] | None = None, copies: int = 1, write: dict | None = None):
    """Each batch of prompts through the body (tiled `copies` times under `write`) and the MLM head at its
    masks — or, with `readouts`, the head read at each of those hook points of the one pass (the views of a
    batch are then the readouts, not copies): the gold's rank and log-probability per prompt and view, and
    (top_k > 0) the top-k per mask."""
    if readouts and copies > 1:
        raise ValueError("readouts and copies do not combine")
    device = next(model.parameters()).device
    head = unembed(model) if readouts else mlm_head(model)
    views = len(readouts) if readouts else copies
    ids, pieces = encoded["input_ids"], encoded["pieces"]
    limit = max_tokens(model.config)  # RoBERTa's positions: two fewer than max_position_embeddings
    fits = np.array([len(x) <= limit for x in ids])
    ids = [x[:limit] for x in ids]
    lengths = np.array([len(x) for x in ids])
    order = np.argsort(lengths, kind="stable")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(ids), batch_size):
        batch = order[start:start + batch_size]
        input_ids, attention = _pad([ids[i] for i in batch], lengths[batch], pad, device)
        is_mask = input_ids == tokenizer.mask_token_id
        n_masks = is_mask.sum(1).cpu().numpy()
        first = np.concatenate([[0], np.cumsum(n_masks)[:-1]])
        ok = np.array([len(pieces[i]) == m > 0 for i, m in zip(batch, n_masks)]) & fits[batch]
        gold = torch.tensor([t for i, good, m in zip(batch, ok, n_masks) for t in (pieces[i] if good else [0] * m)],
                            dtype=torch.long, device=device)
        if copies > 1:
            input_ids, attention = input_ids.repeat(copies, 1), attention.repeat(copies, 1)
        points = list(readouts or [])
        if points or write:
            with hooked(model, read=points, write=write) as seen:
                out = body(model)(input_ids=input_ids, attention_mask=attention)
        else:
            seen, out = {}, body(model)(input_ids=input_ids, attention_mask=attention)
        if points:  # one row per mask, readout by readout, prompt by prompt
            hidden = torch.cat([seen[point][is_mask] for point in points])
        else:  # one row per mask, copy by copy, prompt by prompt
            hidden = out.last_hidden_state[is_mask.repeat(copies, 1)]
        stats = _mask_stats(head, hidden, gold.repeat(views), top_k)
        owner = torch.from_numpy(np.repeat(np.arange(len(batch) * views), np.tile(n_masks, views))).to(device)
        rows = len(batch) * views
        finite = torch.ones(rows, device=device).scatter_reduce(0, owner, stats["finite"].float(), "amin")
        rank = torch.zeros(rows, dtype=torch.long, device=device).scatter_reduce(0, owner, stats["rank"], "amax")
        logprob = torch.zeros(rows, device=device).index_add(0, owner, stats["logprob"])
        good = ok[None, :] & (finite.view(views, -1).cpu().numpy() > 0)
        yield _Part(batch, n_masks, first, good, rank.view(views, -1).cpu().numpy(),
                    logprob.view(views, -1).cpu().numpy(),
                    stats["top_ids"].cpu().numpy() if top_k else None,
                    stats["top_probs"].cpu().numpy() if top_k else None)


def _mask_stats(head, hidden: torch.Tensor, gold: torch.Tensor, top_k: int) -> dict[str, torch.Tensor]:
    """Per mask row: the gold's rank among all vocabulary logits, its log-probability, whether every logit
    is finite, and (top_k > 0) the top-k ids and probabilities; the vocabulary projection is made
    `CHUNK_ROWS` rows at a time, so that the passes over its logits read them from cache."""
    out: dict[str, list[torch.Tensor]] = {"rank": [], "logprob": [], "finite": [], "top_ids": [], "top_probs": []}
    step = CHUNK_ROWS
    for start in range(0, len(hidden), step):
        logits = head(hidden[start:start + step]).float()
        rows = gold[start:start + len(logits)]
        low, peak = torch.aminmax(logits, dim=1)
        log_norm = peak + (logits - peak[:, None]).exp_().sum(-1).log_()
        gold_logit = logits.gather(1, rows[:, None])
        out["rank"].append((logits > gold_logit).sum(1) + 1)
        out["logprob"].append(gold_logit.squeeze(1) - log_norm)
        out["finite"].append(torch.isfinite(low) & torch.isfinite(log_norm))
        if top_k:
            top = logits.topk(top_k)
            out["top_ids"].append(top.indices)
            out["top_probs"].append((top.values - log_norm[:, None]).exp())
    if not out["rank"]:  # a batch without masks
        empty = hidden.new_empty(0)
        return {"rank": empty.long(), "logprob": empty, "finite": empty.bool(),
                "top_ids": empty.long().view(0, top_k), "top_probs": empty.view(0, top_k)}
    return {k: torch.cat(v) if v else None for k, v in out.items()}


def _pad(rows: list[list[int]], lengths: np.ndarray, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = int(lengths.max())
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.arange(width)[None, :] < lengths[:, None]
    ids[mask] = np.concatenate(rows)
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask.astype(np.int64)).to(device)


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
