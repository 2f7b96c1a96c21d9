"""syntax-heads: word-level attention, per-relation head accuracy against the fixed-offset baseline, and the UUAS
of each head's maximum spanning tree — checked on constructed heads, a hand tree, brute force, and a plain
loop over the stock HF model (no probekit code) on tiny BERT, RoBERTa and ModernBERT."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from probekit.analyses.syntax_heads import (Found, align, best_offset, head_rows, max_spanning_tree, measure,
                                            pooling, score_sentence, uuas, word_attention)
from probekit.benchmarks.treebank import Sentence, load_treebank
from probekit.core.schema import CONTROL
from test_families import write_checkpoint


@pytest.fixture(scope="module")
def bank():
    return load_treebank("ewt:dev", sample=300)


def found_from(sentences, attend) -> Found:
    """A Found made from constructed word attention: attend(sentence) → [K, n, n]."""
    parts = [score_sentence(attend(s), s.heads) for s in sentences]
    arcs = [(s, d, h - 1) for s in sentences for d, h in enumerate(s.heads) if h > 0]
    k = parts[0][0].shape[0]
    return Found(k, 1, [s.deprels[d] for s, d, _ in arcs], [h - d for _, d, h in arcs],
                 [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts])


def one_hot(targets: list[int], n: int) -> np.ndarray:
    out = np.full((1, n, n), 1e-3)
    out[0, np.arange(n), targets] = 1.0
    return out / out.sum(-1, keepdims=True)


# ---------------------------------------------------------------- word-level attention


def test_word_attention_rows_sum_to_one_without_special_tokens():
    torch.manual_seed(0)
    owners = [[-1, 0, 0, 1, 2, 2, 2, -1], [-1, 0, 1, -1, -1, -1, -1, -1]]  # second: 2 words, then padding
    pattern = torch.rand(2, 3, 8, 8).softmax(-1)
    queries, keys = pooling(owners, 8, 3)
    words = word_attention(pattern, queries, keys)
    assert torch.allclose(words[0].sum(-1), torch.ones(3, 3))
    assert torch.allclose(words[1, :, :2, :2].sum(-1), torch.ones(3, 2)) and words[1, :, :, 2].abs().max() == 0
    # by hand: from word 0 (pieces 1, 2: mean) to word 2 (pieces 4-6: sum), renormalised over the words
    raw = torch.stack([pattern[0, 0, [1, 2]][:, cols].sum(-1).mean() for cols in ([1, 2], [3], [4, 5, 6])])
    assert torch.allclose(words[0, 0, 0], raw / raw.sum())


def test_pieces_are_aligned_to_words_through_offsets_in_every_family(tmp_path):
    words = ["The", "capital", "Romeparis", "of", "Rome", "."]  # a word of several pieces
    for family in ("bert", "roberta", "modernbert"):
        tok = AutoTokenizer.from_pretrained(write_checkpoint(tmp_path / family, family))
        ids, owner = align(tok, words)
        pieces = tok.convert_ids_to_tokens(ids)
        assert owner[0] == owner[-1] == -1 and sorted(set(owner) - {-1}) == list(range(len(words)))
        assert owner[1:-1] == sorted(owner[1:-1]) and all(o >= 0 for o in owner[1:-1])  # in order, specials out
        spelled = ["".join(p for p, o in zip(pieces, owner) if o == w) for w in range(len(words))]
        for word, text in zip(words, spelled):
            assert text.replace("Ġ", "").replace("##", "").lower() == word.lower(), (family, pieces, owner)


# ---------------------------------------------------------------- constructed heads


def test_a_head_that_attends_to_the_gold_head_scores_one(bank):
    rows = head_rows(found_from(bank.sentences, lambda s: one_hot([h - 1 if h else i for i, h in
                                                                   enumerate(s.heads)], len(s))))
    to_head = rows[(rows["direction"] == "dep->head") & (rows["layer"] == 0)]
    assert len(to_head) > 20 and (to_head["accuracy"] == 1.0).all()
    assert (to_head["correct"] == to_head["n"]).all() and (to_head["hits"].str.count("0") == 0).all()
    tree = rows[rows["direction"] == "mst"]
    assert tree["accuracy"].tolist() == [1.0]  # the gold tree is the maximum spanning tree of its arcs


@pytest.mark.parametrize("offset", [-1, 1])
def test_a_positional_head_equals_the_offset_baseline(bank, offset):
    def positional(s: Sentence):
        return one_hot([min(max(i + offset, 0), len(s) - 1) for i in range(len(s))], len(s))

    rows = head_rows(found_from(bank.sentences, positional))
    rows = rows[rows["direction"] == "dep->head"]
    base = rows[rows["layer"] == -1].set_index("relation")
    head = rows[rows["layer"] == 0].set_index("relation")
    matching = base.index[base["offset"] == offset]
    assert len(matching) >= 2  # e.g. det, amod (+1); flat, fixed (-1)
    for relation in matching:
        assert head.loc[relation, "correct"] == base.loc[relation, "correct"], relation
        assert head.loc[relation, "hits"] == base.loc[relation, "hits"]
    assert (head.loc[base.index.difference(matching), "accuracy"]
            <= base.loc[base.index.difference(matching), "accuracy"]).all()  # the best offset is the best


def test_the_best_offset_is_the_most_frequent_then_the_shorter():
    assert best_offset([1, 1, 2, -3]) == 1 and best_offset([2, 2, -1, -1]) == -1 and best_offset([-2, 2]) == -2


# ---------------------------------------------------------------- maximum spanning tree


def test_uuas_of_the_maximum_spanning_tree_on_a_hand_tree():
    # words 0..3; the strongest links are 0-1, 1-2 and 1-3: that tree, whatever the direction of the scores
    scores = np.array([[0, 5, 1, 0], [0, 0, 4, 3], [2, 0, 0, 1], [0, 0, 0, 0]], dtype=float)
    parents = max_spanning_tree((scores + scores.T)[None])[0]
    assert {frozenset((i, p)) for i, p in enumerate(parents) if i} == {frozenset(e) for e in ((0, 1), (1, 2),
                                                                                             (1, 3))}
    assert uuas(scores, [2, 0, 2, 2]) == 1.0  # gold: 0→1, 2→1, 3→1 (1-based heads 2, 0, 2, 2)
    assert uuas(scores, [0, 1, 2, 3]) == pytest.approx(2 / 3)  # gold chain 0-1-2-3: edges 0-1, 1-2 found


def test_prim_finds_the_heaviest_spanning_tree_as_brute_force_does():
    rng = np.random.default_rng(0)
    for _ in range(5):
        raw = rng.random((5, 5))
        scores = raw + raw.T
        best = max(_weight(scores, p) for p in itertools.product(range(5), repeat=4) if _is_tree(p))
        parents = max_spanning_tree(scores[None])[0]
        assert _weight(scores, tuple(parents[1:])) == pytest.approx(best)


def _is_tree(parents: tuple) -> bool:
    for start in range(1, 5):
        seen, at = set(), start
        while at != 0:
            if at in seen:
                return False
            seen.add(at)
            at = parents[at - 1]
    return True


def _weight(scores, parents: tuple) -> float:
    return sum(scores[i + 1, p] for i, p in enumerate(parents))


# ---------------------------------------------------------------- against a plain loop


def plain_counts(folder, sentences) -> dict:
    """(relation, direction) → [layer, head] correct counts, by the stock HF model with eager attention and
    plain Python: words joined by spaces, pieces to words by character offsets, mean over query pieces, sum
    over key pieces, special tokens out, rows renormalised, argmax."""
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
    counts: dict = {}
    for s in sentences:
        text = " ".join(s.words)
        spans, at = [], 0
        for word in s.words:
            spans.append((at, at + len(word)))
            at += len(word) + 1
        enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="pt")
        owner = []
        for (a, b), special in zip(enc["offset_mapping"][0].tolist(), enc["special_tokens_mask"][0].tolist()):
            hit = [w for w, (ws, we) in enumerate(spans) if a < we and b > ws]
            owner.append(None if special else hit[0] if hit else next(w for w, (ws, _) in enumerate(spans)
                                                                         if ws >= a))
        with torch.no_grad():
            attentions = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                               output_attentions=True).attentions
        n = len(s.words)
        for layer, pattern in enumerate(attentions):
            for head in range(pattern.shape[1]):
                a = pattern[0, head]
                w = torch.zeros(n, n)
                for i in range(n):
                    qs = [q for q, o in enumerate(owner) if o == i]
                    for j in range(n):
                        w[i, j] = sum(a[q, k] for q in qs for k, o in enumerate(owner) if o == j) / len(qs)
                best = (w / w.sum(-1, keepdim=True)).argmax(-1).tolist()
                for d, h in enumerate(s.heads):
                    if h == 0:
                        continue
                    for direction, hit in (("dep->head", best[d] == h - 1), ("head->dep", best[h - 1] == d)):
                        grid = counts.setdefault((s.deprels[d], direction), np.zeros((len(attentions),
                                                                                      pattern.shape[1]), int))
                        grid[layer, head] += hit
    return counts


@pytest.mark.parametrize("family", ["bert", "roberta", "modernbert"])
def test_equal_to_a_plain_loop_over_the_stock_model(tmp_path, bank, family):
    from probekit.models.series import load_checkpoint

    folder = write_checkpoint(tmp_path / family, family)
    model, tok = load_checkpoint(str(folder))
    short = [s for s in bank.sentences if len(align(tok, s.words)[0]) <= 40][:12]
    assert len(short) >= 8
    rows = head_rows(measure(model, tok, short))
    expected = plain_counts(folder, short)
    got = rows[rows["layer"] >= 0]
    assert set(expected) == {k for k in zip(got["relation"], got["direction"]) if k[1] != "mst"}
    for (relation, direction), grid in expected.items():
        mine = got[(got["relation"] == relation) & (got["direction"] == direction)]
        assert mine.sort_values(["layer", "head"])["correct"].tolist() == grid.ravel().tolist(), (relation,
                                                                                                   direction)


# ---------------------------------------------------------------- through probe()


def test_probe_writes_the_three_tables_with_intervals_and_the_control(tiny_series, tmp_path):
    from probekit import probe

    import shutil

    for seed in ("seed-0", "seed-1"):  # two seeds of the same weights: the pooled rows must equal each
        shutil.copytree(tiny_series, tmp_path / "runs" / seed)
    result = probe(str(tmp_path / "runs" / "seed-*" / "checkpoint-*"), ["ewt"], analyses=["syntax-heads"],
                   out=tmp_path / "out", sample=20)
    rows, best, tree = (result.tables[t] for t in ("syntax_heads", "syntax_best_heads", "syntax_uuas"))
    pooled = best[best["run"] == "all-seeds"].merge(best[best["run"] == "seed-0"], on=["step", "relation", "direction"],
                                                    suffixes=("", "_one"))
    assert len(pooled) and (pooled["n_seeds"] == 2).all()
    assert np.allclose(pooled["accuracy"], pooled["accuracy_one"]) and np.allclose(pooled["baseline"],
                                                                                  pooled["baseline_one"])
    for column in ("accuracy_low", "accuracy_high", "baseline_high"):  # other draws (seeded by the row's key)
        assert (pooled[column] - pooled[f"{column}_one"]).abs().max() < 0.15, column
    assert (pooled[["layer", "head"]].to_numpy() == pooled[["layer_one", "head_one"]].to_numpy()).all()
    assert (tree.loc[tree["run"] == "all-seeds", "n_seeds"] == 2).all()
    rows, best, tree = (t[t["run"].isin(["seed-0", ""])] for t in (rows, best, tree))
    assert 0 in set(rows["step"]) and set(rows["treebank"]) == {"ewt-test@20"}  # checkpoint-0 is the control here
    assert (best["accuracy_low"] <= best["accuracy"]).all() and (best["accuracy"] <= best["accuracy_high"]).all()
    assert (best["baseline_low"] <= best["baseline"]).all() and best["beats_baseline"].dtype == bool
    per_layer = tree[tree["best_in_layer"]]
    assert len(per_layer) == tree["checkpoint"].nunique() * tree["layer"].nunique()
    assert per_layer["uuas_low"].notna().all()
    from probekit.report.page import Page
    from probekit.report.syntax import section

    page = Page(tmp_path / "docs")
    section(page, result.tables, tmp_path / "out")
    text = "\n".join(page.parts["syntax.md"])
    assert text.startswith("# Syntax") and "fixed-offset baseline" in text and len(page.findings) == 1
    steps = rows.loc[rows["checkpoint"] != "random-init", "step"].nunique()
    # the best heads' curves and, behind the step slider, one relation × layer map per step
    assert len(list((tmp_path / "docs" / "figures").glob("syntax-*.png"))) == 1 + steps
    assert text.count('class="probekit-step"') == steps and 'type="range"' in text
    assert "## When each relation's best head beats its baseline" in text


# ---------------------------------------------------------------- seeds and emergence


def series_rows(bank, heads_of: dict) -> "pd.DataFrame":
    """`syntax_heads` rows of a constructed series: heads_of[(run, step)] = attend(sentence) → [K, n, n]."""
    import pandas as pd

    frames = []
    for (run, step), attend in heads_of.items():
        rows = head_rows(found_from(bank.sentences, attend))
        frames.append(rows.assign(checkpoint=f"{run}/checkpoint-{step}" if run != CONTROL else CONTROL, run=run,
                                  step=step if run != CONTROL else None, seed=run.removeprefix("seed-"),
                                  treebank="t"))
    return pd.concat(frames, ignore_index=True)


def gold(s: Sentence):
    return one_hot([h - 1 if h else i for i, h in enumerate(s.heads)], len(s))


def noisy(rate: float, seed: int):
    """Attends to the gold head, except a share `rate` of words attend to a word drawn at random."""
    def attend(s: Sentence):
        rng = np.random.default_rng([seed, len(s), sum(s.heads)])
        targets = [h - 1 if h else i for i, h in enumerate(s.heads)]
        return one_hot([int(rng.integers(len(s))) if rng.random() < rate else t for t in targets], len(s))
    return attend


def previous(s: Sentence):
    return one_hot([max(i - 1, 0) for i in range(len(s))], len(s))


def test_best_heads_pool_seeds_with_a_multi_bootstrap_over_seeds_and_arcs(bank):
    from probekit.analyses.syntax_heads import best_heads, head_emergence, uuas_table

    runs = {("seed-0", 0): previous, ("seed-0", 100): gold, ("seed-1", 0): previous, ("seed-1", 100): noisy(0.6, 1)}
    best = best_heads(series_rows(bank, runs))
    det = best[(best["relation"] == "det") & (best["direction"] == "dep->head")].set_index("checkpoint")
    one, other, pooled = (det.loc[c] for c in ("seed-0/checkpoint-100", "seed-1/checkpoint-100",
                                                 "all-seeds/step-100"))
    assert one["accuracy"] == 1.0 and other["accuracy"] < 0.7 and pooled["n_seeds"] == 2 and one["n_seeds"] == 1
    assert pooled["accuracy"] == pytest.approx((one["accuracy"] + other["accuracy"]) / 2)
    assert pooled["run"] == "all-seeds" and pooled["layer"] == 0 and pooled["baseline"] == one["baseline"]
    # a plain Multi-Bootstrap: seeds and arcs drawn with replacement together
    hits = np.array([[float(b) for b in row["hits"]] for row in (
        series_rows(bank, runs).query("relation == 'det' and direction == 'dep->head' and layer == 0 and step == 100"
                                      " and hits != ''").sort_values("run").to_dict("records"))])
    rng = np.random.default_rng(5)
    means = [hits[rng.integers(0, 2, 2)][:, rng.integers(0, hits.shape[1], hits.shape[1])].mean()
             for _ in range(2000)]
    low, high = np.percentile(means, [2.5, 97.5])
    assert abs(pooled["accuracy_low"] - low) < 0.04 and abs(pooled["accuracy_high"] - high) < 0.04, (low, high)
    # the spread over seeds widens the interval beyond either seed's own
    assert pooled["accuracy_high"] - pooled["accuracy_low"] > other["accuracy_high"] - other["accuracy_low"]
    tree = uuas_table(series_rows(bank, runs))
    pooled_tree = tree[tree["checkpoint"] == "all-seeds/step-100"]
    assert len(pooled_tree) == 1 and pooled_tree["best_in_layer"].all() and (pooled_tree["n_seeds"] == 2).all()
    found = head_emergence(best).set_index(["run", "relation", "direction"])
    assert found.loc[("seed-0", "det", "dep->head"), "beats_baseline_at"] == 100
    assert np.isnan(found.loc[("seed-1", "det", "dep->head"), "beats_baseline_at"])  # 0.4 hits vs baseline ≈0.6


def test_emergence_is_the_first_step_a_best_head_beats_its_baseline(bank):
    from probekit.analyses.syntax_heads import best_heads, head_emergence

    def following(s: Sentence):  # det's best offset: the random-init control's best head is as good as it
        return one_hot([min(i + 1, len(s) - 1) for i in range(len(s))], len(s))

    runs = {(CONTROL, None): following, ("seed-0", 0): previous, ("seed-0", 10): noisy(0.9, 0),
            ("seed-0", 20): gold, ("seed-0", 30): noisy(0.9, 3), ("seed-0", 40): gold}
    best = best_heads(series_rows(bank, runs))
    found = head_emergence(best).set_index(["relation", "direction"])
    det = found.loc["det", "dep->head"]
    assert det["beats_baseline_at"] == 20 and det["beats_baseline_from"] == 40 and det["beats_at_last"]
    assert det["above_init_at"] == 20 and det["steps"] == 5
    # a plain loop over the summary's own flags
    for (relation, direction), row in found.iterrows():
        line = best[(best["relation"] == relation) & (best["direction"] == direction)
                    & (best["checkpoint"] != CONTROL)].sort_values("step")
        beats = line.loc[line["beats_baseline"], "step"]
        assert (row["beats_baseline_at"] == beats.iloc[0]) if len(beats) else np.isnan(row["beats_baseline_at"])
