"""Seconds per checkpoint of syntax-heads (one forward per batch + scoring every head) against a plain loop.

Random weights at demo size (the `demo` preset's shape) and at BERT-base size (12 × 768, 12 heads), the
bert-base-uncased vocabulary, on a sample of UD English EWT test. The plain loop is the obvious version: one
sentence at a time through the stock HF model (`output_attentions=True`, eager), word attention and argmax per
head with torch, no batching. Prints seconds per checkpoint and the ratio.

    .venv/bin/python scripts/bench_syntax.py [--sentences 300] [--sizes demo,base]
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import BertConfig, BertForMaskedLM

from probekit.analyses.syntax_heads import align, head_rows, measure
from probekit.benchmarks.treebank import load_treebank
from probekit.training.presets import get_preset
from probekit.training.vocab import load_tokenizer


def config(size: str, vocab: int) -> BertConfig:
    if size == "base":
        return BertConfig(vocab_size=vocab)
    r = get_preset("demo")
    return BertConfig(vocab_size=vocab, hidden_size=r.hidden_size, num_hidden_layers=r.num_layers,
                      num_attention_heads=r.num_heads, intermediate_size=r.intermediate_size,
                      max_position_embeddings=512)


def plain_loop(model, tok, sentences) -> None:
    """One sentence at a time, word attention by pooling matrices, argmax per head."""
    for s in sentences:
        ids, owner = align(tok, s.words)
        n = len(s.words)
        pool = torch.zeros(len(ids), n)
        for t, w in enumerate(owner):
            if w >= 0:
                pool[t, w] = 1
        with torch.no_grad():
            attentions = model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
        for pattern in attentions:
            words = (pool.T / pool.sum(0)[:, None]) @ pattern[0] @ pool
            (words / words.sum(-1, keepdim=True)).argmax(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--sizes", default="demo,base")
    args = parser.parse_args()
    tok = load_tokenizer()
    bank = load_treebank("ewt", sample=args.sentences)
    for size in args.sizes.split(","):
        torch.manual_seed(0)
        model = BertForMaskedLM(config(size, len(tok))).eval()
        model.set_attn_implementation("eager")
        start = time.perf_counter()
        head_rows(measure(model, tok, bank.sentences))
        ours = time.perf_counter() - start
        start = time.perf_counter()
        plain_loop(model, tok, bank.sentences)
        plain = time.perf_counter() - start
        print(f"{size}: {bank.size} sentences, {torch.get_num_threads()} threads: syntax-heads {ours:.1f} s per "
              f"checkpoint, plain loop {plain:.1f} s (forward + argmax only), ratio {plain / ours:.2f}")


if __name__ == "__main__":
    main()
