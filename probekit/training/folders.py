"""The checkpoint-folder protocol, in one place: what `probekit train` writes and every reader expects.

A series is a folder of `checkpoint-N/` subfolders (N = the optimiser step), each a plain HF folder:
`config.json`, `model.safetensors` (or, only when a user asks for it, `pytorch_model.bin`), tokenizer files
and `trainer_state.json` (whose `global_step` is the step). Beside them: `probekit_run.json` (the recipe
and identity of the run) and, with fact injection, `facts.json`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from probekit.core.errors import ProbekitError

if TYPE_CHECKING:
    from torch.nn import Module

CONFIG = "config.json"
SAFE_WEIGHTS, PICKLE_WEIGHTS = "model.safetensors", "pytorch_model.bin"
TRAINER_STATE = "trainer_state.json"
RUN_FILE = "probekit_run.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
RESUME_FILES = (CONFIG, SAFE_WEIGHTS, TRAINER_STATE, "optimizer.pt", "scheduler.pt")
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
SEED_WORD = re.compile(r"(?:^|(?<=[-_.@/]))seed[-_]?(\d+)(?=$|[-_.@/])", re.IGNORECASE)


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


def seed_folder(seed: int) -> str:
    """The folder of one seed's run in a series trained with several seeds."""
    return f"seed-{seed}"


def checkpoint_dirs(output: Path) -> list[tuple[int, Path]]:
    """`checkpoint-N` folders in `output`, by step, newest last."""
    if not output.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output.iterdir() if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def looks_like_checkpoint(path: Path) -> bool:
    """A folder with a config, or named like one of a series (a half-written one is still one, to report)."""
    return path.is_dir() and ((path / CONFIG).exists() or path.name.startswith("checkpoint-"))


def step_of(path: Path) -> int | None:
    """The training step of a checkpoint folder: trainer_state.json's global_step, else the step its name
    states (`step_in_name`, the rule hub names follow too)."""
    state = path / TRAINER_STATE
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["global_step"])
        except (ValueError, KeyError, TypeError, OSError):
            pass
    return step_in_name(path.name)


# ---------------------------------------------------------------- steps and seeds from names
# One rule for local folder names, hub repository names and revisions alike.

MULTIPLIERS = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
MAX_STEP = 10**15  # a step the tables hold exactly (int64), far beyond any run
COUNT = r"(\d+(?:\.\d+)?)([kKmMbB]?)"
STEP_WORD = re.compile(rf"(?:^|(?<=[^A-Za-z]))(?:step|checkpoint|ckpt|iter|iteration)[-_]?{COUNT}(?![A-Za-z0-9])",
                       re.IGNORECASE)
BARE_COUNT = re.compile(rf"^{COUNT}$")


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
    """The step a folder name, hub name or revision states: the last step word with its count (`step_20k`,
    `-step-1000`, `checkpoint-500`, `step2M`), else a name that is a count (`20k`, `2M`, `500`); None otherwise.

    Other numbers in a name are not steps (`seed_0`, `L-2_H-128_A-2`, `gpt2`); `--step-from` reads those."""
    matches = list(STEP_WORD.finditer(text))
    if matches:
        return count_value(*matches[-1].groups())
    if bare := BARE_COUNT.match(text):
        return count_value(*bare.groups())
    return None


def name_without_step(name: str) -> str:
    """`name` less the step it states (`multiberts-seed_0-step_20k` → `multiberts-seed_0`); itself when it
    states none, or when nothing else would be left."""
    matches = list(STEP_WORD.finditer(name))
    if not matches:
        return name
    last = matches[-1]
    return (name[:last.start()].rstrip("-_.") + name[last.end():]) or name


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


def seed_in_name(text: str) -> str:
    """The seed a name states (`seed-3`, `multiberts-seed_0-step_20k`, a revision `seed_2`) as a label, "" when
    it states none."""
    match = SEED_WORD.search(text)
    return str(int(match.group(1))) if match else ""


def seed_of(location: str) -> str:
    """The training seed of a checkpoint, as a label: from its path or hub name (`seed-3/checkpoint-N`,
    `google/multiberts-seed_3-step_20k`), else from its run's record; "" when neither says.

    Seeds let several runs of one recipe be read as one series (the Multi-Bootstrap resamples them).
    """
    path = Path(location)
    for part in reversed(path.parts[-3:]):
        if seed := seed_in_name(part):
            return seed
    try:
        record = read_run_record(path.parent) if path.parent.is_dir() else None
    except ProbekitError:
        return ""
    seed = ((record or {}).get("recipe") or {}).get("seed")
    return str(seed) if isinstance(seed, int) else ""


# ---------------------------------------------------------------- resuming a series


def resumable_problem(path: Path) -> str | None:
    """Why `path` cannot be resumed from (a half-written checkpoint), or None if it can."""
    from safetensors.torch import load_file

    for name in RESUME_FILES:
        if not (path / name).is_file():
            return f"{name} is missing"
    try:
        json.loads((path / TRAINER_STATE).read_text())
        load_file(path / SAFE_WEIGHTS)
    except Exception as exc:  # any parse error means the write did not finish
        return f"unreadable ({exc.__class__.__name__}: {str(exc)[:80]})"
    return None


def last_good_checkpoint(output: Path) -> Path | None:
    """The newest checkpoint a run can resume from; half-written newer ones are moved aside, with a message."""
    from probekit.core.log import logger

    for step, path in reversed(checkpoint_dirs(output)):
        if step == 0:
            return None
        problem = resumable_problem(path)
        if problem is None:
            return path
        aside = output / ".incomplete" / f"{path.name}-{int(time.time())}"
        aside.parent.mkdir(exist_ok=True)
        shutil.move(str(path), aside)
        logger.warning(f"{path}: half-written checkpoint ({problem}); moved to {aside}, resuming from an earlier one")
    return None


def save_initial_checkpoint(output: Path, model, tokenizer, max_steps: int) -> None:
    """`checkpoint-0`: the random initialisation, the control every probe compares against."""
    from transformers import TrainerState

    path = output / checkpoint_name(0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    TrainerState(global_step=0, max_steps=max_steps).save_to_json(str(path / TRAINER_STATE))


# ---------------------------------------------------------------- the MLM decoder, stored once


def decoder_is_tied(model: Module) -> bool:
    """True when the MLM decoder shares its weight with the word embeddings (every supported family's
    default), so a checkpoint folder stores it once."""
    decoder = model.get_output_embeddings()
    embeddings = model.get_input_embeddings()
    return decoder is not None and decoder.weight.data_ptr() == embeddings.weight.data_ptr()


def decoder_tie_message(model: Module) -> str:
    """What the seed's "missing keys: cls.predictions.decoder.weight" warning should have said."""
    if decoder_is_tied(model):
        return ("MLM decoder: tied to the word embeddings, so it is stored once "
                "(no 'cls.predictions.decoder' in the file is expected)")
    return "MLM decoder: NOT tied to the word embeddings; its weights were loaded separately"


# ---------------------------------------------------------------- the run file

IDENTITY_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                   "intermediate_size", "max_position_embeddings")
# Recipe fields that decide what text a step sees: a series resumed with another value would mix two datasets.
DATA_FIELDS = ("seed", "data_seed", "block_size", "packing", "nsp", "mlm_probability")


def read_run_record(output: Path) -> dict | None:
    """`OUTPUT/probekit_run.json` as a dict; None when there is none, one clear error when it is not a record."""
    path = output / RUN_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProbekitError(f"{path}: unreadable run record ({exc.__class__.__name__}); "
                            "move it away or choose another --output") from exc
    if not isinstance(record, dict) or not isinstance(record.get("identity", {}), dict):
        raise ProbekitError(f"{path}: not a probekit run record (expected a JSON object with an identity); "
                            "move it away or choose another --output")
    return record


def write_run_record(output: Path, record: dict) -> None:
    """Write the run file whole or not at all (a temporary file renamed over it)."""
    path = output / RUN_FILE
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)


def check_output_is_ours(output: Path, ours: dict) -> None:
    """Refuse to add to a folder whose checkpoints another run made (nothing is written or overwritten).

    `ours` is this run's record: its model `identity` is compared with the folder's run file (else with its
    newest checkpoint's config), then its vocabulary and corpus fingerprints with the run file's. A
    difference is one line naming it.
    """
    if not checkpoint_dirs(output):
        return
    record = read_run_record(output)
    if record is not None:
        theirs = record.get("identity", {})
    else:
        configs = [p / CONFIG for _, p in checkpoint_dirs(output) if (p / CONFIG).is_file()]
        if not configs:
            return
        try:
            config = json.loads(configs[-1].read_text())
        except (OSError, ValueError) as exc:
            raise ProbekitError(f"{configs[-1]}: unreadable config ({exc.__class__.__name__})") from exc
        theirs = {k: config.get(k) for k in IDENTITY_FIELDS}
        theirs["architecture"] = (config.get("architectures") or [None])[0]
    identity = ours["identity"]
    diffs = [f"{k} {identity[k]} here, {theirs[k]} there" for k in identity if k in theirs and theirs[k] != identity[k]]
    if diffs:
        raise ProbekitError(
            f"{output}: holds checkpoints of another model ({'; '.join(diffs)}); choose another --output"
        )
    if record is None:
        return
    if record.get("vocab_fingerprint") not in (None, ours["vocab_fingerprint"]):
        raise ProbekitError(
            f"{output}: its checkpoints were trained with another vocabulary (tokenizer "
            f"{ours['tokenizer'] or 'bert-base-uncased'} here, {record.get('tokenizer') or 'bert-base-uncased'} "
            f"there; fingerprints {ours['vocab_fingerprint']} and {record['vocab_fingerprint']}); "
            "use the same --tokenizer or choose another --output"
        )
    theirs_recipe, our_recipe = record.get("recipe") or {}, ours.get("recipe", {})
    changed = [f"{k} {our_recipe[k]} here, {theirs_recipe[k]} there" for k in DATA_FIELDS
               if k in theirs_recipe and k in our_recipe and theirs_recipe[k] != our_recipe[k]]
    if changed:
        raise ProbekitError(f"{output}: its checkpoints were trained on other data ({'; '.join(changed)}); "
                            "use the same options or choose another --output")
    if record.get("corpus") not in (None, ours["corpus"]):
        raise ProbekitError(
            f"{output}: its checkpoints were trained on another corpus ({ours['corpus']} here, "
            f"{record['corpus']} there); use the same --corpus or choose another --output"
        )
    if record.get("corpus_fingerprint") not in (None, ours.get("corpus_fingerprint")):
        raise ProbekitError(
            f"{output}: the corpus {ours['corpus']} holds other text than when its checkpoints were trained "
            f"(fingerprints {ours.get('corpus_fingerprint')} here, {record['corpus_fingerprint']} there); "
            "choose another --output"
        )


def recorded_tokenizer_conflict(output: Path, spec: str) -> str | None:
    """The tokenizer spec the folder's run was trained with, when it differs from `spec` (else None)."""
    if not checkpoint_dirs(output):
        return None
    record = read_run_record(output)
    if record is None or "tokenizer" not in record or record["tokenizer"] == spec:
        return None
    return str(record["tokenizer"])
