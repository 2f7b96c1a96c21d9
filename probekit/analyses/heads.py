"""Attention capture and head metrics: Q/K/V, patterns and head outputs of every layer on a sentence set.

Each checkpoint's capture is stored as `OUT/attention/NAME.safetensors` (reused while it matches the
checkpoint, the sentences and the options) and summed up per head; `finish` adds the Jensen–Shannon drift
from the previous and from the final checkpoint, streaming through the captures so memory stays flat in the
series' length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from probekit.core import lazy
from probekit.analyses.base import Analysis, Context, Options, Shape, option, register
from probekit.core.errors import ProbekitError
from probekit.core.schema import CHECKPOINT_COLUMNS, Table, columns

pd = lazy.module("pandas")

HEADS = Table("heads", "checkpoint × layer × head × metric", columns(
    *CHECKPOINT_COLUMNS, ("layer", "int", "layer, from 0"), ("head", "int", "head, from 0"),
    ("metric", "str", "attn_cls, attn_sep, attn_punct, attn_prev, attn_next, attn_self, entropy, entropy_ratio, "
                      "q_norm, k_norm, v_norm, js_prev, js_final"),
    ("value", "float", "its value, averaged over the real query tokens of the captured sentences"),
), "Head metrics of the captured sentences (Clark et al. 2019); JS drift in bits.")


@dataclass(frozen=True)
class CaptureOptions(Options):
    sentences: str = option("shipped", "Sentences to capture: a .txt (one per line; a tab makes an A/B pair) or "
                                       ".jsonl file, or 'shipped'.", flag="--sentences")
    float16: bool = option(False, "Store the captured tensors as float16 (head metrics are computed from what is "
                                  "stored).", flag="--capture-float16")


class Heads(Analysis):
    name = "capture"
    version = 2  # captures record the tokenizer's cls_token (attn_cls of RoBERTa-likes)
    help = "Q/K/V, attention patterns and head outputs on sentences (OUT/attention/), head metrics (table heads)"
    options = CaptureOptions
    inputs = "sentences"
    tables = (HEADS,)
    cached = False
    report = "probekit.report.sections:capture"
    report_title = "Attention"

    def default_inputs(self, opts: CaptureOptions) -> list:
        from probekit.benchmarks.sentences import spec_of

        return [spec_of(opts.sentences)]

    def settings(self, ctx: Context, item) -> dict:
        return {"version": self.version, "float16": ctx.opts(self.name).float16}

    def cost(self, shape: Shape, item) -> float:
        return float(item.size)

    def run(self, checkpoint, ctx: Context, item) -> pd.DataFrame:
        import torch

        from probekit.models.activations import capture
        from probekit.analyses.metrics import checkpoint_head_rows
        from probekit.core.store import ATTENTION, cache_key, file_name

        float16 = ctx.opts(self.name).float16
        key = cache_key(analysis=self.name, identity=checkpoint.identity, sentences=item.sha256,
                        **self.settings(ctx, item))
        path = ctx.out / ATTENTION / file_name(checkpoint.name, ".safetensors") if ctx.out else None
        cap = _current(path, key)
        if cap is None:
            cap = capture(checkpoint.model(ctx.device), item.sentences, checkpoint.tokenizer)
            cap.meta.update({"key": key, "checkpoint": checkpoint.name, "step": checkpoint.step,
                             "fingerprint": checkpoint.fingerprint})
            if float16:  # measure what is stored, so a rerun from the file gives the same numbers
                cap.tensors = {name: t.half().float() for name, t in cap.tensors.items()}
            if path is not None:
                cap.save(path, torch.float16 if float16 else torch.float32)
        if path is not None:
            ctx.files.setdefault(self.name, {})[checkpoint.name] = f"{ATTENTION}/{path.name}"
        ctx.state.setdefault(self.name, []).append((checkpoint.name, checkpoint.step, path or cap))
        return checkpoint_head_rows(cap)

    def finish(self, frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        from probekit.analyses.metrics import drift_rows

        captured = sorted(ctx.state.get(self.name, []), key=lambda c: (c[1] is None, c[1] or 0))
        if not captured:
            return frame
        loaded = ((name, step, _load(item)) for name, step, item in captured)
        drift = drift_rows(loaded, _load(captured[-1][2]))
        runs = frame.drop_duplicates("checkpoint").set_index("checkpoint")["run"]
        drift = drift.assign(run=drift["checkpoint"].map(runs))
        return pd.concat([frame, drift], ignore_index=True)

    def manifest(self, ctx: Context) -> dict:
        return {"captures": dict(ctx.files.get(self.name, {}))}


def _load(item):
    from probekit.models.activations import Capture

    return Capture.load(item) if isinstance(item, Path) else item


def _current(path: Path | None, key: str):
    """The stored capture at `path` if it was made for `key`, else None."""
    from probekit.models.activations import Capture

    if path is None or not path.is_file():
        return None
    try:
        cap = Capture.load(path)
    except ProbekitError:
        return None
    return cap if cap.meta.get("key") == key else None


register(Heads)
