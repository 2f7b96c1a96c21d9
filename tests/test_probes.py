"""probes: the structural probe recovers a tree a linear map encodes and finds nothing in noise beyond a
right-branching baseline; the UPOS probe reads a linearly encoded tag and not its control; fits are
deterministic; selectivity on a random-init model is near 0; word representations equal a plain loop over
the stock HF model (no probekit code) on tiny BERT, RoBERTa and ModernBERT; and the analysis runs through
probe() on EWT."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from probekit.analyses.probes import (Parsed, ProbeOptions, _ancestors, control_behaviour, control_heads,
                                      control_root, probe_features, spanning_edges, split, tree_depths,
                                      tree_distances, uuas_hits, word_representations)
from test_families import FILLER, write_checkpoint

TAGS = ["NOUN", "VERB", "DET", "ADJ", "ADV"]
LABELS = ["nsubj", "obj", "det", "amod"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: the fits are small, and two threads on a shared 2-core machine are many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_tree(rng: random.Random, n: int, adjacent: float) -> list[int]:
    """0-based heads of a random tree: each word but the root attaches to a neighbour with probability
    `adjacent` when that keeps it a tree, else to a random word already in the tree."""
    root = rng.randrange(n)
    heads, placed = [-1] * n, [root]
    for i in sorted(range(n), key=lambda i: abs(i - root))[1:]:
        near = i - 1 if i > root else i + 1
        heads[i] = near if rng.random() < adjacent else rng.choice(placed)
        placed.append(i)
    return heads


def sentences(n: int, seed: int = 0, vocab: int = 40, adjacent: float = 0.0, punct: bool = False) -> list[Parsed]:
    """Random trees over words `w0`…; a word's tag and label are functions of its type."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(4, 14)
        heads = random_tree(rng, length, adjacent)
        words = [f"w{rng.randrange(vocab)}" for _ in range(length)]
        upos = [("PUNCT" if punct and int(w[1:]) % 7 == 0 else TAGS[int(w[1:]) % 5]) for w in words]
        deprels = [LABELS[int(w[1:]) % 4] if h >= 0 else "root" for w, h in zip(words, heads)]
        out.append(Parsed(words, heads, deprels, upos))
    return out


def tree_features(parsed: list[Parsed], d: int, seed: int = 0) -> torch.Tensor:
    """[1, words, d]: word i is the sum of one vector per edge on its path to the root, the edge vectors of a
    sentence orthonormal (a random rotation per sentence): ||h_i − h_j||² is the tree distance, ||h_i||² the
    depth, so B = I is an exact structural probe."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for s in parsed:
        q = torch.linalg.qr(torch.randn(d, d, generator=generator))[0]
        for i in range(len(s.words)):
            path, node = torch.zeros(d), i
            while s.heads[node] >= 0:
                path += q[node]
                node = s.heads[node]
            rows.append(path)
    return torch.stack(rows)[None]


def probed(features: torch.Tensor, parsed: list[Parsed], probes=("upos", "deprel", "distance", "depth"),
           seed: int = 0, **opts) -> pd.DataFrame:
    fit, eval_ = split(parsed, seed)
    return probe_features(features, parsed, fit, eval_, ProbeOptions(seed=seed, **opts), key="t", probes=probes)


def value(frame: pd.DataFrame, probe: str, task: str = "task", metric: str | None = None, layer: int = 0) -> float:
    rows = frame[(frame["probe"] == probe) & (frame["task"] == task) & (frame["layer"] == layer)]
    rows = rows[rows["metric"] != "spearman"] if metric is None else rows[rows["metric"] == metric]
    return float(rows["value"].iloc[0])


# ---------------------------------------------------------------- trees and metrics


def test_tree_distances_and_depths_by_hand():
    heads = [1, -1, 1, 2]  # 0 ← 1 → 2 → 3
    assert tree_depths(heads).tolist() == [1, 0, 1, 2]
    assert tree_distances(heads).tolist() == [[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]]
    assert spanning_edges(tree_distances(heads), range(4)) == {frozenset(e) for e in ((0, 1), (1, 2), (2, 3))}
    assert uuas_hits(tree_distances(heads), tree_distances(heads), ["X", "X", "X", "PUNCT"]) == (2, 2)


# ---------------------------------------------------------------- the control tree


def is_tree(heads: list[int]) -> bool:
    try:
        return heads.count(-1) == 1 and all(_ancestors(heads, i)[-1] == heads.index(-1) for i in range(len(heads)))
    except ValueError:
        return False


def test_control_tree_is_always_a_tree():
    parsed = sentences(300, seed=5, vocab=25)
    for seed in (0, 1):
        behaviour = control_behaviour(parsed, seed)
        for s in parsed:
            heads = control_heads(s.words, behaviour, seed)
            assert is_tree(heads), (s.words, heads)
            root = heads.index(-1)
            # each word attaches to its neighbour towards the root or to the root
            assert all(h == root or h == (i - 1 if i > root else i + 1) for i, h in enumerate(heads) if h >= 0)


def test_control_tree_depends_only_on_word_types():
    parsed = sentences(50, seed=7, vocab=30)
    behaviour = control_behaviour(parsed, 0)
    for s in parsed:
        heads = control_heads(s.words, behaviour, 0)
        # same types (case differs) → the same structure
        assert control_heads([w.upper() for w in s.words], behaviour, 0) == heads
        # permuting the positions moves the root with its type
        order = list(range(len(s.words)))
        random.Random(len(s.words)).shuffle(order)
        permuted = [s.words[i] for i in order]
        assert permuted[control_root(permuted, 0)].lower() == s.words[control_root(s.words, 0)].lower()


def test_control_root_is_not_positionally_trivial_on_ewt():
    from probekit.benchmarks.treebank import load_treebank

    dev = list(load_treebank("ewt:dev").sentences)[:200]
    for seed in (0, 1):
        behaviour = control_behaviour([Parsed.of(s) for s in dev], seed)
        first = sum(control_heads(list(s.words), behaviour, seed)[0] == -1 for s in dev)
        # measured: 6 / 200 (seed 0), 2 / 200 (seed 1); the old control had the first word as root in all 200
        assert first < 0.15 * len(dev), first


# ---------------------------------------------------------------- the structural probes


def test_structural_probe_recovers_a_linearly_encoded_tree():
    parsed = sentences(160)
    frame = probed(tree_features(parsed, 16), parsed, probes=("distance", "depth"), rank=16, steps=300)
    assert value(frame, "distance") == 1.0  # UUAS
    assert value(frame, "depth") == 1.0  # root accuracy
    assert value(frame, "distance", metric="spearman") > 0.9 and value(frame, "depth", metric="spearman") > 0.9
    assert value(frame, "distance", "control") < 0.5
    low, high = frame.loc[(frame["probe"] == "distance") & (frame["task"] == "selectivity"),
                          ["value_low", "value_high"]].iloc[0]
    assert 0 < low <= value(frame, "distance", "selectivity") <= high


@pytest.mark.parametrize("kind", ["distance", "depth"])
def test_the_structural_loss_equals_the_papers_per_sentence_loss(kind):
    """Σ over sentences of |predicted − gold| over every ordered word pair (or word) / n² (or n), averaged over
    sentences, written as a plain loop over full matrices: the same value and gradient."""
    from probekit.analyses.probes import structural_loss, structural_terms

    parsed = sentences(30, seed=4)
    lengths = [len(s.words) for s in parsed]
    gold = [tree_distances(s.heads) if kind == "distance" else tree_depths(s.heads) for s in parsed]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(sum(lengths), 12, generator=generator)
    b = torch.randn(5, 12, generator=generator, requires_grad=True)
    flat = structural_loss(x @ b.T, structural_terms(x, lengths, gold, kind), kind)
    (flat_grad,) = torch.autograd.grad(flat, b)
    plain, start = 0.0, 0
    for n, g in zip(lengths, gold):
        z = x[start:start + n] @ b.T
        start += n
        if kind == "distance":
            pred = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
            plain = plain + (pred - torch.as_tensor(g, dtype=torch.float32)).abs().sum() / n ** 2
        else:
            plain = plain + ((z * z).sum(-1) - torch.as_tensor(g, dtype=torch.float32)).abs().sum() / n
    plain = plain / len(lengths)
    (plain_grad,) = torch.autograd.grad(plain, b)
    assert torch.allclose(flat, plain, rtol=1e-5) and torch.allclose(flat_grad, plain_grad, rtol=1e-4, atol=1e-6)


def right_branching_uuas(parsed: list[Parsed]) -> float:
    """The baseline: every non-punctuation word attached to the next, scored like the probe's trees."""
    hits = total = 0
    for s in parsed:
        keep = [i for i, tag in enumerate(s.upos) if tag != "PUNCT"]
        gold = spanning_edges(tree_distances(s.heads), keep)
        chain = {frozenset(pair) for pair in zip(keep, keep[1:])}
        hits, total = hits + len(gold & chain), total + len(gold)
    return hits / total


def test_structural_probe_on_random_features_is_not_above_the_right_branching_baseline():
    parsed = sentences(120, adjacent=0.7, punct=True)
    noise = torch.randn(1, sum(len(s.words) for s in parsed), 16, generator=torch.Generator().manual_seed(1))
    frame = probed(noise, parsed, probes=("distance",), rank=16, steps=100)
    _, eval_ = split(parsed, 0)
    baseline = right_branching_uuas([parsed[i] for i in eval_])
    uuas = value(frame, "distance")
    assert 0.4 < baseline and uuas < baseline + 0.05, (uuas, baseline)
    # tree-encoding features of the same sentences, punctuation left out of both trees, beat the baseline
    tree = probed(tree_features(parsed, 16), parsed, probes=("distance",), rank=16, steps=300)
    assert value(tree, "distance") > baseline + 0.2


# ---------------------------------------------------------------- the softmax probes and their controls


def tag_features(parsed: list[Parsed], noise: float = 0.5) -> torch.Tensor:
    """[1, words, 5 + 8]: the tag one-hot plus noise: a tag is linear in it, a word's type is not."""
    generator = torch.Generator().manual_seed(2)
    tags = torch.tensor([TAGS.index(t) for s in parsed for t in s.upos])
    onehot = torch.nn.functional.one_hot(tags, len(TAGS)).float()
    return torch.cat([onehot, torch.zeros(len(tags), 8)], 1)[None] + noise * torch.randn(
        1, len(tags), len(TAGS) + 8, generator=generator) * torch.tensor([0.1] * 5 + [1.0] * 8)


def test_upos_probe_reads_a_linear_tag_and_not_its_control():
    parsed = sentences(80)
    frame = probed(tag_features(parsed), parsed, probes=("upos",))
    assert value(frame, "upos") == 1.0
    assert value(frame, "upos", "control") < 0.6
    assert value(frame, "upos", "selectivity") > 0.4


def test_probes_are_deterministic_given_the_seed():
    parsed = sentences(40)
    features = torch.cat([tree_features(parsed, 16), tag_features(parsed)], 2)
    first, again = probed(features, parsed, steps=30), probed(features, parsed, steps=30)
    pd.testing.assert_frame_equal(first, again)
    other = probed(features, parsed, steps=30, seed=1)
    assert not first["value"].equals(other["value"])  # another split and other controls


# ---------------------------------------------------------------- representations of a model


def plain_word_states(folder, words_list: list[list[str]], pooling: str) -> list[torch.Tensor]:
    """Per sentence [layers + 1, words, d] from the stock HF model's hidden states, pieces given to words by
    their character offsets in the words joined by spaces (a bare space piece goes to the word after it)."""
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    out = []
    for words in words_list:
        text = " ".join(words)
        owner_of_char = [w for w, word in enumerate(words) for w in [w] * (len(word) + 1)]
        enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="pt")
        with torch.no_grad():
            states = torch.stack(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                       output_hidden_states=True).hidden_states)[:, 0]
        pieces: list[list[int]] = [[] for _ in words]
        for t, ((start, end), special) in enumerate(zip(enc["offset_mapping"][0].tolist(),
                                                        enc["special_tokens_mask"][0].tolist())):
            if special:
                continue
            inside = [c for c in range(start, end) if text[c] != " "]
            pieces[owner_of_char[inside[0]] if inside else owner_of_char[min(end, len(text) - 1)]].append(t)
        out.append(torch.stack([states[:, p[0]] if pooling == "first" else states[:, p].mean(1) for p in pieces],
                               1))
    return out


WORDS = [["the", "old", "river", "and", "the", "new", "city", "."], ["A", "queen", "was", "people", "!"],
         ["music", "Romeparis", "of", "Ωmega", "north"]]


@pytest.mark.parametrize("family", ["bert", "roberta", "modernbert"])
@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_word_representations_equal_a_plain_loop_over_the_hf_model(tmp_path, family, pooling):
    from probekit.models.series import load_checkpoint

    folder = write_checkpoint(tmp_path / family, family)
    model, tok = load_checkpoint(str(folder))
    ours, kept = word_representations(model, tok, WORDS, pooling=pooling, batch_size=2)
    theirs = torch.cat(plain_word_states(folder, WORDS, pooling), 1)
    assert kept == [0, 1, 2] and ours.shape == theirs.shape == (3, sum(map(len, WORDS)), 32)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_selectivity_on_a_random_init_model_is_near_zero(tmp_path):
    """Tags and labels here are functions of the word type; a random-init model keeps the type, so the task and
    its per-type control are equally easy: selectivity within ±0.1 at every layer."""
    from probekit.models.series import load_checkpoint

    rng = random.Random(3)
    parsed = []
    for _ in range(80):
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 10))]
        heads = random_tree(rng, len(words), 0.5)
        tags = [TAGS[len(w) % 5] for w in words]
        parsed.append(Parsed(words, heads, [LABELS[len(w) % 4] if h >= 0 else "root" for w, h in zip(words, heads)],
                             tags))
    model, tok = load_checkpoint(str(write_checkpoint(tmp_path / "bert", "bert")))
    features, kept = word_representations(model, tok, [s.words for s in parsed])
    frame = probed(features, parsed, probes=("upos", "deprel"), steps=50)
    selectivity = frame[frame["task"] == "selectivity"]
    assert len(selectivity) == 3 * 2 and selectivity["value"].abs().max() < 0.1, selectivity


# ---------------------------------------------------------------- through probe()


def two_seeds(series, root):
    """The series copied as two seeds (`seed-0/`, `seed-1/`, the same weights): the pooled rows must equal each."""
    import shutil

    for seed in ("seed-0", "seed-1"):
        shutil.copytree(series, root / seed)
    return str(root / "seed-*" / "checkpoint-*")


def test_probe_writes_both_tables_with_intervals_and_the_control(tiny_series, tmp_path):
    from probekit import probe

    result = probe(two_seeds(tiny_series, tmp_path / "runs"), ["ewt"],
                   analyses={"probes": {"steps": 20, "rank": 8}}, out=tmp_path / "out", sample=30)
    rows, all_scores = result.tables["probes"], result.tables["probe_scores"]
    scores = all_scores[all_scores["run"] == "seed-0"]
    pooled = all_scores[all_scores["run"] == "all-seeds"]
    assert len(pooled) == len(scores) and (pooled["n_seeds"] == 2).all() and (scores["n_seeds"] == 1).all()
    same = ["layer", "probe", "step"]
    merged = pooled.merge(scores, on=same, suffixes=("", "_one"))
    for column in ("score", "score_low", "score_high", "control", "selectivity_low", "selectivity_high"):
        assert np.allclose(merged[column], merged[f"{column}_one"]), column  # identical seeds add nothing
    rows = rows[rows["run"] == "seed-0"]
    assert set(rows["treebank"]) == {"ewt-test@30"} and set(rows["probe"]) == {"upos", "deprel", "distance",
                                                                                 "depth"}
    assert set(scores["layer"]) == {0, 1, 2} and scores["checkpoint"].nunique() == rows["checkpoint"].nunique()
    assert rows.loc[rows["task"].isin(["task", "control"]) & (rows["metric"] != "spearman"), "hits"].str.len().gt(0).all()
    assert (scores["score_low"] <= scores["score"]).all() and (scores["score"] <= scores["score_high"]).all()
    assert np.allclose(scores["selectivity"], scores["score"] - scores["control"])
    assert scores["spearman"].notna().sum() == len(scores[scores["probe"].isin(["distance", "depth"])])
    # the report section draws its page from the summary alone
    from probekit.report.page import Page
    from probekit.report.probes import PAGE, section

    page = Page(tmp_path / "docs")
    section(page, result.tables, tmp_path / "out")
    text = "\n".join(page.parts[PAGE])
    assert "# Syntax probes" in text and text.count("selectivity") >= 4
    assert not list((tmp_path / "docs" / "figures").glob("probes-*.png")) and text.count('class="probekit-chart"') == 3
    # the intervals' settings are the statistics module's, in the manifest
    from probekit.analyses import stats

    recorded = result.manifest["probes"]["intervals"]
    assert (recorded["level"], recorded["resamples"], recorded["seed"]) == (stats.LEVEL, stats.RESAMPLES, stats.SEED)
    assert "eval sentences" in recorded["over"] and recorded["min_items"] == stats.MIN_ITEMS


# ---------------------------------------------------------------- seeds and emergence


def series(parsed: list[Parsed], noise_of: dict) -> pd.DataFrame:
    """`probes` rows of a constructed series: noise_of[(run, step)] = the tag features' noise."""
    from probekit.core.schema import CONTROL

    frames = []
    for (run, step), noise in noise_of.items():
        frame = probed(tag_features(parsed, noise=noise), parsed, probes=("upos",), steps=20)
        frames.append(frame.assign(checkpoint=CONTROL if run == CONTROL else f"{run}/checkpoint-{step}", run=run,
                                   step=step, seed=run.removeprefix("seed-"), treebank="t"))
    return pd.concat(frames, ignore_index=True)


def test_scores_pool_seeds_with_a_multi_bootstrap_over_seeds_and_sentences():
    from probekit.analyses.probes import probe_scores

    parsed = sentences(60)
    frame = series(parsed, {("seed-0", 0): 10.0, ("seed-0", 100): 0.5, ("seed-1", 0): 10.0, ("seed-1", 100): 4.0})
    scores = probe_scores(frame).set_index("checkpoint")
    one, other, pooled = (scores.loc[c] for c in ("seed-0/checkpoint-100", "seed-1/checkpoint-100",
                                                   "all-seeds/step-100"))
    assert pooled["run"] == "all-seeds" and pooled["n_seeds"] == 2 and one["n_seeds"] == 1
    assert pooled["score"] == pytest.approx((one["score"] + other["score"]) / 2)  # the same words in each seed
    assert pooled["selectivity"] == pytest.approx(pooled["score"] - pooled["control"])
    # a plain Multi-Bootstrap over seeds and sentences of Σhits / Σitems, from the rows' per-sentence counts
    main = frame[(frame["step"] == 100) & (frame["task"] == "task")].sort_values("run")
    hits = np.array([[float(v) for v in h.split()] for h in main["hits"]])
    items = np.array([[float(v) for v in i.split()] for i in main["items"]])
    assert (hits.sum(1) / items.sum(1)).tolist() == pytest.approx([one["score"], other["score"]])
    rng = np.random.default_rng(7)
    ratios = []
    for _ in range(2000):
        s, w = rng.integers(0, 2, 2), rng.integers(0, hits.shape[1], hits.shape[1])
        ratios.append(hits[s][:, w].sum() / items[s][:, w].sum())
    low, high = np.percentile(ratios, [2.5, 97.5])
    assert abs(pooled["score_low"] - low) < 0.02 and abs(pooled["score_high"] - high) < 0.02, (low, high)
    assert pooled["score_high"] - pooled["score_low"] > one["score_high"] - one["score_low"]
    # identical seeds add nothing: the pooled interval is the single seed's
    start = scores.loc["all-seeds/step-0"]
    assert (start["score_low"], start["score_high"]) == (scores.loc["seed-0/checkpoint-0", "score_low"],
                                                          scores.loc["seed-0/checkpoint-0", "score_high"])


def test_a_probe_is_selective_by_the_findings_rule():
    """The findings' `emerged` row of a probe (some layer's selectivity above the random-init model's, to the
    last step) against a plain loop over the table's own bounds."""
    from probekit.analyses.findings import build, select
    from probekit.analyses.probes import probe_scores
    from probekit.core.schema import CONTROL

    parsed = sentences(60)
    scores = probe_scores(series(parsed, {(CONTROL, None): 10.0, ("seed-0", 0): 10.0, ("seed-0", 10): 8.0,
                                          ("seed-0", 20): 0.5, ("seed-0", 30): 10.0, ("seed-0", 40): 0.5}))
    found = select(build({"probe_scores": scores}), "emerged", "probes").iloc[0]
    line = scores[scores["checkpoint"] != CONTROL].sort_values("step")
    init_high = float(scores.loc[scores["checkpoint"] == CONTROL, "selectivity_high"].iloc[0])
    cleared = (line["selectivity_low"] > init_high).tolist()
    steps = line["step"].tolist()
    last_miss = max(k for k, flag in enumerate(cleared) if not flag)
    assert found["verdict"] == "emerged" and found["step"] == steps[last_miss + 1] == 40
    assert found["step_low"] == 30 and found["first_cleared"] == steps[cleared.index(True)] == 20


def test_average_ranks_are_scipys_with_ties_and_need_no_scipy():
    import subprocess
    import sys

    import numpy as np
    from scipy.stats import rankdata

    from probekit.analyses.probes import average_ranks

    values = np.array([[3.0, 1.0, 2.0, 2.0, 5.0], [0.0, 0.0, 0.0, 1.0, -1.0]])
    np.testing.assert_array_equal(average_ranks(values), rankdata(values, axis=1))
    code = ("import sys; sys.modules['scipy'] = None; import numpy as np; "
            "from probekit.analyses.probes import spearman_by_length; "
            "print(spearman_by_length([(np.arange(6.0), np.arange(6.0))], [6])[0])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "1.0"


# ---------------------------------------------------------------- bad and small treebanks (issue 33)


def conllu(sentences) -> str:
    """CoNLL-U text of treebank sentences (1-based heads)."""
    blocks = []
    for s in sentences:
        blocks.append("\n".join(f"{i}\t{w}\t_\t{u}\t_\t_\t{h}\t{r}\t_\t_"
                                for i, (w, u, h, r) in enumerate(zip(s.words, s.upos, s.heads, s.deprels), 1)))
    return "\n\n".join(blocks) + "\n"


def test_too_few_eval_sentences_give_no_interval_and_say_why():
    parsed = sentences(20, seed=4)
    for n, eval_n in ((8, 4), (10, 5)):
        frame = probed(tag_features(parsed[:n], noise=0.5), parsed[:n], probes=("upos",), steps=10)
        main = frame[frame["metric"] != "spearman"]
        assert (main["sentences"] == eval_n).all() and main["value"].notna().all()
        if eval_n < 5:
            assert main["value_low"].isna().all() and main["value_high"].isna().all()
            assert (main["note"] == "no interval: 4 eval sentences, fewer than 5").all()
        else:
            assert main["value_low"].notna().all() and (main["note"] == "").all()
    one = probed(tag_features(parsed[:1], noise=0.5), parsed[:1])  # 1 to fit, 0 to evaluate
    assert one["value"].isna().all() and one["note"].str.startswith("too few sentences to fit and evaluate").all()
    assert set(one["probe"]) == {"upos", "deprel", "distance", "depth"}


def test_a_word_without_a_piece_skips_its_sentence_and_one_sentence_gives_a_reason_not_warnings(
        tiny_series, tmp_path, caplog):
    import warnings

    from probekit import probe
    from probekit.benchmarks.treebank import load_treebank

    ewt = [s for s in load_treebank("ewt:dev", sample=60).sentences if 4 <= len(s) <= 12][:14]
    bad = ewt[2]
    bad = type(bad)(words=[bad.words[0], "\u200b", *bad.words[2:]], heads=bad.heads, deprels=bad.deprels,
                    upos=bad.upos)
    path = tmp_path / "zw.conllu"
    path.write_text(conllu([*ewt[:2], bad, *ewt[3:]]), encoding="utf-8")
    checkpoint = str(tiny_series / "checkpoint-8")
    result = probe(checkpoint, [str(path)], analyses={"probes": {"steps": 5, "rank": 4}, "syntax-heads": {}},
                   out=tmp_path / "out", control=False)
    scores, best = result.tables["probe_scores"], result.tables["syntax_best_heads"]
    assert len(scores) and scores["score"].notna().all() and (scores["skipped_unaligned"] == 1).all()
    assert scores["sentences"].isin([6, 7]).all()  # 14 split 7 + 7, the bad one out of its half
    assert len(best) and (best["skipped_unaligned"] == 1).all()
    assert (result.tables["checkpoints"]["status"] != "skipped").all()
    assert any("1 of 14 sentences skipped" in r.getMessage() and "no piece" in r.getMessage()
               for r in caplog.records)

    one = tmp_path / "one.conllu"
    one.write_text(conllu(ewt[:1]), encoding="utf-8")
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = probe(checkpoint, [str(one)], analyses={"probes": {"steps": 5, "rank": 4}}, out=tmp_path / "one",
                       control=False)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    scores = result.tables["probe_scores"]
    assert scores["score"].isna().all() and scores["note"].str.startswith("too few sentences").all()
    assert sum("too few sentences to fit and evaluate" in r.getMessage() for r in caplog.records) == 1


def test_definitions_say_where_the_probes_follow_hewitt_and_manning_and_where_not():
    from probekit.analyses.probes import definitions

    text = definitions({})
    for said in ("length squared", "not punctuation", "5–50", "root", "L-BFGS", "Adam", "rank k = 64",
                 "its **first** piece", "1,000 resamples", "fewer than 5"):
        assert said in text, said
    assert "rank k = 8" in definitions({"rank": 8}) and "**mean** of its pieces" in definitions({"pooling": "mean"})


def test_single_seed_intervals_are_a_plain_paired_bootstrap_over_sentences():
    """The one-seed rows' intervals (the statistics module's resampler) against a plain percentile bootstrap of
    Σhits / Σitems over eval sentences, task and control drawn together so selectivity is paired."""
    from probekit.analyses import stats

    parsed = sentences(60, seed=2)
    frame = probed(tag_features(parsed, noise=3.0), parsed, probes=("upos",), steps=20)
    main = frame[(frame["metric"] != "spearman")].set_index("task")
    hits = np.array([[float(v) for v in main.loc[t, "hits"].split()] for t in ("task", "control")])
    items = np.array([[float(v) for v in main.loc[t, "items"].split()] for t in ("task", "control")])
    rng = np.random.default_rng(11)
    ratios = []
    for _ in range(4000):
        w = rng.integers(0, hits.shape[1], hits.shape[1])
        ratios.append(hits[:, w].sum(1) / items[:, w].sum(1))
    ratios = np.array(ratios)
    for row, (low, high) in zip(("task", "control"), np.percentile(ratios, [2.5, 97.5], axis=0).T):
        assert abs(main.loc[row, "value_low"] - low) < 0.02 and abs(main.loc[row, "value_high"] - high) < 0.02
    low, high = np.percentile(ratios[:, 0] - ratios[:, 1], [2.5, 97.5])
    diff = main.loc["selectivity"]
    assert abs(diff["value_low"] - low) < 0.02 and abs(diff["value_high"] - high) < 0.02
    assert stats.LEVEL == 0.95 and stats.RESAMPLES == 1000  # the settings the rows were made with
