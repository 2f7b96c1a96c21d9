"""Attention capture and head metrics: Q/K/V, patterns and head outputs of every layer on a sentence set.

Each checkpoint's capture is stored as `OUT/attention/NAME.safetensors` (reused while it matches the
checkpoint and sentences) and summarised per head; `finish` adds the Jensen–Shannon drift from the previous
and from the final checkpoint, streaming through the captures so memory stays flat in the series' length.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from probekit.activations import Capture, capture
from probekit.analyses.base import Analysis, Context, register
from probekit.errors import ProbekitError
from probekit.metrics import checkpoint_head_rows, drift_rows
from probekit.schema import HEADS
from probekit.store import ATTENTION, cache_key, file_name


class Heads(Analysis):
    name = "capture"
    table = HEADS
    per_benchmark = False
    cached = False

    def settings(self, ctx: Context) -> dict:
        return {"sentences": ctx.sentences_sha, "half": ctx.half}

    def run(self, checkpoint, ctx: Context, bench=None) -> pd.DataFrame:
        key = cache_key(analysis=self.name, identity=checkpoint.identity, **self.settings(ctx))
        path = ctx.out / ATTENTION / file_name(checkpoint.name, ".safetensors") if ctx.out else None
        cap = _current(path, key)
        if cap is None:
            cap = capture(checkpoint.model(ctx.device), ctx.sentences, checkpoint.tokenizer)
            cap.meta.update({"key": key, "checkpoint": checkpoint.name, "step": checkpoint.step,
                             "fingerprint": checkpoint.fingerprint})
            if ctx.half:  # measure what is stored, so a rerun from the file gives the same numbers
                cap.tensors = {name: t.half().float() for name, t in cap.tensors.items()}
            if path is not None:
                cap.save(path, torch.float16 if ctx.half else torch.float32)
        if path is not None:
            ctx.files[checkpoint.name] = f"{ATTENTION}/{path.name}"
        ctx.state.setdefault(self.name, []).append((checkpoint.name, checkpoint.step, path or cap))
        return checkpoint_head_rows(cap)

    def finish(self, frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        captured = sorted(ctx.state.get(self.name, []), key=lambda c: (c[1] is None, c[1] or 0))
        if not captured:
            return frame
        loaded = ((name, step, _load(item)) for name, step, item in captured)
        drift = drift_rows(loaded, _load(captured[-1][2]))
        runs = frame.drop_duplicates("checkpoint").set_index("checkpoint")["run"]
        drift = drift.assign(run=drift["checkpoint"].map(runs))
        return pd.concat([frame, drift], ignore_index=True)


def _load(item: Path | Capture) -> Capture:
    return Capture.load(item) if isinstance(item, Path) else item


def _current(path: Path | None, key: str) -> Capture | None:
    """The stored capture at `path` if it was made for `key`, else None."""
    if path is None or not path.is_file():
        return None
    try:
        cap = Capture.load(path)
    except ProbekitError:
        return None
    return cap if cap.meta.get("key") == key else None


register(Heads)
