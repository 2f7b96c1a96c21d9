"""The checkpoint-folder protocol, in one place: what `probekit train` writes and every reader expects.

A series is a folder of `checkpoint-N/` subfolders (N = the optimiser step), each a plain HF folder:
`config.json`, `model.safetensors` (or, only when a user asks for it, `pytorch_model.bin`), tokenizer files
and `trainer_state.json` (whose `global_step` is the step). Beside them: `probekit_run.json` (the recipe
and identity of the run) and, with fact injection, `facts.json`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CONFIG = "config.json"
SAFE_WEIGHTS, PICKLE_WEIGHTS = "model.safetensors", "pytorch_model.bin"
TRAINER_STATE = "trainer_state.json"
RUN_FILE = "probekit_run.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
RESUME_FILES = (CONFIG, SAFE_WEIGHTS, TRAINER_STATE, "optimizer.pt", "scheduler.pt")
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TRAILING_NUMBER = re.compile(r"(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


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
    """The training step of a checkpoint folder: trainer_state.json's global_step, else the number ending its name."""
    state = path / TRAINER_STATE
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["global_step"])
        except (ValueError, KeyError, TypeError, OSError):
            pass
    match = TRAILING_NUMBER.search(path.name)
    return int(match.group(1)) if match and path.exists() else None
