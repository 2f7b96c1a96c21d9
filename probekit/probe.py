"""Batched fill-mask scoring of every checkpoint × benchmark prompt → tidy predictions and scores tables.

Gold answers of several wordpieces get one [MASK] per piece and are scored jointly: their probability is
the product of the per-piece probabilities (all pieces masked at once), and their rank is the worst
per-piece rank, so rank 1 means the greedy fill spells the answer exactly. Single-piece answers reduce
to LAMA's definitions (P@1, P@10, MRR over the vocabulary).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from probekit.benchmarks import DEFAULT_BENCHMARKS, load_benchmark
from probekit.checkpoints import CheckpointRef, fingerprint, load_checkpoint, read_config, read_weights, resolve_checkpoints
from probekit.errors import ProbekitError
from probekit.store import cache_file, manifest, read_cached, write_cached, write_results
from probekit.vocab import load_tokenizer

PREDICTION_COLUMNS = ["benchmark", "relation", "template", "subject", "answer", "prompt", "n_pieces",
                      "gold_rank", "gold_prob", "gold_logprob", "correct", "top1", "topk_tokens", "topk_probs"]


def encode_prompts(prompts: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict:
    """Token ids of every prompt with one mask per gold wordpiece, tokenized once per benchmark."""
    answers = {a: tokenizer(a, add_special_tokens=False)["input_ids"] for a in prompts["answer"].unique()}
    pieces = [answers[a] for a in prompts["answer"]]
    texts = [p.replace("[MASK]", " ".join([tokenizer.mask_token] * len(ids)))
             for p, ids in zip(prompts["prompt"], pieces)]
    ids = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    return {"input_ids": ids, "pieces": pieces}


@torch.inference_mode()
def score_encoded(model, tokenizer: PreTrainedTokenizerBase, encoded: dict, top_k: int = 10,
                  batch_size: int = 128) -> pd.DataFrame:
    """Rank, probability and top-k of each prompt's gold answer; the decoder runs only at [MASK] positions."""
    device = next(model.parameters()).device
    ids, pieces = encoded["input_ids"], encoded["pieces"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = {k: [None] * len(ids) for k in ("gold_rank", "gold_logprob", "top1", "topk_ids", "topk_probs")}
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        input_ids, attention = _pad([ids[i] for i in batch], tokenizer.pad_token_id, device)
        hidden = model.bert(input_ids=input_ids, attention_mask=attention).last_hidden_state
        is_mask = input_ids == tokenizer.mask_token_id
        logprobs = torch.log_softmax(model.cls.predictions(hidden[is_mask]).float(), dim=-1)
        per_prompt = is_mask.sum(1).tolist()
        rows = torch.split(logprobs, per_prompt)
        for i, lp in zip(batch, rows):
            gold = torch.tensor(pieces[i], device=device)
            if len(gold) != len(lp) or len(gold) == 0:
                out["gold_rank"][i], out["gold_logprob"][i] = np.nan, np.nan  # truncated or empty: unscorable
                out["top1"][i], out["topk_ids"][i], out["topk_probs"][i] = "", [], []
                continue
            gold_lp = lp.gather(1, gold[:, None])
            out["gold_rank"][i] = int(((lp > gold_lp).sum(1) + 1).max())
            out["gold_logprob"][i] = float(gold_lp.sum())
            out["top1"][i] = tokenizer.decode(lp.argmax(1).tolist())
            top = lp[0].topk(top_k)
            out["topk_ids"][i] = top.indices.tolist()
            out["topk_probs"][i] = top.values.exp().tolist()
    frame = pd.DataFrame(out)
    frame["topk_tokens"] = [tokenizer.convert_ids_to_tokens(t) for t in frame.pop("topk_ids")]
    frame["n_pieces"] = [len(p) for p in pieces]
    frame["gold_prob"] = np.exp(frame["gold_logprob"])
    frame["correct"] = frame["gold_rank"] == 1
    return frame


def _pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for j, row in enumerate(rows):
        ids[j, : len(row)] = torch.tensor(row)
    return ids.to(device), (ids != pad_id).long().to(device) if pad_id is not None else torch.ones_like(ids)


def score_prompts(model, tokenizer: PreTrainedTokenizerBase, prompts: pd.DataFrame, top_k: int = 10,
                  batch_size: int = 128) -> pd.DataFrame:
    """One row per prompt: the prompt's columns plus gold rank, probabilities and top-k predictions."""
    max_length = model.config.max_position_embeddings
    scored = score_encoded(model, tokenizer, encode_prompts(prompts, tokenizer, max_length), top_k, batch_size)
    frame = pd.concat([prompts.reset_index(drop=True), scored], axis=1)
    return frame[PREDICTION_COLUMNS]


def relation_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per checkpoint × benchmark × relation: P@1, P@10, MRR and n (LAMA), plus multi-piece counts."""
    keys = ["checkpoint", "step", "benchmark", "relation"]
    scorable = predictions.dropna(subset=["gold_rank"])
    grouped = scorable.groupby(keys, sort=False, dropna=False)
    scores = grouped.agg(
        n=("gold_rank", "size"),
        p_at_1=("gold_rank", lambda r: float((r <= 1).mean())),
        p_at_10=("gold_rank", lambda r: float((r <= 10).mean())),
        mrr=("gold_rank", lambda r: float((1.0 / r).mean())),
        mean_gold_logprob=("gold_logprob", "mean"),
        n_multi_piece=("n_pieces", lambda n: int((n > 1).sum())),
    ).reset_index()
    unscorable = predictions[predictions["gold_rank"].isna()].groupby(keys, dropna=False).size()
    scores["n_unscorable"] = [int(unscorable.get(tuple(k), 0)) for k in scores[keys].itertuples(index=False)]
    return scores


# ---------------------------------------------------------------- a whole series


@dataclass
class ProbeResult:
    """The tables of one probing run (the same ones written to `--out`)."""

    predictions: pd.DataFrame
    scores: pd.DataFrame
    checkpoints: pd.DataFrame
    manifest: dict

    @property
    def skipped(self) -> pd.DataFrame:
        return self.checkpoints[self.checkpoints["status"] == "skipped"]

    def summary(self, metric: str = "p_at_1") -> pd.DataFrame:
        """`metric` per checkpoint (rows, in training order) × relation (columns)."""
        table = self.scores.pivot_table(index=["step", "checkpoint"], columns="relation", values=metric,
                                        sort=False)
        return table.sort_index(level="step")


def probe(
    checkpoints: list[str] | str,
    benchmarks: list[str] | tuple[str, ...] = DEFAULT_BENCHMARKS,
    out: str | Path | None = None,
    tokenizer: str | PreTrainedTokenizerBase | None = None,
    allow_pickle: bool = False,
    top_k: int = 10,
    batch_size: int = 128,
    control: bool = True,
    device: str | None = None,
    say=print,
    progress: bool = True,
) -> ProbeResult:
    """Score every benchmark prompt on every checkpoint of a series, one checkpoint in memory at a time.

    Bad checkpoints are reported and skipped; identical weights are marked as duplicates; with `out`,
    results are cached per (weights fingerprint, benchmark) so a rerun on a grown series probes only
    what is new. `control` adds a random-initialisation row when the series has no step 0.
    """
    refs = resolve_checkpoints(checkpoints)
    benches = [load_benchmark(b) for b in benchmarks]
    for problem in (p for b in benches for p in b.problems):
        say(problem)
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out) if out is not None else None
    settings = f"k{top_k}"
    frames, records, seen = [], [], {}
    bar = tqdm(total=len(refs) * len(benches), desc="probing", unit="ckpt×bench", disable=not progress)
    for ref in refs:
        record = {"checkpoint": ref.name, "path": ref.location, "step": ref.step, "fingerprint": None,
                  "status": "ok", "duplicate_of": None, "error": None}
        records.append(record)
        try:
            frames += _probe_one(ref, benches, tok, allow_pickle, top_k, batch_size, device, out, settings, record)
        except ProbekitError as exc:
            record.update(status="skipped", error=str(exc))
            tqdm.write(f"skipped: {exc}")
        if record["fingerprint"] in seen and record["status"] == "ok":
            record.update(status="duplicate", duplicate_of=seen[record["fingerprint"]])
            tqdm.write(f"{ref.location}: same weights as {seen[record['fingerprint']]} (fingerprint "
                       f"{record['fingerprint']})")
        seen.setdefault(record["fingerprint"], ref.name)
        bar.update(len(benches))
    bar.close()
    ok = [r for r in records if r["status"] != "skipped"]
    if control and ok and not any(r["step"] == 0 for r in ok):
        frames += _random_init_control(refs, ok[0], benches, tok, top_k, batch_size, device, records)
    table = pd.DataFrame(records)
    predictions = pd.concat(frames, ignore_index=True) if frames else _empty_predictions()
    predictions = predictions.sort_values("step", kind="stable").reset_index(drop=True)
    scores = relation_scores(predictions)
    info = manifest(benchmarks={b.name: {"source": str(b.source), "sha256": b.sha256, "prompts": len(b.prompts),
                                         "malformed_rows": len(b.problems)} for b in benches},
                    top_k=top_k, device=str(device), checkpoints=len(refs), skipped=int((table.status == "skipped").sum()))
    result = ProbeResult(predictions, scores, table, info)
    if out is not None:
        write_results(out, predictions, scores, table, info)
    return result


def _probe_one(ref: CheckpointRef, benches, tok, allow_pickle, top_k, batch_size, device, out, settings,
               record) -> list[pd.DataFrame]:
    model = None
    weights = read_weights(ref, allow_pickle) if ref.is_local else None
    if weights is None:
        model, tok = load_checkpoint(ref, tok, attn_implementation="sdpa")
        weights = model.state_dict()
    record["fingerprint"] = fingerprint(weights)
    if ref.is_local:
        read_config(ref)
    frames = []
    for bench in benches:
        path = cache_file(out, record["fingerprint"], bench.sha256, settings) if out is not None else None
        frame = read_cached(path)
        if frame is None:
            if model is None:
                model, tok_used = load_checkpoint(ref, tok, allow_pickle, "sdpa", weights=weights)
                model.to(device)
            frame = score_prompts(model, tok_used if ref.is_local else tok, bench.prompts, top_k, batch_size)
            write_cached(path, frame)
        frames.append(frame.assign(checkpoint=ref.name, step=ref.step, fingerprint=record["fingerprint"]))
    return frames


def _random_init_control(refs, first_ok, benches, tok, top_k, batch_size, device, records) -> list[pd.DataFrame]:
    """A random initialisation of the series' architecture: what prompt bias alone scores."""
    ref = next(r for r in refs if r.name == first_ok["checkpoint"])
    config = read_config(ref) if ref.is_local else None
    _, tok = load_checkpoint(ref, tok, attn_implementation="sdpa") if tok is None else (None, tok)
    torch.manual_seed(0)
    from transformers import BertForMaskedLM

    model = BertForMaskedLM(config).eval().to(device)
    fp = fingerprint(model.state_dict())
    records.insert(0, {"checkpoint": "random-init", "path": None, "step": 0, "fingerprint": fp,
                       "status": "control", "duplicate_of": None, "error": None})
    return [score_prompts(model, tok, b.prompts, top_k, batch_size).assign(
        checkpoint="random-init", step=0, fingerprint=fp) for b in benches]


def _empty_predictions() -> pd.DataFrame:
    return pd.DataFrame(columns=[*PREDICTION_COLUMNS, "checkpoint", "step", "fingerprint"])
