"""Confidence intervals and paired comparisons for probing scores, so a difference can be told from noise.

Percentile bootstrap over prompts (95% by default): every resample draws the prompts with replacement and
recomputes the metric. When the series holds several training seeds, the prompts and the seeds are drawn
with replacement together — the Multi-Bootstrap of Sellam et al., "The MultiBERTs: BERT Reproductions for
Robustness Analysis" (ICLR 2022) — so an interval covers both "another sample of prompts" and "another
pretraining run". The number of resamples, the level and the random seed are recorded with every result
(`Interval`, `Comparison`, and the results manifest's `statistics`).

Per-prompt values come from `probekit.analyses.scoring.summarize` (the one definition of P@1, P@10, MRR and of the
unscorable rule): an unscorable prompt is missing and left out of every resample's denominator.

Seeds: the series holds several seeds when it holds several runs labelled with different seeds
(`seed-0/checkpoint-N`, `seed-1/checkpoint-N`, …, hub names `…-seed_3-step_20k`, or the runs' records);
runs without a label are models of their own, never pooled. With several seeds the scores table also holds
one row per step the seeds share, pooled over them (run and seed `all-seeds`).

Resampling is done as counts: a resample is a [prompts] vector of how often each prompt was drawn, so the
resampled means of every checkpoint of a relation are one matrix product. All checkpoints of a relation share
the same resamples (seeded from the seed and the relation's name), so a checkpoint's interval does not
depend on which other checkpoints or relations were probed.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from probekit.core.schema import CHECKPOINT_ID, CONTROL, POOLED, PROMPT_ID
from probekit.analyses.scoring import summarize

LEVEL = 0.95
RESAMPLES = 1000
SEED = 0
METRICS = ("p_at_1", "p_at_10", "mrr")


def settings(level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """What the manifest records about the intervals of a run."""
    return {"method": "percentile bootstrap over prompts; over seeds and prompts jointly with several seeds "
                      "(Multi-Bootstrap)", "level": level, "resamples": resamples, "seed": seed}


@dataclass(frozen=True)
class Interval:
    """A metric's estimate and its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n: int
    n_seeds: int
    level: float
    resamples: int
    seed: int

    def __str__(self) -> str:
        return f"{self.estimate:.2f} [{self.low:.2f}, {self.high:.2f}]"


@dataclass(frozen=True)
class Comparison:
    """A − B: the difference of means, its percentile bootstrap interval and a two-sided bootstrap p-value."""

    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float
    paired: bool
    n_seeds: int
    level: float
    resamples: int
    seed: int

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    def __str__(self) -> str:
        p = format_p(self.p_value, self.resamples)
        return f"{self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}], p {p if p[0] == '≤' else '= ' + p}"


def format_p(p: float, resamples: int = RESAMPLES) -> str:
    """A p-value as text; at the bootstrap's floor (no resample crossed zero) as `≤ 2/(resamples + 1)`."""
    floor = 2 / (resamples + 1)
    return "n/a" if np.isnan(p) else f"≤ {floor:.3g}" if p <= floor * (1 + 1e-9) else f"{p:.3f}"


def bootstrap(values, *, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED) -> Interval:
    """Interval of the mean of per-prompt `values`: shape [prompts], or [seeds, prompts] (Multi-Bootstrap).

    Missing values (unscorable prompts) are left out of the estimate and of every resample.
    """
    matrix = _matrix(values)
    rng = np.random.default_rng(seed)
    means = _resampled_means(matrix[:, None, :], _counts(rng, resamples, matrix.shape[1]),
                             _seed_counts(rng, resamples, matrix.shape[0]))[0]
    low, high = _percentiles(means, level)
    return Interval(_mean(matrix), float(low), float(high), int(np.isfinite(matrix).sum()), matrix.shape[0],
                    level, resamples, seed)


def compare(a, b, *, paired: bool = True, level: float = LEVEL, resamples: int = RESAMPLES,
            seed: int = SEED) -> Comparison:
    """Mean of `a` minus mean of `b`, each [prompts] or [seeds, prompts], with the same seeds (rows) in both.

    paired: `a` and `b` hold the same prompts in the same order (checkpoint A vs B, one relation's two
        templates), resampled together, so what the prompts share cancels out. Unpaired: each side's prompts
        are resampled on their own (injected vs held-back countries: different prompts, same model).
    Seeds are always resampled together: both sides come from the same training runs.
    The p-value is two-sided, from the bootstrap distribution of the difference: twice the smaller share of
    resampled differences on either side of 0, as (count + 1) / (resamples + 1), at most 1 — so it is below
    1 − level exactly when the interval (nearly) excludes 0, and never below 2 / (resamples + 1).
    """
    a, b = _matrix(a), _matrix(b)
    if a.shape[0] != b.shape[0] or (paired and a.shape != b.shape):
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}"
                         + (" paired: the same prompts are needed on both sides" if paired else ""))
    rng = np.random.default_rng(seed)
    draws = _counts(rng, resamples, a.shape[1])
    seeds = _seed_counts(rng, resamples, a.shape[0])
    if paired:
        both = _resampled_means(np.stack([a, b], axis=1), draws, seeds)
        diffs = both[0] - both[1]
    else:
        diffs = (_resampled_means(a[:, None, :], draws, seeds)[0]
                 - _resampled_means(b[:, None, :], _counts(rng, resamples, b.shape[1]), seeds)[0])
    low, high = _percentiles(diffs, level)
    diffs = diffs[np.isfinite(diffs)]
    below, above = (diffs <= 0).sum(), (diffs >= 0).sum()
    p = min(1.0, 2 * (min(below, above) + 1) / (len(diffs) + 1)) if len(diffs) else float("nan")
    mean_a, mean_b = _mean(a), _mean(b)
    return Comparison(mean_a, mean_b, mean_a - mean_b, float(low), float(high), p, paired, a.shape[0], level,
                      resamples, seed)


# ---------------------------------------------------------------- tables


def seeds_of(predictions: pd.DataFrame) -> list[str]:
    """The runs that are seeds of one series: at least two runs labelled with a seed (`seed` column), no two
    with the same label, probed at some steps in common; else []. A run without a seed label is a model of its
    own and is never pooled with others (two recipes, or two families, are not two seeds)."""
    rows = predictions[(predictions["checkpoint"] != CONTROL) & (predictions["run"] != POOLED)]
    if "seed" not in rows.columns:
        return []
    labels = rows.groupby("run", sort=True)["seed"].agg(lambda s: set(s.dropna()))
    labels = labels[labels.map(lambda ls: len(ls) == 1 and "" not in ls)].map(lambda ls: next(iter(ls)))
    if len(labels) < 2 or labels.duplicated().any() or not shared_steps(rows, list(labels.index)):
        return []
    return list(labels.index)


def shared_steps(predictions: pd.DataFrame, runs: list[str]) -> set:
    """The steps every one of `runs` was probed at (where its seeds can be pooled)."""
    steps = [set(s.dropna().unique().tolist()) for _, s in
             predictions[predictions["run"].isin(runs)].groupby("run", sort=True)["step"]]
    return set.intersection(*steps) if steps else set()


def with_pooled_seeds(predictions: pd.DataFrame) -> pd.DataFrame:
    """`predictions` with a `_seed` column (the seed resampled; "" = one seed) and, when the series holds
    several seeds, a copy of every seed's rows at the steps they share relabelled as the step pooled over
    seeds (run and seed `all-seeds`, checkpoint `all-seeds/step-N`)."""
    frame = predictions.assign(_seed="")
    if "seed" not in frame.columns:
        frame["seed"] = ""
    seeds = seeds_of(predictions)
    if not seeds:
        return frame
    steps = shared_steps(frame[frame["checkpoint"] != CONTROL], seeds)
    rows = frame[frame["run"].isin(seeds) & (frame["checkpoint"] != CONTROL) & frame["step"].isin(steps)]
    pooled = rows.assign(_seed=rows["run"], run=POOLED, seed=POOLED,
                         checkpoint=f"{POOLED}/step-" + rows["step"].astype(str))
    return pd.concat([frame, pooled], ignore_index=True)


def score_table(frame: pd.DataFrame, keys: list[str], *, metrics: tuple[str, ...] = METRICS,
                level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """`summarize(frame, keys)` with, per metric, `{metric}_low` and `{metric}_high`, and `n_seeds`.

    frame: predictions, or `with_pooled_seeds(predictions)` for the rows pooled over seeds too, whose
    intervals resample seeds and prompts jointly; every other row's interval resamples its prompts.
    """
    table = summarize(frame, keys)
    bounds = intervals(frame, keys, metrics=metrics, level=level, resamples=resamples, seed=seed)
    return table.merge(bounds, on=keys, how="left", sort=False)


def intervals(frame: pd.DataFrame, keys: list[str], *, metrics: tuple[str, ...] = METRICS, level: float = LEVEL,
              resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """Per group of `keys`: each metric's interval over prompts (and over seeds where `frame` has a `_seed`
    column with several values in the group, as `with_pooled_seeds` makes), one row per group with `n_seeds`.

    Groups that differ only in checkpoint, run or step share their resamples and are done in one product.
    """
    frame = frame if "_seed" in frame.columns else frame.assign(_seed="")
    frame = _prompt_codes(frame).assign(_pooled=frame["_seed"] != "")
    per_prompt = summarize(frame, [*keys, "_pooled", "_seed", "_prompt"])
    rows = [k for k in keys if k in CHECKPOINT_ID]
    blocks = [k for k in keys if k not in CHECKPOINT_ID] + ["_pooled"]
    out = []
    for block_key, block in per_prompt.groupby(blocks, sort=False, dropna=False):
        row_codes = block.groupby(rows, sort=False, dropna=False).ngroup().to_numpy() if rows else np.zeros(
            len(block), int)
        seed_codes, seed_names = pd.factorize(block["_seed"])
        prompt_codes, prompt_names = pd.factorize(block["_prompt"])
        shape = (len(seed_names), int(row_codes.max()) + 1, len(prompt_names))
        rng = np.random.default_rng([seed, zlib.crc32(repr(block_key).encode())])
        draws, seeds = _counts(rng, resamples, shape[2]), _seed_counts(rng, resamples, shape[0])
        result = block.loc[~pd.Series(row_codes, index=block.index).duplicated(), rows].reset_index(drop=True)
        for column, value in zip(blocks[:-1], block_key[:-1]):
            result[column] = value
        values = np.full((shape[0], len(metrics), *shape[1:]), np.nan)
        for m, metric in enumerate(metrics):
            values[seed_codes, m, row_codes, prompt_codes] = block[metric].to_numpy(float)
        means = _resampled_means(values.reshape(shape[0], -1, shape[2]), draws, seeds)
        low, high = _percentiles(means.reshape(len(metrics), shape[1], -1), level)
        for m, metric in enumerate(metrics):
            result[f"{metric}_low"], result[f"{metric}_high"] = low[m], high[m]
        result["n_seeds"] = shape[0]
        out.append(result)
    columns = [*keys, *(f"{m}_{side}" for m in metrics for side in ("low", "high")), "n_seeds"]
    if not out:
        return pd.DataFrame(columns=columns)
    table = pd.concat(out, ignore_index=True)[columns]
    return table.astype({k: frame[k].dtype for k in keys})


def share_intervals(frame: pd.DataFrame, keys: list[str], column: str, *, item: str | None = None,
                    level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """Per group of `keys`: the percentile bootstrap interval of the mean of `column` over the group's rows
    (an accuracy over pairs or choices; missing values are unscorable and left out), as `{column}_low` and
    `{column}_high`, and `n_seeds`. Where a group holds several seeds (`_seed`, as `with_pooled_seeds` makes)
    and `item` names what identifies a row across seeds (a pair, a prompt), seeds and items are resampled
    together (Multi-Bootstrap). Each group draws its own resamples, seeded from `seed` and the group's key."""
    records = []
    for key, rows in frame.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = _seed_matrix(rows, column, item)
        low = high = float("nan")
        if np.isfinite(values).any():
            rng = np.random.default_rng([seed, zlib.crc32(repr(key).encode())])
            means = _resampled_means(values[:, None, :], _counts(rng, resamples, values.shape[1]),
                                     _seed_counts(rng, resamples, values.shape[0]))[0]
            low, high = _percentiles(means, level)
        records.append({**dict(zip(keys, key)), f"{column}_low": float(low), f"{column}_high": float(high),
                        "n_seeds": values.shape[0]})
    return pd.DataFrame(records, columns=[*keys, f"{column}_low", f"{column}_high", "n_seeds"])


def _seed_matrix(rows: pd.DataFrame, column: str, item: str | None) -> np.ndarray:
    """[seeds, items] of `column` when the rows hold several seeds of the same items; else [1, rows]."""
    if item is None or "_seed" not in rows.columns or rows["_seed"].nunique() < 2:
        return rows[column].to_numpy(float)[None, :]
    return _matrix_of(rows.assign(_prompt=rows[item]), "_seed", column)


def group_differences(predictions: pd.DataFrame, a: str = "injected", b: str = "held_back", *,
                      step: int | None = None, metric: str = "p_at_1", level: float = LEVEL,
                      resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """Fact group `a` minus group `b` per benchmark × relation at `step` (default: the last step), on the
    same checkpoint (and seeds): the two groups' prompts are resampled apart, the seeds together.

    Empty when the predictions have no such groups.
    """
    frame = predictions[predictions["checkpoint"] != CONTROL]
    frame = frame[frame["group"].isin([a, b])].dropna(subset=["step"])
    columns = ["benchmark", "relation", "step", "n_seeds", a, b, "difference", "low", "high", "p_value"]
    if frame.empty or frame["group"].nunique() < 2:
        return pd.DataFrame(columns=columns)
    step = frame["step"].max() if step is None else step
    frame = frame[frame["step"] == step]
    seeds = seeds_of(predictions)
    frame = frame[frame["run"].isin(seeds)] if seeds else frame.drop_duplicates(["benchmark", *PROMPT_ID])
    per = summarize(_prompt_codes(frame).assign(_seed=frame["run"] if seeds else ""),
                    ["benchmark", "relation", "group", "_seed", "_prompt"])
    records = []
    for (bench, relation), rows in per.groupby(["benchmark", "relation"], sort=False):
        sides = [_matrix_of(rows[rows["group"] == g], "_seed", metric) for g in (a, b)]
        if any(s.size == 0 for s in sides):
            continue
        found = compare(*sides, paired=False, level=level, resamples=resamples, seed=seed)
        records.append({"benchmark": bench, "relation": relation, "step": step, "n_seeds": found.n_seeds,
                        a: found.a, b: found.b, "difference": found.difference, "low": found.low,
                        "high": found.high, "p_value": found.p_value})
    return pd.DataFrame(records, columns=columns)


def checkpoint_differences(predictions: pd.DataFrame, a: str, b: str, *, metric: str = "p_at_1",
                           level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """Checkpoint `a` minus checkpoint `b` per benchmark × relation × group, paired over the same prompts."""
    per = summarize(_prompt_codes(predictions[predictions["checkpoint"].isin([a, b])]),
                    ["benchmark", "relation", "group", "checkpoint", "_prompt"])
    records = []
    for key, rows in per.groupby(["benchmark", "relation", "group"], sort=False):
        if not {a, b} <= set(rows["checkpoint"]):
            continue
        both = _matrix_of(rows, "checkpoint", metric)
        order = list(pd.unique(rows["checkpoint"]))
        found = compare(both[order.index(a)], both[order.index(b)], paired=True, level=level,
                        resamples=resamples, seed=seed)
        records.append({**dict(zip(["benchmark", "relation", "group"], key)), **asdict(found)})
    return pd.DataFrame(records)


# ---------------------------------------------------------------- the resampling


def _matrix(values) -> np.ndarray:
    matrix = np.asarray(values, dtype=float)
    matrix = matrix[None, :] if matrix.ndim == 1 else matrix
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"values must be [prompts] or [seeds, prompts], got shape {np.shape(values)}")
    return matrix


def _prompt_codes(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with `_prompt`, one integer per distinct prompt (template, subject, answer, prompt)."""
    return frame.assign(_prompt=frame.groupby(PROMPT_ID, sort=False, dropna=False).ngroup())


def _matrix_of(rows: pd.DataFrame, by: str, metric: str) -> np.ndarray:
    """[values of `by` in order of appearance, prompts] of per-prompt values; missing where not probed."""
    row_codes, row_names = pd.factorize(rows[by])
    prompt_codes, prompt_names = pd.factorize(rows["_prompt"])
    matrix = np.full((len(row_names), len(prompt_names)), np.nan)
    matrix[row_codes, prompt_codes] = rows[metric].to_numpy(float)
    return matrix


def _mean(matrix: np.ndarray) -> float:
    return float(np.nanmean(matrix)) if np.isfinite(matrix).any() else float("nan")


def _counts(rng: np.random.Generator, resamples: int, n: int) -> np.ndarray:
    """[resamples, n]: how often each of n items is drawn when n are drawn with replacement."""
    draws = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)


def _seed_counts(rng: np.random.Generator, resamples: int, n_seeds: int) -> np.ndarray:
    return np.ones((resamples, 1)) if n_seeds == 1 else _counts(rng, resamples, n_seeds)


def _resampled_means(values: np.ndarray, draws: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """values [seeds, rows, prompts] (NaN = left out), draws [B, prompts], seeds [B, seeds] → [rows, B]."""
    n_seeds, n_rows, n_prompts = values.shape
    present = np.isfinite(values)
    flat = np.where(present, values, 0.0).reshape(-1, n_prompts)
    # einsum's own loop, not BLAS: these products are small, and a threaded BLAS on a busy machine is 20x slower
    sums = np.einsum("rp,bp->rb", flat, draws).reshape(n_seeds, n_rows, -1)
    patterns, which = np.unique(present.reshape(-1, n_prompts), axis=0, return_inverse=True)  # mostly one
    counts = np.einsum("rp,bp->rb", patterns.astype(float), draws)[which.ravel()].reshape(n_seeds, n_rows, -1)
    sums, counts = np.einsum("srb,bs->rb", sums, seeds), np.einsum("srb,bs->rb", counts, seeds)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def _percentiles(means: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval along the last axis, missing where every resample is missing."""
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(means, [tail, 100 - tail], axis=-1)
    return low, high


# ---------------------------------------------------------------- many claims at once


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family's p-values (Holm 1979): family-wise error control without
    assuming independence. Missing p-values stay missing and do not count in the family."""
    return _adjusted(p_values, lambda ranked, m: np.maximum.accumulate(ranked * (m - np.arange(m))))


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false-discovery rate, 1995); missing stay missing."""
    return _adjusted(p_values, lambda ranked, m: np.minimum.accumulate((ranked * m / (np.arange(m) + 1))[::-1])[::-1])


def _adjusted(p_values, step) -> np.ndarray:
    """`step(sorted present p-values, m)` → their adjusted values, capped at 1 and put back in place; missing
    p-values stay missing and do not count in the family."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    present = np.isfinite(p)
    m = int(present.sum())
    if m == 0:
        return out
    order = np.argsort(p[present], kind="stable")
    values = np.empty(m)
    values[order] = np.minimum(step(p[present][order], m), 1.0)
    out[present] = values
    return out


Z_LEVEL = 1.959963984540054  # the normal quantile of a two-sided 95% interval
Z_POWER = 0.8416212335729143  # of 80% power


def interval_se(low: float, high: float, level: float = LEVEL) -> float:
    """The standard error a percentile interval implies under a normal approximation: width / (2 z)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    return float((high - low) / (2 * z)) if np.isfinite(low) and np.isfinite(high) else float("nan")


def p_above(value: float, se: float, bar: float, bar_se: float = 0.0) -> float:
    """Two-sided p-value of value − bar under a normal approximation from the intervals' standard errors
    (`interval_se`); 0 or 1 when both standard errors are zero (an interval of zero width)."""
    from math import erfc, sqrt

    if not (np.isfinite(value) and np.isfinite(bar) and np.isfinite(se)):
        return float("nan")
    spread = sqrt(se ** 2 + (bar_se if np.isfinite(bar_se) else 0.0) ** 2)
    if spread == 0:
        return 0.0 if value != bar else 1.0
    return float(erfc(abs(value - bar) / spread / sqrt(2)))


def smallest_detectable(se: float, bar_se: float = 0.0) -> float:
    """The smallest difference from the bar detectable with 80% power at α = 0.05 (two-sided), given the
    standard errors: (z_0.975 + z_0.8) × se."""
    from math import sqrt

    if not np.isfinite(se):
        return float("nan")
    return float((Z_LEVEL + Z_POWER) * sqrt(se ** 2 + (bar_se if np.isfinite(bar_se) else 0.0) ** 2))


def sustained(steps, cleared) -> dict:
    """The emergence rule: a signal has emerged at step s when it clears its bar at s and at every later probed
    step. One dip restarts the count (the signal emerged at the step after its last miss); a signal that clears
    but not at the last step is transient; one that never clears is not established.

    Returns verdict (emerged, transient, not_established), step (the first step of the run of clearances that
    lasts to the end; for transient, the first clearance), step_low (the last probed step before it that did not
    clear: the arrival lies in (step_low, step]; missing when it cleared from the first probed step on),
    step_high (= step) and first_cleared."""
    steps, cleared = np.asarray(steps, dtype=float), np.asarray(cleared, dtype=bool)
    nan = float("nan")
    if not cleared.any():
        return {"verdict": "not_established", "step": nan, "step_low": nan, "step_high": nan, "first_cleared": nan}
    first = float(steps[cleared.argmax()])
    if not cleared[-1]:
        return {"verdict": "transient", "step": first, "step_low": nan, "step_high": nan, "first_cleared": first}
    misses = (~cleared).nonzero()[0]
    start = misses[-1] + 1 if len(misses) else 0
    low = float(steps[start - 1]) if start > 0 else nan
    return {"verdict": "emerged", "step": float(steps[start]), "step_low": low, "step_high": float(steps[start]),
            "first_cleared": first}


# ---------------------------------------------------------------- ratio-of-sums intervals (syntax analyses)
# Added for the probes and syntax heads (one bootstrap for every analysis): a metric pooled as Σhits / Σitems
# over sentences (a long sentence weighs by its words), and what the manifest records about each analysis's
# intervals.

MIN_ITEMS = 5
"""Fewest resampled units (held-out sentences) an interval is reported on; below it the bounds are missing."""


def interval_settings(over: str, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """What the manifest records about one analysis's intervals: `settings()` with what is resampled."""
    return {**settings(level, resamples, seed), "method": f"percentile bootstrap over {over}; seeds drawn "
            "with them when the series holds several (Multi-Bootstrap)", "over": over, "min_items": MIN_ITEMS}


def resampled_ratios(hits, items, *, key: str, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """[resamples, rows]: Σhits / Σitems of each row over its units (sentences) drawn with replacement, from hits
    and items [rows, units], or [seeds, rows, units] with the seeds drawn too (Multi-Bootstrap: seeds and units
    together). Every row shares the draws (a difference of rows is paired); the draws are seeded from `seed` and
    `key`, so an interval does not depend on what else was computed. Missing where a resample has no item."""
    hits, items = np.asarray(hits, dtype=float), np.asarray(items, dtype=float)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    counts = _counts(rng, resamples, hits.shape[-1])  # [resamples, units]
    with np.errstate(invalid="ignore", divide="ignore"):
        if hits.ndim == 2:
            return (counts @ hits.T) / (counts @ items.T)
        seed_counts = _counts(rng, resamples, hits.shape[0])  # [resamples, seeds]
        num = np.einsum("bs,srb->br", seed_counts, hits @ counts.T)
        den = np.einsum("bs,srb->br", seed_counts, items @ counts.T)
        return num / den


def ratio_intervals(hits, items, *, key: str, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED,
                    min_units: int = MIN_ITEMS) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(low [rows], high [rows], low and high of row 0 − row 1): percentile intervals of `resampled_ratios`,
    the difference paired (the same draws). All missing when there are fewer than `min_units` units (too few
    for an interval) — no warning either way."""
    hits = np.asarray(hits, dtype=float)
    rows = hits.shape[-2]
    if hits.shape[-1] < max(min_units, 1):
        return np.full(rows, np.nan), np.full(rows, np.nan), float("nan"), float("nan")
    ratios = resampled_ratios(hits, items, key=key, resamples=resamples, seed=seed)
    low, high = _percentiles(ratios.T, level)
    if rows < 2:
        return low, high, float("nan"), float("nan")
    diff_low, diff_high = _percentiles(ratios[:, 0] - ratios[:, 1], level)
    return low, high, float(diff_low), float(diff_high)
