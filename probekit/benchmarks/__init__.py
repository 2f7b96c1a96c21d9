"""Fill-mask benchmarks as data files: the shipped prompt sets and any user file, validated row by row.

A benchmark is a table of prompts, one row per (relation, template, subject): `[X]` in a template is the
subject, `[MASK]` the slot the gold answer fills. Files may be
- CSV or JSONL with columns `relation, template, subject, answer` (one prompt per row), or
- YAML with `facts: table.csv` and `relations: {name: {subject: col, answer: col, templates: [...]}}`,
  or with `prompts:` holding rows as above;
- `choice:PAIRS` — the minimal pairs of PAIRS (`blimp`, `blimp:agreement`, a pairs file) whose sentences
  differ in one word, as prompts with a foil (see `probekit.benchmarks.pairs.word_choices`).
A row may name foils in `candidates` (a list, or `a|b` in CSV): it is then also scored as a choice — right
when the gold answer is more probable than every foil (oLMpics' multiple-choice MLM; Goldberg 2019).
Malformed rows are skipped, each reported in one line naming the file and row.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from probekit.core import lazy
from probekit.core.errors import ProbekitError

pd = lazy.module("pandas")

HERE = Path(__file__).parent
INTERNAL = ("fact_templates",)
"""Data files beside the benchmarks that are not benchmarks (the training paraphrases of fact injection)."""
SHIPPED = {path.stem: path for path in sorted(HERE.glob("*.yaml")) if path.stem not in INTERNAL}
DEFAULT_BENCHMARKS = ("countries",)
DEFAULT_SENTENCES = HERE / "sentences.txt"
"""Sentences whose attention is captured by default: capital prompts, plain prose, and A/B pairs."""
MASK, SUBJECT = "[MASK]", "[X]"
COLUMNS = ["benchmark", "relation", "template", "subject", "answer", "prompt"]


@dataclass
class Benchmark:
    """A validated prompt table and where it came from."""

    name: str
    source: Path
    prompts: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    groups: list[str] | None = None
    """Fact group of each prompt (injected / held_back / all), set by the probe from the series' record."""

    candidates: list[list[str]] | None = None
    """Per prompt, the foils it is also scored against (empty where none); None when no row names any."""

    sha256: str = ""
    """Hash of the prompts themselves (not the file's formatting): a cache key for results."""

    def __post_init__(self):
        rows = self.prompts[COLUMNS].to_dict("records")
        if self.candidates is not None:
            rows = [{**row, "candidates": c} for row, c in zip(rows, self.candidates)]
        self.sha256 = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def size(self) -> int:
        return len(self.prompts)

    def describe(self) -> dict:
        return {"source": str(self.source), "sha256": self.sha256, "prompts": len(self.prompts),
                "malformed_rows": len(self.problems)}


def load_benchmark(spec: str | Path) -> Benchmark:
    """A shipped benchmark by name (`countries`) or any CSV/JSONL/YAML file by path (`choice:PAIRS` specs:
    `probekit.benchmarks.pairs.load_choices`)."""
    path = SHIPPED.get(str(spec)) or Path(spec)
    if not path.is_file() or path.parent == HERE and path.stem in INTERNAL:
        raise ProbekitError(unknown_spec(str(spec)))
    name = path.stem
    raw = _read_rows(path)
    rows, problems = [], []
    for where, row in raw:
        problem = _problem(row)
        foils, foil_problem = _candidates(row)
        if problem or foil_problem:
            problems.append(f"{path}: {where}: {problem or foil_problem}; row skipped")
            continue
        rows.append({"benchmark": name, "relation": str(row["relation"]).strip(),
                     "template": row["template"], "subject": str(row.get("subject") or "").strip(),
                     "answer": str(row["answer"]).strip(), "candidates": foils})
    if not rows:
        reasons = "; ".join(p.split(": ", 1)[1].removesuffix("; row skipped") for p in problems[:3])
        raise ProbekitError(f"{path}: no valid prompts ({len(problems)} malformed rows"
                            + (f", e.g. {reasons})" if reasons else ")"))
    prompts = pd.DataFrame(rows)
    prompts["prompt"] = [t.replace(SUBJECT, s) for t, s in zip(prompts["template"], prompts["subject"])]
    prompts = prompts.drop_duplicates(subset=["relation", "prompt", "answer"]).reset_index(drop=True)
    foils = prompts["candidates"].tolist() if any(prompts["candidates"].map(len)) else None
    return Benchmark(name, path, prompts[COLUMNS], problems, candidates=foils)


def unknown_spec(spec: str) -> str:
    """The one line for a `--benchmark` spec that names no file and that no input kind reads: what is valid,
    for the kind whose specs it resembles (`ewt:nope` → the treebank specs) or for all of them."""
    from probekit.benchmarks.kinds import KINDS

    head = spec.split(":", 1)[0].split("@", 1)[0].strip().lower()
    like = [(kind, doc) for kind, doc in KINDS.items()
            if head and kind != "prompts" and (head == kind or f" {head}" in f" {doc}".lower().replace(",", " "))]
    if like:
        return f"{spec}: no such {' or '.join(k for k, _ in like)} (valid: " + "; ".join(
            f"{kind}: {doc}" for kind, doc in like) + ")"
    return (f"{spec}: no such benchmark file or input (shipped prompts: {', '.join(SHIPPED)}; a .csv, .jsonl or "
            f".yaml file of prompts; " + "; ".join(f"{k}: {d}" for k, d in KINDS.items() if k != "prompts") + ")")


def _candidates(row: dict) -> tuple[list[str], str | None]:
    """A row's foils (a list, or `a|b`), and what is wrong with them if anything."""
    value = row.get("candidates")
    if value is None or value == "":
        return [], None
    items = value.split("|") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
        return [], f"candidates must be a list of words or 'a|b', not {value!r}"
    foils = [c.strip() for c in items if c.strip()]
    if str(row.get("answer") or "").strip() in foils:
        return [], f"the answer {str(row['answer']).strip()!r} is among its own candidates"
    return list(dict.fromkeys(foils)), None


def _problem(row: dict) -> str | None:
    template = str(row.get("template") or "")
    if not str(row.get("relation") or "").strip():
        return "no relation"
    if not str(row.get("answer") or "").strip():
        return "empty answer"
    masks = template.count(MASK)
    if masks == 0:
        return f"no {MASK} in {template!r}"
    if masks > 1:
        return f"{masks} {MASK} where one is expected in {template!r}"
    if SUBJECT in template and not str(row.get("subject") or "").strip():
        return f"empty subject for {template!r}"
    return None


def csv_rows(path: Path) -> list[tuple[str, dict]]:
    """A CSV file's rows (Excel's UTF-8 with a byte-order mark too), each named by its line."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [(f"row {i}", row) for i, row in enumerate(csv.DictReader(f), start=2)]


def _read_rows(path: Path) -> list[tuple[str, dict]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return csv_rows(path)
        if suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            return [(f"line {i}", _json_object(path, i, line)) for i, line in enumerate(lines, 1) if line.strip()]
        if suffix in (".yaml", ".yml"):
            return _yaml_rows(path, yaml.safe_load(path.read_text(encoding="utf-8-sig")))
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError, csv.Error) as exc:
        raise ProbekitError(f"{path}: cannot parse ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from exc
    raise ProbekitError(f"{path}: benchmark files are .csv, .jsonl or .yaml, not {suffix or 'no suffix'}")


def _json_object(path: Path, lineno: int, line: str) -> dict:
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ProbekitError(f"{path}: line {lineno}: expected a JSON object with relation, template, subject, "
                            f"answer; got {type(record).__name__}")
    return record


def _yaml_rows(path: Path, spec) -> list[tuple[str, dict]]:
    if not isinstance(spec, dict):
        raise ProbekitError(f"{path}: expected a mapping with 'prompts' or 'facts' and 'relations'")
    if "prompts" in spec:
        prompts = spec["prompts"]
        if not isinstance(prompts, list) or not all(isinstance(row, dict) for row in prompts):
            raise ProbekitError(f"{path}: 'prompts' must be a list of mappings (relation, template, subject, answer)")
        return [(f"prompt {i}", dict(row)) for i, row in enumerate(prompts, 1)]
    if "facts" not in spec or "relations" not in spec:
        raise ProbekitError(f"{path}: needs 'prompts', or 'facts' and 'relations'")
    if not isinstance(spec["facts"], str) or not isinstance(spec["relations"], dict) or not all(
            isinstance(rel, dict) for rel in spec["relations"].values()):
        raise ProbekitError(f"{path}: 'facts' must name a CSV file and 'relations' map names to "
                            f"{{subject, answer, templates}}")
    facts_path = path.parent / spec["facts"]
    if not facts_path.is_file():
        raise ProbekitError(f"{path}: facts table {facts_path} not found")
    with open(facts_path, newline="", encoding="utf-8") as f:
        facts = list(csv.DictReader(f))
    rows = []
    for relation, rel in spec["relations"].items():
        for key in ("subject", "answer"):
            if facts and rel.get(key) not in facts[0]:
                raise ProbekitError(f"{path}: relation {relation}: column {rel.get(key)!r} not in {facts_path.name}")
        for template in rel.get("templates") or []:
            for i, fact in enumerate(facts, start=2):
                if not fact[rel["answer"]].strip():
                    continue  # fact unknown for this subject: no prompt, not a malformed row
                rows.append((f"{facts_path.name} row {i}, relation {relation}",
                             {"relation": relation, "template": template,
                              "subject": fact[rel["subject"]], "answer": fact[rel["answer"]]}))
    return rows


def _register() -> None:
    from probekit.benchmarks.kinds import register_kind

    register_kind("prompts", "fill-mask prompts: relation, template, subject, answer (and optional candidates)",
                  claims=lambda spec: True, load=lambda spec, sample: load_benchmark(spec), priority=-100)


_register()
