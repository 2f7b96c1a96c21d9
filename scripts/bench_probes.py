"""Seconds per checkpoint for every probe of `--with probes` on every layer, the forward excluded, for the
previous version measured in the same run — its structural fit (the loss over padded chunks, kept here as
`previous_fit_structural`) with its settings (`--baseline`: 100 L-BFGS iterations run to the end) — and the
current one (`--options`, default: `ProbeOptions()`; several to compare), with the ratio and the largest change
of any probe's main metric between them (task and control, any layer).

Features are random (the fits' cost depends on the sentences' lengths, the width and the layers, not on what
the features hold) at two sizes — the demo model's (d 64, 2 layers + embeddings) and BERT-base's (d 768, 12 +
1) — or, with `--checkpoint PATH`, that checkpoint's own word representations (every layer; their forward is
not timed). The sentences and trees are UD English EWT's (dev + test: dev to fit, test to report, as
`ewt:dev+test` does). With random features one layer is timed and multiplied by the layers.

    python scripts/bench_probes.py --threads 2 [--sample N] [--sizes demo,bert-base]
        [--checkpoint local/demo/my_bert/checkpoint-8000] [--baseline steps=100,tolerance=1e-10]
        [--options tolerance=1e-4]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from probekit.analyses.probes import MAIN, PROBES, Parsed, ProbeOptions, prepare, probe_layer
from probekit.benchmarks.treebank import load_treebank

SIZES = {"demo": (64, 3), "bert-base": (768, 13)}


def settings(text: str) -> ProbeOptions:
    """ProbeOptions from `name=value,…` (the other fields at their defaults)."""
    fields = {f.name: f.type for f in dataclasses.fields(ProbeOptions)}
    values = {}
    for part in filter(None, text.split(",")):
        name, value = part.split("=")
        values[name] = (float if "float" in str(fields[name]) else int if "int" in str(fields[name]) else str)(value)
    return ProbeOptions(**values)


def run(layers: list[tuple[torch.Tensor, torch.Tensor]], prep, opts: ProbeOptions, previous: bool = False
        ) -> tuple[dict, dict]:
    """(seconds per probe summed over `layers`, main metric per (layer, probe, task)); `previous`: with the
    previous version's structural fit."""
    import probekit.analyses.probes as probes

    current, plain_lbfgs = probes.fit_structural, probes.lbfgs

    def counted(params, loss_fn, *args):
        def loss():
            EVALS[0] += 1
            return loss_fn()
        plain_lbfgs(params, loss, *args)

    probes.fit_structural = previous_fit_structural if previous else current
    probes.lbfgs = counted
    try:
        return _run(layers, prep, opts)
    finally:
        probes.fit_structural, probes.lbfgs = current, plain_lbfgs


EVALS = [0]
"""Loss evaluations of the fits (L-BFGS iterations and line-search steps), counted by `run`."""


def _run(layers: list[tuple[torch.Tensor, torch.Tensor]], prep, opts: ProbeOptions) -> tuple[dict, dict]:
    seconds, values = dict.fromkeys(PROBES, 0.0), {}
    for k, (x_fit, x_eval) in enumerate(layers):
        for probe in PROBES:
            start, evals = time.perf_counter(), EVALS[0]
            found = probe_layer(x_fit, x_eval, prep, opts, probes=(probe,))
            seconds[probe] += time.perf_counter() - start
            values[k, probe, "evals"] = EVALS[0] - evals
            for (name, task), result in found.items():
                values[k, name, task] = float(result["hits"].sum() / max(result["items"].sum(), 1))
    return seconds, values


def previous_fit_structural(x: torch.Tensor, lengths: list[int], gold: list, kind: str, *, rank: int, steps: int,
                            seed: int, tolerance: float = 1e-10) -> torch.Tensor:
    """The structural fit of the previous version (probes version 2), kept to time it in the same run: the loss
    over padded chunks of 64 sentences (autograd through [S, T, T] tensors), otherwise the same loss and start."""
    from probekit.analyses.probes import lbfgs, padded, structural_predict

    generator = torch.Generator().manual_seed(seed)
    k = min(rank, x.shape[1])
    b = (torch.randn(k, x.shape[1], generator=generator) / x.shape[1] ** 0.5).requires_grad_(True)
    chunks = [(index, mask, gold_chunk(index, lengths, gold, kind)) for index, mask in padded(x, lengths)]
    norm = [mask.sum(1).float() ** (2 if kind == "distance" else 1) for _, mask, _ in chunks]

    def loss():
        z = x @ b.T
        total = 0.0
        for (index, mask, target), by in zip(chunks, norm):
            err = (structural_predict(z, index, mask, kind) - target).abs()
            total = total + (err.flatten(1).sum(1) / by).sum()
        return total / len(lengths)

    lbfgs([b], loss, steps, tolerance)
    return b.detach()


def gold_chunk(index: torch.Tensor, lengths: list[int], gold: list, kind: str) -> torch.Tensor:
    """The gold distances [S, T, T] or depths [S, T] of a padded chunk, zero at the padding."""
    s, t = index.shape
    out = torch.zeros((s, t, t) if kind == "distance" else (s, t))
    starts = torch.tensor([0, *lengths]).cumsum(0)[:-1].tolist()
    where = {start: i for i, start in enumerate(starts)}
    for r, f in enumerate(index[:, 0].tolist()):
        g = torch.as_tensor(gold[where[f]], dtype=torch.float32)
        n = g.shape[0]
        if kind == "distance":
            out[r, :n, :n] = g
        else:
            out[r, :n] = g
    return out


def features(checkpoint: str, fit: list[Parsed], eval_: list[Parsed]
             ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[Parsed], list[Parsed]]:
    """Every layer's word representations of a checkpoint (fit words, eval words), and the fit and eval
    sentences that fit the model's positions."""
    from probekit.analyses.probes import word_representations
    from probekit.models.families import max_tokens
    from probekit.models.series import load_checkpoint

    model, tok = load_checkpoint(checkpoint)
    x, kept = word_representations(model.eval(), tok, [s.words for s in fit + eval_],
                                   max_length=max_tokens(model.config))
    kept_set, offset = set(kept), len(fit)
    fit = [s for i, s in enumerate(fit) if i in kept_set]
    eval_ = [s for i, s in enumerate(eval_, offset) if i in kept_set]
    n_fit = sum(len(s.words) for s in fit)
    return [(x[layer, :n_fit], x[layer, n_fit:]) for layer in range(x.shape[0])], fit, eval_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample", type=int, default=None, help="sentences of each of dev and test (all: none)")
    parser.add_argument("--sizes", default="demo,bert-base")
    parser.add_argument("--checkpoint", default=None, help="a checkpoint's own features instead of random ones")
    parser.add_argument("--baseline", default="steps=100,tolerance=1e-10", help="the previous settings")
    parser.add_argument("--options", default="", help="the current settings (default: ProbeOptions()); several "
                                                      "separated by ';' are each compared with the previous")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bank = load_treebank("ewt:dev+test", sample=args.sample)
    fit = [Parsed.of(s) for s in bank.sentences if s.split == "dev"]
    eval_ = [Parsed.of(s) for s in bank.sentences if s.split == "test"]
    cases = []
    if args.checkpoint:
        layers, fit, eval_ = features(args.checkpoint, fit, eval_)
        cases.append((f"{args.checkpoint} ({layers[0][0].shape[1]} wide, {len(layers)} layers)", layers, 1))
    n_fit, n_eval = sum(len(s.words) for s in fit), sum(len(s.words) for s in eval_)
    before, currents = settings(args.baseline), [(text or "ProbeOptions()", settings(text))
                                                 for text in args.options.split(";")]
    print(f"EWT: {len(fit)} fit sentences ({n_fit} words), {len(eval_)} eval sentences ({n_eval} words); "
          f"{args.threads} threads; previous: {args.baseline}")
    t = time.perf_counter()
    prep = prepare(fit, eval_, 0)
    print(f"labels, trees and controls: {time.perf_counter() - t:.1f} s (once per treebank)")
    for size in ([] if args.checkpoint else args.sizes.split(",")):
        d, layers = SIZES[size]
        generator = torch.Generator().manual_seed(0)
        cases.append((f"{size} (d {d}, {layers} layers, random features)",
                      [(torch.randn(n_fit, d, generator=generator), torch.randn(n_eval, d, generator=generator))],
                      layers))
    run(cases[0][1][:1], prep, dataclasses.replace(before, steps=1))  # first calls' imports, outside the timings
    for name, layers, times in cases:
        old_s, old_v = run(layers, prep, before, previous=True)
        old_total = sum(old_s.values()) * times
        for label, now in currents:
            new_s, new_v = run(layers, prep, now)
            new_total = sum(new_s.values()) * times
            change = {p: max(abs(new_v[k] - old_v[k]) for k in old_v if k[1] == p and k[2] != "evals")
                      for p in PROBES}
            evals = {p: (sum(v for k, v in old_v.items() if k[1:] == (p, "evals")),
                         sum(v for k, v in new_v.items() if k[1:] == (p, "evals"))) for p in PROBES}
            print(f"{name}: previous {old_total:.1f} s per checkpoint, current ({label}) {new_total:.1f} s "
                  f"(×{old_total / new_total:.2f} faster); per probe (previous → current, largest change of "
                  f"{'/'.join(sorted(set(MAIN.values())))} over layers, task and control): "
                  + "; ".join(f"{p} {old_s[p] * times:.1f} → {new_s[p] * times:.1f} s ({evals[p][0]} → "
                              f"{evals[p][1]} loss evaluations, {1000 * old_s[p] / max(evals[p][0], 1):.0f} → "
                              f"{1000 * new_s[p] / max(evals[p][1], 1):.0f} ms each), Δ {change[p]:.3f}"
                              for p in PROBES), flush=True)


if __name__ == "__main__":
    main()
