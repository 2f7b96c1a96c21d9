"""Minimal-pair scoring speed: `probekit.analyses.pll` against PyPI `minicons` 0.3.39, same model, same run.

Both score every sentence of a seeded BLiMP sample (N pairs per paradigm, good and bad) by PLL-word-l2r
on `--device` (on a CPU: the threads torch is given; load the machine with nothing else), after an untimed
warm-up of each; prints sentences per second for each, the ratio, and the largest difference between their
PLLs (they must agree). minicons gets `--minicons-batch` sentences per call (it runs every masked copy of a
call in one forward pass, with full-vocabulary logits at every position).

    python scripts/bench_pairs.py                          # the default preset's model (random init)
    python scripts/bench_pairs.py --preset demo --sample 20
    python scripts/bench_pairs.py --checkpoint local/demo/my_bert/checkpoint-8000
    python scripts/bench_pairs.py --device cuda --minicons-batch 128
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import BertConfig, BertForMaskedLM

from probekit.benchmarks.pairs import load_pairs
from probekit.analyses.pll import BATCH, pll_scores
from probekit.training.presets import get_preset
from probekit.models.series import resolve_checkpoints
from probekit.training.vocab import load_tokenizer


def model_and_tokenizer(checkpoint: str | None, preset: str, tokenizer: str | None, device: str):
    """A checkpoint's model and tokenizer, or a seeded random init of a preset with `tokenizer`'s vocabulary
    (bert-base-uncased by default)."""
    if checkpoint:
        ref = resolve_checkpoints(checkpoint)[-1]
        return ref.model(device), ref.tokenizer, ref.location
    tok = load_tokenizer(tokenizer)
    torch.manual_seed(0)
    config = BertConfig(**get_preset(preset).model_config(len(tok)), pad_token_id=tok.pad_token_id)
    return BertForMaskedLM(config).eval().to(device), tok, f"{preset} preset, random init"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder [a random init of --preset]")
    parser.add_argument("--preset", default="default", help="model size when no checkpoint is given")
    parser.add_argument("--sample", type=int, default=10, help="BLiMP pairs per paradigm (67 paradigms)")
    parser.add_argument("--metric", default="within_word_l2r", choices=["within_word_l2r", "original"])
    parser.add_argument("--minicons-batch", type=int, default=32, help="sentences per minicons call")
    parser.add_argument("--tokenizer", default=None, help="vocabulary of the random init [bert-base-uncased]")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, …: both scorers run there")
    parser.add_argument("--batch-size", type=int, default=BATCH, help="masked copies per probekit forward pass")
    args = parser.parse_args()
    from minicons import scorer

    model, tok, what = model_and_tokenizer(args.checkpoint, args.preset, args.tokenizer, args.device)
    pairs = load_pairs("blimp", sample=args.sample).pairs
    sentences = [*pairs["good"], *pairs["bad"]]
    type(tok).batch_encode_plus = type(tok).__call__  # minicons calls what transformers 5 removed
    mlm = scorer.MaskedLMScorer(model, args.device, tokenizer=tok)
    for warm in (lambda: pll_scores(model, tok, sentences[:64], args.metric),  # untimed: first calls, allocator
                 lambda: mlm.sequence_score(sentences[:8], PLL_metric=args.metric)):
        warm()

    start = time.perf_counter()
    ours = pll_scores(model, tok, sentences, args.metric, batch_size=args.batch_size)["pll"].tolist()
    ours_s = time.perf_counter() - start

    start = time.perf_counter()
    reference = []
    for i in range(0, len(sentences), args.minicons_batch):
        reference += mlm.sequence_score(sentences[i:i + args.minicons_batch], PLL_metric=args.metric,
                                        reduction=lambda x: x.sum(0).item())
    theirs_s = time.perf_counter() - start

    gap = max(abs(a - b) for a, b in zip(ours, reference))
    n = len(sentences)
    print(f"model: {what}; {n:,} BLiMP sentences ({args.sample} pairs × 67 paradigms × 2), {args.metric}, "
          f"{args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else
                              f", {torch.get_num_threads()} CPU threads") + f", torch {torch.__version__}")
    print(f"minicons 0.3.39 ({args.minicons_batch} sentences/call): {theirs_s:7.2f} s  {n / theirs_s:8.1f} sentences/s")
    print(f"probekit.analyses.pll   ({args.batch_size} copies/pass):       {ours_s:7.2f} s  {n / ours_s:8.1f} sentences/s")
    print(f"speed-up {theirs_s / ours_s:.1f}×; largest PLL difference {gap:.2e}")


if __name__ == "__main__":
    main()
