"""The results format, in one place: every table probekit writes, its columns, their types, and one row per what.

A results folder holds one run: `manifest.json` (format version, run id, the files of the run, versions,
benchmarks, settings) and one Parquet file per table below, each stamped in its metadata with the same
format version and run id. Readers refuse a folder whose stamps disagree (an interrupted write) or whose
format version is not theirs. `FORMAT_VERSION` changes whenever a column, a type or a meaning changes;
it is also part of every cache key, so numbers of an older format are never served again.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMAT_VERSION = 6
#: the `checkpoint` label of the random-initialisation control's rows
CONTROL = "random-init"
#: the `run` and `seed` of the rows pooled over the seeds of a series (checkpoint `all-seeds/step-N`)
POOLED = "all-seeds"

#: logical type → pandas dtype used in memory (Parquet keeps the Arrow equivalent)
DTYPES = {"str": "string", "int": "Int64", "float": "float64", "bool": "bool",
          "list[str]": "object", "list[float]": "object"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str


@dataclass(frozen=True)
class Table:
    """One tidy table: its file name, what one row is, and its columns."""

    name: str
    row: str
    columns: tuple[Column, ...]
    doc: str = ""

    @property
    def file(self) -> str:
        return f"{self.name}.parquet"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def conform(self, frame):
        """`frame` with exactly this table's columns, in order, in their declared dtypes."""
        import pandas as pd

        missing = [c.name for c in self.columns if c.name not in frame.columns]
        if missing:
            raise ValueError(f"table {self.name!r} lacks columns {missing}")
        frame = frame[self.names].reset_index(drop=True)
        return pd.DataFrame({c.name: _cast(frame[c.name], c.type) for c in self.columns})


def _cast(values, kind: str):
    if kind in ("list[str]", "list[float]"):
        return values.map(lambda v: list(v) if v is not None else [])
    if kind == "bool":
        return values.fillna(False).astype(bool)
    return values.astype(DTYPES[kind])


def columns(*specs: tuple[str, str, str]) -> tuple[Column, ...]:
    """Columns from (name, type, meaning) triples: how every table, built-in or not, declares its own."""
    return tuple(Column(*spec) for spec in specs)


CHECKPOINT_COLUMNS = (
    ("checkpoint", "str", "the checkpoint's label: its folder name, prefixed by its run where names repeat"),
    ("run", "str", "the folder holding the checkpoint (the training run); the hub name's owner for hub models"),
    ("step", "int", "training step: trainer_state.json, else the step its name states (step_20k, checkpoint-500, "
                    "2M); missing if unknown"),
    ("seed", "str", "training seed (`seed-K` folder, hub name, or the run's record); empty when unknown and for "
                    "the random-init control; `all-seeds` on rows pooled over seeds"),
)
PROMPT_COLUMNS = (
    ("benchmark", "str", "benchmark name (shipped set or file stem)"),
    ("relation", "str", "the relation the prompt asks about"),
    ("group", "str", "fact-injection group: injected, held_back, other; all when the series injects none"),
    ("template", "str", "the template, [X] = subject, [MASK] = answer"),
    ("subject", "str", "what [X] was filled with"),
    ("answer", "str", "the gold answer"),
    ("prompt", "str", "the filled-in prompt"),
)
RANK_COLUMNS = (
    ("gold_rank", "float", "rank of the gold answer (1 = top); several wordpieces: the worst piece's rank. "
                           "Missing = unscorable (the answer's pieces do not fit, or the logits are not finite)"),
    ("gold_logprob", "float", "log-probability of the gold answer (sum over its pieces, all masked at once)"),
)
SCORE_COLUMNS = (
    ("n", "int", "scorable prompts: the denominator of p_at_1, p_at_10 and mrr"),
    ("n_unscorable", "int", "prompts that could not be scored; counted apart, never as misses"),
    ("p_at_1", "float", "share of scorable prompts with gold_rank 1"),
    ("p_at_10", "float", "share of scorable prompts with gold_rank ≤ 10"),
    ("mrr", "float", "mean of 1 / gold_rank over scorable prompts"),
    ("mean_gold_logprob", "float", "mean gold log-probability over scorable prompts"),
)

#: the columns naming a checkpoint, a prompt, and a fact relation: the keys tables are joined and grouped on
CHECKPOINT_ID = ["checkpoint", "run", "step", "seed"]
PROMPT_ID = ["template", "subject", "answer", "prompt"]
RELATION_ID = ["benchmark", "relation", "group"]


def bounds(metrics: tuple[str, ...], over: str = "prompts") -> tuple[tuple[str, str, str], ...]:
    """The `METRIC_low`/`METRIC_high` columns of 95% bootstrap intervals (`probekit.analyses.stats`)."""
    what = (f"bound of the 95% percentile bootstrap interval (1,000 resamples, seed 0) over {over}, and over "
            "seeds jointly where n_seeds > 1")
    return tuple((f"{metric}_{side}", "float", f"{'lower' if side == 'low' else 'upper'} {what}")
                 for metric in metrics for side in ("low", "high"))


N_SEEDS = ("n_seeds", "int", "training seeds behind the row: 1, or the seeds pooled in an all-seeds row (its "
                             "interval resamples seeds and items together)")

CHECKPOINTS = Table("checkpoints", "checkpoint", columns(
    *CHECKPOINT_COLUMNS,
    ("path", "str", "where it was read from (folder or hub name); missing for the random-init control"),
    ("family", "str", "model family, as its config's model_type says (bert, roberta, distilbert, albert, electra, "
                      "modernbert, …); missing when its config could not be read"),
    ("fingerprint", "str", "hash of the weights (equal weights, equal fingerprint)"),
    ("status", "str", "ok, duplicate (same weights, config and tokenizer as an earlier one), skipped, control"),
    ("duplicate_of", "str", "the checkpoint it duplicates"),
    ("error", "str", "why it was skipped"),
), "Every checkpoint given, in training order, and what became of it.")

TRAINING = Table("training", "logged training step", columns(
    ("step", "int", "optimiser step"), ("loss", "float", "training loss"),
    ("eval_loss", "float", "held-out MLM loss on fixed masks"), ("learning_rate", "float", "learning rate"),
    ("epoch", "float", "epoch"),
), "The series' training log (from the last checkpoint's trainer_state.json), when it has one.")

TABLES: dict[str, Table] = {t.name: t for t in (CHECKPOINTS, TRAINING)}
"""Every table of the results format by name: the run's own two here; each analysis's are added when it
registers (`probekit.analyses.load_builtins()` registers the built-in ones and those of installed packages)."""


def declare(table: Table) -> Table:
    """Add an analysis's table to the format (what `TABLES` and the reference page list)."""
    if table.name in TABLES and TABLES[table.name] != table:
        raise ValueError(f"table {table.name!r} is declared twice, differently")
    TABLES[table.name] = table
    return table


def reference_markdown() -> str:
    """The results-format reference page, generated from `TABLES` (call `probekit.analyses.load_builtins()`
    first to have every analysis's tables in it)."""
    lines = ["# Results format", "", f"Format version **{FORMAT_VERSION}**. " + __doc__.split("\n\n")[1].replace("\n", " "),
             "", "Beside the tables: `manifest.json` and, with capture, `attention/*.safetensors` "
             "(Q/K/V, patterns and head outputs per checkpoint, named as in `probekit.models.hooks`).", ""]
    for table in TABLES.values():
        lines += [f"## `{table.file}`", "", f"One row per **{table.row}**. {table.doc}", "",
                  "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {c.doc} |" for c in table.columns]
        lines.append("")
    return "\n".join(lines)
