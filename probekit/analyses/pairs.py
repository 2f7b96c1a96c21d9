"""Minimal pairs (BLiMP and user files): does the checkpoint prefer the good sentence? Grammar beside facts.

Each sentence is scored by its pseudo-log-likelihood (`probekit.analyses.pll`, PLL-word-l2r unless the run asks for
the original PLL; the metric is in the cache key and in every row). A pair is correct when PLL(good) >
PLL(bad): a tie (both sentences tokenize alike, or BLiMP's 7 pairs of identical sentences) is a miss, as
in the BLiMP paper, and counted in `ties`; a pair with an unscorable sentence is counted apart, never as a
miss. `pair_accuracy` sums the pairs up per paradigm, phenomenon, field and overall.
"""

from __future__ import annotations

from dataclasses import dataclass

from probekit.core import lazy
from probekit.analyses.base import Analysis, Context, Options, Shape, option, register
from probekit.core.schema import CHECKPOINT_COLUMNS, CHECKPOINT_ID, N_SEEDS, Table, bounds, columns

pd = lazy.module("pandas")

PAIR_COLUMNS = (
    ("benchmark", "str", "pairs benchmark (blimp, blimp:SELECTOR, blimp@N for a sample, or a file stem)"),
    ("metric", "str", "how sentences were scored: within_word_l2r (PLL-word-l2r) or original (PLL)"),
)
PAIRS = Table("pairs", "checkpoint × minimal pair", columns(
    *CHECKPOINT_COLUMNS, *PAIR_COLUMNS,
    ("pair_id", "str", "the pair's id in its benchmark (BLiMP's pairID, else the file's row or line)"),
    ("field", "str", "BLiMP field (morphology, syntax, semantics, syntax_semantics); else the file's or its name"),
    ("phenomenon", "str", "BLiMP phenomenon (linguistics_term); else the file's or its name"),
    ("paradigm", "str", "BLiMP paradigm (UID); else the file's or its name"),
    ("good", "str", "the acceptable sentence"),
    ("bad", "str", "the unacceptable one"),
    ("pll_good", "float", "pseudo-log-likelihood of good (natural log); missing = unscorable"),
    ("pll_bad", "float", "pseudo-log-likelihood of bad; missing = unscorable"),
    ("margin", "float", "pll_good − pll_bad"),
    ("scorable", "bool", "both sentences scorable (fit the model's positions, finite logits)"),
    ("correct", "bool", "pll_good > pll_bad (False where not scorable: use `scorable` to leave those out)"),
), "Every minimal pair scored on every checkpoint by pseudo-log-likelihood.")
PAIR_ACCURACY = Table("pair_accuracy", "checkpoint × pairs benchmark × level × name", columns(
    *CHECKPOINT_COLUMNS, *PAIR_COLUMNS,
    ("level", "str", "paradigm, phenomenon, field, or all"),
    ("name", "str", "the paradigm, phenomenon or field (all for the whole benchmark)"),
    ("n", "int", "scorable pairs: the denominator of accuracy"),
    ("n_unscorable", "int", "pairs with an unscorable sentence; counted apart, never as misses"),
    ("ties", "int", "scorable pairs with pll_good == pll_bad (e.g. both sentences tokenize alike): misses"),
    ("accuracy", "float", "share of scorable pairs with pll_good > pll_bad (chance: 0.5)"),
    ("mean_margin", "float", "mean pll_good − pll_bad over scorable pairs"),
    *bounds(("accuracy",), over="pairs"), N_SEEDS,
), "Minimal-pair accuracy per paradigm, phenomenon, field and overall, from the pairs table, with bootstrap "
   "intervals over pairs (`probekit.analyses.stats.share_intervals`); with several seeds also per step pooled over them.")
LEVELS = ("paradigm", "phenomenon", "field")


@dataclass(frozen=True)
class PairsOptions(Options):
    metric: str = option("within_word_l2r", "Sentence score for minimal pairs: PLL-word-l2r (Kauf & Ivanova 2023) or "
                                            "the original PLL (Salazar et al. 2020).", flag="--pll-metric",
                         choices=("within_word_l2r", "original"))


class Pairs(Analysis):
    name = "pairs"
    help = "minimal pairs scored by pseudo-log-likelihood (tables pairs, pair_accuracy); runs when pairs are given"
    options = PairsOptions
    inputs = "pairs"
    tables = (PAIRS, PAIR_ACCURACY)
    on_control = True
    report = "probekit.report.sections:pairs"
    report_title = "Grammar"

    def wanted(self, ctx: Context) -> bool:
        return bool(ctx.of(self.inputs))

    def settings(self, ctx: Context, item) -> dict:
        from probekit.analyses.pll import PLL_VERSION

        return {**super().settings(ctx, item), "pll": PLL_VERSION}

    def cost(self, shape: Shape, item) -> float:
        return float(item.size) * 10  # a PLL costs about one pass per token

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        from probekit.analyses.pll import BATCH, pll_scores

        metric = ctx.opts(self.name).metric
        pairs = bench.pairs
        sentences = list(dict.fromkeys([*pairs["good"], *pairs["bad"]]))
        scored = pll_scores(checkpoint.model(ctx.device), checkpoint.tokenizer, sentences, metric,
                            batch_size=max(ctx.batch_size, BATCH))
        pll = dict(zip(sentences, scored["pll"]))
        frame = pairs.assign(metric=metric, pll_good=pairs["good"].map(pll), pll_bad=pairs["bad"].map(pll))
        frame["margin"] = frame["pll_good"] - frame["pll_bad"]
        frame["scorable"] = frame["margin"].notna()
        frame["correct"] = frame["margin"] > 0
        return frame

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        return {PAIR_ACCURACY.name: pair_accuracy(frame)}


def pair_accuracy(pairs: pd.DataFrame) -> pd.DataFrame:
    """Accuracy, n and mean margin per checkpoint × benchmark × (paradigm, phenomenon, field, all), with
    bootstrap intervals; with several seeds, also per step pooled over them (run `all-seeds`)."""
    from probekit.analyses.stats import share_intervals, with_pooled_seeds

    keys = [*CHECKPOINT_ID, "benchmark", "metric"]
    pairs = with_pooled_seeds(pairs).assign(_pair=lambda f: f["benchmark"] + "\x1f" + f["paradigm"] + "\x1f"
                                            + f["pair_id"].astype(str))
    work = pairs.assign(all="all", hit=pairs["correct"].astype(float).where(pairs["scorable"]),
                        kept_margin=pairs["margin"].where(pairs["scorable"]),
                        tie=pairs["scorable"] & (pairs["margin"] == 0))
    frames = []
    for level in (*LEVELS, "all"):
        grouped = work.groupby([*keys, level], sort=False, dropna=False)
        out = grouped.agg(n=("scorable", "sum"), total=("scorable", "size"), ties=("tie", "sum"),
                          accuracy=("hit", "mean"), mean_margin=("kept_margin", "mean")).reset_index()
        bounds = share_intervals(work, [*keys, level], "hit", item="_pair")
        out = out.merge(bounds, on=[*keys, level], how="left", sort=False)
        frames.append(out.rename(columns={level: "name", "hit_low": "accuracy_low", "hit_high": "accuracy_high"})
                      .assign(level=level))
    if not any(len(f) for f in frames):
        return pd.DataFrame(columns=PAIR_ACCURACY.names)
    out = pd.concat(frames, ignore_index=True)
    out["n_unscorable"] = out["total"] - out["n"]
    return out[PAIR_ACCURACY.names]


register(Pairs)


def wrong_pairs(pairs: pd.DataFrame, checkpoint: str, paradigm: str | None = None) -> pd.DataFrame:
    """The pairs `checkpoint` gets wrong (of one paradigm, or phenomenon, when given), worst first: for a
    notebook, `wrong_pairs(result.tables["pairs"], "checkpoint-8000", "adjunct_island")`."""
    rows = pairs[(pairs["checkpoint"] == checkpoint) & pairs["scorable"] & ~pairs["correct"]]
    if paradigm is not None:
        rows = rows[(rows["paradigm"] == paradigm) | (rows["phenomenon"] == paradigm)]
    columns = ["benchmark", "paradigm", "good", "bad", "pll_good", "pll_bad", "margin"]
    return rows.sort_values("margin", kind="stable")[columns].reset_index(drop=True)
