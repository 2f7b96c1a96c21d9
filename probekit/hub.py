"""Published series by name: hub specs → snapshot folders in the hub cache, read like any local checkpoint.

A spec is a repository (`google/multiberts-seed_0-step_20k`, one repository per checkpoint) or
`NAME@REVISION` (a series kept as branches or tags of one repository). Every download goes through
`huggingface_hub.snapshot_download` — its cache, resumable, `HF_HUB_OFFLINE` honoured — and fetches only a
checkpoint's config, weights (safetensors; pickle only when allowed and there is no safetensors), tokenizer
files and `trainer_state.json`, one checkpoint at a time, when it is first read. The snapshot folder is then
read by the same checked code as a local folder: nothing is loaded with `from_pretrained` from the hub, and no
code from a repository is run. `--evict` deletes a checkpoint's snapshot once it has been probed, so a
140-checkpoint BERT-base series fits a laptop disk.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download, scan_cache_dir, snapshot_download
from huggingface_hub.errors import (CacheNotFound, EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                    HFValidationError, IncompleteSnapshotError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.utils import validate_repo_id

from probekit.errors import ProbekitError
from probekit.folders import CONFIG, PICKLE_WEIGHTS, SAFE_WEIGHTS, TOKENIZER_FILES, TRAINER_STATE
from probekit.log import logger

# Tokenizer files of every masked-LM family transformers ships (WordPiece, byte-level BPE, SentencePiece).
TOKENIZER_PATTERNS = tuple(dict.fromkeys([*TOKENIZER_FILES, "added_tokens.json", "vocab.json", "merges.txt",
                                          "spiece.model", "sentencepiece.bpe.model", "tokenizer.model"]))
FILES = (CONFIG, *TOKENIZER_PATTERNS, TRAINER_STATE)
FILE_SUFFIXES = (".json", ".jsonl", ".txt", ".csv", ".yaml", ".yml", ".parquet", ".bin", ".safetensors", ".pt",
                 ".pth", ".ckpt", ".h5", ".gz", ".zip", ".tar", ".md")
MULTIPLIERS = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
MAX_STEP = 10**15  # a step the tables hold exactly (int64), far beyond any run
COUNT = r"(\d+(?:\.\d+)?)([kKmMbB]?)"
STEP_WORD = re.compile(rf"(?:^|(?<=[^A-Za-z]))(?:step|checkpoint|ckpt|iter|iteration)[-_]?{COUNT}(?![A-Za-z0-9])",
                       re.IGNORECASE)
BARE_COUNT = re.compile(rf"^{COUNT}$")


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


# ---------------------------------------------------------------- steps and seeds from names


def count_value(number: str, suffix: str = "") -> int:
    """`20`, `k` → 20000; `1.5`, `M` → 1500000: a step count written with an optional k/M/B suffix."""
    value = Decimal(number) * MULTIPLIERS[suffix.lower()]
    if value != int(value):
        raise ProbekitError(f"{number}{suffix}: not a whole number of steps")
    if value > MAX_STEP:
        raise ProbekitError(f"{number}{suffix}: {int(value):,} steps is more than any training run takes "
                            f"(at most {MAX_STEP:,})")
    return int(value)


def step_in_name(text: str) -> int | None:
    """The step a name or revision states (`step_20k`, `-step-1000`, `checkpoint-500`, `step2M`, a bare `20k`)."""
    matches = list(STEP_WORD.finditer(text))
    if matches:
        return count_value(*matches[-1].groups())
    if bare := BARE_COUNT.match(text):
        return count_value(*bare.groups())
    return None


def step_pattern(regex: str | None) -> re.Pattern | None:
    """`--step-from REGEX` compiled, or one line saying why it cannot be used (it needs a group)."""
    if regex is None:
        return None
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ProbekitError(f"--step-from {regex!r}: not a regular expression ({exc})") from exc
    if pattern.groups < 1:
        raise ProbekitError(f"--step-from {regex!r}: needs a group around the step, e.g. 'step_(\\d+k?)'")
    return pattern


def step_from_pattern(pattern: re.Pattern, text: str) -> int:
    """The step the first group of `pattern` finds in `text` (k/M/B suffixes allowed), or one line naming `text`."""
    match = pattern.search(text)
    found = match.group(1) if match else None
    count = BARE_COUNT.match(found.strip()) if found else None
    if count is None:
        what = "does not match it" if match is None else f"found {found!r}, not a step such as 2000 or 20k"
        raise ProbekitError(f"{text}: --step-from {pattern.pattern!r} {what}")
    return count_value(*count.groups())


def run_of(spec: HubSpec) -> str:
    """The run a hub checkpoint belongs to: its repository name less the step it states
    (`multiberts-seed_0-step_20k` → `multiberts-seed_0`), so that each seed of a series is its own run."""
    name = spec.repo_name
    matches = list(STEP_WORD.finditer(name))
    if not matches:
        return name
    last = matches[-1]
    return (name[:last.start()].rstrip("-_.") + name[last.end():]) or name


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
