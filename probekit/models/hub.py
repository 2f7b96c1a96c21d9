"""Published series by name: hub specs → `HubCheckpoint`s, read from snapshot folders in the hub cache like any
local checkpoint. Every hub concern of probekit is here.

A spec is a repository (`google/multiberts-seed_0-step_20k`, one repository per checkpoint) or
`NAME@REVISION` (a series kept as branches or tags of one repository). Every download goes through
`huggingface_hub.snapshot_download` — its cache, resumable, `HF_HUB_OFFLINE` honoured — and fetches only a
checkpoint's config, weights (safetensors; pickle only when allowed and there is no safetensors), tokenizer
files and `trainer_state.json`, one checkpoint at a time, when `HubCheckpoint.fetch()` is called (reading its
config, weights, tokenizer or model calls it). The snapshot folder is then read by the same checked code as a
local folder: nothing is loaded with `from_pretrained` from the hub, and no code from a repository is run.
`--evict` deletes a checkpoint's snapshot once it has been probed, so a 140-checkpoint BERT-base series fits a
laptop disk.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download, scan_cache_dir, snapshot_download
from huggingface_hub.errors import (CacheNotFound, EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                    HFValidationError, IncompleteSnapshotError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.utils import validate_repo_id
from transformers import PreTrainedTokenizerBase

from probekit.models.checkpoints import Checkpoint
from probekit.core.errors import ProbekitError
from probekit.training.folders import (CONFIG, PICKLE_WEIGHTS, SAFE_WEIGHTS, TOKENIZER_FILES, TRAINER_STATE, name_without_step,
                              step_from_pattern, step_in_name)
from probekit.core.log import logger

# Tokenizer files of every masked-LM family transformers ships (WordPiece, byte-level BPE, SentencePiece).
TOKENIZER_PATTERNS = tuple(dict.fromkeys([*TOKENIZER_FILES, "added_tokens.json", "vocab.json", "merges.txt",
                                          "spiece.model", "sentencepiece.bpe.model", "tokenizer.model"]))
FILES = (CONFIG, *TOKENIZER_PATTERNS, TRAINER_STATE)
FILE_SUFFIXES = (".json", ".jsonl", ".txt", ".csv", ".yaml", ".yml", ".parquet", ".bin", ".safetensors", ".pt",
                 ".pth", ".ckpt", ".h5", ".gz", ".zip", ".tar", ".md")


@dataclass(frozen=True)
class HubSpec:
    """A checkpoint on the hub: a repository and the revision (branch, tag or commit; None = main)."""

    repo_id: str
    revision: str | None = None
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text or (f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id)

    @property
    def repo_name(self) -> str:
        """The repository's own name, without its owner."""
        return self.repo_id.rsplit("/", 1)[-1]


def parse_spec(spec: str) -> HubSpec:
    """`ORG/NAME` or `ORG/NAME@REVISION` as a HubSpec, or one line saying why it is neither a folder nor a hub name."""
    repo_id, _, revision = spec.partition("@")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ProbekitError(f"{spec}: no such checkpoint folder, and not a hub name ({_first_line(exc)})") from exc
    if "@" in spec and not revision.strip():
        raise ProbekitError(f"{spec}: no revision after '@' (use NAME@BRANCH, NAME@TAG or NAME@COMMIT)")
    return HubSpec(repo_id, revision or None, spec)


def looks_like_path(spec: str) -> bool:
    """True when a spec that names nothing on disk was meant as a path rather than a hub name: it starts like a
    path, has more than one '/', ends like a file, or is not a valid repository name. A revision after '@'
    (which may hold '/' or '.') is not looked at, and `EleutherAI/pythia-1.4b` is a name."""
    name = spec.partition("@")[0]
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).suffix.lower() in FILE_SUFFIXES:
        return True
    try:
        validate_repo_id(name)
    except HFValidationError:
        return True
    return False


def run_of(spec: HubSpec) -> str:
    """The run a hub checkpoint belongs to: its repository name less the step it states
    (`multiberts-seed_0-step_20k` → `multiberts-seed_0`), so that each seed of a series is its own run."""
    return name_without_step(spec.repo_name)


# ---------------------------------------------------------------- a checkpoint on the hub


class HubCheckpoint(Checkpoint):
    """A checkpoint named on the hub: `fetch()` downloads its snapshot into the hub cache (or finds it there),
    and reading its config, weights, tokenizer or model calls `fetch()` first; from then on it is read by the
    same checked code as a local folder.

    `location` is the snapshot folder while it is on disk and the spec otherwise; like `source` and `spec`
    (where it came from), it never downloads. With `evict=True`, `release()` also deletes the snapshot from the
    hub cache (`evict()` does it at any time); reading it again fetches it again.
    """

    def __init__(self, spec: HubSpec, name: str, step: int | None, run: str, allow_pickle: bool = False,
                 tokenizer: PreTrainedTokenizerBase | None = None, evict: bool = False):
        super().__init__(name, str(spec), step, run, allow_pickle, tokenizer)
        self.spec = spec
        self.evict_on_release = evict
        self._folder: Path | None = None
        self._error: ProbekitError | None = None

    def __repr__(self) -> str:
        return f"HubCheckpoint({self.name!r}, step={self.step}, spec={str(self.spec)!r})"

    @property
    def location(self) -> str:
        """The snapshot folder while it is on disk, else the spec (never downloads: see `fetch`)."""
        return str(self._folder) if self.is_local else str(self.spec)

    @property
    def source(self) -> str:
        return str(self.spec)

    @property
    def is_local(self) -> bool:
        """True while its snapshot is on disk (never fetches)."""
        return self._folder is not None and self._folder.is_dir()

    def fetch(self) -> Path:
        """Its snapshot folder, downloaded if it is not on disk (again after an eviction); a failure is kept
        and raised again rather than retried."""
        if self._error is not None:
            raise self._error
        if not self.is_local:
            try:
                self._folder = fetch_snapshot(self.spec, self.allow_pickle)
            except ProbekitError as exc:
                self._error = exc
                raise
            logger.debug(f"{self.spec}: snapshot {self._folder}")
        return self._folder

    def release(self) -> None:
        """Forget the weights and model; with `evict=True`, delete the snapshot from the hub cache too."""
        super().release()
        if self.evict_on_release:
            try:
                self.evict()
            except (ProbekitError, OSError) as exc:  # the probe itself succeeded: say so, keep going
                logger.warning(f"{self.spec}: not evicted ({exc})")

    def evict(self) -> None:
        """Delete its snapshot from the hub cache (only this repository's revision); reading it again re-fetches."""
        if not self.is_local:
            return
        freed = evict_snapshot(self._folder)
        logger.info(f"{self.spec}: evicted from the hub cache ({freed / 1e6:,.1f} MB freed)")


def hub_checkpoint(spec: HubSpec, pattern: re.Pattern | None = None, allow_pickle: bool = False,
                   tokenizer: PreTrainedTokenizerBase | None = None, evict: bool = False) -> HubCheckpoint:
    """A HubCheckpoint with its step — from `pattern` (--step-from) when given, else the repository name, else
    the revision (`folders.step_in_name`, as for a local folder's name), else trainer_state.json — and its run.
    Nothing but trainer_state.json is fetched."""
    if pattern is not None:
        step = step_from_pattern(pattern, str(spec))
    else:
        step = step_in_name(spec.repo_name)
        if step is None and spec.revision:
            step = step_in_name(spec.revision)
        if step is None:
            step = trainer_state_step(spec)
    name = f"{spec.repo_name}@{spec.revision}" if spec.revision else spec.repo_name
    return HubCheckpoint(spec, name, step, run_of(spec), allow_pickle, tokenizer, evict)


# ---------------------------------------------------------------- the hub cache


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: only the hub cache is read."""
    return constants.is_offline_mode()


def fetch_snapshot(spec: HubSpec, allow_pickle: bool = False) -> Path:
    """The local snapshot folder of one checkpoint: downloaded into the hub cache (resuming a broken download),
    or found there when offline. Safetensors weights are preferred; pickle ones are fetched only when allowed
    and the repository has no safetensors."""
    folder = _snapshot(spec, [*FILES, SAFE_WEIGHTS])
    if (folder / SAFE_WEIGHTS).is_file():
        return folder
    if not allow_pickle:
        if _has_pickle(spec, folder):
            raise ProbekitError(f"{spec}: only pickle weights ({PICKLE_WEIGHTS}); pass --allow-pickle to load "
                                "them (read weights-only)")
        raise ProbekitError(f"{spec}: no {SAFE_WEIGHTS} (or {PICKLE_WEIGHTS}) in the repository")
    folder = _snapshot(spec, [PICKLE_WEIGHTS])
    if not (folder / PICKLE_WEIGHTS).is_file():
        raise ProbekitError(f"{spec}: neither {SAFE_WEIGHTS} nor {PICKLE_WEIGHTS} in the repository")
    return folder


def _snapshot(spec: HubSpec, patterns: list[str]) -> Path:
    try:
        return Path(snapshot_download(spec.repo_id, revision=spec.revision, allow_patterns=patterns))
    except Exception as exc:  # huggingface_hub raises many types; each becomes one line naming the spec
        raise ProbekitError(_hub_problem(spec, exc)) from exc


def _has_pickle(spec: HubSpec, folder: Path) -> bool | None:
    """Whether the repository holds pickle weights (without downloading them); None when it cannot be told."""
    if (folder / PICKLE_WEIGHTS).is_file():
        return True
    if is_offline():
        return None
    try:
        return HfApi().file_exists(spec.repo_id, PICKLE_WEIGHTS, revision=spec.revision)
    except Exception:  # a failed look-up only makes the message less precise
        return None


def _hub_problem(spec: HubSpec, exc: Exception) -> str:
    """What went wrong fetching `spec`, in one line."""
    if isinstance(exc, IncompleteSnapshotError):
        return f"{spec}: its cached snapshot is incomplete and the hub cannot be reached; rerun online to finish it"
    if isinstance(exc, LocalEntryNotFoundError):
        if is_offline():
            return (f"{spec}: not in the local hub cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set; "
                    "download it online first")
        return f"{spec}: the hub cannot be reached and it is not in the local hub cache ({constants.HF_HUB_CACHE})"
    if isinstance(exc, GatedRepoError):
        return f"{spec}: a gated repository; accept its terms on the hub and log in (hf auth login)"
    if isinstance(exc, RepositoryNotFoundError):
        return f"{spec}: no such checkpoint folder here, and no such repository on the hub (or it is private)"
    if isinstance(exc, RevisionNotFoundError):
        return f"{spec}: the hub repository {spec.repo_id} has no revision {spec.revision!r}"
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return f"{spec}: the hub answered HTTP {status} ({_first_line(exc)})"
    return f"{spec}: download failed ({exc.__class__.__name__}: {_first_line(exc)})"


def check_cached(specs: list[HubSpec]) -> None:
    """Offline, refuse at once (one line naming them) when checkpoints are missing from the hub cache, rather
    than finding out one checkpoint at a time during the probe. Online it does nothing."""
    if not is_offline():
        return
    missing = []
    for spec in specs:
        try:
            snapshot_download(spec.repo_id, revision=spec.revision, allow_patterns=[CONFIG])
        except (LocalEntryNotFoundError, OSError):
            missing.append(str(spec))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ProbekitError(f"{shown}: not in the local hub cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE "
                            "is set; download them online first")


def trainer_state_step(spec: HubSpec) -> int | None:
    """`global_step` of the checkpoint's trainer_state.json (that file alone is fetched), None without one."""
    try:
        path = hf_hub_download(spec.repo_id, TRAINER_STATE, revision=spec.revision)
    except EntryNotFoundError:  # no such file in the repository (or, offline, in its cached snapshot)
        return None
    except Exception as exc:
        raise ProbekitError(_hub_problem(spec, exc)) from exc
    try:
        return int(json.loads(Path(path).read_text())["global_step"])
    except (ValueError, KeyError, TypeError, OSError):
        logger.warning(f"{spec}: unreadable {TRAINER_STATE}; its step is unknown")
        return None


def evict_snapshot(folder: Path) -> int:
    """Delete one downloaded revision from the hub cache — its snapshot, its refs and the blobs no other cached
    revision links to — and return the bytes freed. Refuses anything that is not one snapshot of the hub cache,
    and any deletion that would reach outside that snapshot's repository."""
    folder = Path(folder)
    repo = folder.parent.parent
    if folder.parent.name != "snapshots" or not repo.name.startswith("models--") or not folder.is_dir():
        raise ProbekitError(f"{folder}: not a snapshot folder of the hub cache; nothing evicted")
    try:
        strategy = scan_cache_dir(repo.parent).delete_revisions(folder.name)
    except CacheNotFound as exc:
        raise ProbekitError(f"{repo.parent}: no hub cache there; nothing evicted") from exc
    targets = [*strategy.blobs, *strategy.refs, *strategy.repos, *strategy.snapshots]
    if not targets:
        raise ProbekitError(f"{folder}: not found by the hub cache scan; nothing evicted")
    outside = [p for p in targets if Path(p) != repo and repo not in Path(p).parents]
    if outside:
        raise ProbekitError(f"{folder}: evicting it would delete {outside[0]}, outside {repo.name}; nothing evicted")
    strategy.execute()
    return strategy.expected_freed_size


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else exc.__class__.__name__
