"""A knowledge-injection corpus with a control group (after "Physics of Language Models, Part 3.1").

Facts from the shipped country table are written in several training paraphrases and shuffled into real
prose at a stated share of tokens. A seeded split of the countries is never written: probing both groups
shows learning (injected facts rise) against prompt bias and leakage (held-back facts stay at the
random-init level). The training paraphrases are disjoint from the probe templates.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from probekit.benchmarks import HERE

TEMPLATES = HERE / "fact_templates.yaml"
RECORD_FILE = "facts.json"
SENTENCES_PER_DOCUMENT = 4


@dataclass
class FactRecord:
    """Everything that made the fact part of a corpus: written next to the checkpoints, read by the probe."""

    table: str
    table_sha256: str
    templates: dict[str, list[str]]
    seed: int
    fact_share: float
    held_back_fraction: float
    repeats: int
    injected: list[str]
    held_back: list[str]
    relations: list[str]
    fact_sentences: int
    prose_documents: int

    def save(self, folder: Path) -> Path:
        path = folder / RECORD_FILE
        path.write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, folder: Path) -> "FactRecord | None":
        path = Path(folder) / RECORD_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def load_templates() -> tuple[dict, list[dict], Path]:
    spec = yaml.safe_load(TEMPLATES.read_text(encoding="utf-8"))
    table = TEMPLATES.parent / spec["facts"]
    with open(table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return spec, rows, table


def split_subjects(subjects: list[str], seed: int, held_back_fraction: float = 0.5) -> tuple[list[str], list[str]]:
    """A deterministic, seeded split into (injected, held back); independent of the input order."""
    ordered = sorted(set(subjects))
    random.Random(seed).shuffle(ordered)
    cut = round(len(ordered) * held_back_fraction)
    return sorted(ordered[cut:]), sorted(ordered[:cut])


def fact_sentences(spec: dict, rows: list[dict], subjects: set[str]) -> list[str]:
    """Every training paraphrase of every fact of `subjects` (facts missing from the table are skipped)."""
    sentences = []
    for row in rows:
        subject = row[spec["subject"]]
        if subject not in subjects:
            continue
        for relation in spec["relations"].values():
            answer = row[relation["answer"]].strip()
            if answer:
                sentences += [t.replace("[X]", subject).replace("[Y]", answer) for t in relation["templates"]]
    return sentences


def mix_facts(prose: list[str], seed: int = 0, fact_share: float = 0.3,
              held_back_fraction: float = 0.5) -> tuple[list[str], FactRecord]:
    """Prose documents with fact documents shuffled in so facts make up about `fact_share` of the words."""
    spec, rows, table = load_templates()
    injected, held_back = split_subjects([r[spec["subject"]] for r in rows], seed, held_back_fraction)
    once = fact_sentences(spec, rows, set(injected))
    prose_words = sum(len(d.split()) for d in prose)
    fact_words = max(sum(len(s.split()) for s in once), 1)
    repeats = max(1, round(fact_share / (1 - fact_share) * prose_words / fact_words)) if fact_share > 0 else 0
    rng = random.Random(seed)
    sentences = once * repeats
    rng.shuffle(sentences)
    fact_docs = [" ".join(sentences[i:i + SENTENCES_PER_DOCUMENT])
                 for i in range(0, len(sentences), SENTENCES_PER_DOCUMENT)]
    documents = prose + fact_docs
    rng.shuffle(documents)
    record = FactRecord(
        table=table.name, table_sha256=hashlib.sha256(table.read_bytes()).hexdigest()[:16],
        templates={name: rel["templates"] for name, rel in spec["relations"].items()}, seed=seed,
        fact_share=fact_share, held_back_fraction=held_back_fraction, repeats=repeats, injected=injected,
        held_back=held_back, relations=list(spec["relations"]), fact_sentences=len(sentences),
        prose_documents=len(prose))
    return documents, record


def fact_groups(prompts, record: FactRecord | None) -> list[str]:
    """For each prompt row: "injected" or "held_back" by the country it is about, else "all" / "other"."""
    if record is None:
        return ["all"] * len(prompts["subject"])
    injected, held_back = set(record.injected), set(record.held_back)

    def group(subject: str, answer: str) -> str:
        for name in (subject, answer):
            if name in injected:
                return "injected"
            if name in held_back:
                return "held_back"
        return "other"

    return [group(s, a) for s, a in zip(prompts["subject"], prompts["answer"])]


def table_names() -> list[str]:
    """Every name in the fact table (countries, capitals, continents, languages, currencies), held-back ones
    included: a tokenizer trained on the corpus plus these lines treats both groups' names alike, without
    seeing any fact."""
    spec, rows, _ = load_templates()
    columns = [spec["subject"], *(rel["answer"] for rel in spec["relations"].values())]
    return sorted({row[c].strip() for row in rows for c in columns if row[c].strip()})
