"""A knowledge-injection corpus with a control group (after "Physics of Language Models, Part 3.1").

Facts from the shipped country table are written as short biographies, one country per document: every
relation once, each in one of several training paraphrases, in a shuffled order (the paper's
"multi-paraphrase + permute" augmentation, which is what makes stored facts extractable in other words).
Biographies are shuffled into real prose at a stated share of its words. A seeded split of the countries
is never written: probing both groups shows learning (injected facts rise) against prompt bias and
leakage (held-back facts stay at the random-init level). The split is by answer-equivalence class, so the
names of one state (aliases, former names) and countries that would share a prompt fall on one side
(`equivalence_classes`; the rule is data, in countries.yaml). The training paraphrases are disjoint from the
probe templates.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from probekit.core.errors import ProbekitError

TEMPLATES = Path(__file__).parent.parent / "benchmarks" / "fact_templates.yaml"  # data beside the benchmarks
BENCHMARK = TEMPLATES.parent / "countries.yaml"  # the probe's relations over the same table, and its equivalence
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
    joined: list[list[str]] = field(default_factory=list)
    """The equivalence classes of more than one country, each split as one (empty in records made before)."""

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


def normalised(name: str) -> str:
    """A name compared across rows: case, accents and punctuation dropped ("São Tomé" = "sao tome")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", ascii_name.casefold()).strip()


def equivalence_classes(rows: list[dict], subject: str = "country", benchmark: Path = BENCHMARK) -> list[list[str]]:
    """The table's countries in answer-equivalence classes (each sorted; classes sorted by their first name).

    The rule is data, in `benchmark` (countries.yaml, key `equivalence`): rows are one class when a relation
    there gives them the same subject (normalised; a `separator`-joined list as each of its names), so one
    prompt would sit in both groups, or when `same_state` declares them one state (aliases, former names).
    """
    spec = yaml.safe_load(benchmark.read_text(encoding="utf-8"))
    rule = spec.get("equivalence") or {}
    separator = rule.get("separator")
    columns = sorted({rel["subject"] for rel in spec["relations"].values()} | {subject})
    names = [row[subject] for row in rows]
    parent = {name: name for name in names}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def join(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    seen: dict[str, str] = {}
    for row in rows:
        for column in columns:
            value = (row.get(column) or "").strip()
            for part in (value.split(separator) if separator else [value]):
                if key := normalised(part):
                    join(seen.setdefault(key, row[subject]), row[subject])
    for group in rule.get("same_state") or []:
        present = [name for name in group if name in parent]
        if len(present) != len(group):
            missing = ", ".join(repr(n) for n in group if n not in parent)
            raise ProbekitError(f"{benchmark}: equivalence: same_state names {missing}, not a {subject} of the table")
        for name in present[1:]:
            join(present[0], name)
    classes: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        classes.setdefault(root(name), []).append(name)
    return sorted(classes.values())


def split_subjects(subjects: list[str], seed: int, held_back_fraction: float = 0.5,
                   classes: list[list[str]] | None = None) -> tuple[list[str], list[str]]:
    """A deterministic, seeded split into (injected, held back); independent of the input order.

    The subjects are shuffled by `seed`, as they always were. Each of `classes` (a partition of some of them;
    every other subject is a class alone) goes to one side whole, taking the place in the shuffle of its
    alphabetically first member (a uniformly random place, so a class of several is as likely held back as
    one subject); in that order each class is held back while it fits the held-back share
    (round(n * held_back_fraction) subjects), else injected. Without classes of several, the plain seeded cut.
    """
    ordered = sorted(set(subjects))
    random.Random(seed).shuffle(ordered)
    cut = round(len(ordered) * held_back_fraction)
    of = {name: [name] for name in ordered}
    for group in classes or []:
        members = sorted(set(group) & of.keys())
        for name in members:
            of[name] = members
    injected, held_back = [], []
    for name in ordered:
        if of[name][0] == name:  # a class is placed where its first member fell; its others are skipped
            (held_back if len(held_back) + len(of[name]) <= cut else injected).extend(of[name])
    return sorted(injected), sorted(held_back)


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
    classes = equivalence_classes(rows, spec["subject"])
    injected, held_back = split_subjects([r[spec["subject"]] for r in rows], seed, held_back_fraction, classes)
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
        fact_sentences=facts_per_round * repeats, prose_documents=len(prose),
        joined=[group for group in classes if len(group) > 1])
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
