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

With `--size base`, instead: at real size, in a temporary folder, K randomly initialised checkpoints (seeds
0..K-1) of a BERT-base-sized model (hidden 768, 12 layers, 12 heads, vocab 30,522: bert-base-uncased's shipped
vocabulary) and of a RoBERTa-base-sized one (vocab 50,265; its byte-level BPE tokenizer is trained on the
benchmark's sentences, as no RoBERTa vocabulary ships offline), saved as safetensors; then, per family,
(a) prompt-checkpoints per second of `probekit.probe` (predictions only) against the pipeline loop on the same
N prompts, with top-1 agreement, and what probing MultiBERTs seed 0 would cost at that rate; (b) peak RSS of
a probe over K/2 and K checkpoints, each in a fresh process (flat in the number of checkpoints); (c) with
`--half`, bf16 scoring: its rate and its deviation from fp32 over every prompt, beside the manifest's
`bf16_scoring` (the first 64 prompts per benchmark, rescored in fp32).

    python scripts/bench_probe.py --size base                                   # 2 checkpoints x 100 prompts
    python scripts/bench_probe.py --size base --checkpoints 4 --prompts 1000
    python scripts/bench_probe.py --size base --checkpoints 4 --prompts 0 --device cuda --half   # all prompts
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import (AddedToken, AutoModelForMaskedLM, BertConfig, PreTrainedTokenizerBase, RobertaConfig,
                          RobertaTokenizer, pipeline)
from transformers.utils import logging as hf_logging

from probekit.benchmarks import DEFAULT_BENCHMARKS, load_benchmark
from probekit.training.presets import get_preset
from probekit.core.log import set_progress
from probekit.running.runner import probe
from probekit.analyses.scoring import MASK, answer_pieces
from probekit.models.series import resolve_checkpoints
from probekit.training.trainer import train
from probekit.training.vocab import load_tokenizer


def make_series(out: Path, corpus: str | None, tokenizer: str | None) -> str:
    if not any(out.glob("checkpoint-*")):
        train(out, get_preset("default", max_steps=10, log_until=0, save_every=2), corpus=corpus,
              tokenizer=tokenizer)
    return str(out / "*")


def single_piece_benchmark(n: int | None, out: Path, tokenizers: list[PreTrainedTokenizerBase]) -> Path:
    """The first `n` (default all) countries prompts whose answer is one piece for every tokenizer, spelled as
    probekit spells it (what the pipeline can score)."""
    prompts = load_benchmark("countries").prompts.reset_index(drop=True)
    single = prompts.index >= 0
    for tok in tokenizers:
        single &= [len(p) == 1 for p in answer_pieces(prompts, tok)]
    path = out / "bench_prompts.csv"
    prompts[single].iloc[:n][["relation", "template", "subject", "answer"]].to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("tiny", "base"), default="tiny",
                        help="tiny: a trained tiny series [default]; base: random BERT-/RoBERTa-base checkpoints")
    parser.add_argument("--checkpoints", default=None,
                        help="series to probe [a fresh 6-checkpoint series]; with --size base, checkpoints "
                             "(seeds) per family [2]")
    parser.add_argument("--prompts", type=int, default=None,
                        help="first N single-piece prompts [all; with --size base 100, 0 = all]")
    parser.add_argument("--work", default="local/bench_probe")
    parser.add_argument("--corpus", default=None, help="corpus for the fresh series [wiki-leads]")
    parser.add_argument("--tokenizer", default=None, help="tokenizer for the fresh series [bert-base-uncased]")
    parser.add_argument("--procs", type=int, default=None,
                        help="compare 1 process x N threads with N torchrun processes x 1 thread instead")
    parser.add_argument("--profile", action="store_true",
                        help="instead: where the time goes per checkpoint (load, tokenise, forward, vocabulary "
                             "projection, scoring passes, Python)")
    parser.add_argument("--with", dest="analyses", default="lens,ablation", help="analyses for --procs")
    parser.add_argument("--families", default="bert,roberta", help="--size base: families to measure")
    parser.add_argument("--device", default=None, help="--size base: cpu or cuda [cuda where there is one]")
    parser.add_argument("--half", action="store_true", help="--size base: also bf16 scoring (the predictions option bf16)")
    args = parser.parse_args()
    if args.size == "base":
        bench_base(_count(args.checkpoints), 100 if args.prompts is None else args.prompts or None,
                   args.families.split(","), args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
                   args.half)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    series = args.checkpoints or make_series(work / "series", args.corpus, args.tokenizer)
    tokenizer = resolve_checkpoints(series)[0].tokenizer if args.checkpoints else load_tokenizer(args.tokenizer)
    bench = single_piece_benchmark(args.prompts, work, [tokenizer])  # one piece in the series' own vocabulary
    if args.profile:
        profile_stages(series, bench)
    elif args.procs:
        bench_procs(series, bench, args.procs, args.analyses, work)
    else:
        bench_pipeline(series, bench)


def _count(checkpoints: str | None) -> int:
    if checkpoints is None:
        return 2
    if not checkpoints.isdigit() or int(checkpoints) < 2:
        raise SystemExit(f"--checkpoints {checkpoints}: with --size base, a number of checkpoints, at least 2")
    return int(checkpoints)


def bench_pipeline(series: str, bench: Path) -> None:
    """probekit.probe against a loop over the fill-mask pipeline, the same prompts and checkpoints."""
    prompts = load_benchmark(bench).prompts.prompt.tolist()
    refs = resolve_checkpoints(series)
    _all_distinct(refs)
    n = len(prompts) * len(refs)
    hf_logging.set_verbosity_error()
    set_progress(False)
    device = 0 if torch.cuda.is_available() else -1

    start = time.perf_counter()
    for ref in refs:
        folder = str(ref.fetch())
        fill = pipeline("fill-mask", model=folder, tokenizer=folder, device=device)
        for prompt in prompts:
            fill(prompt, top_k=10)
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    result = probe(series, [str(bench)], control=False)
    ours = time.perf_counter() - start
    assert len(result.predictions) == n

    _all_probed(result)
    loop, batched = ablation_seconds(refs, bench)

    where = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"== bench_probe on {where}: {len(prompts)} prompts x {len(refs)} distinct checkpoints ==")
    print(f"pipeline loop  {baseline:8.2f} s  {n / baseline:9.1f} prompt-checkpoints/s  "
          f"{baseline / len(refs):.3f} s per checkpoint")
    print(f"probekit.probe {ours:8.2f} s  {n / ours:9.1f} prompt-checkpoints/s  {ours / len(refs):.3f} s per checkpoint")
    print(f"ratio: {baseline / ours:.1f}x")
    print(f"head ablation per checkpoint (model loaded, same prompts): one pass per head {loop:.3f} s, "
          f"all heads of a layer in one pass {batched:.3f} s ({loop / batched:.2f}x), tables equal")


def profile_stages(series: str, bench: Path) -> None:
    """Seconds per checkpoint of each stage of scoring, averaged over the series: load (config, tokenizer,
    fingerprint, model), tokenise (once per tokenizer, shared by the series), then `score_encoded` in full and
    its parts timed apart on the same batches: body forward, vocabulary projection at the masks, the passes
    over the logits (top-k, log-normaliser, rank); what is left of it is Python (padding, tables)."""
    import numpy as np

    from probekit.analyses.scoring import _mask_stats, _pad, encode_prompts, score_encoded
    from probekit.models.families import body, max_tokens, mlm_head

    prompts = load_benchmark(bench).prompts
    refs = resolve_checkpoints(series)
    stages = dict.fromkeys(["load", "tokenise", "score_encoded", "forward", "projection", "passes"], 0.0)
    with torch.inference_mode():
        for ref in refs:
            start = time.perf_counter()
            tok, _, model = ref.tokenizer, ref.identity, ref.model()
            stages["load"] += time.perf_counter() - start
            start = time.perf_counter()
            encoded = encode_prompts(prompts, tok, max_tokens(model.config))
            stages["tokenise"] += (time.perf_counter() - start) / len(refs)  # once per tokenizer in a probe
            start = time.perf_counter()
            score_encoded(model, tok, encoded, 10)
            stages["score_encoded"] += time.perf_counter() - start
            ids = encoded["input_ids"]
            lengths = np.array([len(x) for x in ids])
            order = np.argsort(lengths, kind="stable")
            head = mlm_head(model)
            for at in range(0, len(ids), 128):
                batch = order[at:at + 128]
                x, mask = _pad([ids[i] for i in batch], lengths[batch], tok.pad_token_id or 0, "cpu")
                t0 = time.perf_counter()
                hidden = body(model)(input_ids=x, attention_mask=mask).last_hidden_state[x == tok.mask_token_id]
                t1 = time.perf_counter()
                head(hidden)
                t2 = time.perf_counter()
                _mask_stats(head, hidden, torch.zeros(len(hidden), dtype=torch.long), 10)
                t3 = time.perf_counter()
                stages["forward"] += t1 - t0
                stages["projection"] += t2 - t1
                stages["passes"] += max(t3 - t2 - (t2 - t1), 0.0)  # _mask_stats projects again
            ref.release()
    per = {k: v / len(refs) for k, v in stages.items()}
    python = per["score_encoded"] - per["forward"] - per["projection"] - per["passes"]
    print(f"== where the time goes, seconds per checkpoint ({len(prompts)} prompts, {len(refs)} checkpoints, "
          f"CPU {torch.get_num_threads()} threads) ==")
    print(f"load {per['load']:.3f}  tokenise {per['tokenise']:.3f}  scoring {per['score_encoded']:.3f} = forward "
          f"{per['forward']:.3f} + vocabulary projection {per['projection']:.3f} + passes over the logits "
          f"(top-k, normaliser, rank) {per['passes']:.3f} + Python {python:.3f}")


def ablation_seconds(refs, bench: Path) -> tuple[float, float]:
    """Seconds per checkpoint of head ablation the earlier way (one scoring pass per head, `zero_head`) and as
    `probekit.analyses.ablation` makes it (all heads of a layer in one pass), on the same loaded models; the
    two tables are checked equal."""
    import pandas as pd

    from probekit.analyses import Context
    from probekit.analyses.ablation import Ablation
    from probekit.analyses.scoring import score_encoded, summarize
    from probekit.models.families import n_layers
    from probekit.models.hooks import hook_name, hooked, zero_head

    benchmark = load_benchmark(bench)
    benchmark.groups = ["all"] * len(benchmark.prompts)
    ctx = Context({"prompts": [benchmark]})
    keys = ["benchmark", "relation", "group"]
    loop = batched = 0.0
    for ref in refs:
        model, tok = ref.model(), ref.tokenizer
        encoded = ctx.encoded(ref, benchmark)
        prompts = benchmark.prompts.reset_index(drop=True).assign(group=benchmark.groups)
        start = time.perf_counter()
        rows = []
        for layer in range(n_layers(model)):
            for head in range(model.config.num_attention_heads):
                with hooked(model, write={hook_name(layer, "attn.hook_z"): zero_head(head)}):
                    scored = score_encoded(model, tok, encoded, top_k=1, batch_size=ctx.batch_size)
                frame = prompts[keys].assign(gold_rank=scored.gold_rank, gold_logprob=scored.gold_logprob)
                rows.append(summarize(frame, keys).assign(layer=layer, head=head))
        loop += time.perf_counter() - start
        start = time.perf_counter()
        table = Ablation().run(ref, ctx, benchmark)
        batched += time.perf_counter() - start
        plain = pd.concat(rows).set_index(["layer", "head", *keys]).sort_index()
        ours = table.set_index(["layer", "head", *keys]).sort_index()
        if not ((plain.p_at_1 == ours.p_at_1).all()
                and (plain.mean_gold_logprob - ours.mean_gold_logprob).abs().max() < 1e-4):
            raise SystemExit(f"{ref.name}: the batched ablation differs from the head-by-head loop")
        ref.release()
    return loop / len(refs), batched / len(refs)


def _all_distinct(refs) -> None:
    """Stop when two checkpoints of the series are the same weights (a duplicate reused is not speed)."""
    identities = [ref.identity for ref in refs]
    if len(set(identities)) < len(identities):
        raise SystemExit("the series holds duplicate checkpoints; bench distinct checkpoints only")


def bench_procs(series: str, bench: Path, procs: int, analyses: str, work: Path) -> None:
    """One process with `procs` threads against `procs` torchrun processes with one thread each."""
    from probekit.running.results import ProbeResult

    probe_args = ["-m", "probekit", "probe", series, "-b", str(bench), "--with", analyses, "--no-control"]
    one_out, many_out = work / "procs-1", work / f"procs-{procs}"
    for folder in (one_out, many_out):
        shutil.rmtree(folder, ignore_errors=True)
    startup = _timed([sys.executable, "-c", "import probekit.running.runner, probekit.running.shards"], threads=procs)
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


# ---------------------------------------------------------------- --size base


BASE_CONFIGS = {
    "bert": BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       intermediate_size=3072, max_position_embeddings=512),
    "roberta": RobertaConfig(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                             intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
                             layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2),
}
"""The real models' shapes (bert-base-uncased, roberta-base); the weights are random."""
BPE_SIZE = 8000


def bench_base(k: int, n: int | None, families: list[str], device: str, half: bool) -> None:
    """(a) rates against the pipeline, (b) peak RSS over K/2 and K checkpoints, (c) bf16 scoring, per family."""
    unknown = set(families) - set(BASE_CONFIGS)
    if unknown:
        raise SystemExit(f"--families: unknown {sorted(unknown)}; choose from {sorted(BASE_CONFIGS)}")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    set_progress(False)
    with tempfile.TemporaryDirectory(prefix="bench_probe_base_") as tmp:
        root = Path(tmp)
        tokenizers = {family: base_tokenizer(family) for family in families}
        bench = single_piece_benchmark(n, root, list(tokenizers.values()))
        n_prompts = len(load_benchmark(bench).prompts)
        where = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
        print(f"== bench_probe --size base on {where}: {n_prompts} prompts x {k} checkpoints per family ==")
        print("pipeline: fill(prompt, top_k=10); loading included on both sides; probekit also computes the "
              "gold's exact rank and log-prob (targets= would give the gold's probability alone)")
        for family, tok in tokenizers.items():
            start = time.perf_counter()
            folders = make_base_series(root / family, family, tok, k)
            print(f"-- {family}: made {k} checkpoints of {_millions(folders[0])}M parameters in "
                  f"{time.perf_counter() - start:.0f} s")
            exact, rate = base_rates(folders, bench, tok, device)
            if family == "bert":
                print(multiberts_estimate(rate, n_prompts))
            base_memory(folders, bench, device)
            if half:
                base_bf16(folders, bench, device, exact)


def base_tokenizer(family: str) -> PreTrainedTokenizerBase:
    """bert-base-uncased's shipped vocabulary, or a byte-level BPE trained on the benchmark's sentences, its
    vocabulary filled up to roberta-base's 50,265 ids with tokens no text yields (probekit wants the sizes equal)."""
    if family == "bert":
        return load_tokenizer()
    from tokenizers import ByteLevelBPETokenizer

    prompts = load_benchmark("countries").prompts
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([p.replace(MASK, a) for p, a in zip(prompts.prompt, prompts.answer)],
                            vocab_size=BPE_SIZE, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                            show_progress=False)
    vocab = bpe.get_vocab()
    vocab.update({f"<unused{i}>": i for i in range(len(vocab), BASE_CONFIGS[family].vocab_size)})
    return RobertaTokenizer(vocab=vocab, merges=_merges(bpe),
                            mask_token=AddedToken("<mask>", lstrip=True, rstrip=False))


def make_base_series(folder: Path, family: str, tok: PreTrainedTokenizerBase, k: int) -> list[str]:
    """K checkpoints named as a series (checkpoint-1000, 2000, …), each randomly initialised from seed i."""
    folders = []
    for i in range(k):
        torch.manual_seed(i)
        path = folder / f"checkpoint-{1000 * (i + 1)}"
        AutoModelForMaskedLM.from_config(BASE_CONFIGS[family]).save_pretrained(path)
        tok.save_pretrained(path)
        folders.append(str(path))
    return folders


def base_rates(folders: list[str], bench: Path, tok: PreTrainedTokenizerBase, device: str):
    """(a) Prompt-checkpoints per second of probekit.probe and of the pipeline loop; returns probe's predictions."""
    prompts = load_benchmark(bench).prompts.prompt.tolist()
    n = len(prompts) * len(folders)
    start = time.perf_counter()
    piped = []
    for folder in folders:
        fill = pipeline("fill-mask", model=folder, tokenizer=folder, device=device)
        piped += [fill(p.replace(MASK, tok.mask_token), top_k=10)[0]["token"] for p in prompts]
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    result = probe(folders, [str(bench)], control=False, device=device)
    ours = time.perf_counter() - start
    _all_probed(result)
    predictions = result.predictions
    ours_top1 = tok.convert_tokens_to_ids([t[0] for t in predictions.topk_tokens])
    agree = sum(a == b for a, b in zip(piped, ours_top1)) / n
    print(f"pipeline loop  {baseline:8.2f} s  {n / baseline:8.1f} prompt-checkpoints/s")
    print(f"probekit.probe {ours:8.2f} s  {n / ours:8.1f} prompt-checkpoints/s")
    print(f"ratio: {baseline / ours:.1f}x (aim >= 8x on CPU at this size, issue 26); top-1 agreement with the pipeline {agree:.1%}")
    return predictions, n / ours


def multiberts_estimate(rate: float, n_prompts: int) -> str:
    """What probing MultiBERTs seed 0 (28 checkpoints, every prompt of the default benchmarks) costs at `rate`."""
    total = 28 * sum(len(load_benchmark(b).prompts) for b in DEFAULT_BENCHMARKS)
    bound = ", an upper bound: loading weighs less with more prompts" if n_prompts < total // 28 else ""
    return (f"MultiBERTs seed 0, 28 checkpoints x {total // 28} prompts = {total} prompt-checkpoints: "
            f"~{total / rate / 60:.0f} min at this rate (measured at {n_prompts} prompts per checkpoint{bound}), "
            f"plus downloading 28 x 441 MB")


def base_memory(folders: list[str], bench: Path, device: str) -> None:
    """(b) Peak RSS (and on a GPU peak allocated memory) of a probe over K/2 and K checkpoints, fresh processes."""
    k = len(folders)
    peaks = {m: _probe_peak(folders[:m], bench, device) for m in (k // 2, k)}
    (small_rss, small_gpu), (big_rss, big_gpu) = peaks[k // 2], peaks[k]
    size = sum(f.stat().st_size for f in Path(folders[0]).glob("*.safetensors")) / 2**20
    print(f"peak RSS, {k // 2} checkpoint(s) {small_rss:7.0f} MB, {k} checkpoints {big_rss:7.0f} MB: "
          f"ratio {big_rss / small_rss:.2f}x (one checkpoint's weights: {size:.0f} MB)")
    if small_gpu is not None:
        print(f"peak GPU memory allocated {small_gpu:7.0f} MB, {big_gpu:7.0f} MB: ratio {big_gpu / small_gpu:.2f}x")


def _probe_peak(folders: list[str], bench: Path, device: str) -> tuple[float, float | None]:
    """Peak RSS (MB) and peak GPU memory allocated (MB, None off a GPU) of a fresh process probing `folders`."""
    code = (
        "import resource, torch; from probekit.running.runner import probe\n"
        "from probekit.core.log import set_progress; set_progress(False)\n"
        f"probe({folders!r}, [{str(bench)!r}], control=False, device={device!r})\n"
        "gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, gpu)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"probe of {len(folders)} checkpoints failed:\n{done.stderr[-2000:]}")
    rss, gpu = done.stdout.split()[-2:]
    return float(rss), None if gpu == "None" else float(gpu)


def base_bf16(folders: list[str], bench: Path, device: str, exact) -> None:
    """(c) bf16 scoring (options={"predictions": {"bf16": True}}): its rate, its deviation from fp32 over every prompt, and the manifest's report."""
    n = len(exact)
    start = time.perf_counter()
    result = probe(folders, [str(bench)], control=False, device=device, options={"predictions": {"bf16": True}})
    seconds = time.perf_counter() - start
    _all_probed(result)
    bf16 = result.predictions
    delta = (bf16.gold_logprob - exact.gold_logprob).abs()
    changed = (bf16.gold_rank != exact.gold_rank)[exact.gold_rank.notna()].mean()
    report = result.manifest["bf16_scoring"]
    print(f"bf16 probe     {seconds:8.2f} s  {n / seconds:8.1f} prompt-checkpoints/s (incl. the fp32 rescoring of "
          f"{report['prompts_per_benchmark']} prompts per checkpoint)")
    print(f"bf16 vs fp32, every prompt: max |Δ gold_logprob| {delta.max():.4f}, gold_rank changed on "
          f"{changed:.1%} (random weights: near-flat logits, so ranks move more than a trained model's)")
    print(f"manifest bf16_scoring ({report['checked_rows']} rows): max |Δ gold_logprob| "
          f"{report['max_abs_delta_gold_logprob']:.4f}, gold_rank changed on {report['gold_rank_changed_share']:.1%}")


def _all_probed(result) -> None:
    """Stop, naming why, when probekit skipped a checkpoint (the rates would be of less work)."""
    skipped = result.checkpoints[result.checkpoints.status != "ok"]
    if len(skipped):
        raise SystemExit(f"probekit skipped {len(skipped)} checkpoint(s): {skipped.error.iloc[0]}")


def _merges(bpe) -> list[tuple[str, str]]:
    """The trained BPE's merges, read back from its saved model files (the tokenizer classes take them so)."""
    with tempfile.TemporaryDirectory() as tmp:
        _, merges = bpe.save_model(tmp)
        return [tuple(line.split(" ")) for line in Path(merges).read_text(encoding="utf-8").splitlines()[1:] if line]


def _millions(folder: str) -> int:
    """Parameters (millions) in a checkpoint's safetensors, read from its header."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "model.safetensors"), "pt") as f:
        return round(sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys()) / 1e6)


if __name__ == "__main__":
    main()
