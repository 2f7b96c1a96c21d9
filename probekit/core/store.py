"""The results folder: one run's tables written as a set, its manifest, a writer's lock, and the cache.

What a folder holds is declared in `probekit.core.schema`. Writing is all-or-nothing as readers see it: the new
run's files are written under temporary names, the old manifest is removed, tables of the previous run that
this run does not write are deleted, the new files take their names, and the manifest (listing every file
of the run) is written last. A folder without a manifest, or whose files carry another run's id, is refused
as incomplete. A folder is probekit's only if it holds the `.probekit-results` stamp, written into a new or
empty folder before anything else (so an interrupted probe's folder is still known as probekit's); a folder
holding files probekit did not write is refused, and only files probekit wrote are ever replaced or deleted.
One writer of the tables at a time: a second probe into the same folder is refused while the
first runs. The cache takes many writers at once (the processes of a sharded probe): each result is written
under a unique temporary name and published by a hard link, so no reader sees half a file and no published
result is ever overwritten.

  cache/KEY.parquet       per (checkpoint identity, input, analysis, settings, format and scoring versions)
  cache/units/SIG.json    a unit of a sharded probe is done: who did it, where, how long (`probekit.running.shards`)
  attention/NAME.safetensors   captured tensors per checkpoint (listed in the manifest like the tables)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from probekit.core.errors import ProbekitError
from probekit.core.schema import FORMAT_VERSION, TABLES

MANIFEST, LOCK, CACHE, ATTENTION, UNITS = "manifest.json", ".probekit.lock", "cache", "attention", "units"
STAMP = ".probekit-results"
"""The file that makes a folder probekit's results folder (`claim_folder`)."""
DESKTOP_FILES = (".DS_Store", "Thumbs.db", "desktop.ini")
"""Files a file browser leaves in any folder it shows: a folder holding only these is still empty (they are
never touched)."""
META_KEY = b"probekit"
_held: set[Path] = set()
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class FolderBusy(ProbekitError):
    """Another process holds the results folder's writer's lock."""


@contextlib.contextmanager
def atomic_path(path: Path, replace: bool = True) -> Iterator[Path]:
    """A unique temporary path beside `path` that takes its name only if the block finishes.

    With `replace=False` it takes the name only if no file has it yet (a hard link: atomic on local and
    network filesystems), so a file once published is never overwritten by another writer.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; results are meant to be shared
    try:
        yield Path(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            _link_once(Path(tmp), path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _link_once(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        return  # another writer published the same result first
    except OSError:  # a filesystem without hard links: the rename still keeps readers safe
        os.replace(tmp, path)


# ---------------------------------------------------------------- tables as Parquet with a stamp


def write_table(path: Path, frame, stamp: dict) -> None:
    """`frame` as Parquet at `path` (atomically), with `stamp` (format version, run id, table) in its metadata."""
    with atomic_path(path) as tmp:
        _write_parquet(tmp, frame, stamp)


def _write_parquet(path: Path, frame, stamp: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(stamp).encode()})
    pq.write_table(table, path)


def read_table(path: Path):
    """(frame, stamp) of a Parquet table written by `write_table`."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for truncated or foreign files
        raise ProbekitError(f"{path}: unreadable table ({exc.__class__.__name__})") from exc
    stamp = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    return table.to_pandas(), stamp


# ---------------------------------------------------------------- the cache


def cache_key(**parts) -> str:
    """A key naming everything a cached result depends on (`parts`), the format version included."""
    parts = {"format": FORMAT_VERSION, **parts}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def read_cached(out: Path | None, key: str):
    """The cached frame for `key`, or None (absent, cut short, or written under another key)."""
    path = out / CACHE / f"{key}.parquet" if out else None
    if path is None or not path.is_file():
        return None
    try:
        frame, stamp = read_table(path)
    except ProbekitError:
        return None
    return frame if stamp.get("key") == key else None


def write_cached(out: Path | None, key: str, frame) -> None:
    """Publish `frame` under `key` once: a valid result already there (another process's) is kept as it is,
    an unreadable leftover is replaced."""
    if out is None:
        return
    path = out / CACHE / f"{key}.parquet"
    leftover = path.exists() and read_cached(out, key) is None
    with atomic_path(path, replace=leftover) as tmp:
        _write_parquet(tmp, frame, {"key": key, "format_version": FORMAT_VERSION})


def write_unit_record(out: Path, signature: str, record: dict) -> None:
    """Mark a unit of a sharded probe done (`probekit.running.shards`), atomically: a record is whole or absent."""
    with atomic_path(out / CACHE / UNITS / f"{signature}.json") as tmp:
        tmp.write_text(json.dumps(record, default=str))


def read_unit_record(out: Path, signature: str) -> dict | None:
    """The record of a finished unit, or None (not done, or unreadable)."""
    try:
        return json.loads((out / CACHE / UNITS / f"{signature}.json").read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- whose folder


def claim_folder(out: Path) -> None:
    """Make `out` a probekit results folder (stamped), or refuse it in one line: it must be new, empty, already
    stamped, or hold only what probekit writes (a results folder of a version before the stamp)."""
    if out.exists() and not out.is_dir():
        raise ProbekitError(f"{out}: not a folder; --out needs a new or empty folder, or one probekit wrote")
    if (out / STAMP).is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    if foreign := foreign_entries(out):
        raise ProbekitError(f"{out}: not a probekit results folder (it holds {_listed(foreign)}, which probekit "
                            f"did not write); choose a new or empty folder for --out (nothing was changed)")
    try:
        fd = os.open(out / STAMP, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:  # another process of the same probe stamped it first
        return
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"made_by": "probekit probe", "format_version": FORMAT_VERSION}) + "\n")


def foreign_entries(out: Path) -> list[str]:
    """The names in `out` that probekit did not write (its stamp, lock, manifest, stamped tables, cache and
    captures, and its own temporary files are not)."""
    foreign = []
    for entry in sorted(out.iterdir()):
        name = entry.name
        if name in (STAMP, LOCK, *DESKTOP_FILES) or _temporary(name):
            continue
        if name == MANIFEST and entry.is_file() and _probekit_manifest(entry):
            continue
        if name == CACHE and entry.is_dir() and all(
                _temporary(p.name) or p.suffix == ".parquet" or (p.name == UNITS and p.is_dir()) for p in entry.iterdir()):
            continue
        if name == ATTENTION and entry.is_dir() and all(
                _temporary(p.name) or p.suffix == ".safetensors" for p in entry.iterdir()):
            continue
        if entry.suffix == ".parquet" and entry.is_file() and stamped(entry):
            continue
        foreign.append(name + ("/" if entry.is_dir() else ""))
    return foreign


def _temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith((".tmp", ".staged"))


def _listed(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _probekit_manifest(path: Path) -> bool:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and {"format_version", "run_id", "files"} <= set(manifest)


def stamped(path: Path) -> bool:
    """Whether the Parquet file at `path` was written by probekit (its metadata holds probekit's stamp)."""
    import pyarrow.parquet as pq

    try:
        return META_KEY in (pq.read_schema(path).metadata or {})
    except Exception:  # not Parquet, unreadable, cut short: not probekit's to replace
        return False


# ---------------------------------------------------------------- one writer


@contextlib.contextmanager
def writer_lock(out: Path) -> Iterator[None]:
    """Hold `out` for one writer; refuse (one line) while another live process holds it. Re-entrant.

    The lock names the holder's pid and host: a lock left by a dead process on this host is taken over; one
    held from another host (a shared folder) is only refused, since its process cannot be checked from here.
    """
    claim_folder(out)
    lock = out / LOCK
    if lock.resolve() in _held:
        yield
        return
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder, host = _lock_holder(lock)
            if host not in (None, socket.gethostname()):
                raise FolderBusy(f"{out}: another probekit process (pid {holder} on {host}) is writing these "
                                    f"results; wait for it, or delete {lock} if it is gone") from None
            if holder is not None and holder != os.getpid() and _alive(holder):
                raise FolderBusy(f"{out}: another probekit process (pid {holder}) is writing these results; "
                                    f"wait for it or choose another --out") from None
            lock.unlink(missing_ok=True)  # left by a process that is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}")
        break
    else:
        raise ProbekitError(f"{out}: could not take the writer's lock {lock}")
    _held.add(lock.resolve())
    try:
        yield
    finally:
        _held.discard(lock.resolve())
        lock.unlink(missing_ok=True)


def _lock_holder(lock: Path) -> tuple[int | None, str | None]:
    """(pid, host) written in the lock; host None for a lock written without one (same host assumed)."""
    try:
        pid, _, host = lock.read_text().strip().partition(" ")
        return int(pid or 0) or None, host or None
    except (OSError, ValueError):
        return None, None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- a run's folder


def versions() -> dict[str, str]:
    import torch
    import transformers

    from probekit import __version__

    return {"probekit": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def new_manifest(**fields) -> dict:
    return {"format_version": FORMAT_VERSION, "run_id": uuid.uuid4().hex[:16],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions(),
            "command": " ".join(sys.argv), **fields}


def write_run(out: Path, tables: dict, manifest: dict, keep: list[str] = ()) -> None:
    """Write one run's tables into `out` as a set, replacing whatever run was there.

    `keep` names other files of this run already in place (captures under attention/); they are listed in
    the manifest, and files of the previous run not in the new set are removed.
    """
    claim_folder(out)
    run_id = manifest["run_id"]
    previous = _previous_files(out)
    for name, frame in tables.items():
        target = out / TABLES[name].file
        if frame is not None and target.exists() and TABLES[name].file not in previous:
            raise ProbekitError(f"{target}: not written by probekit, so not replaced; move it out of {out} or "
                                f"choose another --out")
    staged = {}
    try:
        for name, frame in tables.items():
            if frame is None:
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".staged", dir=out)
            os.close(fd)
            staged[TABLES[name].file] = Path(tmp)
            write_table(Path(tmp), frame,
                        {"format_version": FORMAT_VERSION, "run_id": run_id, "table": name})
        (out / MANIFEST).unlink(missing_ok=True)
        for old in previous:
            if old not in staged and old not in keep:
                (out / old).unlink(missing_ok=True)
        for file, tmp in staged.items():
            os.replace(tmp, out / file)
    finally:
        for tmp in staged.values():
            if tmp.exists():
                tmp.unlink()
    record = {**manifest, "files": {"tables": {Path(f).stem: f for f in staged}, "other": sorted(keep)}}
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))


def _previous_files(out: Path) -> list[str]:
    """Every file of the run now in `out` that probekit wrote (those its manifest lists, any table of the
    format carrying probekit's stamp, the captures), so that none outlives its run; nothing else."""
    listed: list[str] = []
    try:
        files = json.loads((out / MANIFEST).read_text()).get("files", {})
        listed = [*files.get("tables", {}).values(), *files.get("other", [])]
    except (OSError, ValueError, AttributeError):
        pass
    found = [f for f in dict.fromkeys(listed) if (out / f).is_file()]
    found += [t.file for t in TABLES.values() if (out / t.file).is_file() and stamped(out / t.file)]
    if (out / ATTENTION).is_dir():
        found += [f"{ATTENTION}/{p.name}" for p in (out / ATTENTION).iterdir()
                  if p.is_file() and p.suffix == ".safetensors"]
    return list(dict.fromkeys(found))


def read_run(out: Path) -> tuple[dict, dict]:
    """(tables by name, manifest) of a complete run, or a one-line ProbekitError saying what is wrong."""
    manifest_path = out / MANIFEST
    if not out.is_dir():
        raise ProbekitError(f"{out}: no such results folder")
    if not manifest_path.is_file():
        foreign = foreign_entries(out)
        if (out / STAMP).is_file() or (not foreign and any(out.glob("*.parquet"))):
            raise ProbekitError(f"{out}: incomplete results (no {MANIFEST}: a probe was interrupted while "
                                f"writing); run `probekit probe --out {out}` again")
        if foreign:
            raise ProbekitError(f"{out}: not probekit results (no {MANIFEST}; it holds {_listed(foreign)}, which "
                                f"probekit did not write)")
        raise ProbekitError(f"{out}: no {MANIFEST}; run `probekit probe --out {out}` first")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProbekitError(f"{manifest_path}: not valid JSON") from exc
    if not isinstance(manifest, dict) or "format_version" not in manifest or "run_id" not in manifest:
        raise ProbekitError(f"{out}: not probekit results ({manifest_path} is not a manifest probekit wrote)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ProbekitError(f"{out}: results format {manifest.get('format_version', 1)}; this probekit reads "
                            f"format {FORMAT_VERSION}: probe again into this folder to rewrite it")
    tables = {}
    for name, file in manifest["files"]["tables"].items():
        path = out / file
        if not path.is_file():
            raise ProbekitError(f"{path}: listed in {MANIFEST} but missing (incomplete results)")
        frame, stamp = read_table(path)
        if stamp.get("run_id") != manifest["run_id"]:
            raise ProbekitError(f"{path}: belongs to another run than {MANIFEST} (incomplete results); probe again")
        tables[name] = TABLES[name].conform(frame) if name in TABLES else frame
    for file in manifest["files"].get("other", []):
        if not (out / file).is_file():
            raise ProbekitError(f"{out / file}: listed in {MANIFEST} but missing (incomplete results)")
    return tables, manifest


def training_log(trainer_state: Path):
    """The series' training log as a tidy table: one row per logged step."""
    import pandas as pd

    history = json.loads(trainer_state.read_text()).get("log_history", [])
    rows = [{k: h.get(k) for k in ("step", "loss", "eval_loss", "learning_rate", "epoch")}
            for h in history if "loss" in h or "eval_loss" in h]
    return pd.DataFrame(rows, columns=TABLES["training"].names)


def file_name(label: str, suffix: str) -> str:
    """A safe, short, unique file name for a user string (a checkpoint label, a relation)."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in label).strip(".")
    if safe != label or len(safe) > 80:
        safe = f"{safe[:80]}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"
    return safe + suffix
