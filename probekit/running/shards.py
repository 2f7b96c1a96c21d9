"""Probe at scale: a series' units spread over processes (`torchrun` ranks or `--shard I/N` jobs) and merged
into exactly the tables one process would write.

A unit is one analysis of one checkpoint on one benchmark (or of the random-init control). Every process
lists the units alike from the same command, assigns them to shards by cost (longest first, each to the
least-loaded shard: deterministic; a checkpoint's units together when there are enough checkpoints, so that
each is read once) and computes only its own, into the shared results cache, reading the next checkpoint in
a background thread while it scores the current one; each finished
unit leaves a record (shard, host, seconds) in `cache/units/`. When all are done, one process runs the
ordinary single-process probe over the folder, every unit a cache hit, so the merged tables are those of a
one-process run by construction (rows, order, numbers, the control row, duplicates, skipped checkpoints);
the manifest adds `world_size`, `hosts` and `units` (per-unit timings).

A process that dies loses only the unit it was computing: the same command again skips every unit that
has a record. No two processes write one file: a unit belongs to one shard, a cache file is published once
by hard link (`store.write_cached`: duplicate checkpoints share a key), records and captures by rename.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from itertools import groupby
from pathlib import Path
from typing import Protocol

import pandas as pd
import torch

from probekit.analyses import REGISTRY, Analysis, Context, Shape
from probekit.models.checkpoints import Checkpoint, RandomInit, tokenizer_identity
from probekit.core.errors import ProbekitError
from probekit.training.folders import PICKLE_WEIGHTS, SAFE_WEIGHTS
from probekit.models.hub import HubCheckpoint
from probekit.core.log import logger, progress, set_progress
from probekit.running.results import ProbeResult
from probekit.analyses import scoring
from probekit.core.store import FolderBusy, cache_key, read_unit_record, write_unit_record

CRASH_HOOK = "PROBEKIT_TEST_CRASH"
"""Fault injection for the tests: "I:N" makes shard (rank) I exit abruptly after its N-th computed unit."""
BARRIER_TIMEOUT = timedelta(days=2)
"""How long a finished rank waits at the barrier for the slowest one."""
WHOLE = 4
"""Checkpoints per shard from which a checkpoint's units are kept on one shard (`assign`)."""


class Job(Protocol):
    """What sharding needs of a resolved probe (`probekit.running.runner.Job`, which hands itself over)."""

    refs: list[Checkpoint]
    chosen: list[Analysis]
    ctx: Context
    control: bool
    tokenizer: object | None
    allow_pickle: bool

    def run_unit(self, ref: Checkpoint, analysis: Analysis, bench) -> tuple[pd.DataFrame, bool | None]:
        """One unit: its rows from the cache or computed and cached, and whether the cache had them."""

    def run(self, manifest: dict | None = None) -> ProbeResult:
        """The single-process probe over the folder, saved with `manifest`'s entries added."""


@dataclass(frozen=True)
class Unit:
    """One analysis of one checkpoint (`checkpoint`: position in the job's series; None = the random-init
    control) on one benchmark (`benchmark`: position in the context's; None when run once per checkpoint)."""

    index: int
    checkpoint: int | None
    analysis: str
    benchmark: int | None
    name: str
    cost: float


def under_torchrun() -> bool:
    """True in a process `torchrun` started with more than one process in all."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def probe_sharded(job: Job, shard: str | tuple[int, int] | None = None, merge: bool = False) -> ProbeResult | None:
    """`probe` at scale: under torchrun (this process's share, then rank 0 merges), one `shard`, or `merge`.

    Returns the merged result where this process merged, else None.
    """
    if job.ctx.out is None:
        raise ProbekitError("a sharded probe needs a results folder every process can reach (--out)")
    if shard is not None and merge:
        raise ProbekitError("give --shard or --merge, not both")
    if (shard is not None or merge) and under_torchrun():
        raise ProbekitError("--shard and --merge are for jobs started without torchrun (torchrun shards by itself)")
    units = plan_units(job)
    if merge:
        return merge_units(job, units)
    if shard is not None:
        return _run_shard(job, units, *parse_shard(shard))
    return _run_torchrun(job, units)


MAX_SHARDS = 100_000  # more shards than a cluster runs jobs is a typo, not a plan


def parse_shard(spec: str | tuple[int, int]) -> tuple[int, int]:
    """"I/N" (shards numbered 0 to N-1, like $SLURM_ARRAY_TASK_ID with --array=0-(N-1)) → (I, N)."""
    if isinstance(spec, tuple):
        index, count = spec
    elif match := re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec)):
        index, count = int(match.group(1)), int(match.group(2))
    else:
        raise ProbekitError(f"--shard {spec!r}: expected I/N, such as 0/4 (shards 0 to N-1)")
    if not 0 < count <= MAX_SHARDS:
        raise ProbekitError(f"--shard {index}/{count}: N must be from 1 to {MAX_SHARDS:,}")
    if not 0 <= index < count:
        raise ProbekitError(f"--shard {index}/{count}: I must be from 0 to {count - 1}")
    return index, count


# ---------------------------------------------------------------- the units and who does which


def plan_units(job: Job) -> list[Unit]:
    """Every unit of the job, in the order the single-process probe meets them (control first)."""
    specs: list[tuple[int | None, Analysis, int | None]] = []
    if job.control and job.refs and not any(ref.step == 0 for ref in job.refs):
        specs += [(None, a, b) for a in job.chosen if a.on_control for b in _bench_positions(job, a)]
    specs += [(i, a, b) for i in range(len(job.refs)) for a in job.chosen if job.ctx.runs_at(a.name, job.refs[i].step)
              for b in _bench_positions(job, a)]
    return [Unit(n, i, a.name, b, _unit_name(job, i, a, b), _cost(job, i, a, b)) for n, (i, a, b) in enumerate(specs)]


def _bench_positions(job: Job, analysis: Analysis) -> list[int | None]:
    return list(range(len(job.ctx.of(analysis.inputs)))) if analysis.inputs else [None]


def _item(job: Job, analysis: Analysis, position: int | None):
    """The input a unit runs over (None for an analysis that runs once per checkpoint)."""
    return job.ctx.of(analysis.inputs)[position] if position is not None else None


def _unit_name(job: Job, checkpoint: int | None, analysis: Analysis, bench: int | None) -> str:
    label = "random-init" if checkpoint is None else job.refs[checkpoint].name
    item = _item(job, analysis, bench)
    return " ".join([label, analysis.name, *([item.name] if item is not None else [])])


def _cost(job: Job, checkpoint: int | None, analysis: Analysis, bench: int | None) -> float:
    """Model size (bytes of weights) × the analysis's own cost of its input: what balances the shards.
    Nothing is fetched: a hub checkpoint not yet on disk counts as a 12-layer model of size 1."""
    folder = _folder(job.refs[0 if checkpoint is None else checkpoint])
    size, layers, heads = 1, 12, 12
    if folder is not None:
        size = sum(p.stat().st_size for p in (folder / f for f in (SAFE_WEIGHTS, PICKLE_WEIGHTS)) if p.is_file()) or 1
        try:
            config = json.loads((folder / "config.json").read_text())
            layers, heads = int(config["num_hidden_layers"]), int(config["num_attention_heads"])
        except (OSError, ValueError, KeyError, TypeError):  # a broken config: the unit will fail fast
            return 1.0
    return float(size) * analysis.cost(Shape(layers, heads), _item(job, analysis, bench))


def assign(units: list[Unit], shards: int, whole: bool = False) -> list[int]:
    """The shard of each unit, the same in every process: longest first, each to the least-loaded shard
    (ties to the lower). With at least `WHOLE` checkpoints per shard, or `whole` (checkpoints evicted after
    probing: no other shard may need one again), a checkpoint's units stay together (it is read once, and
    the balance is still close); else units are shared out one by one."""
    groups = [list(g) for _, g in groupby(sorted(units, key=lambda u: u.index), key=lambda u: u.checkpoint)]
    if len(groups) < WHOLE * shards and not whole:
        groups = [[unit] for unit in units]
    owners = [0] * len(units)
    loads = [(0.0, shard) for shard in range(shards)]
    for group in sorted(groups, key=lambda g: (-sum(u.cost for u in g), g[0].index)):
        load, shard = heapq.heappop(loads)
        for unit in group:
            owners[unit.index] = shard
        heapq.heappush(loads, (load + sum(u.cost for u in group), shard))
    return owners


def _evicting(job: Job) -> bool:
    return any(getattr(ref, "evict_on_release", False) for ref in job.refs)


def signature(job: Job, unit: Unit) -> str:
    """What a unit's record is valid for: the unit, its checkpoint's files (names, sizes, times), the
    benchmark, the analysis settings and the format versions; any change makes it a new unit."""
    analysis = REGISTRY[unit.analysis]
    item = _item(job, analysis, unit.benchmark)
    refs = job.refs if unit.checkpoint is None else [job.refs[unit.checkpoint]]  # the control copies one of them
    return cache_key(unit=unit.name, files=[_stamp(ref) for ref in refs], analysis=analysis.name,
                     benchmark=item.sha256 if item else None, settings=analysis.settings(job.ctx, item),
                     scoring=scoring.SCORING_VERSION,
                     tokenizer=tokenizer_identity(job.tokenizer) if job.tokenizer is not None else None,
                     allow_pickle=job.allow_pickle)


def _stamp(ref: Checkpoint) -> list:
    folder = _folder(ref)
    if folder is None:
        return [str(ref.spec) if isinstance(ref, HubCheckpoint) else ref.location]  # a hub name (and revision)
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    return [str(folder), files]


def _folder(ref: Checkpoint) -> Path | None:
    """The checkpoint's own folder on disk; None for a hub checkpoint (its location changes once fetched, and
    planning never fetches)."""
    if isinstance(ref, HubCheckpoint):
        return None
    folder = Path(ref.location)
    return folder if folder.is_dir() else None


# ---------------------------------------------------------------- computing one shard's units


def run_units(job: Job, units: list[Unit], shard: tuple[int, int]) -> int:
    """Compute the `units` without a record yet, checkpoint by checkpoint (the next one read in the
    background meanwhile), each leaving its record; returns how many were computed."""
    job = replace(job, ctx=replace(job.ctx, files={}, state=dict(job.ctx.state)))  # the merge starts afresh
    out = job.ctx.out
    todo = [u for u in units if read_unit_record(out, signature(job, u)) is None]
    crash = _crash_after(shard[0])
    groups = [(key, list(group)) for key, group in groupby(todo, key=lambda u: u.checkpoint)]
    refs = [_control(job) if key is None else job.refs[key] for key, _ in groups]
    done = 0
    bar = progress(range(len(todo)), desc=f"shard {shard[0]}/{shard[1]}", unit="unit")
    for ref, (_, group) in zip(prefetched(refs), groups):
        error = None if ref is not None else "no checkpoint of the series loads: no control"
        for unit in group:
            start, hit = time.perf_counter(), None
            if error is None:
                try:
                    hit = _run_one(job, ref, unit)
                except Exception as exc:  # the merge meets it again and skips the checkpoint, as one process does
                    error = _one_line(ref, exc)
            write_unit_record(out, signature(job, unit), {
                "unit": unit.name, "shard": list(shard), "host": socket.gethostname(), "pid": os.getpid(),
                "seconds": round(time.perf_counter() - start, 4), "cache_hit": hit, "error": error,
                **({} if error or isinstance(ref, RandomInit) else
                   {"fingerprint": ref.fingerprint, "identity": ref.identity, "family": ref.family}),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            next(bar, None)
            done += 1
            if crash is not None and done >= crash:
                os._exit(17)  # the test hook: die as a killed process would, nothing flushed or closed
        if ref is not None:
            ref.release()
    next(bar, None)  # closes the bar
    return done


def _run_one(job: Job, ref: Checkpoint, unit: Unit) -> bool | None:
    analysis = REGISTRY[unit.analysis]
    return job.run_unit(ref, analysis, _item(job, analysis, unit.benchmark))[1]


def _control(job: Job) -> Checkpoint | None:
    """The random-init control as the single-process probe makes it: like the first checkpoint that loads."""
    for ref in job.refs:
        try:
            ref.identity
            ref.model(job.ctx.device)
        except Exception:
            continue
        finally:
            ref.release()
        return RandomInit(ref)
    return None


def _one_line(ref: Checkpoint, exc: Exception) -> str:
    if isinstance(exc, ProbekitError):
        return str(exc)
    return f"{ref.source}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _crash_after(shard: int) -> int | None:
    spec = os.environ.get(CRASH_HOOK, "")
    who, _, after = spec.partition(":")
    return int(after) if spec and int(who) == shard else None


def prefetched(refs: list[Checkpoint | None]) -> Iterator[Checkpoint | None]:
    """`refs` in order; while one is in use, the next one's weights, tokenizer and model are read in a
    background thread (file reads and hashing release the GIL), so loading overlaps compute."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="probekit-prefetch") as pool:
        pending = pool.submit(_warm, refs[0]) if refs else None
        for i, ref in enumerate(refs):
            pending.result()
            if i + 1 < len(refs):
                pending = pool.submit(_warm, refs[i + 1])
            yield ref


def _warm(ref: Checkpoint | None) -> None:
    """Read what a checkpoint's units will need; an error is left for the unit to meet (nothing is cached)."""
    if ref is None or isinstance(ref, RandomInit):
        return
    try:
        ref.identity
        ref.model("cpu")
    except Exception:
        pass


# ---------------------------------------------------------------- torchrun, --shard, --merge


def _run_torchrun(job: Job, units: list[Unit]) -> ProbeResult | None:
    import torch.distributed as dist

    if not dist.is_initialized():  # gloo: only a barrier and a few small objects travel, on CPU or GPU alike
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    rank, world = dist.get_rank(), dist.get_world_size()
    _place(job, int(os.environ.get("LOCAL_RANK", "0")))
    if rank != 0:
        set_progress(False)
    plans: list = [None] * world
    dist.all_gather_object(plans, _digest(units))
    if len(set(plans)) > 1:
        raise ProbekitError("the torchrun processes see different series or settings; give every one the "
                            "same checkpoints, benchmarks and options on the same shared folders")
    owners = assign(units, world, _evicting(job))
    run_units(job, [u for u in units if owners[u.index] == rank], (rank, world))
    dist.barrier()
    try:
        return merge_units(job, units) if rank == 0 else None
    finally:
        dist.barrier()  # the others wait for the tables, then all leave the group together
        dist.destroy_process_group()


def _place(job: Job, local_rank: int) -> None:
    """Each rank on its own GPU (`LOCAL_RANK`) unless the command named one."""
    ctx = job.ctx
    if ctx.device.type == "cuda" and ctx.device.index is None:
        ctx.device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(ctx.device)


def _digest(units: list[Unit]) -> str:
    return hashlib.sha256(json.dumps([(u.name, u.cost) for u in units]).encode()).hexdigest()


def _run_shard(job: Job, units: list[Unit], index: int, count: int) -> ProbeResult | None:
    """Shard `index` of `count` into the shared folder; the shard that finds every unit done merges."""
    owners = assign(units, count, _evicting(job))
    mine = [u for u in units if owners[u.index] == index]
    computed = run_units(job, mine, (index, count))
    missing = [u for u in units if read_unit_record(job.ctx.out, signature(job, u)) is None]
    logger.info(f"shard {index}/{count}: {len(mine)} units, {computed} computed now; "
                f"{len(units) - len(missing)} of {len(units)} units of the series are done in {job.ctx.out}")
    if missing:
        logger.info("the shard that finishes last writes the tables (or run the same command with --merge)")
        return None
    try:
        return merge_units(job, units)
    except FolderBusy as exc:
        logger.info(f"all units done; another process writes the tables ({exc})")
        return None


def merge_units(job: Job, units: list[Unit]) -> ProbeResult:
    """The tables of the whole series from the shards' units, written into the folder (refused, naming
    the missing units in one line, while some are not done)."""
    records = [read_unit_record(job.ctx.out, signature(job, u)) for u in units]
    missing = [u for u, record in zip(units, records) if record is None]
    if missing:
        raise ProbekitError(_missing_line(job, units, missing, records))
    for unit, record in zip(units, records):
        if unit.checkpoint is not None and record.get("identity"):
            _remember(job.refs[unit.checkpoint], record["fingerprint"], record["identity"], record.get("family"))
    counts = {record["shard"][1] for record in records}
    manifest = {"world_size": max(counts, default=1), "hosts": sorted({r["host"] for r in records}),
                "units": [{"unit": u.name, **{k: r[k] for k in ("shard", "host", "seconds", "cache_hit", "error")}}
                          for u, r in zip(units, records)]}
    return job.run(manifest)


def _remember(ref: Checkpoint, fingerprint: str, identity: str, family: str | None) -> None:
    """Give the merge the fingerprint and identity a shard computed from these same files (the unit's
    signature holds their sizes and times), so that assembling reads no weights; a checkpoint that failed
    gets none and meets its error again, as in one process."""
    ref._cache.setdefault("fingerprint", fingerprint)
    ref._cache.setdefault("identity", identity)
    if family is not None:
        ref._cache.setdefault("family", family)


def _missing_line(job: Job, units: list[Unit], missing: list[Unit], records: list[dict | None]) -> str:
    counts = {record["shard"][1] for record in records if record is not None}
    owners = ""
    if len(counts) == 1:
        count = counts.pop()
        shard_of = assign(units, count, _evicting(job))
        owners = " (shard " + ", ".join(f"{s}/{count}" for s in sorted({shard_of[u.index] for u in missing})) + ")"
    names = ", ".join(u.name for u in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return (f"{job.ctx.out}: {len(missing)} of {len(units)} units not done{owners}: {names}; run the missing "
            f"shard again (the same command with --shard I/N), then --merge")
