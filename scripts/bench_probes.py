"""Seconds per checkpoint for every probe of `--with probes` on every layer, the forward excluded.

Features are random (the fits' cost depends on the sentences' lengths, the width and the layers, not on what
the features hold), the sentences and trees are UD English EWT's (dev + test: dev to fit, test to report, as
`ewt:dev+test` does). Two sizes: the demo model's (d 64, 2 layers + embeddings) and BERT-base's (d 768, 12 +
1). Baseline measured in the same run: the UPOS probe fitted in closed form (ridge regression on one-hot
tags, one solve) against the L-BFGS softmax probe, on the same features — its ratio and both accuracies.

    python scripts/bench_probes.py --threads 2 [--sample N] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import torch

from probekit.analyses.probes import PROBES, Parsed, ProbeOptions, prepare, probe_layer, standardise
from probekit.benchmarks.treebank import load_treebank

SIZES = {"demo": (64, 3), "bert-base": (768, 13)}


def closed_form_upos(x_fit: torch.Tensor, y_fit: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor,
                     n_classes: int, l2: float = 1.0) -> float:
    """Accuracy of a ridge regression on one-hot tags (argmax of the fitted scores): one linear solve."""
    x_fit, x_eval = standardise(x_fit, x_eval)
    ones = torch.ones(len(x_fit), 1)
    a = torch.cat([x_fit, ones], 1)
    w = torch.linalg.solve(a.T @ a + l2 * torch.eye(a.shape[1]), a.T @ torch.nn.functional.one_hot(y_fit, n_classes).float())
    pred = (torch.cat([x_eval, torch.ones(len(x_eval), 1)], 1) @ w).argmax(1)
    return float((pred == y_eval).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample", type=int, default=None, help="sentences of each of dev and test (all: none)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--sizes", default="demo,bert-base")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bank = load_treebank("ewt:dev+test", sample=args.sample)
    fit = [Parsed.of(s) for s in bank.sentences if s.split == "dev"]
    eval_ = [Parsed.of(s) for s in bank.sentences if s.split == "test"]
    n_fit, n_eval = sum(len(s.words) for s in fit), sum(len(s.words) for s in eval_)
    print(f"EWT: {len(fit)} fit sentences ({n_fit} words), {len(eval_)} eval sentences ({n_eval} words); "
          f"{args.threads} threads, {args.steps} L-BFGS steps")
    t = time.perf_counter()
    prep = prepare(fit, eval_, 0)
    print(f"labels, trees and controls: {time.perf_counter() - t:.1f} s (once per treebank)")
    opts = ProbeOptions(steps=args.steps)
    for size in args.sizes.split(","):
        d, layers = SIZES[size]
        generator = torch.Generator().manual_seed(0)
        x_fit, x_eval = torch.randn(n_fit, d, generator=generator), torch.randn(n_eval, d, generator=generator)
        per_probe = {}
        for probe in PROBES:
            t = time.perf_counter()
            probe_layer(x_fit, x_eval, prep, opts, probes=(probe,))
            per_probe[probe] = time.perf_counter() - t
        one_layer = sum(per_probe.values())
        y_fit = torch.tensor([i for s in prep.targets["task"]["upos"][:len(fit)] for i in s])
        y_eval = torch.tensor([i for s in prep.targets["task"]["upos"][len(fit):] for i in s])
        t = time.perf_counter()
        closed = closed_form_upos(x_fit, y_fit, x_eval, y_eval, len(prep.tags))
        closed_s = time.perf_counter() - t
        print(f"{size} (d {d}, {layers} layers): {one_layer:.1f} s per layer (task + control), "
              f"≈{one_layer * layers:.0f} s per checkpoint; "
              + ", ".join(f"{p} {s:.1f} s" for p, s in per_probe.items())
              + f"; UPOS closed form {closed_s:.2f} s (L-BFGS/closed form {per_probe['upos'] / 2 / closed_s:.1f}×, "
                f"accuracy on random features {closed:.2f})")


if __name__ == "__main__":
    main()
