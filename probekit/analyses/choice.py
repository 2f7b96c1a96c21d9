"""Choices: a fill-mask prompt with foils is right when its gold answer is more probable than every foil.

A benchmark row may name `candidates` (oLMpics' multiple-choice MLM), and `choice:PAIRS` turns minimal
pairs that differ in one word into such rows (BLiMP's one-prefix method for a masked LM, Goldberg 2019).
Each option is scored by the same kernel as the gold answer (`probekit.analyses.scoring`: one mask per piece, its
log-probability summed over the pieces, all masked at once), so a one-piece and a two-piece option are
compared as `pipeline("fill-mask")` users would. A prompt with an option that cannot be scored is counted
apart (`scorable` false), never as a miss; a tie is a miss.
"""

from __future__ import annotations

from probekit.core import lazy
from probekit.analyses.base import Analysis, Context, register
from probekit.core.schema import (CHECKPOINT_COLUMNS, CHECKPOINT_ID, N_SEEDS, PROMPT_COLUMNS,
                             RELATION_ID, Table, bounds, columns)

np = lazy.module("numpy")
pd = lazy.module("pandas")

CHOICES = Table("choices", "checkpoint × prompt with candidates", columns(
    *CHECKPOINT_COLUMNS, *PROMPT_COLUMNS,
    ("candidates", "list[str]", "the foils the gold answer is compared with"),
    ("gold_logprob", "float", "log-probability of the gold answer (sum over its pieces, all masked at once)"),
    ("best_foil", "str", "the most probable foil"),
    ("best_foil_logprob", "float", "its log-probability"),
    ("margin", "float", "gold_logprob − best_foil_logprob"),
    ("scorable", "bool", "the answer and every foil could be scored (see probekit.analyses.scoring)"),
    ("correct", "bool", "gold more probable than every foil (False where not scorable: see `scorable`)"),
), "Every prompt that names foils, scored as a choice on every checkpoint.")
CHOICE_ACCURACY = Table("choice_accuracy", "checkpoint × benchmark × relation × group", columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation (for choice:PAIRS, "
                                                                                      "the paradigm)"),
    ("group", "str", "fact-injection group"),
    ("n", "int", "scorable prompts: the denominator of accuracy"),
    ("n_unscorable", "int", "prompts with an option that could not be scored; counted apart"),
    ("accuracy", "float", "share of scorable prompts whose gold answer beats every foil"),
    *bounds(("accuracy",)), N_SEEDS,
), "Choice accuracy per relation, from the choices table (chance: 1 / (foils + 1)); with several seeds also per "
   "step pooled over them (run `all-seeds`, seeds and prompts resampled together).")
CHOICE_ID = [*CHECKPOINT_ID, *RELATION_ID]


class Choice(Analysis):
    name = "choice"
    help = ("prompts with foils (a candidates column, or choice:PAIRS) scored as a choice (tables choices, "
            "choice_accuracy); runs when a benchmark names foils")
    tables = (CHOICES, CHOICE_ACCURACY)
    on_control = True
    report = "probekit.report.sections:choice"
    report_title = "Choices"

    def wanted(self, ctx: Context) -> bool:
        return any(b.candidates for b in ctx.of(self.inputs))

    def cost(self, shape, item) -> float:
        return float(sum(len(c) + 1 for c in item.candidates or []))

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        from probekit.models.families import max_tokens
        from probekit.analyses.scoring import encode_prompts, score_encoded

        columns = [c for c in CHOICES.names if c not in (*CHECKPOINT_ID, "group")]
        if not bench.candidates:
            return pd.DataFrame(columns=columns)
        prompts = bench.prompts.assign(candidates=bench.candidates)
        prompts = prompts[prompts["candidates"].map(len) > 0].reset_index(drop=True)
        options = prompts.assign(option=[[a, *c] for a, c in zip(prompts["answer"], prompts["candidates"])],
                                 which=range(len(prompts))).explode("option", ignore_index=True)
        encoded = encode_prompts(options.assign(answer=options["option"]), checkpoint.tokenizer,
                                 max_tokens(checkpoint.config))
        scored = score_encoded(checkpoint.model(ctx.device), checkpoint.tokenizer, encoded, 1, ctx.batch_size)
        options["logprob"] = scored["gold_logprob"].to_numpy()
        options.loc[_indistinct(options, encoded["pieces"], checkpoint.tokenizer.all_special_ids), "logprob"] = None
        return prompts.assign(**_decide(options, len(prompts)))[columns]

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        return {CHOICE_ACCURACY.name: choice_accuracy(frame)}


def _indistinct(options: pd.DataFrame, pieces: list[list[int]], special: list[int]) -> np.ndarray:
    """Foils this tokenizer cannot tell from the gold answer (`Rome` for `rome` in an uncased vocabulary) or
    that spell a special token: such a prompt is no choice, so it is counted unscorable, never a tie."""
    spelled = [tuple(p) for p in pieces]
    first = (~options["which"].duplicated()).to_numpy()
    gold = {w: spelled[i] for i, w in enumerate(options["which"]) if first[i]}
    special = set(special)
    return np.array([not first[i] and (spelled[i] == gold[w] or bool(special.intersection(spelled[i])))
                     for i, w in enumerate(options["which"])], dtype=bool)


def _decide(options: pd.DataFrame, n: int) -> dict:
    """Per prompt: the gold answer's log-probability, the best foil, the margin, scorable and correct."""
    gold = options.groupby("which").head(1).set_index("which")["logprob"].reindex(range(n))
    foils = options[options["option"] != options["answer"]].sort_values("logprob", ascending=False,
                                                                        na_position="last", kind="stable")
    best = foils.groupby("which").head(1).set_index("which").reindex(range(n))
    scorable = options.groupby("which")["logprob"].agg(lambda v: bool(np.isfinite(v).all())).reindex(range(n))
    margin = (gold - best["logprob"]).where(scorable)
    return {"gold_logprob": gold.to_numpy(), "best_foil": best["option"].fillna("").to_numpy(),
            "best_foil_logprob": best["logprob"].to_numpy(float), "margin": margin.to_numpy(float),
            "scorable": scorable.to_numpy(bool), "correct": (margin > 0).to_numpy(bool)}


def choice_accuracy(choices: pd.DataFrame) -> pd.DataFrame:
    """Accuracy, n and its bootstrap interval per checkpoint × benchmark × relation × group."""
    from probekit.analyses.stats import share_intervals, with_pooled_seeds

    if choices.empty:
        return pd.DataFrame(columns=CHOICE_ACCURACY.names)
    choices = with_pooled_seeds(choices).assign(_item=lambda f: f["relation"] + "\x1f" + f["prompt"] + "\x1f"
                                                + f["answer"])
    work = choices.assign(hit=choices["correct"].astype(float).where(choices["scorable"].astype(bool)))
    out = work.groupby(CHOICE_ID, sort=False, dropna=False).agg(
        n=("hit", "count"), total=("hit", "size"), accuracy=("hit", "mean")).reset_index()
    out["n_unscorable"] = out["total"] - out["n"]
    out = out.merge(share_intervals(work, CHOICE_ID, "hit", item="_item"), on=CHOICE_ID, how="left", sort=False)
    return out.rename(columns={"hit_low": "accuracy_low", "hit_high": "accuracy_high"})[CHOICE_ACCURACY.names]


register(Choice)
