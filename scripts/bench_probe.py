"""Probing speed: `probekit.probe` against a loop over `pipeline("fill-mask")`, measured in the same run.

Both score the same single-wordpiece prompts (top-10) on the same checkpoints, loading included.
Prints prompts×checkpoints per second for each and the ratio.

With `--procs N`, instead: the same probe (`--with`, default lens,ablation) by one process with N threads
and by N torchrun processes with one thread each (one GPU each where there are GPUs), each into a fresh
folder and both timed from the command line (start-up included); prints units per second of each, the
ratio, how evenly the units were shared, and the merge pass (what sharding adds) as a share of the run.

    python scripts/bench_probe.py                       # makes a 6-checkpoint series of the default model
    python scripts/bench_probe.py --checkpoints 'local/demo/my_bert/*' --prompts 1000
    python scripts/bench_probe.py --procs 2             # 2 threads x 1 process against 1 thread x 2 processes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
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
    parser.add_argument("--procs", type=int, default=None,
                        help="compare 1 process x N threads with N torchrun processes x 1 thread instead")
    parser.add_argument("--with", dest="analyses", default="lens,ablation", help="analyses for --procs")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    series = args.checkpoints or make_series(work / "series", args.corpus, args.tokenizer)
    bench = single_piece_benchmark(args.prompts, work, args.tokenizer)
    if args.procs:
        bench_procs(series, bench, args.procs, args.analyses, work)
    else:
        bench_pipeline(series, bench)


def bench_pipeline(series: str, bench: Path) -> None:
    """probekit.probe against a loop over the fill-mask pipeline, the same prompts and checkpoints."""
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


def bench_procs(series: str, bench: Path, procs: int, analyses: str, work: Path) -> None:
    """One process with `procs` threads against `procs` torchrun processes with one thread each."""
    from probekit.results import ProbeResult

    probe_args = ["-m", "probekit", "probe", series, "-b", str(bench), "--with", analyses, "--no-control"]
    one_out, many_out = work / "procs-1", work / f"procs-{procs}"
    for folder in (one_out, many_out):
        shutil.rmtree(folder, ignore_errors=True)
    startup = _timed([sys.executable, "-c", "import probekit.runner, probekit.shards"], threads=procs)
    one = _timed([sys.executable, *probe_args, "--out", str(one_out)], threads=procs)
    many = _timed([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
                   *probe_args, "--out", str(many_out)], threads=1)
    merged = ProbeResult.load(many_out)
    same = all(merged.tables[name].equals(table) for name, table in ProbeResult.load(one_out).tables.items())
    units = merged.manifest["units"]
    busy = [sum(u["seconds"] for u in units if u["shard"][0] == shard) for shard in range(procs)]
    start = time.perf_counter()
    probe(series, [str(bench)], analyses.split(","), out=many_out, control=False, merge=True)
    merge = time.perf_counter() - start

    where = (f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}" if torch.cuda.is_available()
             else f"CPU ({os.cpu_count()} cores)")
    print(f"== bench_probe --procs {procs} on {where}: {len(units)} units "
          f"({len(merged.checkpoints)} checkpoints, --with {analyses}) ==")
    print(f"1 process  x {procs} threads  {one:8.2f} s  {len(units) / one:8.2f} units/s")
    print(f"{procs} processes x 1 thread   {many:8.2f} s  {len(units) / many:8.2f} units/s")
    print(f"ratio: {one / many:.2f}x ({(one / many - 1) / max(procs - 1, 1):.2f} per added process); "
          f"start-up of one process {startup:.2f} s; tables identical: {same}")
    print(f"busy seconds per shard: {', '.join(f'{b:.2f}' for b in busy)} "
          f"(slowest / mean {max(busy) / (sum(busy) / procs):.2f})")
    print(f"sharding + merge overhead: the merge pass {merge:.2f} s = {merge / many:.0%} of the {procs}-process run")


def _timed(command: list[str], threads: int) -> float:
    """Wall seconds of `command` with `threads` threads per process (fails loudly if it fails)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PROBEKIT_PROGRESS": "0"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
