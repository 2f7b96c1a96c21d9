"""syntax-heads: word-level attention, per-relation head accuracy against the fixed-offset baseline, and the UUAS
of each head's maximum spanning tree — checked on constructed heads, a hand tree, brute force, and a plain
loop over the stock HF model (no probekit code) on tiny BERT, RoBERTa and ModernBERT."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from probekit.analyses.syntax_heads import (Found, align, best_offset, definitions, head_rows, max_spanning_tree,
                                            measure, pooling, score_sentence, uuas, word_attention)
from probekit.benchmarks.treebank import Sentence, load_treebank
from probekit.core.schema import CONTROL
from test_families import write_checkpoint


@pytest.fixture(scope="module")
def bank():
    return load_treebank("ewt:dev", sample=300)


def found_from(sentences, attend, rules: str = "clark") -> Found:
    """A Found made from constructed word attention: attend(sentence) → [K, n, n]."""
    parts = [score_sentence(attend(s), s.heads, rules) for s in sentences]
    arcs = [(s, d, h - 1) for s in sentences for d, h in enumerate(s.heads) if h > 0]
    k = parts[0][0].shape[0]
    return Found(k, 1, [s.deprels[d] for s, d, _ in arcs], [h - d for _, d, h in arcs],
                 [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts], rules=rules,
                 positions=[d for _, d, _ in arcs], lengths=[len(s) for s, _, _ in arcs])


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
    tree = rows[(rows["direction"] == "mst") & (rows["layer"] == 0)]
    assert tree["accuracy"].tolist() == [1.0]  # the gold tree is the maximum spanning tree of its arcs


def test_the_uuas_baseline_is_the_adjacent_word_tree_which_is_the_right_branching_tree(bank):
    rows = head_rows(found_from(bank.sentences, gold))
    base = rows[(rows["direction"] == "mst") & (rows["layer"] == -1)]
    assert base["baseline_kind"].tolist() == ["adjacent"] and base["head"].tolist() == [-1]
    # by hand: the right-branching tree (each word's head the next one, the last the root) as undirected edges
    found = total = 0
    for s in bank.sentences:
        right = {frozenset((i, i + 1)) for i in range(len(s) - 1)}
        left = {frozenset((i, i - 1)) for i in range(1, len(s))}  # the left-branching tree: the same edges
        assert right == left
        for d, h in enumerate(s.heads):
            if h:
                total += 1
                found += frozenset((d, h - 1)) in right
    assert base["n"].item() == total and base["correct"].item() == found
    assert base["accuracy"].item() == pytest.approx(found / total) and 0.3 < found / total < 0.6
    assert base["hits"].item().count("1") == found


@pytest.mark.parametrize("offset", [-1, 1])
def test_a_positional_head_equals_the_offset_baseline_under_the_own_rules(bank, offset):
    def positional(s: Sentence):
        return one_hot([min(max(i + offset, 0), len(s) - 1) for i in range(len(s))], len(s))

    rows = head_rows(found_from(bank.sentences, positional, rules="own"))
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


def test_self_attention_is_ignored_under_clarks_rules_and_a_miss_under_the_own():
    # every word attends most to itself, then to its gold head (the root: to the word after it)
    def selfish(s: Sentence):
        n = len(s)
        out = np.full((1, n, n), 1e-3)
        out[0, np.arange(n), [h - 1 if h else (i + 1) % n for i, h in enumerate(s.heads)]] = 0.3
        out[0, np.arange(n), np.arange(n)] = 0.6
        return out

    bank = [s for s in load_treebank("ewt:dev", sample=40).sentences if len(s) > 1]
    clark = head_rows(found_from(bank, selfish, "clark"))
    own = head_rows(found_from(bank, selfish, "own"))
    for rows, expected in ((clark, 1.0), (own, 0.0)):
        to_head = rows[(rows["direction"] == "dep->head") & (rows["layer"] == 0)]
        assert (to_head["accuracy"] == expected).all()


# ---------------------------------------------------------------- Clark et al.'s code, as a reference
# attn_head_predictor, offset_predictor and get_word_word_attention are copied from clarkkev/attention-analysis
# (Syntax_Analysis.ipynb, bpe_utils.py), Python 3 only where needed; no probekit code below.


def clark_attn_head_predictor(layer, head, mode="normal"):
    """Assign each word the most-attended-to other word as its head."""
    def predict(example):
        attn = np.array(example["attns"][layer][head])
        if mode == "transpose":
            attn = attn.T
        elif mode == "both":
            attn += attn.T
        else:
            assert mode == "normal"
        # ignore attention to self and [CLS]/[SEP] tokens
        attn[range(attn.shape[0]), range(attn.shape[0])] = 0
        attn = attn[1:-1, 1:-1]
        return np.argmax(attn, axis=-1) + 1  # +1 because ROOT is at index 0
    return predict


def clark_offset_predictor(offset):
    def predict(example):
        return [max(0, min(i + offset + 1, len(example["words"]))) for i in range(len(example["words"]))]
    return predict


def clark_get_word_word_attention(token_token_attention, words_to_tokens, mode="first"):
    word_word_attention = np.array(token_token_attention)
    not_word_starts = []
    for word in words_to_tokens:
        not_word_starts += word[1:]
    for word in words_to_tokens:  # sum up the attentions for all tokens in a word that has been split
        word_word_attention[:, word[0]] = word_word_attention[:, word].sum(axis=-1)
    word_word_attention = np.delete(word_word_attention, not_word_starts, -1)
    for word in words_to_tokens:
        if mode == "first":
            pass
        elif mode == "mean":
            word_word_attention[word[0]] = np.mean(word_word_attention[word], axis=0)
    word_word_attention = np.delete(word_word_attention, not_word_starts, 0)
    return word_word_attention


def clark_evaluate(dev_data, prediction_fn):
    """Their evaluate_predictor as counts (their `poss` special case is for Stanford Dependencies' poss, a
    relation UD does not have): relation → (correct, total), root words left out."""
    correct, total = {}, {}
    for example in dev_data:
        predictions = prediction_fn(example)
        for p, y, r in zip(predictions, example["heads"], example["relns"]):
            if y == 0:
                continue
            correct[r] = correct.get(r, 0) + int(p == y)
            total[r] = total.get(r, 0) + 1
    return correct, total


def clark_tables(dev_data, layers: int, heads: int):
    """(direction, relation) → [layers, heads] correct; relation → (best offset, its correct); totals."""
    grids = {}
    for direction, mode in (("dep->head", "normal"), ("head->dep", "transpose")):
        for layer in range(layers):
            for head in range(heads):
                correct, total = clark_evaluate(dev_data, clark_attn_head_predictor(layer, head, mode))
                for r in total:
                    grids.setdefault((direction, r), np.zeros((layers, heads), int))[layer, head] = correct[r]
    baseline_scores = {i: clark_evaluate(dev_data, clark_offset_predictor(i)) for i in range(-3, 3)}
    baselines = {}
    for r in total:
        score, offset = max((scores[0][r] / scores[1][r], i) for i, scores in baseline_scores.items())
        baselines[r] = (offset, baseline_scores[offset][0][r])
    return grids, baselines, total


def check_against_clark(rows, grids, baselines, totals):
    heads = rows[(rows["layer"] >= 0) & (rows["direction"] != "mst")]
    assert {(d, r) for d, r in zip(heads["direction"], heads["relation"])} == set(grids)
    for (direction, relation), grid in grids.items():
        mine = heads[(heads["relation"] == relation) & (heads["direction"] == direction)].sort_values(
            ["layer", "head"])
        assert mine["correct"].tolist() == grid.ravel().tolist(), (relation, direction)
        assert (mine["n"] == totals[relation]).all()
    base = rows[(rows["layer"] == -1) & (rows["direction"] == "dep->head")].set_index("relation")
    for relation, (offset, correct) in baselines.items():
        assert (base.loc[relation, "offset"], base.loc[relation, "correct"]) == (offset, correct), relation


def test_clarks_rules_equal_their_code_on_word_level_maps(bank):
    """Random word-level maps with [CLS] and [SEP] rows and columns, as their pickles hold, several heads with
    a strong diagonal (so that ignoring self-attention matters) and rows summing to 1 over all tokens."""
    rng = np.random.default_rng(0)
    sentences = [s for s in bank.sentences if len(s) >= 2][:120]
    k = 4
    dev_data, maps = [], {}
    for index, s in enumerate(sentences):
        n = len(s) + 2
        attns = rng.dirichlet(np.full(n, 0.3), size=(k, n))  # [heads, n, n], rows sum to 1
        attns[1] += np.eye(n) * 2.0  # a head that attends to itself most
        attns[3, :, [0, -1]] += 1.5  # a head that dumps on [CLS]/[SEP] (row shares then matter transposed)
        attns /= attns.sum(-1, keepdims=True)
        dev_data.append({"words": s.words, "heads": s.heads, "relns": s.deprels, "attns": attns[None]})
        maps[index] = attns[:, 1:-1, 1:-1]  # probekit's map: special tokens out, rows left as they are
    grids, baselines, totals = clark_tables(dev_data, 1, k)
    by_id = {id(s): i for i, s in enumerate(sentences)}
    found = found_from(sentences, lambda s: maps[by_id[id(s)]])
    found.layers, found.heads = 1, k
    rows = head_rows(found)
    check_against_clark(rows, grids, baselines, totals)
    # the other rules differ on these maps (the test can tell them apart)
    own = found_from(sentences, lambda s: maps[by_id[id(s)]], "own")
    own.layers, own.heads = 1, k
    own_rows = head_rows(own)
    assert not own_rows["correct"].equals(rows["correct"])


def piece_owners(tok, words: list[str]):
    """(the stock tokenizer's encoding of the words joined by spaces, each piece's word by character offsets:
    None for special tokens; a piece between words goes to the next word)."""
    spans, at = [], 0
    for word in words:
        spans.append((at, at + len(word)))
        at += len(word) + 1
    enc = tok(" ".join(words), return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="pt")
    owner = []
    for (a, b), special in zip(enc["offset_mapping"][0].tolist(), enc["special_tokens_mask"][0].tolist()):
        hit = [w for w, (ws, we) in enumerate(spans) if a < we and b > ws]
        owner.append(None if special else hit[0] if hit else next(w for w, (ws, _) in enumerate(spans) if ws >= a))
    return enc, owner


def clark_example(tok, model, s) -> dict:
    """Their dev_data entry for one sentence from the stock HF model: words to pieces by character offsets
    (the words joined by spaces), the [CLS]/<s> and [SEP]/</s> pieces as words of their own, the piece maps
    turned into word maps by their get_word_word_attention with mode="mean" (the paper's rule)."""
    enc, owner = piece_owners(tok, s.words)
    assert owner[0] is None and owner[-1] is None and None not in owner[1:-1]
    words_to_tokens = [[0], *([t for t, o in enumerate(owner) if o == w] for w in range(len(s.words))),
                       [len(owner) - 1]]
    with torch.no_grad():
        attentions = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                           output_attentions=True).attentions
    attns = np.stack([[clark_get_word_word_attention(head.double().numpy(), words_to_tokens, mode="mean")
                       for head in layer[0]] for layer in attentions])
    return {"words": s.words, "heads": s.heads, "relns": s.deprels, "attns": attns}


@pytest.mark.parametrize("family", ["bert", "roberta", "modernbert"])
def test_clarks_rules_equal_their_code_on_the_stock_model(tmp_path, bank, family):
    from probekit.models.series import load_checkpoint

    folder = write_checkpoint(tmp_path / family, family)
    model, tok = load_checkpoint(str(folder))
    short = [s for s in bank.sentences if len(align(tok, s.words)[0]) <= 40][:20]
    stock = AutoModelForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
    dev_data = [clark_example(AutoTokenizer.from_pretrained(folder), stock, s) for s in short]
    layers, heads = dev_data[0]["attns"].shape[:2]
    rows = head_rows(measure(model, tok, short, rules="clark"))
    check_against_clark(rows, *clark_tables(dev_data, layers, heads))


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
        enc, owner = piece_owners(tok, s.words)
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
def test_the_own_rules_equal_a_plain_loop_over_the_stock_model(tmp_path, bank, family):
    from probekit.models.series import load_checkpoint

    folder = write_checkpoint(tmp_path / family, family)
    model, tok = load_checkpoint(str(folder))
    short = [s for s in bank.sentences if len(align(tok, s.words)[0]) <= 40][:12]
    assert len(short) >= 8
    rows = head_rows(measure(model, tok, short, rules="own"))
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
    for column in ("accuracy_low", "accuracy_high", "baseline_high"):  # other draws (seeded by the row's key):
        gap = (pooled[column] - pooled[f"{column}_one"]).abs()  # close, within a bound's step of 1 arc in n
        assert (gap < 0.15 + 1 / pooled["n"])[pooled["n"] >= 5].all(), column
        assert pooled.loc[pooled["n"] < 5, [column, f"{column}_one"]].isna().all().all()  # too few arcs: none
    assert (pooled[["layer", "head"]].to_numpy() == pooled[["layer_one", "head_one"]].to_numpy()).all()
    assert (tree.loc[tree["run"] == "all-seeds", "n_seeds"] == 2).all()
    rows, best, tree = (t[t["run"].isin(["seed-0", ""])] for t in (rows, best, tree))
    assert 0 in set(rows["step"]) and set(rows["treebank"]) == {"ewt-test@20"}  # checkpoint-0 is the control here
    assert best.loc[best["n"] < 5, "accuracy_low"].isna().all() and (best["n"] < 5).any()
    best = best[best["n"] >= 5]
    assert (best["accuracy_low"] <= best["accuracy"]).all() and (best["accuracy"] <= best["accuracy_high"]).all()
    assert (best["baseline_low"] <= best["baseline"]).all() and best["beats_baseline"].dtype == bool
    per_layer = tree[tree["best_in_layer"]]
    assert len(per_layer) == tree["checkpoint"].nunique() * tree.loc[tree["layer"] >= 0, "layer"].nunique()
    assert per_layer["uuas_low"].notna().all() and (per_layer["baseline_kind"] == "").all()
    base = tree[tree["baseline_kind"] == "adjacent"]  # one per checkpoint, the same sentences: the same value
    assert len(base) == tree["checkpoint"].nunique() and (base[["layer", "head"]] == -1).all().all()
    assert base["uuas"].nunique() == 1 and base["uuas_low"].notna().all() and not base["best_in_layer"].any()
    assert (base["n"] == per_layer["n"].iloc[0]).all() and (tree["skipped_long"] == 1).all()
    assert (rows.loc[rows["baseline_kind"] == "offset", "offset"].between(-3, 2)).all()  # Clark's offsets
    import pandas as pd

    from probekit.report.page import Page
    from probekit.report.syntax import section

    page = Page(tmp_path / "docs")
    section(page, result.tables, tmp_path / "out")
    text = "\n".join(page.parts["syntax.md"])
    assert text.startswith("# Syntax") and "fixed-offset baseline" in text and len(page.findings) == 1
    steps = rows.loc[rows["checkpoint"] != "random-init", "step"].nunique()
    # the best heads' curves and the relation × layer map of every step (the chart's slider picks one), their
    # numbers downloadable beside them
    assert 'id="chart-chart-syntax-best-head-accuracy-by-step"' in text
    assert 'id="chart-chart-syntax-layer-accuracy-by-step"' in text and "data/syntax-layer-accuracy-by-step.csv" in text
    cells = pd.read_csv(tmp_path / "docs" / "data" / "syntax-layer-accuracy-by-step.csv")
    assert cells["step"].nunique() == steps, sorted(cells["step"].unique())
    assert "Clark et al. 2019" in text
    recorded = result.manifest["syntax-heads"]
    assert recorded["head_rules"] == "clark" and recorded["intervals"]["resamples"] == 1000
    assert result.manifest["options"]["syntax-heads"] == {"head_rules": "clark"}


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
    from probekit.analyses.syntax_heads import best_heads, uuas_table

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
    pooled_tree = tree[tree["checkpoint"] == "all-seeds/step-100"].set_index("baseline_kind")
    assert sorted(pooled_tree.index) == ["", "adjacent"] and (pooled_tree["n_seeds"] == 2).all()
    assert pooled_tree.loc["", "best_in_layer"] and not pooled_tree.loc["adjacent", "best_in_layer"]
    one_tree = tree[tree["checkpoint"] == "seed-0/checkpoint-100"].set_index("baseline_kind")
    assert pooled_tree.loc["adjacent", "uuas"] == one_tree.loc["adjacent", "uuas"]  # the same edges in each seed
    seeds = best[(best["relation"] == "det") & (best["direction"] == "dep->head")].set_index("run")
    assert seeds.loc["seed-0"].query("step == 100")["beats_baseline"].iloc[0]
    assert not seeds.loc["seed-1"].query("step == 100")["beats_baseline"].iloc[0]  # 0.4 hits vs baseline ≈0.6


def test_a_best_head_is_learned_from_the_findings_rule(bank):
    """The findings' `emerged` row of a relation (its best head above its offset baseline and above the
    random-init model's best head, to the last step) against a plain loop over the summary's own bounds."""
    from probekit.analyses.findings import build, select
    from probekit.analyses.syntax_heads import best_heads

    def following(s: Sentence):  # det's best offset: the random-init model's best head is as good as it
        return one_hot([min(i + 1, len(s) - 1) for i in range(len(s))], len(s))

    runs = {(CONTROL, None): following, ("seed-0", 0): previous, ("seed-0", 10): noisy(0.9, 0),
            ("seed-0", 20): gold, ("seed-0", 30): noisy(0.9, 3), ("seed-0", 40): gold}
    best = best_heads(series_rows(bank, runs))
    found = build({"syntax_best_heads": best})
    det = select(found, "emerged", "syntax-heads", subject="det dep->head").iloc[0]
    line = best[(best["relation"] == "det") & (best["direction"] == "dep->head") & (best["checkpoint"] != CONTROL)]
    line = line.sort_values("step")
    init_high = float(best[(best["relation"] == "det") & (best["direction"] == "dep->head")
                           & (best["checkpoint"] == CONTROL)]["accuracy_high"].iloc[0])
    cleared = [(lo > base) and (lo > init_high) for lo, base in zip(line["accuracy_low"], line["baseline_high"])]
    last_miss = max(k for k, flag in enumerate(cleared) if not flag)
    steps = line["step"].tolist()
    assert det["verdict"] == "emerged" and det["step"] == steps[last_miss + 1] == 40
    assert det["step_low"] == steps[last_miss] == 30 and det["first_cleared"] == steps[cleared.index(True)] == 20


# ---------------------------------------------------------------- definitions, bad sentences


def test_definitions_state_the_rules_the_run_used():
    clark, own = definitions({}), definitions({"head_rules": "own"})
    assert clark == definitions({"head_rules": "clark"}) and clark != own
    assert "attn_head_predictor" in clark and "transposed" in clark and "−3 … +2" in clark
    assert "right-branching" in clark and "adjacent-word" in clark and "1,000 resamples" in clark
    assert "probekit's own" in own and "attn_head_predictor" not in own and "most frequent offset" in own
    for text in (clark, own):
        assert "**sum** over its pieces" in text and "**mean** over its pieces" in text


def test_a_word_without_a_piece_skips_its_sentence_only(tmp_path, bank):
    from probekit.models.series import load_checkpoint

    folder = write_checkpoint(tmp_path / "bert", "bert")
    model, tok = load_checkpoint(str(folder))
    short = [s for s in bank.sentences if len(align(tok, s.words)[0]) <= 40][:6]
    bad = Sentence(words=["A", "\u200b", "dog", "barks"], heads=[3, 3, 4, 0], deprels=["det", "dep", "nsubj", "root"],
                   upos=["DET", "X", "NOUN", "VERB"])
    assert len({w for w in align(tok, bad.words)[1] if w >= 0}) == 3  # the tokenizer drops the zero-width space
    found = measure(model, tok, [short[0], bad, *short[1:]])
    clean = measure(model, tok, short)
    assert found.skipped == {"long": 0, "unaligned": 1} and clean.skipped == {"long": 0, "unaligned": 0}
    rows, clean_rows = head_rows(found), head_rows(clean)
    assert (rows["skipped_unaligned"] == 1).all() and (clean_rows["skipped_unaligned"] == 0).all()
    assert rows.drop(columns="skipped_unaligned").equals(clean_rows.drop(columns="skipped_unaligned"))


def test_an_interval_on_fewer_than_five_arcs_is_missing_with_a_note(bank):
    from probekit.analyses.syntax_heads import best_heads, uuas_table

    rows = series_rows(bank, {("seed-0", 0): gold})
    best = best_heads(rows)
    few, many = best[best["n"] < 5], best[best["n"] >= 5]
    assert len(few) and len(many)  # a rare relation of EWT's 300 sentences, and the common ones
    for name in ("accuracy", "baseline"):
        assert few[f"{name}_low"].isna().all() and few[f"{name}_high"].isna().all()
        assert many[f"{name}_low"].notna().all()
    assert few["note"].str.match(r"no interval: [1-4] arcs, fewer than 5$").all() and (many["note"] == "").all()
    assert not few["beats_baseline"].any()
    tree = uuas_table(rows)
    assert (tree["note"] == "").all() and tree.loc[tree["best_in_layer"], "uuas_low"].notna().all()
