"""Exact causal tracing of one demo-size random BERT (hidden 64, 2 layers, 4 heads, 8,192-token vocabulary):
every (layer, position) of resid, attn and mlp and every (layer, head) for N prompts, batched as
`probekit.analyses.tracing` does it (all sites of one component as rows of one pass), against a naive loop of
one patch per forward pass, in the same run. Prints both times, their ratio, the largest difference and the
peak memory.

With `--bert-base`: a random BERT-base (768 wide, 12 layers, 12 heads, 30,522-token vocabulary) traced the
batched way only, on `--prompts` prompts (a few suffice: every prompt costs the same), and the minutes one
checkpoint of 64 prompts takes at that rate, on `--threads` CPU threads.

    .venv/bin/python scripts/bench_tracing.py [--prompts 256] [--length 12] [--device cpu]
    .venv/bin/python scripts/bench_tracing.py --bert-base --prompts 3 --threads 2

With `--attribution`: on the demo-size model, attribution patching of every site (resid, attn, mlp per layer ×
position, every head) for N prompts batched, against one plain probe pass over the same prompts (a padded
forward of the batch and the gold probability, no hooks) and against exact tracing of the same sites, timed in
the same run; prints both ratios and the rank correlation of the two methods' effects.

    .venv/bin/python scripts/bench_tracing.py --attribution [--prompts 256] [--threads 1]

With `--noise-samples K`: on the demo-size model, exact tracing of every site (as the demo traces: resid, attn,
mlp, head and knockout) with K noise draws batched as rows (what `--noise-samples K` does) against one draw, and
against K separate one-draw runs (K × the one-draw time, measured), in the same run; prints the three times and
the ratios K draws / 1 draw and K separate runs / K batched draws.

    .venv/bin/python scripts/bench_tracing.py --noise-samples 10 [--prompts 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM

from probekit.analyses.tracing import (COMPONENTS, HEAD, KNOCKOUT, Site, clean_run, knockout_probs, patched_probs,
                                       trace)
from probekit.models.families import n_layers
from probekit.models.hooks import hook_name


def sites(n: int, length: int, vocab: int, seed: int = 0) -> list[Site]:
    """Synthetic prompts: [CLS] … subject (3 pieces) … [MASK] … [SEP], random ids (timing needs no words)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ids = rng.integers(5, vocab, length).tolist()
        ids[0], ids[-1], ids[-3] = 2, 3, 4
        out.append(Site(i, ids, [length - 3], [2, 3, 4], [0, length - 1], [int(rng.integers(5, vocab))]))
    return out


def naive(model, site: Site, noise, components: list[str]) -> dict:
    """One forward pass per (component, layer, position), per (layer, head) and per knocked-out layer: the
    loop batching replaces."""
    layers = n_layers(model)
    points = [hook_name(layer, COMPONENTS[c]) for c in components if c != KNOCKOUT for layer in range(layers)]
    _, clean = clean_run(model, site, points)
    out = {}
    for c in components:
        if c == KNOCKOUT:
            out[c] = knockout_probs(model, site, layers, max_rows=1)[:, None]
        elif c == HEAD:
            heads = model.config.num_attention_heads
            out[c] = np.array([[patched_probs(model, site, noise, COMPONENTS[c], clean, [(layer, [h])], over="head")[0]
                                for h in range(heads)] for layer in range(layers)])
        else:
            out[c] = np.array([[patched_probs(model, site, noise, COMPONENTS[c], clean, [(layer, [t])])[0]
                                for t in range(len(site.ids))] for layer in range(layers)])
    return out


def bert_base(args) -> None:
    """Minutes per checkpoint of 64 prompts for a random BERT-base, from the time of `args.prompts` prompts."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig()).eval().to(args.device)
    components = list(COMPONENTS)
    work = sites(args.prompts, args.length, model.config.vocab_size)
    noise = [torch.randn(3, 768, generator=torch.Generator().manual_seed(s.index)).to(args.device) for s in work]
    trace(model, work[0], noise[0], ["resid"], max_rows=args.batch)  # warm-up
    start = time.perf_counter()
    for s, e in zip(work, noise):
        trace(model, s, e, components, max_rows=args.batch)
    per_prompt = (time.perf_counter() - start) / args.prompts
    rows = 12 * args.length * 3 + 12 * 12 + 12
    print(f"BERT-base (random), device {args.device}, {torch.get_num_threads()} threads; {args.prompts} prompts of "
          f"{args.length} tokens, {rows} patched runs each (12 layers × {args.length} positions × 3 components "
          f"+ 144 heads + 12 knockouts), batch {args.batch}")
    print(f"{per_prompt:.1f} s per prompt → {64 * per_prompt / 60:.1f} min per checkpoint of 64 prompts "
          f"(+ the random-init control: one more checkpoint)")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def attribution_bench(args, model, work: list[Site], noise: list) -> None:
    """Attribution of every site against one plain probe pass and against exact tracing, in the same run."""
    from probekit.analyses.attribution import as_trace, estimate, gold_metric
    from probekit.models.families import body

    components = ["resid", "attn", "mlp", "head"]
    device = next(model.parameters()).device

    def plain_pass() -> None:
        for start in range(0, len(work), args.batch):
            chunk = work[start:start + args.batch]
            ids = torch.tensor([s.ids for s in chunk], device=device)  # synthetic prompts share a length
            with torch.inference_mode():
                gold_metric(model, body(model)(input_ids=ids).last_hidden_state, [s.masks for s in chunk],
                            [s.gold for s in chunk], "prob")

    plain_pass()  # warm-up
    estimate(model, work[:2], noise[:2], components)
    times = {}
    start = time.perf_counter()
    plain_pass()
    times["plain"] = time.perf_counter() - start
    start = time.perf_counter()
    guesses = estimate(model, work, noise, components, "prob", max_rows=args.batch)
    times["attribution"] = time.perf_counter() - start
    start = time.perf_counter()
    exact = [trace(model, s, e, components, max_rows=args.batch) for s, e in zip(work, noise)]
    times["exact"] = time.perf_counter() - start
    a = np.concatenate([as_trace(g, "prob").restored[c].ravel() - as_trace(g, "prob").p_corrupt for g in guesses
                        for c in components])
    b = np.concatenate([t.restored[c].ravel() - t.p_corrupt for t in exact for c in components])
    rank = float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])
    print(f"device {args.device}, {torch.get_num_threads()} threads; {len(work)} prompts of {args.length} tokens, "
          f"batch {args.batch}; sites: {n_layers(model)} layers × ({args.length} positions × 3 components + "
          f"{model.config.num_attention_heads} heads)")
    print(f"plain probe pass {times['plain']:.3f} s   attribution {times['attribution']:.3f} s   exact tracing "
          f"{times['exact']:.2f} s")
    print(f"attribution / plain probe pass: {times['attribution'] / times['plain']:.1f}×   exact / attribution: "
          f"{times['exact'] / times['attribution']:.0f}×   Spearman(attribution, exact) over every prompt's sites "
          f"(random weights): {rank:.2f}")


def samples_bench(args, model, work: list[Site]) -> None:
    """K noise draws batched as rows against one draw and against K separate one-draw runs, in the same run."""
    components = list(COMPONENTS)
    k = args.noise_samples
    width = model.config.hidden_size
    one = [torch.randn(1, 3, width, generator=torch.Generator().manual_seed(s.index)).to(args.device) for s in work]
    many = [torch.randn(k, 3, width, generator=torch.Generator().manual_seed(s.index)).to(args.device) for s in work]
    trace(model, work[0], many[0], components, max_rows=args.batch)  # warm-up
    times = {}
    for name, noise in (("1 draw", one), (f"{k} draws", many)):
        start = time.perf_counter()
        for s, e in zip(work, noise):
            trace(model, s, e, components, max_rows=args.batch)
        times[name] = time.perf_counter() - start
    start = time.perf_counter()
    for s, e in zip(work, many):
        for j in range(k):  # the loop batching the draws replaces: one traced run per draw
            trace(model, s, e[j:j + 1], components, max_rows=args.batch)
    separate = time.perf_counter() - start
    sites_per_prompt = n_layers(model) * (args.length * 3 + model.config.num_attention_heads + 1)
    print(f"device {args.device}, {torch.get_num_threads()} threads; {len(work)} prompts × {sites_per_prompt} sites "
          f"({n_layers(model)} layers × ({args.length} positions × 3 components + "
          f"{model.config.num_attention_heads} heads + 1 knockout)), batch {args.batch} rows a pass")
    print(f"K = 1: {times['1 draw']:.2f} s   K = {k} batched as rows: {times[f'{k} draws']:.2f} s   "
          f"{k} separate one-draw runs: {separate:.2f} s")
    print(f"cost of K = {k} against K = 1: {times[f'{k} draws'] / times['1 draw']:.2f}×   "
          f"{k} separate runs / K batched: {separate / times[f'{k} draws']:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--length", type=int, default=12)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--bert-base", action="store_true", help="time a random BERT-base instead")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for --bert-base and --attribution")
    parser.add_argument("--attribution", action="store_true", help="time attribution patching instead")
    parser.add_argument("--noise-samples", type=int, default=0, metavar="K",
                        help="time K noise draws batched as rows against one draw (and K separate runs) instead")
    args = parser.parse_args()
    if args.bert_base:
        return bert_base(args)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=8192, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=256, max_position_embeddings=128)
    model = BertForMaskedLM(config).eval().to(args.device)
    components = list(COMPONENTS)
    work = sites(args.prompts, args.length, config.vocab_size)
    noise = [torch.randn(3, 64, generator=torch.Generator().manual_seed(s.index)).to(args.device) for s in work]
    if args.attribution:
        torch.set_num_threads(args.threads)
        return attribution_bench(args, model, work, noise)
    if args.noise_samples:
        torch.set_num_threads(args.threads)
        return samples_bench(args, model, work)

    start = time.perf_counter()
    batched = [trace(model, s, e, components, max_rows=args.batch).restored for s, e in zip(work, noise)]
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    plain = [naive(model, s, e, components) for s, e in zip(work, noise)]
    t_naive = time.perf_counter() - start

    diff = max(float(np.abs(np.log(b[c]) - np.log(p[c])).max()) for b, p in zip(batched, plain) for c in components)
    sites_per_prompt = n_layers(model) * (args.length * 3 + config.num_attention_heads + 1)
    print(f"device {args.device}, {torch.get_num_threads()} threads; {args.prompts} prompts × {sites_per_prompt} "
          f"sites ({n_layers(model)} layers × ({args.length} positions × 3 components + "
          f"{config.num_attention_heads} heads + 1 knockout))")
    print(f"batched: {t_batched:.2f} s   naive (one patch per forward): {t_naive:.2f} s   ratio {t_naive / t_batched:.1f}×")
    print(f"largest |Δ log p| batched vs naive: {diff:.2e}")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
          + (f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if args.device != "cpu" else ""))


if __name__ == "__main__":
    main()
