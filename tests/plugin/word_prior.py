"""A user's analysis, written outside probekit as a user would: registered through the entry-point group
`probekit.analyses` of its own distribution (see tests/test_analyses.py, which installs it on a path).

`word-prior` asks each checkpoint how probable each word of a word list is at the mask of a template
(`--word-template`, default "[MASK] ."): a model's prior over words, which moves early in training. It
brings its own input kind (`words:FILE`, one word per line), a row table, a summary with bootstrap intervals
(`probekit.analyses.stats.share_intervals`), a cost, and a report page. Plain HF code: nothing of probekit's kernel.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from probekit.analyses import Analysis, Options, option, register
from probekit.benchmarks.kinds import register_kind
from probekit.core.errors import ProbekitError
from probekit.core.schema import CHECKPOINT_COLUMNS, CHECKPOINT_ID, N_SEEDS, Table, bounds, columns
from probekit.analyses.stats import share_intervals

PREFIX = "words:"


@dataclass
class Words:
    name: str
    words: list[str]
    problems: list[str] = field(default_factory=list)
    sha256: str = ""

    def __post_init__(self):
        self.sha256 = hashlib.sha256(json.dumps(self.words).encode()).hexdigest()[:16]

    @property
    def size(self) -> int:
        return len(self.words)

    def describe(self) -> dict:
        return {"words": len(self.words), "sha256": self.sha256}


def load_words(spec: str, sample: int | None = None) -> Words:
    path = Path(spec[len(PREFIX):])
    if not path.is_file():
        raise ProbekitError(f"{path}: no such word list")
    lines = [line.strip() for line in path.read_text().splitlines()]
    problems = [f"{path}: line {i}: more than one word; line skipped" for i, w in enumerate(lines, 1) if " " in w]
    words = [w for w in lines if w and " " not in w]
    return Words(path.stem, words[:sample] if sample else words, problems)


register_kind("words", "a word list, one per line: words:FILE", claims=lambda s: str(s).startswith(PREFIX),
              load=load_words, priority=40)

WORD_PRIOR = Table("word_prior", "checkpoint × word", columns(
    *CHECKPOINT_COLUMNS, ("words", "str", "the word list"), ("word", "str", "the word"),
    ("logprob", "float", "log-probability of the word's first piece at the template's mask"),
    ("top10", "bool", "the word's first piece is among the 10 most probable"),
), "Each word's probability at the mask of the template.")
WORD_PRIOR_SUMMARY = Table("word_prior_summary", "checkpoint × word list", columns(
    *CHECKPOINT_COLUMNS, ("words", "str", "the word list"), ("n", "int", "words"),
    ("top10", "float", "share of words among the 10 most probable"), *bounds(("top10",), over="words"), N_SEEDS,
), "The share of words the checkpoint ranks in its top 10, with a bootstrap interval over words.")


@dataclass(frozen=True)
class WordPriorOptions(Options):
    template: str = option("[MASK] .", "Template whose [MASK] the words fill.", flag="--word-template")


class WordPrior(Analysis):
    name = "word-prior"
    help = "each word's probability at a template's mask (tables word_prior, word_prior_summary)"
    options = WordPriorOptions
    inputs = "words"
    tables = (WORD_PRIOR, WORD_PRIOR_SUMMARY)
    on_control = True
    report = "word_prior:section"
    report_title = "Word priors"

    def cost(self, shape, item) -> float:
        return float(item.size) * 0.01

    def run(self, checkpoint, ctx, words: Words) -> pd.DataFrame:
        template = ctx.opts(self.name).template
        tok, model = checkpoint.tokenizer, checkpoint.model(ctx.device)
        text = template.replace("[MASK]", tok.mask_token)
        batch = tok(text, return_tensors="pt")
        where = (batch["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
        with torch.no_grad():
            logits = model(**batch).logits[0, where].float()
        logprobs = logits.log_softmax(-1)
        top = set(logprobs.topk(10).indices.tolist())
        first = [tok(w, add_special_tokens=False)["input_ids"][0] for w in words.words]
        return pd.DataFrame({"words": words.name, "word": words.words,
                             "logprob": [float(logprobs[i]) for i in first], "top10": [i in top for i in first]})

    def summarize(self, frame, ctx) -> dict[str, pd.DataFrame]:
        keys = [*CHECKPOINT_ID, "words"]
        work = frame.assign(hit=frame["top10"].astype(float))
        out = work.groupby(keys, sort=False, dropna=False).agg(n=("hit", "size"), top10=("hit", "mean")).reset_index()
        out = out.merge(share_intervals(work, keys, "hit", item="word"), on=keys, how="left")
        return {WORD_PRIOR_SUMMARY.name: out.rename(columns={"hit_low": "top10_low", "hit_high": "top10_high"})}


def section(page, tables, results) -> None:
    summary = tables["word_prior_summary"]
    page.add("word-prior.md", "# Word priors", "",
             f"Share of the words in each checkpoint's top 10 at the mask ({len(summary)} rows).", "",
             *page.table(summary[["checkpoint", "step", "top10", "top10_low", "top10_high"]], ("word-prior",)))


register(WordPrior)
