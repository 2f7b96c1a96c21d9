"""Checkpoints of a series compared: which prompts became right or wrong and by how much their gold rank
moved, which heads changed most, and how far each block of weights moved. A prompt unscorable at either
checkpoint is counted apart, never newly right or lost. Works from a results folder (plus
the weight files, for the weights). Checkpoints are named as in checkpoints.parquet, or by step (`3000`),
or by position in training order (`-1` the last, `-2` the one before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from probekit.models.activations import Capture
from probekit.models.checkpoints import Checkpoint, masked_lm_class, read_weights
from probekit.core.errors import ProbekitError
from probekit.models.families import weight_block
from probekit.analyses.metrics import attention_drift
from probekit.running.results import ProbeResult
from probekit.core.schema import CONTROL
from probekit.models.series import resolve_checkpoints

KEYS = ["benchmark", "relation", "group", "prompt", "answer"]
SUMMARY = ["benchmark", "relation", "group", "prompts", "unscorable", "newly_right", "lost", "top1_changed"]
BLOCKS = ["block", "distance", "relative_distance"]


@dataclass
class CheckpointDiff:
    changed_prompts: pd.DataFrame   # prompts whose top-1 or gold rank changed, flips first (`rank_changes`)
    heads: pd.DataFrame             # layer, head, js (bits): attention change on the captured sentences
    weights: pd.DataFrame           # block, distance, relative_distance (`weight_distance`)
    summary: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SUMMARY))  # +N / −M per group
    a: str = ""
    b: str = ""


def training_order(predictions: pd.DataFrame) -> list[str]:
    """The probed checkpoints in training order (the random-init control first when present)."""
    rows = predictions.drop_duplicates("checkpoint")
    control = [c for c in rows["checkpoint"] if c == CONTROL]
    rest = rows[rows["checkpoint"] != CONTROL].sort_values(["step", "checkpoint"], kind="stable",
                                                           na_position="last")
    return control + rest["checkpoint"].tolist()


def resolve(predictions: pd.DataFrame, spec: str | int, where: str | Path = "") -> str:
    """A checkpoint's name from its name, its step (`3000`), or its position in training order (`-1`)."""
    order = training_order(predictions)
    text = str(spec)
    if text in order:
        return text
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is not None and number < 0 and -number <= len(order):
        return order[number]
    if number is not None:
        at = predictions.loc[(predictions["step"] == number) & (predictions["checkpoint"] != CONTROL),
                             "checkpoint"].unique()
        if len(at) == 1:
            return str(at[0])
        if len(at) > 1:
            raise ProbekitError(f"{where}: step {number} names several checkpoints ({', '.join(sorted(at))}); "
                                "give a name")
    raise ProbekitError(f"{where}: no checkpoint named or at step {text!r} (have: {', '.join(order)})")


def _paired(predictions: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Every prompt scored at both `a` and `b`, one row each: top1_a, gold_rank_a, top1_b, gold_rank_b, and
    `change`: "newly right" (rank 1 at `b` only), "lost" (at `a` only), "unscorable" (at either, so neither:
    the scoring module's one rule) or ""."""
    cols = [*KEYS, "top1", "gold_rank"]
    left, right = (predictions.loc[predictions["checkpoint"] == name, cols].drop_duplicates(KEYS) for name in (a, b))
    both = left.merge(right, on=KEYS, suffixes=("_a", "_b"))
    ra, rb = both["gold_rank_a"].astype(float), both["gold_rank_b"].astype(float)
    change = np.where((ra != 1) & (rb == 1), "newly right", np.where((ra == 1) & (rb != 1), "lost", ""))
    return both.assign(change=np.where(ra.isna() | rb.isna(), "unscorable", change))


def rank_changes(predictions: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Every prompt scored on both `a` and `b` whose top-1 or gold rank differs: both answers and ranks,
    `change` ("newly right", "lost", "unscorable" at one of them, or ""), `rank_change` (b − a; negative =
    better). Prompts newly right or lost first, the biggest move first; then those unscorable at one; then
    the other moves."""
    both = _paired(predictions, a, b)
    ra, rb = both["gold_rank_a"].astype(float), both["gold_rank_b"].astype(float)
    order = both["change"].map({"newly right": 0, "lost": 0, "unscorable": 1})
    both = both.assign(rank_change=rb - ra, _order=order, _size=-np.abs(np.log10(rb) - np.log10(ra)))
    same_rank = (ra == rb) | (ra.isna() & rb.isna())
    moved = both[(both["top1_a"] != both["top1_b"]) | ~same_rank].fillna({"_order": 2, "_size": 0})
    moved = moved.sort_values(["_order", "_size"], kind="stable")
    names = {f"{column}_{side}": f"{column}_{name}" for column in ("top1", "gold_rank")
             for side, name in (("a", a), ("b", b))}
    return moved.drop(columns=["_order", "_size"]).rename(columns=names).reset_index(drop=True)


def change_summary(predictions: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per benchmark × relation × group: prompts at both `a` and `b`; of those, unscorable at either (counted
    apart: neither newly right nor lost); and of the rest, newly right at `b`, lost, and top-1 changed."""
    both = _paired(predictions, a, b)
    scorable = both["change"] != "unscorable"
    both = both.assign(unscorable=~scorable, newly_right=both["change"] == "newly right",
                       lost=both["change"] == "lost", top1_changed=scorable & (both["top1_a"] != both["top1_b"]))
    out = both.groupby(["benchmark", "relation", "group"], sort=False).agg(
        prompts=("prompt", "size"), unscorable=("unscorable", "sum"), newly_right=("newly_right", "sum"),
        lost=("lost", "sum"), top1_changed=("top1_changed", "sum")).reset_index()
    return out[SUMMARY]


def neighbour_pairs(predictions: pd.DataFrame) -> list[tuple[str, str]]:
    """Consecutive checkpoints of each run in training order (the control is no neighbour)."""
    rows = predictions[predictions["checkpoint"] != CONTROL].drop_duplicates("checkpoint").dropna(subset=["step"])
    pairs = []
    for _, run in rows.groupby("run", sort=False):
        names = run.sort_values("step", kind="stable")["checkpoint"].tolist()
        pairs += list(zip(names, names[1:]))
    return pairs


def neighbour_summary(predictions: pd.DataFrame) -> pd.DataFrame:
    """`change_summary` for every pair of neighbouring checkpoints, with their names and steps."""
    steps = predictions.drop_duplicates("checkpoint").set_index("checkpoint")["step"]
    frames = [change_summary(predictions, a, b).assign(**{"from": a, "to": b, "from_step": steps[a],
                                                          "to_step": steps[b]})
              for a, b in neighbour_pairs(predictions)]
    columns = ["from", "to", "from_step", "to_step", *SUMMARY]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def comparable(probed: ProbeResult, results: str | Path) -> pd.DataFrame:
    """The predictions of `probed`, or a one-line error when they hold nothing to compare: no prompt was
    scored (a syntax-only or tracing-only run), or only one checkpoint was."""
    predictions = probed.predictions
    if predictions.empty:
        ran = ", ".join(a for a in probed.manifest.get("analyses", []) if a != "predictions") or "nothing"
        raise ProbekitError(f"{results}: nothing to compare: these results hold no fill-mask predictions (this run "
                            f"computed {ran}); diff compares prompts, so probe with prompts such as -b countries")
    if predictions["checkpoint"].nunique() < 2:
        raise ProbekitError(f"{results}: nothing to compare: one checkpoint was probed "
                            f"({predictions['checkpoint'].iloc[0]}); probe two or more")
    return predictions


def neighbours(results: str | Path) -> pd.DataFrame:
    """`neighbour_summary` of a results folder (one-line errors when there is nothing to compare)."""
    return neighbour_summary(comparable(ProbeResult.load(results), results))


def diff_checkpoints(results: str | Path, a: str | int, b: str | int | None = None) -> CheckpointDiff:
    """Compare checkpoints `a` and `b` of a probed series (names, steps, or -1 for the last); without `b`,
    `a` is compared with the checkpoint before it."""
    results = Path(results)
    probed = ProbeResult.load(results)
    predictions = comparable(probed, results)
    a = resolve(predictions, a, results)
    if b is None:
        before = {right: left for left, right in neighbour_pairs(predictions)}
        if a not in before:
            raise ProbekitError(f"{results}: {a} has no checkpoint before it; give two checkpoints")
        a, b = before[a], a
    else:
        b = resolve(predictions, b, results)
    if a == b:
        raise ProbekitError(f"{results}: give two different checkpoints to compare (both are {a!r})")
    return CheckpointDiff(rank_changes(predictions, a, b), head_change(results, probed.files, a, b),
                          _weight_change(probed.checkpoints, a, b), change_summary(predictions, a, b), a, b)


def head_change(results: Path, captures: dict[str, str], a: str, b: str) -> pd.DataFrame:
    """Per head, the Jensen–Shannon divergence (bits) of its attention on the captured sentences from `a` to
    `b`, largest first; empty when either was not captured."""
    if not (a in captures and b in captures):
        return pd.DataFrame(columns=["layer", "head", "js"])
    files = [results / captures[name] for name in (a, b)]
    if not all(f.is_file() for f in files):
        return pd.DataFrame(columns=["layer", "head", "js"])
    drift = attention_drift(Capture.load(files[0]), Capture.load(files[1]))
    if drift is None:
        return pd.DataFrame(columns=["layer", "head", "js"])
    rows = [{"layer": layer, "head": head, "js": float(v)} for layer, per_head in drift.items()
            for head, v in enumerate(per_head)]
    return pd.DataFrame(rows).sort_values("js", ascending=False, ignore_index=True)


def _weight_change(checkpoints: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    paths = checkpoints.set_index("checkpoint")["path"]
    if not all(isinstance(paths.get(n), str) and Path(paths[n]).is_dir() for n in (a, b)):
        return pd.DataFrame(columns=BLOCKS)
    return weight_distance(*(resolve_checkpoints(paths[n])[0] for n in (a, b)))


def weight_distance(a: Checkpoint, b: Checkpoint) -> pd.DataFrame:
    """Distance ‖a−b‖ and relative distance ‖a−b‖/‖a‖ per block of weights — embeddings, each layer, the MLM
    head, any other — as the family divides them (`families.weight_block`), in that order. Empty for
    checkpoints of two families: their weights do not correspond."""
    if a.family != b.family:
        return pd.DataFrame(columns=BLOCKS)
    prefix = masked_lm_class(a.config).base_model_prefix
    wa, wb = read_weights(a, a.allow_pickle), read_weights(b, b.allow_pickle)
    groups: dict[str, list[str]] = {}
    for name in sorted(set(wa) & set(wb)):
        groups.setdefault(weight_block(a.family, prefix, name), []).append(name)
    rows = []
    for block in sorted(groups, key=_block_order):
        names = groups[block]
        diff = sum(float((wa[n].float() - wb[n].float()).pow(2).sum()) for n in names) ** 0.5
        norm = sum(float(wa[n].float().pow(2).sum()) for n in names) ** 0.5
        rows.append({"block": block, "distance": diff, "relative_distance": diff / norm if norm else float("nan")})
    return pd.DataFrame(rows, columns=BLOCKS)


def _block_order(block: str) -> tuple[int, int]:
    """Embeddings, the layers by number, the MLM head, then anything else."""
    if block == "embeddings":
        return 0, 0
    if block.startswith("layer"):
        return 1, int(block.rsplit(" ", 1)[1])
    return (2, 0) if block == "mlm head" else (3, 0)
