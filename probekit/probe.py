"""Batched fill-mask scoring of every checkpoint × benchmark prompt → tidy predictions and scores tables.

Gold answers of several wordpieces get one [MASK] per piece and are scored jointly: their probability is
the product of the per-piece probabilities (all pieces masked at once), and their rank is the worst
per-piece rank, so rank 1 means the greedy fill spells the answer exactly. Single-piece answers reduce
to LAMA's definitions (P@1, P@10, MRR over the vocabulary).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import BertForMaskedLM, PreTrainedTokenizerBase

from probekit.benchmarks import DEFAULT_BENCHMARKS, DEFAULT_SENTENCES, load_benchmark
from probekit.capture import Capture, capture, read_sentences
from probekit.checkpoints import (
    CheckpointRef,
    fingerprint,
    load_checkpoint,
    load_tokenizer_for,
    read_config,
    read_weights,
    resolve_checkpoints,
)
from probekit.errors import ProbekitError
from probekit.facts import FactRecord, fact_groups
from probekit.metrics import head_metrics
from probekit.store import cache_file, manifest, read_cached, write_cached, write_results, write_training_log
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
                  batch_size: int = 128, layer: int | None = None) -> pd.DataFrame:
    """Rank, probability and top-k of each prompt's gold answer; the decoder runs only at [MASK] positions.

    With `layer`, the MLM head reads that layer's hidden state instead of the last one (0 = the embeddings):
    the logit lens.
    """
    device = next(model.parameters()).device
    ids, pieces = encoded["input_ids"], encoded["pieces"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    n = len(ids)
    rank, logprob = np.full(n, np.nan), np.full(n, np.nan)
    top_ids, top_probs = np.zeros((n, top_k), dtype=np.int64), np.zeros((n, top_k), dtype=np.float32)
    greedy: list[list[int]] = [[] for _ in range(n)]
    for start in range(0, n, batch_size):
        batch = order[start:start + batch_size]
        input_ids, attention = _pad([ids[i] for i in batch], tokenizer.pad_token_id, device)
        out = model.bert(input_ids=input_ids, attention_mask=attention, output_hidden_states=layer is not None)
        hidden = out.last_hidden_state if layer is None else out.hidden_states[layer]
        is_mask = input_ids == tokenizer.mask_token_id
        logits = model.cls.predictions(hidden[is_mask]).float()  # one row per [MASK], prompt by prompt
        top = logits.topk(top_k)
        peak = top.values[:, :1]
        log_norm = peak.squeeze(1) + (logits - peak).exp_().sum(-1).log_()
        n_masks = is_mask.sum(1).cpu().numpy()
        first = np.concatenate([[0], np.cumsum(n_masks)[:-1]])
        ok = np.array([len(pieces[i]) == m > 0 for i, m in zip(batch, n_masks)])
        owner = torch.from_numpy(np.repeat(np.arange(len(batch)), n_masks)).to(device)
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
    vocab = _id_to_token(tokenizer)
    frame = pd.DataFrame({"gold_rank": rank, "gold_logprob": logprob})
    frame["top1"] = [" ".join(vocab[t] for t in g).replace(" ##", "") for g in greedy]
    scorable = ~np.isnan(rank)
    frame["topk_tokens"] = [[vocab[t] for t in ids] if s else [] for ids, s in zip(top_ids.tolist(), scorable)]
    frame["topk_probs"] = [p.tolist() if s else [] for p, s in zip(top_probs, scorable)]
    frame["n_pieces"] = [len(p) for p in pieces]
    frame["gold_prob"] = np.exp(frame["gold_logprob"])
    frame["correct"] = frame["gold_rank"] == 1
    return frame


def _id_to_token(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    return tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))


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
    return _with_prompts(prompts, scored)


def _with_prompts(prompts: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([prompts.reset_index(drop=True), scored], axis=1)[PREDICTION_COLUMNS]


def relation_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per checkpoint × benchmark × relation: P@1, P@10, MRR and n (LAMA), plus multi-piece counts."""
    keys = ["checkpoint", "step", "benchmark", "relation", "group"]
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
    heads: pd.DataFrame | None = None
    lens: pd.DataFrame | None = None
    ablation: pd.DataFrame | None = None

    @property
    def skipped(self) -> pd.DataFrame:
        return self.checkpoints[self.checkpoints["status"] == "skipped"]

    def summary(self, metric: str = "p_at_1") -> pd.DataFrame:
        """`metric` per checkpoint (rows, in training order) × relation (columns; by fact group if injected)."""
        columns = ["group", "relation"] if self.scores["group"].nunique() > 1 else "relation"
        table = self.scores.pivot_table(index=["step", "checkpoint"], columns=columns, values=metric, sort=False)
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
    sentences: str | Path | list | None = None,
    half: bool = False,
    lens: bool = False,
    ablate: bool = False,
    say=print,
    progress: bool = True,
) -> ProbeResult:
    """Score every benchmark prompt on every checkpoint of a series, one checkpoint in memory at a time.

    Bad checkpoints are reported and skipped; identical weights are marked as duplicates; with `out`,
    results are cached per (weights fingerprint, benchmark) so a rerun on a grown series probes only
    what is new. `control` adds a random-initialisation row when the series has no step 0.
    With `sentences` (a file, a list, or "default" for the shipped set), every checkpoint's Q/K/V and
    attention on them is captured (to `out/attention/NAME.safetensors`, float16 with `half`) and
    summarised per head in `heads`. `lens` adds the logit lens (`lens.parquet`: the MLM head read at every
    layer), `ablate` head ablation (`ablation.parquet`: each head zeroed in turn, one batched pass per head).
    """
    refs = resolve_checkpoints(checkpoints)
    benches = [load_benchmark(b) for b in benchmarks]
    for problem in (p for b in benches for p in b.problems):
        say(problem)
    facts = _fact_record(refs)
    for bench in benches:
        bench.groups = fact_groups(bench.prompts, facts)
    prober = _Prober(benches, load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer,
                     allow_pickle, top_k, batch_size,
                     torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")),
                     Path(out) if out is not None else None, _sentences(sentences), half, say, lens, ablate)
    frames, records, seen = [], [], {}
    for ref in tqdm(refs, desc="probing", unit="checkpoint", disable=not progress):
        record = {"checkpoint": ref.name, "path": ref.location, "step": ref.step, "fingerprint": None,
                  "status": "ok", "duplicate_of": None, "error": None}
        records.append(record)
        try:
            frames += prober.checkpoint(ref, record)
        except ProbekitError as exc:
            record.update(status="skipped", error=str(exc))
            tqdm.write(f"skipped: {exc}")
            continue
        if record["fingerprint"] in seen:
            record.update(status="duplicate", duplicate_of=seen[record["fingerprint"]])
            tqdm.write(f"{ref.location}: same weights as {record['duplicate_of']} "
                       f"(fingerprint {record['fingerprint']})")
        seen.setdefault(record["fingerprint"], ref.name)
    ok = [ref for ref, r in zip(refs, records) if r["status"] != "skipped"]
    if control and ok and not any(ref.step == 0 for ref in ok):
        record = {"checkpoint": "random-init", "path": None, "step": 0, "status": "control",
                  "duplicate_of": None, "error": None}
        frames += prober.random_init(ok[0], record)
        records.insert(0, record)
    table = pd.DataFrame(records).astype({"step": "Int64"})
    predictions = pd.concat(frames, ignore_index=True) if frames else _empty_predictions()
    predictions = predictions.sort_values("step", kind="stable").reset_index(drop=True)
    predictions["group"] = fact_groups(predictions, facts)
    info = manifest(benchmarks={b.name: {"source": str(b.source), "sha256": b.sha256, "prompts": len(b.prompts),
                                         "malformed_rows": len(b.problems)} for b in benches},
                    top_k=top_k, device=str(prober.device), checkpoints=len(refs),
                    skipped=int((table.status == "skipped").sum()), facts=asdict(facts) if facts else None)
    heads = head_metrics(prober.captured()) if prober.sentences else None
    if prober.sentences:
        info["sentences"] = {"count": len(prober.sentences), "sha256": prober.sentences_sha}
    result = ProbeResult(predictions, relation_scores(predictions), table, info, heads,
                         _concat(prober.extra["lens"]) if lens else None,
                         _concat(prober.extra["ablation"]) if ablate else None)
    if out is not None:
        write_results(Path(out), result.predictions, result.scores, table, info,
                      {"heads": heads, "lens": result.lens, "ablation": result.ablation})
        states = [Path(r.location) / "trainer_state.json" for r in refs if r.is_local]
        if states := [s for s in states if s.is_file()]:
            write_training_log(Path(out), states[-1])
    return result


def _fact_record(refs: list[CheckpointRef]) -> FactRecord | None:
    """The fact-injection record written beside the series by `probekit train`, if any."""
    for folder in dict.fromkeys(Path(r.location).parent for r in refs if r.is_local):
        if (record := FactRecord.load(folder)) is not None:
            return record
    return None


def _sentences(spec) -> list | None:
    if spec is None or spec is False:
        return None
    if isinstance(spec, (list, tuple)):
        return list(spec)
    return read_sentences(DEFAULT_SENTENCES if spec == "default" else spec)


@dataclass
class _Prober:
    """Scores checkpoints one at a time; tokenizers and tokenized prompts are shared across the series."""

    benches: list
    tokenizer: PreTrainedTokenizerBase | None
    allow_pickle: bool
    top_k: int
    batch_size: int
    device: torch.device
    out: Path | None
    sentences: list | None = None
    half: bool = False
    say: object = print
    lens: bool = False
    ablate: bool = False
    extra: dict = field(default_factory=lambda: {"lens": [], "ablation": []})
    tokenizers: dict = field(default_factory=dict)
    captures: list = field(default_factory=list)
    encodings: dict = field(default_factory=dict)
    by_fingerprint: dict = field(default_factory=dict)

    def checkpoint(self, ref: CheckpointRef, record: dict) -> list[pd.DataFrame]:
        model = None
        if ref.is_local:
            weights = read_weights(ref, self.allow_pickle)
        else:
            model, _ = load_checkpoint(ref, self.tokenizer, attn_implementation="sdpa")
            weights = model.state_dict()
        record["fingerprint"] = fingerprint(weights)
        if self.sentences:
            model = self.capture(ref, record["fingerprint"], model, weights)
        model = self.inspect(ref, record["fingerprint"], model, weights)
        if record["fingerprint"] in self.by_fingerprint:
            return [f.assign(checkpoint=ref.name, step=ref.step) for f in self.by_fingerprint[record["fingerprint"]]]
        frames = []
        for bench in self.benches:
            def score(bench=bench):
                nonlocal model
                model = self.loaded(ref, model, weights)
                return self.score(model, self.tokenizer_for(ref), bench)

            frame = self.cached(record["fingerprint"], bench, f"k{self.top_k}", score)
            frames.append(frame.assign(checkpoint=ref.name, step=ref.step, fingerprint=record["fingerprint"]))
        self.by_fingerprint[record["fingerprint"]] = frames
        return frames

    def loaded(self, ref: CheckpointRef, model, weights):
        """The checkpoint's model on the device, built from the weights already read if not yet loaded."""
        if model is None:
            model, _ = load_checkpoint(ref, self.tokenizer_for(ref), self.allow_pickle, "sdpa", weights=weights)
        return model.to(self.device)

    def inspect(self, ref: CheckpointRef, fp: str, model, weights):
        """Logit lens and head ablation for this checkpoint (cached like predictions); returns the model."""
        from probekit.interventions import ablation_scores, logit_lens

        for kind, wanted, run in (("lens", self.lens, logit_lens), ("ablation", self.ablate, ablation_scores)):
            if not wanted:
                continue
            for bench in self.benches:
                def inspect(bench=bench, run=run):
                    nonlocal model
                    model = self.loaded(ref, model, weights)
                    tok = self.tokenizer_for(ref)
                    prompts = bench.prompts.assign(group=bench.groups)
                    return run(model, tok, self._encoded(model, tok, bench), prompts, self.batch_size)

                frame = self.cached(fp, bench, kind, inspect)
                self.extra[kind].append(frame.assign(checkpoint=ref.name, step=ref.step))
        return model

    def cached(self, fp: str, bench, kind: str, compute) -> pd.DataFrame:
        """A result per (weights fingerprint, benchmark, kind) from the results cache, computed when missing."""
        path = cache_file(self.out, fp, bench.sha256, kind) if self.out else None
        frame = read_cached(path)
        if frame is None:
            frame = compute()
            write_cached(path, frame)
        return frame

    def _encoded(self, model, tok, bench) -> dict:
        key = (id(tok), bench.sha256, model.config.max_position_embeddings)
        if key not in self.encodings:
            self.encodings[key] = encode_prompts(bench.prompts, tok, model.config.max_position_embeddings)
        return self.encodings[key]

    @cached_property
    def sentences_sha(self) -> str:
        return hashlib.sha256(json.dumps(self.sentences).encode()).hexdigest()[:16]

    def capture(self, ref: CheckpointRef, fp: str, model, weights):
        """Capture Q/K/V and attention for this checkpoint unless an up-to-date file exists; returns the model."""
        path = self.out / "attention" / f"{ref.name}.safetensors" if self.out else None
        if path is not None and path.is_file() and _capture_is_current(path, fp, self.sentences_sha):
            self.captures.append((ref.name, ref.step, path))
            return model
        model = self.loaded(ref, model, weights)
        cap = capture(model, self.sentences, self.tokenizer_for(ref), say=self.say)
        cap.meta = {"fingerprint": fp, "sentences_sha256": self.sentences_sha, "step": ref.step}
        if path is not None:
            cap.save(path, torch.float16 if self.half else torch.float32)
        self.captures.append((ref.name, ref.step, path or cap))
        return model

    def captured(self):
        """(checkpoint, step, Capture) in training order, read one at a time from disk."""
        for name, step, item in sorted(self.captures, key=lambda c: c[1] if c[1] is not None else 1 << 62):
            yield name, step, Capture.load(item) if isinstance(item, Path) else item

    def random_init(self, like: CheckpointRef, record: dict) -> list[pd.DataFrame]:
        """A seeded random initialisation of the series' architecture: what prompt bias alone scores."""
        tok = self.tokenizer_for(like)
        config = read_config(like) if like.is_local else load_checkpoint(like, tok, attn_implementation="sdpa")[0].config
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        model = BertForMaskedLM(config).eval().to(self.device)
        record["fingerprint"] = fingerprint(model.state_dict())
        return [self.score(model, tok, b).assign(checkpoint=record["checkpoint"], step=0,
                                                 fingerprint=record["fingerprint"]) for b in self.benches]

    def tokenizer_for(self, ref: CheckpointRef) -> PreTrainedTokenizerBase:
        if self.tokenizer is not None:
            return self.tokenizer
        key = _tokenizer_files_digest(ref)
        if key not in self.tokenizers:
            self.tokenizers[key] = load_tokenizer_for(ref)
        return self.tokenizers[key]

    def score(self, model, tok: PreTrainedTokenizerBase, bench) -> pd.DataFrame:
        scored = score_encoded(model, tok, self._encoded(model, tok, bench), self.top_k, self.batch_size)
        return _with_prompts(bench.prompts, scored)


def _capture_is_current(path: Path, fp: str, sentences_sha: str) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except Exception:
        return False
    return json.loads(meta.get("fingerprint", "null")) == fp and json.loads(
        meta.get("sentences_sha256", "null")) == sentences_sha


def _tokenizer_files_digest(ref: CheckpointRef) -> str:
    if not ref.is_local:
        return ref.location
    digest = hashlib.sha256()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        path = Path(ref.location) / name
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    return pd.concat(frames, ignore_index=True) if frames else None


def _empty_predictions() -> pd.DataFrame:
    return pd.DataFrame(columns=[*PREDICTION_COLUMNS, "checkpoint", "step", "fingerprint"])
