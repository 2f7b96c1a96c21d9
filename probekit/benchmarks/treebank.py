"""Treebanks: dependency-parsed sentences (CoNLL-U) that the syntax analyses run over.

A spec is `ewt` (= `ewt:test`), `ewt:dev`, `ewt:test`, `ewt:dev+test` — UD English EWT, shipped with probekit
under CC BY-SA 4.0 (`probekit/benchmarks/ud_english_ewt/README.md`) — or the path of any `.conllu` or
`.conllu.gz` file (optionally written `treebank:PATH`). Every sentence keeps its syntactic words only:
multiword-token ranges (`1-2`) and empty nodes (`8.1`) are skipped, heads are 1-based word positions (0 = root)
and relations are universal, without their subtype (`obl:tmod` → `obl`).

The file is read with PyPI `conllu`, validated line by line: a line that is not CoNLL-U (not ten tab-separated
fields, an ID or HEAD that is not a number) raises a one-line `ProbekitError` naming the file and the line; a
sentence whose tree is broken (IDs out of sequence, a head outside the sentence, no root or several) is
skipped with one line in `problems` naming the file and the line it starts on (a word that is its own head
is said as such). `sample` keeps the first N
sentences of each file after a shuffle with a fixed seed, so a subset is the same on every run and machine.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from probekit.benchmarks.kinds import register_kind
from probekit.core.errors import ProbekitError

PREFIX = "treebank:"
EWT_DIR = Path(__file__).parent / "ud_english_ewt"
EWT_SPLITS = {"dev": EWT_DIR / "en_ewt-ud-dev.conllu.gz", "test": EWT_DIR / "en_ewt-ud-test.conllu.gz"}
EWT_SPECS = {"ewt": ("test",), "ewt:test": ("test",), "ewt:dev": ("dev",), "ewt:dev+test": ("dev", "test")}
SAMPLE_SEED = 0


@dataclass(frozen=True)
class Sentence:
    """One parsed sentence: parallel lists over its syntactic words."""

    words: list[str]
    heads: list[int]
    """Head of each word, 1-based; 0 is the root."""
    deprels: list[str]
    """Universal dependency relation of each word to its head, without subtype (`nsubj`, `obl`, …)."""
    upos: list[str]
    sent_id: str = ""
    split: str = ""
    """The file it came from (`dev`, `test`, or the file's stem)."""
    line: int = 0
    """Line of the file where the sentence starts (1-based)."""

    def __len__(self) -> int:
        return len(self.words)

    def content(self) -> list:
        return [self.words, self.heads, self.deprels, self.upos]


@dataclass
class Treebank:
    """Validated sentences of one or more CoNLL-U files and where they came from."""

    name: str
    source: str
    sentences: list[Sentence]
    problems: list[str] = field(default_factory=list)
    sha256: str = ""

    def __post_init__(self):
        content = [[s.split, *s.content()] for s in self.sentences]
        self.sha256 = hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]

    @property
    def size(self) -> int:
        return len(self.sentences)

    @property
    def words(self) -> int:
        return sum(len(s) for s in self.sentences)

    def split(self, name: str) -> list[Sentence]:
        """The sentences that came from one file (`dev`, `test`, or a file's stem)."""
        return [s for s in self.sentences if s.split == name]

    def describe(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "count": self.size, "words": self.words,
                "splits": sorted({s.split for s in self.sentences})}


def is_treebank_spec(spec) -> bool:
    """Whether a `--benchmark` spec names a treebank."""
    if isinstance(spec, list):
        return False
    text = str(spec)
    return text in EWT_SPECS or text.startswith(PREFIX) or text.endswith((".conllu", ".conllu.gz"))


def load_treebank(spec: str | Path, sample: int | None = None, seed: int = SAMPLE_SEED) -> Treebank:
    """The treebank of `spec` (see the module doc); `sample` keeps N sentences of each file, seeded."""
    if sample is not None and sample < 1:
        raise ProbekitError(f"{spec}: sample must be at least 1 sentence (got {sample})")
    text = str(spec)
    text = text[len(PREFIX):] if text.startswith(PREFIX) else text
    if text in EWT_SPECS:
        files = [(split, EWT_SPLITS[split]) for split in EWT_SPECS[text]]
        name = "ewt-" + "+".join(EWT_SPECS[text])
    else:
        path = Path(text)
        files, name = [(_stem(path), path)], _stem(path)
    sentences, problems = [], []
    for split, path in files:
        read, bad = read_conllu(path, split)
        sentences += _sample(read, sample, seed)
        problems += bad
    if not sentences:
        raise ProbekitError(f"{text}: no valid sentence in the treebank")
    return Treebank(f"{name}@{sample}" if sample else name, text, sentences, problems)


def _stem(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".conllu")


def _sample(sentences: list[Sentence], n: int | None, seed: int) -> list[Sentence]:
    """The first `n` sentences after a shuffle with `seed` (all of them, in file order, when `n` is None)."""
    if n is None:
        return sentences
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    return [sentences[i] for i in order[:n]]


def read_conllu(path: Path, split: str = "") -> tuple[list[Sentence], list[str]]:
    """(sentences, problems) of one CoNLL-U file, plain or gzipped; one-line errors for lines that are not
    CoNLL-U, one problem line per sentence skipped for a broken tree."""
    lines = _lines(path)
    sentences, problems = [], []
    for start, block in _blocks(lines):
        try:
            sentences.append(_sentence(path, start, block, split or _stem(path)))
        except _BrokenTree as exc:
            problems.append(f"{path}: line {start}: {exc}; sentence skipped")
    return sentences, problems


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ProbekitError(f"{path}: no such treebank file (a .conllu or .conllu.gz file, or ewt, ewt:dev, "
                            f"ewt:test, ewt:dev+test)")
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            return handle.read().splitlines()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ProbekitError(f"{path}: not a readable CoNLL-U file ({exc.__class__.__name__}: {exc})") from None


def _blocks(lines: list[str]):
    """(first line number, [(line number, line), …]) of each blank-line separated sentence."""
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            block.append((number, line))
        elif block:
            yield block[0][0], block
            block = []
    if block:
        yield block[0][0], block


class _BrokenTree(Exception):
    """A sentence whose lines parse but whose tree is not one (skipped, not fatal)."""


def _sentence(path: Path, start: int, block: list[tuple[int, str]], split: str) -> Sentence:
    """One sentence from its lines: comments read for sent_id, words validated, ranges and empty nodes skipped."""
    from conllu.parser import DEFAULT_FIELDS, parse_comment_line, parse_line

    sent_id, tokens = "", []
    for number, line in block:
        if line.startswith("#"):
            sent_id = dict(parse_comment_line(line)).get("sent_id") or sent_id
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise ProbekitError(f"{path}: line {number}: {len(fields)} tab-separated fields, CoNLL-U has 10")
        try:
            token = parse_line(line, DEFAULT_FIELDS)
        except Exception as exc:  # conllu.ParseException: a field that does not parse
            raise ProbekitError(f"{path}: line {number}: {exc}") from None
        if isinstance(token["id"], int):
            tokens.append((number, token))
    return _checked(tokens, sent_id, split, start)


def _checked(tokens: list, sent_id: str, split: str, start: int) -> Sentence:
    """The sentence of `tokens` if they form a tree over 1..n with one root, else `_BrokenTree`."""
    if not tokens:
        raise _BrokenTree("no words")
    n = len(tokens)
    for i, (number, token) in enumerate(tokens, 1):
        if token["id"] != i:
            raise _BrokenTree(f"word ID {token['id']} on line {number}, expected {i}")
        head = token["head"]
        if head == i:
            raise _BrokenTree(f"word {i} on line {number} is its own head (a word's head is another word of the "
                              f"sentence, or 0 for the root)")
        if not isinstance(head, int) or not 0 <= head <= n:
            raise _BrokenTree(f"head {head!r} on line {number} is not a word of the sentence (1..{n}) or 0")
        if not token["deprel"] or token["deprel"] == "_":
            raise _BrokenTree(f"no dependency relation on line {number}")
    heads = [t["head"] for _, t in tokens]
    if heads.count(0) != 1:
        raise _BrokenTree(f"{heads.count(0)} roots, a tree has 1")
    if _has_cycle(heads):
        raise _BrokenTree("the heads form a cycle")
    return Sentence(words=[t["form"] for _, t in tokens], heads=heads,
                    deprels=[t["deprel"].split(":")[0] for _, t in tokens],
                    upos=[t["upos"] or "_" for _, t in tokens], sent_id=sent_id, split=split, line=start)


def _has_cycle(heads: list[int]) -> bool:
    """Whether following heads from some word never reaches the root."""
    for word in range(1, len(heads) + 1):
        seen, at = set(), word
        while at != 0:
            if at in seen:
                return True
            seen.add(at)
            at = heads[at - 1]
    return False


register_kind("treebank", "dependency-parsed sentences (CoNLL-U): ewt, ewt:dev, ewt:test, ewt:dev+test, or a "
              ".conllu/.conllu.gz file", claims=is_treebank_spec, load=load_treebank, priority=35)
