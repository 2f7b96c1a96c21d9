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
    if isinstance(spec, str) and "@" in spec and not Path(spec).exists():
        base, _, size = spec.rpartition("@")
        if not (found := SAMPLED.fullmatch(spec)) or int(found["n"]) < 1:
            kind = next((l.kind for l in LOADERS if l.claims(base)), None) if base else None
            valid = f"; {kind} inputs are {KINDS[kind]}" if kind and kind != "prompts" else ""
            raise ProbekitError(f"{spec}: {size!r} after @ is not a sample size: SPEC@N keeps at least 1 item per "
                                f"group, N a whole number such as {base or 'ewt'}@300{valid}")
        spec, sample = found["spec"], int(found["n"])
    for loader in LOADERS:
        if loader.claims(spec):
            return loader.kind, loader.load(spec, sample)
    raise ProbekitError(f"{spec}: no input kind reads this (kinds: {', '.join(KINDS) or 'none registered'})")


def load_inputs(specs, sample: int | None = None) -> dict[str, list]:
    """Every spec loaded and grouped by kind, in the order given; malformed rows logged one line each."""
    from probekit.core.log import logger

    inputs: dict[str, list] = {}
    given: dict[tuple[str, str], str] = {}  # (kind, name) → the spec that gave it
    unique = {repr(s) if isinstance(s, list) else str(s): s for s in specs}
    for text, spec in unique.items():
        kind, loaded = load_input(spec, sample)
        if (kind, loaded.name) in given:
            same = next(i for i in inputs[kind] if i.name == loaded.name)
            if same.sha256 == loaded.sha256:  # the same rows twice (ewt and ewt:test, a copy of a file)
                logger.info(f"{text}: the same {kind} as {given[kind, loaded.name]}; read once")
                continue
            raise ProbekitError(f"{given[kind, loaded.name]} and {text}: two different {kind} inputs named "
                                f"{loaded.name!r} (from {_source(same)} and {_source(loaded)}); their rows would "
                                "be pooled under one name: rename one of the files")
        for problem in loaded.problems:
            logger.warning(problem)
        given[kind, loaded.name] = text
        inputs.setdefault(kind, []).append(loaded)
    return inputs


def _source(item) -> str:
    source = str(item.describe().get("source", item.name))
    return str(Path(source).resolve()) if Path(source).exists() else source


def described(item) -> dict:
    """An input's entry in the manifest: its own description, and for an input read from a file the file's
    full path and the SHA-256 of its bytes (two files of one name are told apart)."""
    import hashlib

    entry = dict(item.describe())
    source = Path(str(entry.get("source", "")))
    if str(source) and source.is_file():
        digest = hashlib.sha256()
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        entry.update(path=str(source.resolve()), file_sha256=digest.hexdigest())
    return entry
