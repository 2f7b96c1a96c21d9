"""The analysis contract (`Analysis`, `Context`) and the registry the built-in and user analyses join."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from probekit.benchmarks import Benchmark
from probekit.checkpoints import Checkpoint, tokenizer_identity
from probekit.families import max_tokens
from probekit.schema import Table
from probekit.scoring import encode_prompts


@dataclass
class Context:
    """What every analysis of one probe run shares: benchmarks, settings, device, the results folder."""

    benchmarks: list[Benchmark]
    top_k: int = 10
    batch_size: int = 128
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    out: Path | None = None
    sentences: list | None = None
    half: bool = False
    groups_sha: str = ""
    pairs: list = field(default_factory=list)
    """Minimal-pair benchmarks (`probekit.benchmarks.pairs.PairBenchmark`) for the `pairs` analysis."""
    pll_metric: str = "within_word_l2r"
    """How the `pairs` analysis scores a sentence (`probekit.pll.METRICS`)."""
    files: dict[str, str] = field(default_factory=dict)
    """checkpoint label → file of this run under `out` (captures), listed in the manifest."""
    state: dict = field(default_factory=dict)
    """Per-analysis working state for `finish` (e.g. where each checkpoint's capture is)."""
    _encodings: dict = field(default_factory=dict)

    def encoded(self, checkpoint: Checkpoint, bench: Benchmark) -> dict:
        """The benchmark's prompts tokenized for this checkpoint, once per tokenizer and length."""
        max_length = max_tokens(checkpoint.config)
        key = (tokenizer_identity(checkpoint.tokenizer), bench.sha256, max_length)
        if key not in self._encodings:
            self._encodings[key] = encode_prompts(bench.prompts, checkpoint.tokenizer, max_length)
        return self._encodings[key]

    @property
    def sentences_sha(self) -> str:
        return hashlib.sha256(json.dumps(self.sentences).encode()).hexdigest()[:16]


class Analysis:
    """One kind of measurement of a checkpoint. Subclass, set the class attributes, implement `run`."""

    name: str = ""
    table: Table
    per_benchmark: bool = True
    """Run once per benchmark (True) or once per checkpoint (False, e.g. attention capture)."""
    cached: bool = True
    """Keep each result in the results cache (False when the analysis keeps its own files)."""
    on_control: bool = False
    """Also run on the random-initialisation control."""
    derived: tuple[Table, ...] = ()
    """Tables `derive` makes from the assembled one (summaries), declared with it."""

    def settings(self, ctx: Context) -> dict:
        """Everything besides checkpoint and benchmark that its numbers depend on (enters the cache key)."""
        return {}

    def run(self, checkpoint: Checkpoint, ctx: Context, bench: Benchmark | None) -> pd.DataFrame:
        """Rows for one checkpoint (and benchmark), without the checkpoint's own columns."""
        raise NotImplementedError

    def finish(self, frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        """The assembled table of the series, once, in training order (add rows that compare checkpoints)."""
        return frame

    def derive(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        """Further tables by name (those in `derived`), computed from the finished table of the series."""
        return {}


REGISTRY: dict[str, Analysis] = {}
"""Every registered analysis by name; `get` fills it with the built-in ones."""


def register(analysis: Analysis | type[Analysis]) -> Analysis:
    """Make an analysis available by name (`probe(..., analyses=[name])`, `probekit probe --with name`)."""
    from probekit.schema import declare

    instance = analysis() if isinstance(analysis, type) else analysis
    if not instance.name:
        raise ValueError(f"{type(instance).__name__}: an analysis needs a name")
    for table in (instance.table, *instance.derived):
        declare(table)
    REGISTRY[instance.name] = instance
    return instance
