"""The analysis spec (`Analysis`, `Options`, `option`), the `Context` every analysis of a run shares, and the
registry that built-in and user analyses join.

An analysis is one module holding one spec: its name and one-line help, its options (a small dataclass whose
fields carry their help, flag and bounds: the CLI makes `--with NAME` and the flags from them), the kind of
input it runs over (`probekit.benchmarks.kinds`: fill-mask prompts, minimal pairs, sentences, …), the tables
it writes — the first one row-level, the others summaries made from it with intervals from `probekit.analyses.stats`
— its version (part of every cache key), its cost (what balances the shards), and optionally a report section.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from probekit.core.errors import ProbekitError
from probekit.core.schema import Table

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from probekit.models.checkpoints import Checkpoint


def option(default: Any, help: str, *, flag: str | None = None, choices: tuple | None = None,
           low: float | None = None, high: float | None = None) -> Any:
    """One field of an analysis's `Options`: its default, the help the CLI shows, and what is valid.

    flag: the command-line spelling; `--NAME-FIELD` (e.g. `--pairs-metric`) when not given.
    choices, low, high: checked by `Options.validate`, on the command line and in `probe(...)` alike.
    """
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "low": low,
                                            "high": high})


def is_finite(value: Any) -> bool:
    """Whether `value` is a number other than NaN and ±inf (an int always is)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def in_bounds(value: float, low: float | None, high: float | None, finite: bool = True) -> bool:
    """Whether a numeric option's value is valid: within [low, high] where given, and (`finite`) neither NaN
    nor ±inf — NaN compares false with every bound, so it would pass a plain range check. `Options.validate`
    (the library API) checks with this; the command line's `probekit.cli.FiniteFloat` refuses the same values."""
    if finite and not math.isfinite(value):
        return False
    if value != value:  # NaN where the option's own default is not finite (none of the built-ins)
        return False
    return not (low is not None and value < low or high is not None and value > high)


@dataclass(frozen=True)
class Options:
    """Base class of an analysis's options (a frozen dataclass of `option` fields; none by default)."""

    def validate(self, analysis: str) -> None:
        """One-line error naming the analysis and the option when a value is out of its declared range."""
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if meta.get("choices") and value not in meta["choices"]:
                raise ProbekitError(f"analysis {analysis!r}: option {f.name}={value!r} is not one of "
                                    f"{', '.join(map(str, meta['choices']))}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if not in_bounds(value, meta.get("low"), meta.get("high"), finite=is_finite(f.default)):
                    raise ProbekitError(f"analysis {analysis!r}: option {f.name}={value!r} is outside "
                                        f"[{meta.get('low')}, {meta.get('high')}]")

    def key(self) -> dict:
        """The options as a plain dict: part of every cache key of the analysis."""
        return dataclasses.asdict(self)


class Shape(NamedTuple):
    """What the cost of a unit depends on besides its input: the checkpoint's layers and heads per layer."""

    layers: int
    heads: int


@dataclass
class Context:
    """What every analysis of one probe run shares: its inputs by kind, each analysis's options by name, the
    device, the batch, the results folder, and the files and state the run gathers on the way."""

    inputs: dict[str, list] = field(default_factory=dict)
    """kind → loaded inputs (`probekit.benchmarks.kinds`): "prompts", "pairs", "sentences", …"""
    options: dict[str, Options] = field(default_factory=dict)
    batch_size: int = 128
    device: Any = "cpu"
    out: Path | None = None
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    """analysis name → {checkpoint label → file under `out`} that it wrote (listed in the manifest)."""
    state: dict = field(default_factory=dict)
    """Per-analysis working state between `run` and `finish`, keyed by analysis name."""
    at: dict[str, frozenset[int]] = field(default_factory=dict)
    """analysis name → the only steps it runs at (`probe(at=...)`); an analysis not named runs at every step."""
    checkpoints: int = 0
    """The checkpoints of the series this process probes (0: unknown); tracing's cost line multiplies by it."""
    _encodings: dict = field(default_factory=dict)

    def of(self, kind: str) -> list:
        """The run's inputs of one kind (empty when it has none)."""
        return self.inputs.get(kind, [])

    def opts(self, analysis: str) -> Options:
        return self.options[analysis]

    def runs_at(self, analysis: str, step: int | None) -> bool:
        """Whether `analysis` runs on a checkpoint of this step (the runner runs the random-init control
        whatever its step)."""
        steps = self.at.get(analysis)
        return steps is None or step in steps

    def encoded(self, checkpoint: Checkpoint, bench) -> dict:
        """A prompts input tokenized for this checkpoint, once per tokenizer and length (shared by every
        analysis that scores prompts)."""
        from probekit.models.checkpoints import tokenizer_identity
        from probekit.models.families import max_tokens
        from probekit.analyses.scoring import encode_prompts

        max_length = max_tokens(checkpoint.config)
        key = (tokenizer_identity(checkpoint.tokenizer), bench.sha256, max_length)
        if key not in self._encodings:
            self._encodings[key] = encode_prompts(bench.prompts, checkpoint.tokenizer, max_length)
        return self._encodings[key]


class Analysis:
    """One kind of measurement of a checkpoint. Subclass, set the class attributes, implement `run`.

    A unit of work is one checkpoint × one input of kind `inputs` (or one checkpoint, when `inputs` is None);
    `run` returns its rows of `tables[0]` without the checkpoint's columns. The runner labels, caches and
    assembles them, calls `finish` once on the whole series, then `summarize` for the other tables.
    """

    name: str = ""
    help: str = ""
    """One line for `probekit probe --help` and the docs."""
    version: int = 1
    """Bump when the numbers it computes change: part of every cache key."""
    options: type[Options] = Options
    inputs: str | None = "prompts"
    """The input kind it runs over, one unit per input; None: once per checkpoint."""
    tables: tuple[Table, ...] = ()
    """Its tables: the first holds `run`'s rows, the others are made by `summarize`."""
    on_control: bool = False
    """Also run on the random-initialisation control."""
    always: bool = False
    """Run whether asked for or not (the predictions)."""
    cached: bool = True
    """Keep each unit's rows in the results cache (False when the analysis keeps files of its own)."""
    report: str | Callable | None = None
    """Its report section: a function (or "module:function") called as `section(page, tables, results)`."""
    report_title: str = ""

    @property
    def table(self) -> Table:
        return self.tables[0]

    def wanted(self, ctx: Context) -> bool:
        """Whether the run's inputs call for it although nobody asked (minimal pairs given → pairs)."""
        return False

    def default_inputs(self, opts: Options) -> list[str]:
        """Input specs to load when the run has no input of its kind (capture: the shipped sentences)."""
        return []

    def settings(self, ctx: Context, item) -> dict:
        """Everything besides checkpoint and input that its numbers depend on: enters the cache key."""
        return {"version": self.version, **ctx.opts(self.name).key()}

    def cost(self, shape: Shape, item) -> float:
        """Relative cost of one unit on a checkpoint of this shape (forward passes × rows of the input)."""
        return float(getattr(item, "size", 1) or 1)

    def run(self, checkpoint: Checkpoint, ctx: Context, item) -> pd.DataFrame:
        raise NotImplementedError

    def finish(self, frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        """The assembled table of the series, once, in training order (add rows that compare checkpoints)."""
        return frame

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        """The summary tables (`tables[1:]`) by name, from the finished row-level table."""
        return {}

    def manifest(self, ctx: Context) -> dict:
        """Entries this analysis adds to the run's manifest (e.g. the bf16 deviation, the captures)."""
        return {}


REGISTRY: dict[str, Analysis] = {}
"""Every registered analysis by name; `probekit.analyses.load_builtins` fills it."""
ORIGINS: dict[str, str] = {}
"""analysis name → the distribution that registered it ("probekit-bert (built-in)", "word-prior 0.1", …)."""
_loading: list[str] = []
"""The distribution whose analyses are being registered now (`load_builtins`, an entry point), innermost last."""


@contextlib.contextmanager
def registering_for(origin: str):
    """Register the analyses of the block as those of `origin` (a distribution, named in clash messages)."""
    _loading.append(origin)
    try:
        yield
    finally:
        _loading.pop()


def register(analysis: Analysis | type[Analysis]) -> Analysis:
    """Make an analysis available by name (`probe(..., analyses=[name])`, `probekit probe --with name`) and
    its tables part of the results format.

    A name (or a table name) that another analysis already has is refused in one line naming both
    distributions: a plug-in can neither replace a built-in analysis nor another plug-in's. The same class
    registered again (a module imported twice) replaces itself.
    """
    from probekit.core.schema import declare

    instance = analysis() if isinstance(analysis, type) else analysis
    if not instance.name or not instance.tables:
        raise ProbekitError(f"{type(instance).__name__}: an analysis needs a name and at least one table")
    if not _loading:  # a script's own analysis: the built-ins first, so that it cannot take their names
        from probekit.analyses import load_builtins

        load_builtins()
    origin = _loading[-1] if _loading else _origin_of(type(instance))
    for name, other in REGISTRY.items():
        if _where(other) == _where(instance):
            continue
        clash = f"an analysis named {name!r}" if name == instance.name else next(
            (f"the table {t.name!r} (analysis {name!r})" for t in instance.tables
             if t.name in {o.name for o in other.tables}), None)
        if clash:
            raise ProbekitError(f"analysis {instance.name!r} of {origin} refused: {ORIGINS.get(name, 'another package')} "
                                f"already has {clash}; rename {origin}'s analysis or uninstall one of them")
    for table in instance.tables:
        declare(table)
    REGISTRY[instance.name] = instance
    ORIGINS[instance.name] = origin
    return instance


def _where(analysis: Analysis) -> str:
    return f"{type(analysis).__module__}.{type(analysis).__qualname__}"


def _origin_of(cls: type) -> str:
    """The distribution installing `cls`'s module, else the module itself (an analysis registered by a script)."""
    top = cls.__module__.split(".")[0]
    if top == "probekit":
        from probekit import DISTRIBUTION

        return f"{DISTRIBUTION} (built-in)"
    try:
        from importlib.metadata import packages_distributions

        names = packages_distributions().get(top)
    except Exception:  # metadata of broken installs: the module name still says where it came from
        names = None
    return f"{names[0]} (module {cls.__module__})" if names else f"module {cls.__module__}"


def digest(value) -> str:
    """A short stable hash of a JSON-able value (for cache keys and the manifest)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
