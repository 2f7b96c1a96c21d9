"""A knowledge-injection corpus with a control group (after "Physics of Language Models, Part 3.1").

Facts from the shipped country table are written as short biographies, one country per document: every
relation once, each in one of several training paraphrases, in a shuffled order (the paper's
"multi-paraphrase + permute" augmentation, which is what makes stored facts extractable in other words).
Biographies are shuffled into real prose at a stated share of its words. A seeded split of the countries
is never written: probing both groups shows learning (injected facts rise) against prompt bias and
leakage (held-back facts stay at the random-init level). The training paraphrases are disjoint from the
probe templates.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from probekit.core.errors import ProbekitError

TEMPLATES = Path(__file__).parent.parent / "benchmarks" / "fact_templates.yaml"  # data beside the benchmarks
RECORD_FILE = "facts.json"


@dataclass
class FactRecord:
    """Everything that made the fact part of a corpus: written next to the checkpoints, read by the probe."""

    table: str
    table_sha256: str
    templates: dict[str, list[str]]
    seed: int
    fact_share: float
    held_back_fraction: float
    repeats: int  # biographies per injected country
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
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            return cls(**raw)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
            known = ", ".join(f.name for f in fields(cls))
            raise ProbekitError(f"{path}: not a fact-injection record ({exc.__class__.__name__}; "
                                f"expected an object with {known})") from exc


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


def facts_of(spec: dict, row: dict) -> list[tuple[list[str], str]]:
    """(training paraphrases, answer) for each relation the table row has an answer for."""
    return [(rel["templates"], row[rel["answer"]].strip()) for rel in spec["relations"].values()
            if row[rel["answer"]].strip()]


def written(template: str, subject: str, answer: str) -> str:
    """A training paraphrase with its country ([X]) and fact ([Y]) filled in."""
    return template.replace("[X]", subject).replace("[Y]", answer)


def fact_sentences(spec: dict, rows: list[dict], subjects: set[str]) -> list[str]:
    """Every training paraphrase of every fact of `subjects` (facts missing from the table are skipped)."""
    return [written(t, row[spec["subject"]], answer)
            for row in rows if row[spec["subject"]] in subjects
            for templates, answer in facts_of(spec, row) for t in templates]


def biographies(spec: dict, rows: list[dict], subjects: set[str], count: int, rng: random.Random) -> list[str]:
    """`count` biographies of each subject: biography k writes each fact in paraphrase k (cycled from a
    random start per fact, so every paraphrase appears once `count` reaches their number), in random order."""
    docs = []
    for row in rows:
        subject = row[spec["subject"]]
        facts = facts_of(spec, row) if subject in subjects else []
        if not facts:
            continue
        starts = [rng.randrange(len(templates)) for templates, _ in facts]
        for k in range(count):
            sentences = [written(templates[(start + k) % len(templates)], subject, answer)
                         for (templates, answer), start in zip(facts, starts)]
            rng.shuffle(sentences)
            docs.append(" ".join(sentences))
    return docs


def mix_facts(prose: list[str], seed: int = 0, fact_share: float = 0.3,
              held_back_fraction: float = 0.5) -> tuple[list[str], FactRecord]:
    """Prose documents with fact biographies shuffled in so facts make up about `fact_share` of the words.

    Each injected country gets at least as many biographies as its relation with the most paraphrases
    has paraphrases, so every training sentence of every injected fact occurs.
    """
    spec, rows, table = load_templates()
    injected, held_back = split_subjects([r[spec["subject"]] for r in rows], seed, held_back_fraction)
    chosen = set(injected)
    most = max(len(r["templates"]) for r in spec["relations"].values())
    one_round = biographies(spec, rows, chosen, 1, random.Random(seed))
    words_per_round = max(sum(len(d.split()) for d in one_round), 1)
    facts_per_round = sum(len(facts_of(spec, row)) for row in rows if row[spec["subject"]] in chosen)
    prose_words = sum(len(d.split()) for d in prose)
    wanted = round(fact_share / (1 - fact_share) * prose_words / words_per_round)
    repeats = max(most, wanted) if fact_share > 0 else 0
    rng = random.Random(seed)
    fact_docs = biographies(spec, rows, chosen, repeats, rng)
    documents = prose + fact_docs
    rng.shuffle(documents)
    record = FactRecord(
        table=table.name, table_sha256=hashlib.sha256(table.read_bytes()).hexdigest()[:16],
        templates={name: rel["templates"] for name, rel in spec["relations"].items()}, seed=seed,
        fact_share=fact_share, held_back_fraction=held_back_fraction, repeats=repeats, injected=injected,
        held_back=held_back, relations=list(spec["relations"]),
        fact_sentences=facts_per_round * repeats, prose_documents=len(prose))
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
