"""Probing speed: `probekit.probe` against a loop over `pipeline("fill-mask")`, measured in the same run.

Both score the same single-wordpiece prompts (top-10) on the same checkpoints, loading included.
Prints prompts×checkpoints per second for each and the ratio.

    python scripts/bench_probe.py                       # makes a 6-checkpoint series of the default model
    python scripts/bench_probe.py --checkpoints 'local/demo/my_bert/*' --prompts 1000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import pipeline
from transformers.utils import logging as hf_logging

from probekit.benchmarks import load_benchmark
from probekit.checkpoints import resolve_checkpoints
from probekit.presets import get_preset
from probekit.log import set_progress
from probekit.runner import probe
from probekit.training import train
from probekit.vocab import load_tokenizer


def make_series(out: Path, corpus: str | None, tokenizer: str | None) -> str:
    if not any(out.glob("checkpoint-*")):
        train(out, get_preset("default", max_steps=10, log_until=0, save_every=2), corpus=corpus,
              tokenizer=tokenizer)
    return str(out / "*")


def single_piece_benchmark(n: int | None, out: Path, tokenizer: str | None) -> Path:
    """The first `n` (default all) countries prompts whose answer is one wordpiece (what the pipeline can score)."""
    tok = load_tokenizer(tokenizer)
    prompts = load_benchmark("countries").prompts
    single = prompts[[len(tok.tokenize(a)) == 1 for a in prompts.answer]].iloc[:n]
    path = out / "bench_prompts.csv"
    single[["relation", "template", "subject", "answer"]].to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", default=None, help="series to probe [a fresh 6-checkpoint series]")
    parser.add_argument("--prompts", type=int, default=None, help="first N single-piece prompts [all]")
    parser.add_argument("--work", default="local/bench_probe")
    parser.add_argument("--corpus", default=None, help="corpus for the fresh series [wiki-leads]")
    parser.add_argument("--tokenizer", default=None, help="tokenizer for the fresh series [bert-base-uncased]")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    series = args.checkpoints or make_series(work / "series", args.corpus, args.tokenizer)
    bench = single_piece_benchmark(args.prompts, work, args.tokenizer)
    prompts = load_benchmark(bench).prompts.prompt.tolist()
    refs = resolve_checkpoints(series)
    n = len(prompts) * len(refs)
    hf_logging.set_verbosity_error()
    set_progress(False)
    device = 0 if torch.cuda.is_available() else -1

    start = time.perf_counter()
    for ref in refs:
        fill = pipeline("fill-mask", model=ref.location, tokenizer=ref.location, device=device)
        for prompt in prompts:
            fill(prompt, top_k=10)
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    result = probe(series, [str(bench)], control=False)
    ours = time.perf_counter() - start
    assert len(result.predictions) == n

    start = time.perf_counter()
    ablated = probe(series, [str(bench)], ["ablation"], control=False)
    with_ablation = time.perf_counter() - start
    heads = int(ablated.ablation.groupby("checkpoint").apply(lambda d: len(d[["layer", "head"]].drop_duplicates())).max())

    where = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"== bench_probe on {where}: {len(prompts)} prompts x {len(refs)} checkpoints ==")
    print(f"pipeline loop  {baseline:8.2f} s  {n / baseline:9.1f} prompt-checkpoints/s")
    print(f"probekit.probe {ours:8.2f} s  {n / ours:9.1f} prompt-checkpoints/s")
    print(f"ratio: {baseline / ours:.1f}x")
    print(f"probe + head ablation ({heads} heads, one batched pass each) {with_ablation:.2f} s: "
          f"{with_ablation / ours:.1f}x one plain probe pass")


if __name__ == "__main__":
    main()
