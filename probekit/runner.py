"""`probe()`: walk a checkpoint series and run the chosen analyses on every checkpoint, one in memory at a time.

The runner holds no model: each `Checkpoint` handle reads its weights, tokenizer and model lazily and
forgets them when released. Every analysis result is cached under a key naming everything it depends on,
so a rerun on a grown series computes only what is new. A checkpoint that fails in any way is reported in
one line and skipped; the others are still probed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from probekit import analyses as registry
from probekit.analyses import Analysis, Context
from probekit.analyses.predictions import BF16_DEVIATION
from probekit.activations import read_sentences
from probekit.benchmarks import DEFAULT_BENCHMARKS, DEFAULT_SENTENCES, load_benchmark
from probekit.checkpoints import Checkpoint, RandomInit, resolve_checkpoints
from probekit.errors import ProbekitError
from probekit.facts import FactRecord, fact_groups
from probekit.folders import TRAINER_STATE, seed_of
from probekit.log import logger, progress
from probekit.results import ProbeResult
from probekit.schema import CONTROL, TABLES
from probekit.stats import score_table, settings as stats_settings, with_pooled_seeds
from probekit.store import cache_key, new_manifest, read_cached, training_log, write_cached, writer_lock
from probekit.vocab import load_tokenizer

SCORE_KEYS = ["checkpoint", "run", "step", "seed", "benchmark", "relation", "group"]
AUTO_BATCH = "batch_size=auto"
"""`ctx.state` key set when `batch_size="auto"`: an analysis that runs out of memory is retried at half the batch."""
AUTO_START = {"cuda": 1024}
"""The batch `auto` starts from, by device type (elsewhere the default, 128)."""


@dataclass
class Job:
    """One probe, resolved: its checkpoints, analyses and shared context. What every process of a sharded
    probe (`probekit.shards`) derives alike from the same command."""

    refs: list[Checkpoint]
    chosen: list[Analysis]
    ctx: Context
    facts: FactRecord | None
    control: bool
    tokenizer: PreTrainedTokenizerBase | None = None
    allow_pickle: bool = False

    def run_unit(self, ref: Checkpoint, analysis: Analysis, bench) -> tuple[pd.DataFrame, bool | None]:
        """One unit of this probe (`run_unit`)."""
        return run_unit(ref, analysis, self.ctx, bench)

    def run(self, manifest: dict | None = None) -> ProbeResult:
        """The whole probe in this process (`run_job`)."""
        return run_job(self, manifest)


def probe(
    checkpoints: list[str] | str,
    benchmarks: list[str] | tuple[str, ...] = DEFAULT_BENCHMARKS,
    analyses: list[str] | tuple[str, ...] = ("predictions",),
    out: str | Path | None = None,
    *,
    tokenizer: str | PreTrainedTokenizerBase | None = None,
    allow_pickle: bool = False,
    top_k: int = 10,
    batch_size: int | str = 128,
    control: bool = True,
    device: str | None = None,
    sentences: str | Path | list | None = None,
    half: bool = False,
    pairs: list[str] | tuple[str, ...] = (),
    sample: int | None = None,
    pll_metric: str = "within_word_l2r",
    shard: str | tuple[int, int] | None = None,
    merge: bool = False,
    step_from: str | None = None,
    evict: bool = False,
) -> ProbeResult | None:
    """Run `analyses` on every checkpoint of a series for every benchmark prompt; returns the tidy tables.

    checkpoints: folders, a quoted glob ('local/my_bert/*'), a parent folder, or hub names.
    benchmarks: shipped names ("countries") or CSV/JSONL/YAML files.
    analyses: registered names — "predictions" (always), "lens", "ablation", "capture" (Q/K/V and attention
        on `sentences`: a file, a list, or "default"; giving `sentences` implies "capture").
    out: a results folder; with it, results are cached and the run's tables written there as one set.
    control: add a random-initialisation row when the series has no step 0.
    pairs: minimal-pair benchmarks ("blimp", "blimp:SELECTOR", CSV/JSONL files with good, bad columns), scored
        by the "pairs" analysis with `pll_metric`; `sample` keeps N pairs per paradigm (seeded). Pair specs
        given in `benchmarks` are moved here.
    batch_size: prompts per forward pass, or "auto": the largest that fits (from 1,024 on a GPU, halved on
        running out of memory; 128 on a CPU).
    shard, merge: probe at scale (`probekit.shards`). Under `torchrun` the work is split over its processes
        by itself; `shard="I/N"` computes only shard I of N into `out` and `merge=True` assembles the tables
        from what all shards left there. Returns None where this process does not assemble the tables
        (ranks other than 0, a shard that is not the last to finish).
    half: captures stored as float16; predictions scored under bf16 autocast, the manifest's `bf16_scoring`
        giving the largest deviation from fp32 on the first prompts of each benchmark (rescored in fp32).
    step_from: a regex whose first group is each checkpoint's step (k/M suffixes), instead of names and
        trainer_state.json. evict: delete each hub checkpoint from the hub cache once it is probed.
    """
    job = _prepare(checkpoints, benchmarks, analyses, out, tokenizer=tokenizer, allow_pickle=allow_pickle,
                   top_k=top_k, batch_size=batch_size, control=control, device=device, sentences=sentences,
                   half=half, pairs=pairs, sample=sample, pll_metric=pll_metric, step_from=step_from, evict=evict,
                   sharded=shard is not None or merge)
    from probekit import shards

    if shard is not None or merge or shards.under_torchrun():
        return shards.probe_sharded(job, shard=shard, merge=merge)
    return job.run()


def _prepare(checkpoints, benchmarks, analyses, out, *, tokenizer, allow_pickle, top_k, batch_size, control,
             device, sentences, half, pairs, sample, pll_metric, step_from=None, evict=False,
             sharded: bool = False) -> Job:
    """Everything `probe` needs before the first checkpoint is read: no weights are loaded here.

    sharded: one shard (or the merge) of a split run, which needs only some checkpoints, or none: hub
        checkpoints missing offline are then reported by the units that need them, not refused up front.
    """
    pairs, benchmarks = _split_pair_specs(pairs, benchmarks)
    if pairs and "pairs" not in analyses:
        analyses = [*analyses, "pairs"]
    if sentences is not None and "capture" not in analyses:
        analyses = [*analyses, "capture"]
    benches = [_load_benchmark(b, sample) for b in benchmarks]
    if any(b.candidates for b in benches) and "choice" not in analyses:
        analyses = [*analyses, "choice"]
    chosen = registry.get(analyses)
    auto = batch_size == "auto"
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch_size = AUTO_START.get(device.type, 128) if auto else batch_size
    if not isinstance(batch_size, int) or top_k < 1 or batch_size < 1:
        raise ProbekitError(f"top_k and batch_size must be at least 1 (got {top_k}, {batch_size!r}; "
                            f"batch_size may also be 'auto')")
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    refs = resolve_checkpoints(checkpoints, allow_pickle, tok, step_from=step_from, evict=evict,
                               check_cached=not sharded)
    for problem in (p for b in benches for p in b.problems):
        logger.warning(problem)
    facts = _fact_record(refs)
    for bench in benches:
        bench.groups = fact_groups(bench.prompts, facts)
    wants_capture = any(a.name == "capture" for a in chosen)
    ctx = Context(benches, top_k, batch_size, device,
                  Path(out) if out is not None else None, _sentences(sentences or "default") if wants_capture else None, half,
                  groups_sha=_sha(asdict(facts) if facts else None))
    ctx.pairs, ctx.pll_metric = _load_pairs(pairs, sample), pll_metric
    if auto:
        ctx.state[AUTO_BATCH] = True
    return Job(refs, chosen, ctx, facts, control, tok, allow_pickle)


def run_job(job: Job, manifest: dict | None = None) -> ProbeResult:
    """The whole series in this process (every cached unit read from the cache), assembled, and saved into
    the results folder under its writer's lock with `manifest`'s entries added."""
    if job.ctx.out is None:
        return _run(job.refs, job.chosen, job.ctx, job.facts, job.control)
    with writer_lock(job.ctx.out):
        result = _run(job.refs, job.chosen, job.ctx, job.facts, job.control)
        result.manifest.update(manifest or {})
        result.save(job.ctx.out)
    return result


def _run(refs: list[Checkpoint], chosen: list[Analysis], ctx: Context, facts: FactRecord | None,
         control: bool) -> ProbeResult:
    frames: dict[str, list[pd.DataFrame]] = {a.name: [] for a in chosen}
    records, seen = [], {}
    for ref in progress(refs, desc="probing", unit="checkpoint"):
        record = {"checkpoint": ref.name, "run": ref.run, "step": ref.step, "seed": seed_of(ref.source),
                  "path": ref.source, "family": ref.family, "fingerprint": None, "status": "ok",
                  "duplicate_of": None, "error": None}
        records.append(record)
        try:
            record["fingerprint"] = ref.fingerprint
            original = seen.get(ref.identity)
            results = _analyse(ref, chosen, ctx, reuse=original)
        except ProbekitError as exc:
            record.update(status="skipped", error=str(exc))
            logger.warning(f"skipped: {exc}")
            continue
        except Exception as exc:  # one bad checkpoint must not sink the run
            message = f"{ref.source}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            record.update(status="skipped", error=message)
            logger.warning(f"skipped: {message}")
            continue
        finally:
            ref.release()
        if original is not None:
            record.update(status="duplicate", duplicate_of=original[0])
            logger.info(f"{ref.source}: same weights, config and tokenizer as {original[0]} "
                        f"(fingerprint {record['fingerprint']})")
        seen.setdefault(ref.identity, (ref.name, results))
        for name, frame in results.items():
            frames[name] += frame
    ok = [ref for ref, r in zip(refs, records) if r["status"] != "skipped"]
    if control and ok and not any(ref.step == 0 for ref in ok):
        like = RandomInit(ok[0])
        on_control = [a for a in chosen if a.on_control]
        results = _analyse(like, on_control, ctx, reuse=None)
        records.insert(0, {"checkpoint": like.name, "run": like.run, "step": 0, "seed": "", "path": None,
                           "family": like.family,
                           "fingerprint": like.fingerprint, "status": "control", "duplicate_of": None,
                           "error": None})
        for name, frame in results.items():
            frames[name] = frame + frames[name]
    return _assemble(frames, records, chosen, ctx, facts, refs)


def _analyse(ref: Checkpoint, chosen: list[Analysis], ctx: Context, reuse) -> dict[str, list[pd.DataFrame]]:
    """Every chosen analysis on one checkpoint (from the cache where possible), with its columns added."""
    results: dict[str, list[pd.DataFrame]] = {}
    for analysis in chosen:
        if reuse is not None and analysis.cached:
            results[analysis.name] = [_label(f, ref) for f in reuse[1][analysis.name]]
            continue
        benches = ctx.benchmarks if analysis.per_benchmark else [None]
        results[analysis.name] = [_label(run_unit(ref, analysis, ctx, bench)[0], ref) for bench in benches]
    return results


def run_unit(ref: Checkpoint, analysis: Analysis, ctx: Context, bench) -> tuple[pd.DataFrame, bool | None]:
    """One analysis of one checkpoint (on one benchmark, or None): its rows from the cache, or computed and
    cached. Returns (rows without the checkpoint's columns, whether the cache had them; None when the
    analysis keeps its own files). The unit of work a sharded probe spreads over processes."""
    key = None
    if analysis.cached:
        key = cache_key(analysis=analysis.name, identity=ref.identity,
                        benchmark=bench.sha256 if bench else None, settings=analysis.settings(ctx))
        if (frame := read_cached(ctx.out, key)) is not None:
            return frame, True
    frame = _computed(ref, analysis, ctx, bench)
    if key is not None:
        write_cached(ctx.out, key, frame)
    return frame, False if analysis.cached else None


def _computed(ref: Checkpoint, analysis: Analysis, ctx: Context, bench) -> pd.DataFrame:
    """`analysis.run`; with batch_size "auto", retried at half the batch each time memory runs out."""
    while True:
        try:
            return analysis.run(ref, ctx, bench)
        except torch.OutOfMemoryError:
            if not ctx.state.get(AUTO_BATCH) or ctx.batch_size <= 1:
                raise
        ctx.batch_size //= 2  # outside the handler, so that its traceback no longer holds the tensors
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
        logger.info(f"{ref.name}: out of memory with batch_size auto; now {ctx.batch_size}")


def _label(frame: pd.DataFrame, ref: Checkpoint) -> pd.DataFrame:
    """An analysis's rows with the columns naming the checkpoint they came from."""
    seed = "" if isinstance(ref, RandomInit) else seed_of(ref.source)
    return frame.assign(checkpoint=ref.name, run=ref.run, step=ref.step, seed=seed)


def _assemble(frames: dict, records: list[dict], chosen: list[Analysis], ctx: Context, facts: FactRecord | None,
              refs: list[Checkpoint]) -> ProbeResult:
    tables: dict[str, pd.DataFrame] = {}
    for analysis in chosen:
        parts = frames[analysis.name]
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=analysis.table.names)
        if "group" in analysis.table.names and "subject" in frame.columns:
            frame["group"] = fact_groups(frame, facts)
        if frame.empty:  # typed as declared, so that summaries of it work (a run of minimal pairs alone)
            frame = analysis.table.conform(frame)
        frame = frame.sort_values("step", kind="stable", na_position="last").reset_index(drop=True)
        frame = analysis.finish(frame, ctx)
        tables[analysis.table.name] = frame
        tables.update(analysis.derive(frame, ctx))
    predictions = tables["predictions"]
    scored = with_pooled_seeds(predictions)
    scores = score_table(scored, SCORE_KEYS)
    multi = scored[scored["gold_rank"].notna() & (scored["n_pieces"] > 1)]
    counts = multi.groupby(SCORE_KEYS, dropna=False).size()
    scores["n_multi_piece"] = [int(counts.get(tuple(k), 0)) for k in scores[SCORE_KEYS].itertuples(index=False)]
    tables["scores"] = scores
    tables["checkpoints"] = pd.DataFrame(records, columns=TABLES["checkpoints"].names)
    states = [Path(r.location) / TRAINER_STATE for r in refs if r.is_local]
    if states := [s for s in states if s.is_file()]:
        tables["training"] = training_log(states[-1])
    _report_unscorable(predictions)
    manifest = new_manifest(
        benchmarks={b.name: {"source": str(b.source), "sha256": b.sha256, "prompts": len(b.prompts),
                             "malformed_rows": len(b.problems)} for b in ctx.benchmarks},
        analyses=[a.name for a in chosen],
        settings={"top_k": ctx.top_k, "batch_size": ctx.batch_size,
                  "batch_size_auto": bool(ctx.state.get(AUTO_BATCH)), "half": ctx.half},
        bf16_scoring=ctx.state.get(BF16_DEVIATION),
        statistics=stats_settings(),
        device=str(ctx.device), checkpoints=len(refs), skipped=sum(r["status"] == "skipped" for r in records),
        facts=asdict(facts) if facts else None, captures=dict(ctx.files), pairs=_pairs_manifest(ctx),
        sentences={"count": len(ctx.sentences), "sha256": ctx.sentences_sha} if ctx.sentences else None)
    return ProbeResult(tables, manifest)


def _report_unscorable(predictions: pd.DataFrame) -> None:
    """Say which prompts could not be scored (they are counted apart, never as misses)."""
    missing = predictions[predictions["gold_rank"].isna() & (predictions["checkpoint"] != CONTROL)]
    for bench, rows in missing.groupby("benchmark"):
        prompts = rows.drop_duplicates("prompt")
        example = prompts.iloc[0]
        logger.warning(f"{bench}: {len(prompts)} prompts unscorable on {rows['checkpoint'].nunique()} checkpoint(s), "
                       f"counted in n_unscorable (e.g. {example['prompt']!r} → {example['answer']!r})")


def _fact_record(refs: list[Checkpoint]) -> FactRecord | None:
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
    return read_sentences(DEFAULT_SENTENCES if spec in ("default", True) else spec)


def _sha(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- minimal pairs (issue 14)


def _split_pair_specs(pairs, benchmarks) -> tuple[list, list]:
    """Pair benchmarks (`blimp…`, files with good/bad columns) apart from the fill-mask ones."""
    from probekit.benchmarks.pairs import is_pair_spec

    moved = [b for b in benchmarks if is_pair_spec(b)]
    return [*pairs, *moved], [b for b in benchmarks if b not in moved]


def _load_benchmark(spec, sample: int | None):
    """A fill-mask benchmark; `choice:PAIRS` makes one from minimal pairs (`sample` per paradigm)."""
    from probekit.benchmarks.pairs import is_choice_spec, load_choices

    return load_choices(spec, sample) if is_choice_spec(spec) else load_benchmark(spec)


def _load_pairs(specs, sample: int | None) -> list:
    from probekit.benchmarks.pairs import load_pairs

    loaded = [load_pairs(spec, sample) for spec in specs]
    for problem in (p for b in loaded for p in b.problems):
        logger.warning(problem)
    return loaded


def _pairs_manifest(ctx: Context) -> dict | None:
    return {b.name: {"source": str(b.source), "sha256": b.sha256, "pairs": len(b.pairs),
                     "malformed_rows": len(b.problems), "metric": ctx.pll_metric} for b in ctx.pairs} or None
