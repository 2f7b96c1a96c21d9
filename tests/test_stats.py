import re
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from probekit.analyses.stats import (LEVEL, POOLED, RESAMPLES, SEED, bootstrap, checkpoint_differences, compare,
                            group_differences, score_table, seeds_of, with_pooled_seeds)

KEYS = ["checkpoint", "run", "step", "benchmark", "relation", "group"]


def made_predictions(ranks: dict[tuple[str, int], list[float]], groups: list[str] | None = None,
                     relation: str = "capital") -> pd.DataFrame:
    """A predictions table: (run, step) → gold ranks of the same prompts (NaN = unscorable)."""
    frames = []
    for (run, step), rank in ranks.items():
        n = len(rank)
        frames.append(pd.DataFrame({
            "checkpoint": f"{run}/checkpoint-{step}", "run": run, "step": step, "benchmark": "b",
            "relation": relation, "group": groups or ["all"] * n, "template": "[X] is [MASK].",
            "subject": [f"s{i}" for i in range(n)], "answer": "a", "prompt": [f"p{i}" for i in range(n)],
            "gold_rank": np.asarray(rank, float), "gold_logprob": -np.log(np.asarray(rank, float))}))
    frame = pd.concat(frames, ignore_index=True)
    return frame.astype({"step": "Int64"})


def test_prompt_bootstrap_agrees_with_scipy():
    rng = np.random.default_rng(1)
    for values in (rng.random(300) < 0.3, 1 / rng.integers(1, 40, 300)):
        ours = bootstrap(values, resamples=10_000, seed=3)
        theirs = scipy_stats.bootstrap((values,), np.mean, method="percentile", n_resamples=10_000,
                                       confidence_level=0.95, rng=np.random.default_rng(4)).confidence_interval
        standard_error = values.std(ddof=1) / np.sqrt(len(values))
        # Monte-Carlo error of two 10,000-resample runs, plus one step of the 1/300 grid of a share:
        # a 90% interval would be 0.25-0.37 standard errors off
        assert ours.low == pytest.approx(theirs.low, abs=0.2 * standard_error)
        assert ours.high == pytest.approx(theirs.high, abs=0.2 * standard_error)
        assert ours.estimate == pytest.approx(values.mean())
        assert (ours.n, ours.n_seeds, ours.level, ours.resamples, ours.seed) == (300, 1, 0.95, 10_000, 3)


def test_unscorable_prompts_are_left_out_not_counted_as_misses():
    values = np.array([1.0, 1.0, 0.0, 1.0, np.nan, np.nan])
    found = bootstrap(values)
    assert found.estimate == pytest.approx(0.75) and found.n == 4
    assert 0 <= found.low <= 0.75 <= found.high <= 1
    assert str(bootstrap([1.0, 1.0, 1.0])) == "1.00 [1.00, 1.00]"


def test_multi_bootstrap_resamples_seeds_and_prompts_jointly():
    rng = np.random.default_rng(2)
    prompts = rng.random(200) < 0.5
    same = np.stack([prompts] * 3)
    assert bootstrap(same, seed=5) == replace(bootstrap(prompts, seed=5), n=600, n_seeds=3)  # identical seeds add nothing
    # seeds that differ: a direct loop over index draws (Sellam et al., Algorithm 1) gives the same interval
    seeds = np.stack([rng.random(200) < p for p in (0.3, 0.5, 0.7)]).astype(float)
    ours = bootstrap(seeds, resamples=10_000, seed=6)
    draws = np.random.default_rng(7)
    means = [seeds[draws.integers(0, 3, 3)][:, draws.integers(0, 200, 200)].mean() for _ in range(10_000)]
    low, high = np.percentile(means, [2.5, 97.5])
    assert (ours.low, ours.high) == pytest.approx((low, high), abs=0.01)
    assert ours.n_seeds == 3 and ours.high - ours.low > 2 * (bootstrap(seeds[1]).high - bootstrap(seeds[1]).low)


def test_paired_comparison_has_the_known_answer():
    a = np.zeros(100)
    a[:40] = 1
    b = a.copy()
    b[:20] = 0  # A wins on 20 prompts, loses on none: the difference is 0.2
    found = compare(a, b)
    assert found.difference == pytest.approx(0.2) and (found.a, found.b) == pytest.approx((0.4, 0.2))
    differences = a - b
    theirs = scipy_stats.bootstrap((differences,), np.mean, method="percentile", n_resamples=10_000,
                                   rng=np.random.default_rng(0)).confidence_interval
    mc = 0.15 * differences.std(ddof=1) / 10
    assert (found.low, found.high) == pytest.approx((theirs.low, theirs.high), abs=mc + 0.01)
    assert found.excludes_zero and found.p_value == pytest.approx(2 / 1001)
    assert str(found) == f"+0.20 [{found.low:+.2f}, {found.high:+.2f}], p ≤ 0.002"
    unpaired = compare(a, b, paired=False)
    assert unpaired.difference == pytest.approx(0.2) and unpaired.high - unpaired.low > found.high - found.low
    nothing = compare(a, a)
    assert (nothing.difference, nothing.low, nothing.high, nothing.p_value) == (0, 0, 0, 1)
    with pytest.raises(ValueError, match="same prompts"):
        compare(a, b[:50])


def test_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(8)
    for shift in (0.0, 0.05, 0.1, 0.3):
        a, b = (rng.random(300) < 0.4).astype(float), (rng.random(300) < 0.4 + shift).astype(float)
        found = compare(b, a, paired=False)
        assert found.excludes_zero == (found.p_value < 0.05) or abs(found.p_value - 0.05) < 0.01


def test_scores_table_has_intervals_per_checkpoint():
    table = score_table(made_predictions({("r", 0): [5, 5, 3, 2, 9, np.nan], ("r", 8): [1, 1, 1, 2, 1, np.nan]}),
                        KEYS)
    assert list(table["checkpoint"]) == ["r/checkpoint-0", "r/checkpoint-8"]
    first, last = table.iloc[0], table.iloc[1]
    assert (first["p_at_1"], first["p_at_1_low"], first["p_at_1_high"]) == (0, 0, 0)
    assert last["p_at_1"] == pytest.approx(0.8) and last["n"] == 5 and last["n_seeds"] == 1
    assert 0.2 <= last["p_at_1_low"] < 0.8 <= last["p_at_1_high"] == 1
    assert last["mrr_low"] <= last["mrr"] <= last["mrr_high"]
    assert last["p_at_10_low"] == last["p_at_10_high"] == 1


def test_several_seeds_add_rows_pooled_over_them():
    rng = np.random.default_rng(9)
    ranks = {(f"seed-{k}", step): np.where(rng.random(60) < p, 1, 5)
             for k, shift in enumerate((0.0, 0.2, 0.4)) for step, p in ((0, 0.0), (100, 0.2 + shift))}
    unlabelled = made_predictions(ranks)
    assert seeds_of(unlabelled.assign(seed="")) == []  # three runs, but nothing says they are seeds of one model
    predictions = unlabelled.assign(seed=unlabelled["run"].str.removeprefix("seed-"))
    assert seeds_of(predictions) == ["seed-0", "seed-1", "seed-2"]
    table = score_table(with_pooled_seeds(predictions), KEYS)
    pooled = table[table["run"] == POOLED].set_index("step")
    assert list(pooled["checkpoint"]) == [f"{POOLED}/step-0", f"{POOLED}/step-100"]
    assert list(pooled["n_seeds"]) == [3, 3] and list(pooled["n"]) == [180, 180]
    one = table[table["checkpoint"] == "seed-1/checkpoint-100"].iloc[0]
    assert one["n_seeds"] == 1
    assert pooled.loc[100, "p_at_1"] == pytest.approx(predictions.query("step == 100")["gold_rank"].eq(1).mean())
    # seeds that disagree widen the pooled interval beyond what 180 prompts of one seed would give
    assert pooled.loc[100, "p_at_1_high"] - pooled.loc[100, "p_at_1_low"] > 0.16
    uneven = made_predictions({("seed-0", 0): [1], ("seed-0", 100): [1], ("seed-1", 0): [1]})
    uneven = uneven.assign(seed=uneven["run"].str.removeprefix("seed-"))
    assert seeds_of(uneven) == ["seed-0", "seed-1"]  # pooled at the steps both have
    assert set(with_pooled_seeds(uneven).query("run == @POOLED")["step"]) == {0}


def test_differences_from_a_made_up_table():
    groups = ["injected"] * 10 + ["held_back"] * 10
    predictions = made_predictions({("r", 0): [5] * 20, ("r", 8): [1] * 8 + [3] * 2 + [1] + [4] * 9}, groups)
    by_group = group_differences(predictions).iloc[0]
    assert (by_group["step"], by_group["injected"], by_group["held_back"]) == (8, 0.8, 0.1)
    assert by_group["difference"] == pytest.approx(0.7) and 0.2 < by_group["low"] < 0.7 < by_group["high"]
    assert by_group["p_value"] < 0.01
    by_checkpoint = checkpoint_differences(predictions, "r/checkpoint-8", "r/checkpoint-0").set_index("group")
    assert by_checkpoint.loc["injected", "difference"] == pytest.approx(0.8)
    assert by_checkpoint.loc["held_back", "difference"] == pytest.approx(0.1)
    assert by_checkpoint.loc["held_back", "low"] == 0 and by_checkpoint.loc["held_back", "p_value"] > 0.05
    assert group_differences(made_predictions({("r", 0): [1, 2]})).empty


def test_probing_several_seeds_writes_pooled_rows(tiny_series, tiny_benchmark, tmp_path):
    from probekit.running.runner import probe
    from probekit.core.schema import TABLES

    for seed in ("seed-0", "seed-1"):
        for step in (0, 8):
            shutil.copytree(tiny_series / f"checkpoint-{step}", tmp_path / "series" / seed / f"checkpoint-{step}")
    result = probe(str(tmp_path / "series" / "seed-*" / "checkpoint-*"), [str(tiny_benchmark)], out=tmp_path / "out")
    scores = result.scores
    pooled = scores[scores["run"] == POOLED]
    assert set(pooled["checkpoint"]) == {f"{POOLED}/step-0", f"{POOLED}/step-8"}
    assert (pooled["n_seeds"] == 2).all() and (scores.loc[scores["run"] != POOLED, "n_seeds"] == 1).all()
    assert list(scores.columns) == TABLES["scores"].names
    scorable = scores[scores["n"] > 0]
    assert ((scorable["p_at_1_low"] <= scorable["p_at_1"]) & (scorable["p_at_1"] <= scorable["p_at_1_high"])).all()
    assert result.manifest["statistics"]["resamples"] == RESAMPLES
    cell = result.summary(intervals=True).loc[(8, f"{POOLED}/step-8"), "capital"]
    assert re.fullmatch(r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\]", cell)


def test_the_schema_states_the_resampling_used():
    from probekit.core.schema import TABLES

    doc = next(c.doc for c in TABLES["scores"].columns if c.name == "p_at_1_low")
    assert f"{LEVEL:.0%} percentile bootstrap interval ({RESAMPLES:,} resamples, seed {SEED})" in doc


def test_runs_labelled_with_the_same_seed_are_not_seeds_of_one_series():
    """Two recipes trained with seed 0 are two models, not two seeds: no pooled rows."""
    ranks = {("a", 0): [5, 3, 1], ("a", 8): [1, 1, 2], ("b", 0): [4, 2, 1], ("b", 8): [1, 2, 2]}
    same = made_predictions(ranks).assign(seed="0")
    assert seeds_of(same) == [] and POOLED not in set(with_pooled_seeds(same)["run"])
    labelled = same.assign(seed=same["run"].map({"a": "0", "b": "1"}))
    assert seeds_of(labelled) == ["a", "b"]
    assert set(with_pooled_seeds(labelled).query("run == @POOLED")["seed"]) == {POOLED}


def test_share_intervals_agree_with_scipy_and_leave_unscorable_out():
    from probekit.analyses.stats import share_intervals

    rng = np.random.default_rng(2)
    hits = (rng.random(400) < 0.7).astype(float)
    frame = pd.DataFrame({"g": "x", "hit": np.r_[hits, [np.nan] * 50]})
    found = share_intervals(frame, ["g"], "hit", resamples=10_000).iloc[0]
    theirs = scipy_stats.bootstrap((hits,), np.mean, method="percentile", n_resamples=10_000,
                                   rng=np.random.default_rng(5)).confidence_interval
    standard_error = hits.std(ddof=1) / np.sqrt(len(hits))
    assert found["hit_low"] == pytest.approx(theirs.low, abs=0.2 * standard_error)
    assert found["hit_high"] == pytest.approx(theirs.high, abs=0.2 * standard_error)


