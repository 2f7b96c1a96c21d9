"""Minimal-pair benchmarks as data: shipped BLiMP and any user file of `good, bad` sentence pairs.

A pair is two sentences that differ in one place, one acceptable (`good`) and one not (`bad`); a model gets
it right when it gives the good one the higher pseudo-log-likelihood (`probekit.analyses.pll`). Specs:
- `blimp` — all 67,000 pairs of BLiMP (Warstadt et al. 2020, CC BY 4.0, shipped in `blimp/`);
- `blimp:SELECTOR[,SELECTOR…]` — a paradigm (`adjunct_island`), phenomenon (`island_effects`) or field
  (`morphology`), matched exactly, else as a part of phenomenon and paradigm names (`agreement`);
- a CSV or JSONL file with columns `good, bad` and optional `paradigm, phenomenon, field, pair_id`
  (BLiMP's own names `sentence_good, sentence_bad, UID, linguistics_term, pairID` are read as well).
Malformed rows are skipped, each reported in one line naming the file and row. `sample` keeps N pairs per
paradigm, drawn with a fixed seed, so a subset is the same on every run and machine.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from probekit.core import lazy
from probekit.benchmarks import COLUMNS as BENCH_COLUMNS, Benchmark, csv_rows
from probekit.core.errors import ProbekitError

pd = lazy.module("pandas")

BLIMP_DIR = Path(__file__).parent / "blimp"
BLIMP = "blimp"
COLUMNS = ["benchmark", "pair_id", "field", "phenomenon", "paradigm", "good", "bad"]
GROUPS = ("paradigm", "phenomenon", "field")
ALIASES = {"sentence_good": "good", "sentence_bad": "bad", "UID": "paradigm", "linguistics_term": "phenomenon",
           "pairID": "pair_id"}
MASK = "[MASK]"


@dataclass
class PairBenchmark:
    """A validated table of minimal pairs and where it came from."""

    name: str
    source: Path
    pairs: pd.DataFrame
    problems: list[str] = field(default_factory=list)

    sha256: str = ""
    """Hash of the pairs themselves (not the file's formatting): part of the cache key of their scores."""

    def __post_init__(self):
        rows = self.pairs[COLUMNS].to_dict("records")
        self.sha256 = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def size(self) -> int:
        return 2 * len(self.pairs)

    def describe(self) -> dict:
        return {"source": str(self.source), "sha256": self.sha256, "pairs": len(self.pairs),
                "malformed_rows": len(self.problems)}


def is_pair_spec(spec: str | Path) -> bool:
    """Whether `spec` names a pairs benchmark: `blimp`, `blimp:…`, or a CSV/JSONL file with good/bad columns."""
    text = str(spec)
    if text == BLIMP or text.startswith(BLIMP + ":"):
        return True
    path = Path(text)
    if not path.is_file() or path.suffix.lower() not in (".csv", ".jsonl"):
        return False
    return bool(_header(path) & {"good", "bad"})  # one of the two: the reader then names the missing one


def _header(path: Path) -> set[str]:
    """The column names of a CSV file's header or a JSONL file's first record (BLiMP's aliases read as ours)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline()
            if path.suffix.lower() == ".csv":
                header = next(csv.reader([first]), [])
            else:
                header = list(json.loads(first)) if first.strip().startswith("{") else []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error):
        return set()
    return {ALIASES.get(h.strip(), h.strip()) for h in header}


def load_pairs(spec: str | Path, sample: int | None = None, seed: int = 0) -> PairBenchmark:
    """The pairs of `spec` (see the module doc), validated; `sample` = at most N pairs per paradigm."""
    if sample is not None and sample < 1:
        raise ProbekitError(f"{spec}: sample must be at least 1 pair per paradigm (got {sample})")
    text = str(spec)
    if text == BLIMP or text.startswith(BLIMP + ":"):
        path, name, shipped = BLIMP_DIR / "blimp.jsonl.gz", text, True
        rows, problems = _shipped_rows(path)
        problems = list(problems)
    else:
        path = Path(text)
        if not path.is_file():
            raise ProbekitError(f"{spec}: no such pairs file (shipped: {BLIMP}, {BLIMP}:PARADIGM|PHENOMENON|FIELD)")
        name, shipped = path.stem, False
        raw = _read_rows(path)
        found = _header(path) if path.suffix.lower() == ".csv" else {ALIASES.get(k, k) for _, row in raw for k in row}
        if missing := [c for c in ("good", "bad") if c not in found]:
            raise ProbekitError(f"{path}: no {' or '.join(repr(c) for c in missing)} column (minimal-pair files have "
                                f"columns good, bad; this one has {', '.join(sorted(found)) or 'none'})")
        rows, problems = _validated(path, raw, same_allowed=False)
    if not rows:
        reasons = "; ".join(p.split(": ", 2)[2].removesuffix("; row skipped") for p in problems[:3])
        raise ProbekitError(f"{path}: no valid pairs ({len(problems)} malformed rows"
                            + (f", e.g. {reasons})" if reasons else ")"))
    pairs = pd.DataFrame(rows).assign(benchmark=name)
    pairs[list(GROUPS)] = pairs[list(GROUPS)].fillna(name)  # a pair without a paradigm is one of the benchmark
    if not shipped:
        pairs = pairs.drop_duplicates(subset=["paradigm", "good", "bad"]).reset_index(drop=True)
    if ":" in text and text.startswith(BLIMP):
        pairs = _select(pairs, text.split(":", 1)[1], path)
    if sample is not None:
        pairs = sample_pairs(pairs, sample, seed)
        name = f"{name}@{sample}"
        pairs["benchmark"] = name
    return PairBenchmark(name, path, pairs[COLUMNS], problems)


@functools.lru_cache(maxsize=1)
def _shipped_rows(path: Path) -> tuple[list[dict], list[str]]:
    """BLiMP's 67,000 pairs parsed and checked once per process (every load of `blimp…` reads them)."""
    return _validated(path, _jsonl_rows(path, gzip.open(path, "rt", encoding="utf-8").read()), same_allowed=True)


def _validated(path: Path, raw: list[tuple[str, dict]], same_allowed: bool) -> tuple[list[dict], list[str]]:
    """The rows that are minimal pairs (groups not given left None), and one line per row that is not."""
    rows, problems = [], []
    for where, row in raw:
        row = {ALIASES.get(k, k): v for k, v in row.items()}
        problem = _problem(row, same_allowed=same_allowed)
        if problem:
            problems.append(f"{path}: {where}: {problem}; row skipped")
            continue
        pair_id = row.get("pair_id")
        pair_id = where.split()[-1] if pair_id in (None, "") else str(pair_id).strip()
        rows.append({"pair_id": pair_id, **{g: str(row.get(g) or "").strip() or None for g in GROUPS},
                     "good": row["good"].strip(), "bad": row["bad"].strip()})
    return rows, problems


def sample_pairs(pairs: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """At most `n` pairs of each paradigm, drawn with `seed`, in their original order."""
    kept = [group.sample(min(n, len(group)), random_state=seed).index for _, group in
            pairs.groupby("paradigm", sort=False)]
    return pairs.loc[sorted(i for index in kept for i in index)].reset_index(drop=True)


def _select(pairs: pd.DataFrame, selectors: str, path: Path) -> pd.DataFrame:
    """Rows whose paradigm, phenomenon or field is a selector; else whose phenomenon or paradigm contains it."""
    keep = pd.Series(False, index=pairs.index)
    for selector in (s.strip() for s in selectors.split(",") if s.strip()):
        exact = pairs[list(GROUPS)].eq(selector).any(axis=1)
        if not exact.any():
            exact = pairs["phenomenon"].str.contains(selector, regex=False) | pairs["paradigm"].str.contains(
                selector, regex=False)
        if not exact.any():
            raise ProbekitError(f"{path}: no paradigm, phenomenon or field matches {selector!r}; fields: "
                                f"{', '.join(sorted(pairs['field'].unique()))}; phenomena: "
                                f"{', '.join(sorted(pairs['phenomenon'].unique()))}")
        keep |= exact
    if not keep.any():
        raise ProbekitError(f"{path}: '{BLIMP}:' needs a paradigm, phenomenon or field after the colon")
    return pairs[keep].reset_index(drop=True)


def _problem(row: dict, same_allowed: bool = False) -> str | None:
    """Why a row is no minimal pair, or None. BLiMP's 7 pairs of identical sentences are kept as published
    (`same_allowed`: a tie is not a preference, so they count as misses, as in the paper's denominators)."""
    for key in ("good", "bad"):
        value = row.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return f"no {key} sentence"
        if not isinstance(value, str):
            return f"{key} must be text, got {type(value).__name__}"
        if MASK in value:
            return f"{MASK} in the {key} sentence {value!r} (pairs are whole sentences)"
    if not same_allowed and row["good"].strip() == row["bad"].strip():
        return f"good and bad are the same sentence {row['good'].strip()!r}"
    for key in GROUPS:
        if isinstance(row.get(key), (list, dict)):
            return f"{key} must be text, got {type(row[key]).__name__}"
    return None


def _read_rows(path: Path) -> list[tuple[str, dict]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return csv_rows(path)
        if suffix == ".jsonl":
            return _jsonl_rows(path, path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ProbekitError(f"{path}: cannot parse ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from exc
    raise ProbekitError(f"{path}: pairs files are .csv or .jsonl with good, bad columns, not {suffix or 'no suffix'}")


def _jsonl_rows(path: Path, text: str) -> list[tuple[str, dict]]:
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ProbekitError(f"{path}: line {i}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ProbekitError(f"{path}: line {i}: expected a JSON object with good, bad; got {type(record).__name__}")
        rows.append((f"line {i}", record))
    return rows


def blimp_baselines() -> pd.DataFrame:
    """BLiMP's published reference accuracies: one row per level (paradigm, phenomenon, all) × name × model.

    Models: the paper's 5-gram, LSTM, Transformer-XL and GPT-2 (`paper_results.jsonl`) and human agreement
    (`human_validation_summary.csv`, per paradigm; per phenomenon and overall as the mean over paradigms,
    as the paper averages). The paper counts BLiMP's two `s-selection` paradigms under argument_structure,
    so that phenomenon has no reference row of its own.
    """
    labels = {"ngram": "5-gram", "lstm": "LSTM", "txl": "Transformer-XL", "gpt2": "GPT-2"}
    rows, phenomenon_of = [], {}
    for line in (BLIMP_DIR / "paper_results.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        uid, term = record["UID"], record["linguistics_term"]
        level, name = (("all", "all") if term == "overall" else ("phenomenon", term)) if uid == "overall" else (
            "paradigm", uid)
        if level == "paradigm":
            phenomenon_of[uid] = term
        rows += [{"level": level, "name": name, "model": label, "accuracy": float(record[key])}
                 for key, label in labels.items()]
    with open(BLIMP_DIR / "human_validation_summary.csv", newline="", encoding="utf-8") as f:
        human = {row["Condition"]: float(row["total_mean"]) for row in csv.DictReader(f)
                 if row["Condition"] in phenomenon_of}  # two validated conditions are not among the 67
    rows += [{"level": "paradigm", "name": uid, "model": "human", "accuracy": value} for uid, value in human.items()]
    per_phenomenon = pd.Series(human).groupby(pd.Series(phenomenon_of)).mean()
    rows += [{"level": "phenomenon", "name": term, "model": "human", "accuracy": value}
             for term, value in per_phenomenon.items()]
    rows.append({"level": "all", "name": "all", "model": "human", "accuracy": float(pd.Series(human).mean())})
    return pd.DataFrame(rows)


WORD_EDGES = re.compile(r"^(\W*)(.*?)(\W*)$")
CHOICE = "choice:"


def is_choice_spec(spec: str | Path) -> bool:
    return str(spec).startswith(CHOICE)


def load_choices(spec: str, sample: int | None = None) -> Benchmark:
    """`choice:PAIRS` (`choice:blimp:agreement`, `choice:pairs.csv`): `word_choices` of those pairs."""
    return word_choices(load_pairs(str(spec)[len(CHOICE):], sample))


def word_choices(bench: PairBenchmark) -> Benchmark:
    """The pairs whose sentences differ in exactly one word, as fill-mask prompts with a foil: the good
    sentence with that word masked, the good word as the answer and the bad one as its candidate.

    This is BLiMP's one-prefix method done for a masked LM (Goldberg 2019: compare the two words at one
    mask), offered for every paradigm where the sentences allow it (in BLiMP, the 20 one-prefix paradigms
    and a few more); punctuation attached to the word stays in the prompt. The relation is the paradigm.
    """
    rows = []
    for pair in bench.pairs.itertuples(index=False):
        good, bad = pair.good.split(), pair.bad.split()
        where = [i for i, (g, b) in enumerate(zip(good, bad)) if g != b]
        if len(good) != len(bad) or len(where) != 1:
            continue
        (g_open, g_word, g_close), (b_open, b_word, b_close) = (WORD_EDGES.match(w).groups()
                                                                for w in (good[where[0]], bad[where[0]]))
        if (g_open, g_close) != (b_open, b_close) or not g_word or not b_word or g_word == b_word:
            continue
        template = " ".join([*good[:where[0]], g_open + MASK + g_close, *good[where[0] + 1:]])
        rows.append({"relation": pair.paradigm, "template": template, "subject": "", "answer": g_word,
                     "candidates": [b_word]})
    if not rows:
        raise ProbekitError(f"{bench.source}: no pair of {bench.name} differs in exactly one word; "
                            "choice: needs pairs like 'The keys are here.' / 'The keys is here.'")
    prompts = pd.DataFrame(rows).assign(benchmark=f"{CHOICE}{bench.name}")
    prompts["prompt"] = prompts["template"]
    prompts = prompts.drop_duplicates(subset=["relation", "prompt", "answer"]).reset_index(drop=True)
    return Benchmark(f"{CHOICE}{bench.name}", bench.source, prompts[BENCH_COLUMNS], list(bench.problems),
                     candidates=prompts["candidates"].tolist())


def _register() -> None:
    from probekit.benchmarks.kinds import register_kind

    register_kind("pairs", "minimal pairs: good, bad sentences (BLiMP, or a CSV/JSONL file)",
                  claims=is_pair_spec, load=load_pairs, priority=10)
    register_kind("prompts", "fill-mask prompts", claims=is_choice_spec, load=load_choices, priority=20)


_register()
