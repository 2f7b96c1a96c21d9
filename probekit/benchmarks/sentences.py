"""Sentences: what attention capture (and any analysis of plain text) runs over.

A spec `sentences:FILE` reads a .txt file (one sentence per line; a tab makes an A/B pair) or a .jsonl file
(`text`, optional `text_pair`); `sentences:shipped` is the set shipped with probekit (capital prompts,
plain prose and A/B pairs).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from probekit.benchmarks import DEFAULT_SENTENCES
from probekit.benchmarks.kinds import register_kind

PREFIX = "sentences:"
SHIPPED = "shipped"


@dataclass
class Sentences:
    """A validated list of sentences (strings, or (A, B) pairs) and where it came from."""

    name: str
    source: Path
    sentences: list
    problems: list[str] = field(default_factory=list)
    sha256: str = ""

    def __post_init__(self):
        self.sha256 = hashlib.sha256(json.dumps(self.sentences).encode()).hexdigest()[:16]

    @property
    def size(self) -> int:
        return len(self.sentences)

    def describe(self) -> dict:
        return {"source": str(self.source), "sha256": self.sha256, "count": len(self.sentences)}


def spec_of(source: str | Path | list | tuple) -> str | list:
    """The `sentences:` spec of a file path or `shipped`; a list of sentences stays a list."""
    if isinstance(source, (list, tuple)):
        return list(source)
    text = str(source)
    return text if text.startswith(PREFIX) else PREFIX + text


def load_sentences(spec: str | list, sample: int | None = None) -> Sentences:
    """`sentences:FILE`, `sentences:shipped`, or a list of sentences given in Python."""
    from probekit.models.activations import read_sentences

    if isinstance(spec, list):
        return Sentences("sentences", Path("<list>"), [tuple(s) if isinstance(s, list) else s for s in spec])
    source = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    path = DEFAULT_SENTENCES if source in (SHIPPED, "default") else Path(source)
    return Sentences(path.stem, path, read_sentences(path))


register_kind("sentences", "sentences (or A/B pairs) to capture attention on: sentences:FILE or sentences:shipped",
              claims=lambda spec: isinstance(spec, list) or str(spec).startswith(PREFIX), load=load_sentences, priority=30)
