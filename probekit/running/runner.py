"""`probe()`: walk a checkpoint series and run the chosen analyses on every checkpoint, one in memory at a time.

The runner holds no model: each `Checkpoint` handle reads its weights, tokenizer and model lazily and
forgets them when released. Every analysis result is cached under a key naming everything it depends on,
so a rerun on a grown series computes only what is new. A checkpoint that fails in any way is reported in
one line and skipped; the others are still probed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from probekit import analyses as registry
from probekit.analyses import Analysis, Context
from probekit.analyses.base import ORIGINS
from probekit.benchmarks import DEFAULT_BENCHMARKS
from probekit.benchmarks.kinds import described, load_input, load_inputs
from probekit.models.checkpoints import Checkpoint, RandomInit
from probekit.core.errors import AnalysisError, ProbekitError
from probekit.training.facts import FactRecord, fact_groups
from probekit.training.folders import BARE_COUNT, TRAINER_STATE, count_value, seed_of
from probekit.core.log import logger, progress
from probekit.running.results import ProbeResult
from probekit.models.series import resolve_checkpoints
from probekit.analyses.findings import build as build_findings
from probekit.core.schema import CHECKPOINT_ID, TABLES
from probekit.analyses import scoring
from probekit.analyses.stats import settings as stats_settings
from probekit.core.store import cache_key, claim_folder, new_manifest, read_cached, training_log, write_cached, writer_lock
from probekit.training.vocab import load_tokenizer

AUTO_BATCH = "batch_size=auto"
"""`ctx.state` key set when `batch_size="auto"`: an analysis that runs out of memory is retried at half the batch."""
AUTO_START = {"cuda": 1024}
"""The batch `auto` starts from, by device type (elsewhere the default, 128)."""
LEGACY = {"top_k": ("predictions", "top_k"), "pll_metric": ("pairs", "metric"), "sentences": ("capture", "sentences")}
"""Keyword arguments of `probe` from before the analysis spec, and the option each now sets."""


@dataclass
class Job:
    """One probe, resolved: its checkpoints, analyses and shared context. What every process of a sharded
    probe (`probekit.running.shards`) derives alike from the same command."""

    refs: list[Checkpoint]
    chosen: list[Analysis]
    ctx: Context
    facts: FactRecord | None
    control: bool
    tokenizer: PreTrainedTokenizerBase | None = None
    allow_pickle: bool = False

    def run_unit(self, ref: Checkpoint, analysis: Analysis, item) -> tuple[pd.DataFrame, bool | None]:
        """One unit of this probe (`run_unit`)."""
        return run_unit(ref, analysis, self.ctx, item)

    def run(self, manifest: dict | None = None) -> ProbeResult:
        """The whole probe in this process (`run_job`)."""
        return run_job(self, manifest)


def probe(
    checkpoints: list[str] | str,
    benchmarks: list[str] | tuple[str, ...] = DEFAULT_BENCHMARKS,
    analyses: list[str] | tuple[str, ...] | dict[str, dict] = ("predictions",),
    out: str | Path | None = None,
    *,
    tokenizer: str | PreTrainedTokenizerBase | None = None,
    allow_pickle: bool = False,
    batch_size: int | str = 128,
    control: bool = True,
    device: str | None = None,
    sample: int | None = None,
    shard: str | tuple[int, int] | None = None,
    merge: bool = False,
    step_from: str | None = None,
    evict: bool = False,
    options: dict[str, dict] | None = None,
    at: dict[str, str | list[int]] | None = None,
    **legacy,
) -> ProbeResult | None:
    """Run `analyses` on every checkpoint of a series over the benchmarks' inputs; returns the tidy tables.

    checkpoints: folders, a quoted glob ('local/my_bert/*'), a parent folder, or hub names.
    benchmarks: input specs, each read by the input kind that claims it (`probekit.benchmarks.kinds`):
        fill-mask prompts ("countries", CSV/JSONL/YAML files), minimal pairs ("blimp", "blimp:SELECTOR",
        files with good, bad columns), choices ("choice:blimp"), sentences ("sentences:FILE").
    analyses: registered names, or {name: {option: value}} — e.g. {"lens": {}, "capture": {"sentences":
        "my.txt"}}; "predictions" always runs, and analyses whose inputs are given run by themselves (pairs
        for minimal pairs, choice for prompts with foils). `probekit probe --help` lists them and their options.
    options: {name: {option: value}} for analyses that run without being named, e.g. {"pairs": {"metric":
        "original"}, "predictions": {"top_k": 5}}.
    at: {name: steps} for analyses that need only some steps of the series, e.g. {"ablation": "0,2000,8000",
        "tracing": "last"}: steps as a list or comma-separated ("first", "last", 20k); the others, and the
        random-init control, run at every checkpoint.
    out: a results folder; with it, results are cached and the run's tables written there as one set.
    control: add a random-initialisation row when the series has no step 0.
    sample: keep at most N items per group of the inputs that can be sampled (pairs per paradigm; seeded).
    batch_size: prompts per forward pass, or "auto": the largest that fits (from 1,024 on a GPU, halved on
        running out of memory; 128 on a CPU).
    shard, merge: probe at scale (`probekit.running.shards`). Under `torchrun` the work is split over its processes
        by itself; `shard="I/N"` computes only shard I of N into `out` and `merge=True` assembles the tables
        from what all shards left there. Returns None where this process does not assemble the tables
        (ranks other than 0, a shard that is not the last to finish).
    step_from: a regex whose first group is each checkpoint's step (k/M suffixes), instead of names and
        trainer_state.json. evict: delete each hub checkpoint from the hub cache once it is probed.
    legacy: the keywords of earlier versions, each setting an option: top_k, pll_metric, sentences (also
        asks for capture), pairs (more benchmarks), half (bf16 scoring and float16 captures).
    """
    requested, given = requested_analyses(analyses)
    benchmarks, requested, given = _legacy(list(benchmarks), requested, _merged(given, options or {}), legacy)
    job = prepare(checkpoints, benchmarks, requested, given, out, tokenizer=tokenizer, allow_pickle=allow_pickle,
                  batch_size=batch_size, control=control, device=device, sample=sample, step_from=step_from,
                  evict=evict, sharded=shard is not None or merge, at=at)
    from probekit.running import shards

    if shard is not None or merge or shards.under_torchrun():
        return shards.probe_sharded(job, shard=shard, merge=merge)
    return job.run()


def requested_analyses(analyses) -> tuple[list[str], dict[str, dict]]:
    """(names asked for, their options) from names or {name: options}."""
    if isinstance(analyses, str):
        analyses = [analyses]
    if isinstance(analyses, dict):
        return list(analyses), {name: dict(opts) for name, opts in analyses.items() if opts}
    return list(dict.fromkeys(analyses)), {}


def _merged(a: dict[str, dict], b: dict[str, dict]) -> dict[str, dict]:
    return {name: {**a.get(name, {}), **b.get(name, {})} for name in dict.fromkeys([*a, *b])}


def _legacy(benchmarks: list, requested: list[str], options: dict[str, dict],
            legacy: dict) -> tuple[list, list[str], dict[str, dict]]:
    """The earlier keywords of `probe` as benchmarks, analyses and options (see `probe`)."""
    if unknown := sorted(set(legacy) - {*LEGACY, "pairs", "half"}):
        raise TypeError(f"probe() got an unexpected keyword argument {unknown[0]!r}")
    benchmarks = [*benchmarks, *legacy.get("pairs", ())]
    for key, (name, option) in LEGACY.items():
        if legacy.get(key) is not None:
            options.setdefault(name, {})[option] = legacy[key]
    if legacy.get("sentences") is not None and "capture" not in requested:
        requested = [*requested, "capture"]
    if legacy.get("half"):
        options.setdefault("predictions", {})["bf16"] = True
        options.setdefault("capture", {})["float16"] = True
    return benchmarks, requested, options


def prepare(checkpoints, benchmarks, requested: list[str], options: dict[str, dict], out, *, tokenizer=None, allow_pickle=False,
            batch_size=128, control=True, device=None, sample=None, step_from=None, evict=False,
            sharded: bool = False, at: dict | None = None) -> Job:
    """Everything `probe` needs before the first checkpoint is read: no weights are loaded here.

    sharded: one shard (or the merge) of a split run, which needs only some checkpoints, or none: hub
        checkpoints missing offline are then reported by the units that need them, not refused up front.
    """
    registry.load_builtins()
    auto = batch_size == "auto"
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch_size = AUTO_START.get(device.type, 128) if auto else batch_size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ProbekitError(f"batch_size must be at least 1 (got {batch_size!r}; it may also be 'auto')")
    ctx = Context(load_inputs(benchmarks, sample), {}, batch_size, device, Path(out) if out is not None else None)
    chosen = registry.chosen(requested, options, ctx)
    for analysis in chosen:
        if analysis.inputs and not ctx.of(analysis.inputs):
            for spec in analysis.default_inputs(ctx.opts(analysis.name)):
                kind, loaded = load_input(spec, sample)
                ctx.inputs.setdefault(kind, []).append(loaded)
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    refs = resolve_checkpoints(checkpoints, allow_pickle, tok, step_from=step_from, evict=evict,
                               check_cached=not sharded)
    ctx.at = steps_at(at or {}, refs, chosen)
    facts = _fact_record(refs)
    for bench in ctx.of("prompts"):
        bench.groups = fact_groups(bench.prompts, facts)
    if auto:
        ctx.state[AUTO_BATCH] = True
    if ctx.out is not None:  # before any work: a folder of someone else's files is refused, untouched
        claim_folder(ctx.out)
    return Job(refs, chosen, ctx, facts, control, tok, allow_pickle)


def steps_at(at: dict, refs: list[Checkpoint], chosen: list[Analysis]) -> dict[str, frozenset[int]]:
    """`probe(at=...)` resolved against the series: {analysis: the steps of its checkpoints it runs at}; one-line
    errors for an analysis not in the run, a word that is no step, or steps no checkpoint has (a warning when
    only some are missing)."""
    names = [a.name for a in chosen]
    steps = sorted({r.step for r in refs if r.step is not None})
    resolved = {}
    for name, spec in at.items():
        if name not in names:
            raise ProbekitError(f"at: {name!r} is not an analysis of this run (it runs {', '.join(names)})")
        words = [w.strip() for w in spec.split(",")] if isinstance(spec, str) else \
            [spec] if isinstance(spec, int) else list(spec)
        wanted = set()
        for word in words:
            if word in ("first", "last"):
                wanted.update(steps[:1] if word == "first" else steps[-1:])
            elif isinstance(word, int) or (isinstance(word, str) and BARE_COUNT.match(word)):
                wanted.add(word if isinstance(word, int) else count_value(*BARE_COUNT.match(word).groups()))
            else:
                raise ProbekitError(f"at: {name}={spec!r}: {word!r} is not a step (steps are numbers such as "
                                    "2000 or 2k, or first, last)")
        present = wanted & set(steps)
        if not present:
            raise ProbekitError(f"at: {name}={spec!r}: no checkpoint of the series has "
                                + (f"these steps (it has {_steps_text(steps)})" if steps else "a known step"))
        if absent := sorted(wanted - present):
            logger.warning(f"at: {name} asks for step(s) {', '.join(map(str, absent))}, which no checkpoint of "
                           "the series has")
        resolved[name] = frozenset(present)
    return resolved


def _steps_text(steps: list[int], shown: int = 8) -> str:
    return ", ".join(map(str, steps[:shown])) + (f" … {steps[-1]}" if len(steps) > shown else "")


def run_job(job: Job, manifest: dict | None = None) -> ProbeResult:
    """The whole series in this process (every cached unit read from the cache), assembled, and saved into
    the results folder under its writer's lock with `manifest`'s entries added."""
    if job.ctx.out is None:
        return _run(job.refs, job.chosen, job.ctx, job.facts, job.control)
    with writer_lock(job.ctx.out):
        result = _run(job.refs, job.chosen, job.ctx, job.facts, job.control)
        result.manifest.update(manifest or {})
        if not bars_shown():
            logger.info(f"writing the tables into {job.ctx.out}")
        result.save(job.ctx.out)
    return result


def _run(refs: list[Checkpoint], chosen: list[Analysis], ctx: Context, facts: FactRecord | None,
         control: bool) -> ProbeResult:
    frames: dict[str, list[pd.DataFrame]] = {a.name: [] for a in chosen}
    records, seen = [], {}
    ctx.checkpoints = len(refs)
    for position, ref in enumerate(progress(refs, desc="probing", unit="checkpoint"), 1):
        if not bars_shown():  # a log file: a line per stage instead of a bar's frames
            logger.info(f"probing {ref.name} ({position}/{len(refs)})")
        record = {"checkpoint": ref.name, "run": ref.run, "step": ref.step, "seed": seed_of(ref.source),
                  "path": ref.source, "family": ref.family, "fingerprint": None, "status": "ok",
                  "duplicate_of": None, "error": None}
        records.append(record)
        try:
            record["fingerprint"] = ref.fingerprint
            original = seen.get(ref.identity)
            results = _analyse(ref, chosen, ctx, reuse=original)
        except AnalysisError:  # the analysis is at fault, not the checkpoint: stop before the rest of the work
            raise
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
        if not bars_shown() and on_control:
            logger.info(f"probing the random-init control ({', '.join(a.name for a in on_control)})")
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
        if not isinstance(ref, RandomInit) and not ctx.runs_at(analysis.name, ref.step):
            continue
        if reuse is not None and analysis.cached and analysis.name in reuse[1]:
            results[analysis.name] = [_label(f, ref) for f in reuse[1][analysis.name]]
            continue
        items = ctx.of(analysis.inputs) if analysis.inputs else [None]
        results[analysis.name] = [_label(run_unit(ref, analysis, ctx, item)[0], ref) for item in items]
    return results


def run_unit(ref: Checkpoint, analysis: Analysis, ctx: Context, item) -> tuple[pd.DataFrame, bool | None]:
    """One analysis of one checkpoint (on one input, or None): its rows from the cache, or computed and
    cached. Returns (rows without the checkpoint's columns, whether the cache had them; None when the
    analysis keeps its own files). The unit of work a sharded probe spreads over processes."""
    key = None
    if analysis.cached:
        key = unit_key(ref, analysis, ctx, item)
        if (frame := read_cached(ctx.out, key)) is not None:
            return frame, True
    frame = _computed(ref, analysis, ctx, item)
    check_rows(analysis, frame, ref)
    if key is not None:
        write_cached(ctx.out, key, frame)
    return frame, False if analysis.cached else None


LABELLED = (*CHECKPOINT_ID, "group")
"""Columns of a row table the runner adds itself (`_label`, and the fact group in `_assemble`)."""


def check_rows(analysis: Analysis, frame: pd.DataFrame, ref: Checkpoint) -> None:
    """A one-line AnalysisError when a unit's rows lack a column the analysis's row table declares, so that a
    broken analysis (a plug-in) stops at its first unit, not after the whole series."""
    if not isinstance(frame, pd.DataFrame):
        raise AnalysisError(f"analysis {analysis.name!r} ({ORIGINS.get(analysis.name, 'unknown origin')}): run() "
                            f"returned {type(frame).__name__}, not a table of rows")
    if frame.empty:
        return
    if missing := [c for c in analysis.table.names if c not in frame.columns and c not in LABELLED]:
        raise AnalysisError(f"analysis {analysis.name!r} ({ORIGINS.get(analysis.name, 'unknown origin')}): its rows "
                            f"on {ref.name} lack the column(s) {', '.join(missing)} that its table "
                            f"{analysis.table.name!r} declares; stopped before the rest of the work")


def bars_shown() -> bool:
    """Whether progress bars are on (`probekit.core.log.set_progress`; the CLI turns them off without a terminal)."""
    from probekit.core import log

    return bool(getattr(log, "_progress", True))


def unit_key(ref: Checkpoint, analysis: Analysis, ctx: Context, item) -> str:
    """The cache key of one unit: the analysis, the checkpoint's identity, the input's content, every setting
    the analysis declares (its version and options) and the scoring kernel's version."""
    return cache_key(analysis=analysis.name, identity=ref.identity, benchmark=item.sha256 if item else None,
                     settings=analysis.settings(ctx, item), scoring=scoring.SCORING_VERSION)


def _computed(ref: Checkpoint, analysis: Analysis, ctx: Context, item) -> pd.DataFrame:
    """`analysis.run`; with batch_size "auto", retried at half the batch each time memory runs out."""
    while True:
        try:
            return analysis.run(ref, ctx, item)
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
    failed = []
    for analysis in chosen:
        try:
            tables.update(_tables_of(analysis, frames[analysis.name], ctx, facts))
        except Exception as exc:  # one analysis's broken tables must not lose the others'
            first = str(exc).splitlines()[0] if str(exc) else ""
            logger.error(f"analysis {analysis.name!r} ({ORIGINS.get(analysis.name, 'unknown origin')}): its tables "
                         f"are not written ({exc.__class__.__name__}: {first}); the other analyses' are")
            failed.append(analysis.name)
    tables["checkpoints"] = pd.DataFrame(records, columns=TABLES["checkpoints"].names)
    states = [Path(r.location) / TRAINER_STATE for r in refs if r.is_local]
    if states := [s for s in states if s.is_file()]:
        tables["training"] = training_log(states[-1])
    manifest = new_manifest(
        inputs={kind: {i.name: described(i) for i in items} for kind, items in ctx.inputs.items()},
        analyses=[a.name for a in chosen],
        options={a.name: ctx.opts(a.name).key() for a in chosen},
        at={name: sorted(steps) for name, steps in ctx.at.items()},
        settings={"batch_size": ctx.batch_size, "batch_size_auto": bool(ctx.state.get(AUTO_BATCH))},
        statistics=stats_settings(),
        device=str(ctx.device), checkpoints=len(refs), skipped=sum(r["status"] == "skipped" for r in records),
        facts=asdict(facts) if facts else None)
    for analysis in chosen:
        manifest.update(analysis.manifest(ctx))
    if failed:
        manifest["failed_analyses"] = failed
    if nothing := {a.name: why for a in chosen if a.name not in failed
                   and (why := nothing_computed(a, tables.get(a.table.name), ctx)) is not None}:
        manifest["computed_nothing"] = nothing
    tables["findings"] = build_findings(tables)  # every claim, decided once (probekit.analyses.findings)
    return ProbeResult(tables, manifest)


def nothing_computed(analysis: Analysis, frame: pd.DataFrame | None, ctx: Context) -> str | None:
    """Why `analysis` computed nothing in this run (None when it computed something): its own words where it
    says (an analysis's `nothing_computed(frame, ctx)`, e.g. tracing's prompts that all were skipped), else an
    empty row table — for want of inputs of its kind, or of rows. The CLI exits 1 with this reason when every
    analysis asked for computed nothing."""
    if (own := getattr(analysis, "nothing_computed", None)) is not None:
        return own(frame if frame is not None else pd.DataFrame(), ctx)
    if frame is not None and len(frame):
        return None
    if analysis.inputs and not ctx.of(analysis.inputs):
        return f"no inputs of kind {analysis.inputs!r} in this run"
    return "its table is empty"


def _tables_of(analysis: Analysis, parts: list[pd.DataFrame], ctx: Context,
               facts: FactRecord | None) -> dict[str, pd.DataFrame]:
    """One analysis's tables from its units' rows: the row table finished, then its summaries, each checked
    against the columns it declares."""
    names = analysis.table.names
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=names)
    if "group" in names and "subject" in frame.columns:
        frame["group"] = fact_groups(frame, facts)
    if frame.empty:  # typed as declared, so that its summaries work (a run of minimal pairs alone)
        frame = analysis.table.conform(frame.reindex(columns=list(dict.fromkeys([*frame.columns, *names]))))
    frame = frame.sort_values("step", kind="stable", na_position="last").reset_index(drop=True)
    frame = analysis.finish(frame, ctx)
    made = {analysis.table.name: frame, **analysis.summarize(frame, ctx)}
    for name, table in made.items():
        if name in TABLES and table is not None and (missing := [c for c in TABLES[name].names if c not in table.columns]):
            raise ValueError(f"table {name!r} lacks the declared column(s) {', '.join(missing)}")
    return made


def _fact_record(refs: list[Checkpoint]) -> FactRecord | None:
    """The fact-injection record written beside the series by `probekit train`, if any."""
    for folder in dict.fromkeys(Path(r.location).parent for r in refs if r.is_local):
        if (record := FactRecord.load(folder)) is not None:
            return record
    return None
