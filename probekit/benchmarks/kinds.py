"""Input kinds: what analyses run over, and how a benchmark spec becomes an input of one kind.

A kind is a name ("prompts", "pairs", "sentences", …) with loaders: each loader says whether it claims a
spec (`blimp`, `choice:blimp`, `tokens.csv`) and loads it into an input — an object with `name`, `sha256`
(a hash of its content: part of every cache key), `problems` (one line per malformed row, skipped), `size`
(rows, for the shards' cost) and `describe()` (its entry in the manifest). An analysis names the kind it
consumes (`Analysis.inputs`); a user kind registers its loader beside its analysis, in its own module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from probekit.core.errors import ProbekitError


class Input(Protocol):
    name: str
    sha256: str
    problems: list[str]

    @property
    def size(self) -> int: ...

    def describe(self) -> dict: ...


@dataclass(frozen=True)
class Loader:
    """How specs of one kind are recognised and read (`sample` keeps at most N items per group, seeded)."""

    kind: str
    claims: Callable[[str], bool]
    load: Callable[[str, int | None], Any]
    priority: int = 0
    """Higher is asked first; the fill-mask file loader, which claims any other spec, is lowest."""


KINDS: dict[str, str] = {}
"""kind → what its inputs are (one line, for the docs)."""
LOADERS: list[Loader] = []


def register_kind(kind: str, doc: str, claims: Callable[[str], bool], load: Callable[[str, int | None], Any],
                  priority: int = 0) -> Loader:
    """Add a loader of `kind` (and the kind, the first time)."""
    KINDS.setdefault(kind, doc)
    loader = Loader(kind, claims, load, priority)
    LOADERS[:] = sorted([*[l for l in LOADERS if l != loader], loader], key=lambda l: -l.priority)
    return loader


SAMPLED = re.compile(r"(?P<spec>.+)@(?P<n>\d+)")
"""`SPEC@N`: the spec sampled to N items per group, whatever the run's `sample` (`blimp@4`, `ewt:dev+test@300`)."""


def load_input(spec: str | list, sample: int | None = None) -> tuple[str, Any]:
    """(kind, input) of a benchmark spec, read by the first loader that claims it; `SPEC@N` (unless a file of
    that name exists) samples that input to N items per group instead of the run's `sample`."""
    spec = spec if isinstance(spec, list) else str(spec)
    if isinstance(spec, str) and (found := SAMPLED.fullmatch(spec)) and not Path(spec).exists():
        spec, sample = found["spec"], int(found["n"])
        if sample < 1:
            raise ProbekitError(f"{spec}@{sample}: a sample must keep at least 1 item")
    for loader in LOADERS:
        if loader.claims(spec):
            return loader.kind, loader.load(spec, sample)
    raise ProbekitError(f"{spec}: no input kind reads this (kinds: {', '.join(KINDS) or 'none registered'})")


def load_inputs(specs, sample: int | None = None) -> dict[str, list]:
    """Every spec loaded and grouped by kind, in the order given; malformed rows logged one line each."""
    from probekit.core.log import logger

    inputs: dict[str, list] = {}
    unique = {repr(s) if isinstance(s, list) else str(s): s for s in specs}
    for spec in unique.values():
        kind, loaded = load_input(spec, sample)
        for problem in loaded.problems:
            logger.warning(problem)
        inputs.setdefault(kind, []).append(loaded)
    return inputs
