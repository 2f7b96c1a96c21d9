"""Capture cost and memory, against baselines measured in the same run.

1. Speed: one forward with probekit's hooks capturing Q/K/V, attention and outputs of every layer, against a
   plain eager forward with `output_attentions=True` on the same model and batch (target: ≤1.3×).
2. Memory: peak RSS of `probekit.probe(..., analyses=["capture"])` capturing 4 checkpoints of a series and then
   16 (and the whole 20), each in a fresh process, head metrics and drift included (target: no growth with
   the number of checkpoints).

    python scripts/bench_capture.py
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from probekit.benchmarks import DEFAULT_SENTENCES
from probekit.models.activations import CAPTURED, encode_sentences, read_sentences
from probekit.models.families import body
from probekit.models.hooks import hook_names, hooked
from probekit.training.presets import get_preset
from probekit.models.series import load_checkpoint
from probekit.training.trainer import train


def make_series(out: Path, n: int, corpus: str | None, tokenizer: str | None) -> Path:
    if len(list(out.glob("checkpoint-*"))) < n:
        train(out, get_preset("default", max_steps=n - 1, log_until=0, save_every=1), corpus=corpus,
              tokenizer=tokenizer)
    return out


def time_forward(model, batch, capture: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            if capture:
                with hooked(model, read=hook_names(model.config.num_hidden_layers, CAPTURED)):
                    body(model)(**batch)
            else:
                body(model)(**batch, output_attentions=True)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb_of_probe(series: Path, n: int, work: Path) -> float:
    """Peak RSS (MB) of a fresh process probing the first n checkpoints with capture."""
    code = (
        "import resource; from probekit.running.runner import probe; from probekit.models.series import resolve_checkpoints\n"
        "from probekit.core.log import set_progress; set_progress(False)\n"
        f"refs = [r.location for r in resolve_checkpoints({str(series)!r})][:{n}]\n"
        f"probe(refs, analyses=['capture'], out={str(work / f'mem{n}')!r}, control=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="local/bench_capture")
    parser.add_argument("--sentences", type=int, default=64, help="batch size for the speed test")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--tokenizer", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    series = make_series(work / "series", 20, args.corpus, args.tokenizer)
    model, tok = load_checkpoint(str(series / "checkpoint-19"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    sentences = (read_sentences(DEFAULT_SENTENCES) * args.sentences)[: args.sentences]
    batch, _, _ = encode_sentences(tok, sentences, model.config.max_position_embeddings)
    batch = {k: v.to(device) for k, v in batch.items()}
    for capture in (False, True):
        time_forward(model, batch, capture, 3)
    plain = time_forward(model, batch, False, args.repeats)
    captured = time_forward(model, batch, True, args.repeats)
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"== bench_capture on {where} ==")
    print(f"forward, output_attentions=True  {plain * 1e3:8.2f} ms (median of {args.repeats}, {len(sentences)} sentences)")
    print(f"forward, capturing Q/K/V/attn/z  {captured * 1e3:8.2f} ms")
    print(f"speed ratio: {captured / plain:.2f}x (target <= 1.3x)")
    peaks = {n: peak_rss_mb_of_probe(series, n, work) for n in (4, 16, 20)}
    size_mb = (series / "checkpoint-19" / "model.safetensors").stat().st_size / 2**20
    for n, peak in peaks.items():
        print(f"peak RSS capturing {n:2d} checkpoints: {peak:7.0f} MB")
    print(f"memory ratio 16/4: {peaks[16] / peaks[4]:.2f}x (one checkpoint's weights: {size_mb:.0f} MB; "
          f"12 more models held would add {12 * size_mb:.0f} MB)")


if __name__ == "__main__":
    main()
