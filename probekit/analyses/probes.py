"""Classifier and structural probes with control tasks: what each layer's word representations encode of
part of speech, dependency labels and the parse tree, and how much of it is the probe's own capacity.

Representations. Every layer's residual stream (0 = the embeddings … L = the model's output, ModernBERT's after its final norm; read through
`probekit.models.hooks.hooked`, one forward per batch of sentences) per *word*: the words joined by single spaces are
tokenized and each piece goes to the word its character offsets fall in (`syntax_heads.align`, the rule both
syntax analyses share; `is_split_into_words` would drop a byte-level tokenizer's space marker); a word is its
first piece (`--probe-pooling first`, the default) or the mean of its pieces (`mean`). Sentences longer than
the model's input, and sentences with a word the tokenizer turns into no piece (a zero-width character), are
left out and counted by reason (`skipped_long`, `skipped_unaligned`; the rows' `sentences` counts the eval
sentences scored). Features are scaled per layer by
the fit half's standard deviation, and centred too for the softmax probes (which have a bias; the depth probe
||Bh||² has none, so its origin stays): a linear probe is unchanged by it, L-BFGS converges better.

Fit and eval. A treebank holding both EWT dev and test (`ewt:dev+test`) fits on dev and reports on test; any
other (`ewt` = test, `ewt:dev`, a .conllu file) is split by sentence, a seeded permutation, half to fit and
half to report on (`--probe-seed`).

Probes, each fitted full batch on the CPU, deterministic given the seed:
  upos      multinomial logistic regression (softmax, L2, `torch.optim.LBFGS`) on the word: accuracy.
  deprel    the same on [head; dependent] of every arc (root arcs left out): accuracy of the arc's label.
  distance  Hewitt & Manning (2019): a rank-k map B (`--probe-rank`, or d if smaller) fitted so that
            ||B(h_i − h_j)||² fits the tree distance, L1 loss divided by the sentence's length squared, averaged
            over sentences. UUAS: edges of the minimum spanning tree of the predicted distances that are gold
            edges (both trees over the words that are not UPOS PUNCT, the gold one the spanning tree of the gold
            distances, as the paper's code does); spearman: per word, the Spearman correlation of its predicted
            and gold distances to the others, averaged per sentence length, then over the lengths 5–50.
  depth     ||B h_i||² fits the word's depth (L1 divided by length): root accuracy (the non-punctuation word of
            least predicted depth is the gold root) and the Spearman correlation of depths (per length 5–50).
Control tasks (Hewitt & Liang 2019), labels fixed per word *type* (lower-cased form) by the seed: upos — a
tag drawn from the treebank's tag distribution; deprel — a label drawn from the label distribution, per
dependent type; distance and depth — a control tree that is a function of the word types only: its root is
the word whose type has the smallest seeded hash in the sentence (not a fixed position), and every other word
attaches, by a seeded ½–½ choice per type, either to its neighbour on the side towards the root or directly
to the root (always a tree; both probes use the same tree), a simpler stand-in for the paper's control. The same probe is fitted on the
control labels and scored against them; selectivity = task − control of the main metric.

Intervals: percentile bootstrap over eval sentences with the statistics module's level, resamples and seed
(`probekit.analyses.stats`: LEVEL, RESAMPLES, SEED, `ratio_intervals`; the manifest's `probes` entry records
them): a resample draws sentences with replacement and recomputes the pooled metric (hits / items, so a long
sentence weighs by its words, as in the point estimate); task and control share the resamples, so
selectivity's interval is paired. An interval resting on fewer than `stats.MIN_ITEMS` (5) eval sentences is
not reported (missing, with a `note`), and a treebank too small to fit and evaluate gives missing scores with
a note, not numpy warnings. The Spearman rows carry no interval. The task and control rows keep their
per-sentence hits and items (`hits`, `items`), so
that with several training seeds (`probekit.analyses.stats.seeds_of`) `probe_scores` also holds, per step the
seeds share, a row pooled over them (run `all-seeds`): Σhits / Σitems over seeds and sentences, its interval a
Multi-Bootstrap (seeds and eval sentences drawn together, task and control on the same draws); its Spearman
is the seeds' mean.

Over the series, what is claimed (a probe selective, and since when) is decided by the findings' rules
(`probekit.analyses.findings`: selectivity above the random-init model's at the same layer, Holm over the layers,
sustained).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from probekit.core import lazy
from probekit.analyses.base import Analysis, Context, Options, Shape, option, register
from probekit.core.schema import CHECKPOINT_COLUMNS, N_SEEDS, Table, bounds, columns

if TYPE_CHECKING:
    import numpy as np
    import torch

pd = lazy.module("pandas")

PROBES = ("upos", "deprel", "distance", "depth")
MAIN = {"upos": "accuracy", "deprel": "accuracy", "distance": "uuas", "depth": "root_accuracy"}
"""The metric of each probe that its control and selectivity are reported for."""
SPEARMAN_LENGTHS = (5, 50)
PUNCT = "PUNCT"
SKIP_COLUMNS = (("skipped_long", "int", "treebank sentences left out: longer than the model's positions"),
                ("skipped_unaligned", "int", "treebank sentences left out: a word the tokenizer turns into no "
                                             "piece (e.g. a zero-width character)"))
NOTE = ("note", "str", "why a value or interval is missing (too few sentences), else empty")

PROBES_TABLE = Table("probes", "checkpoint × treebank × layer × probe × task × metric", columns(
    *CHECKPOINT_COLUMNS, ("treebank", "str", "the treebank input"),
    ("layer", "int", "0 = the embeddings, L = the last layer"),
    ("probe", "str", "upos, deprel, distance (structural probe), depth"),
    ("task", "str", "task (gold labels), control (labels fixed per word type at random), selectivity (task − "
                    "control, main metric only)"),
    ("metric", "str", "accuracy (upos, deprel), uuas and spearman (distance), root_accuracy and spearman (depth)"),
    ("value", "float", "the metric on the eval sentences"),
    *bounds(("value",), over="eval sentences"),
    ("n", "int", "items behind the value: words, arcs, gold edges, sentences, or sentences of length 5–50"),
    ("sentences", "int", "eval sentences scored"),
    ("hits", "str", "per eval sentence, in order, the items it got right (space-separated; main metric's task and "
                    "control rows only, empty on the others): what the intervals pooled over seeds resample"),
    ("items", "str", "per eval sentence the items behind `hits` (words, arcs, gold edges, 0/1 for the root)"),
    NOTE, *SKIP_COLUMNS,
), "Each probe of each layer fitted on the fit sentences and scored on the eval sentences, on the task and on "
   "its control task (Hewitt & Liang 2019).")
PROBE_SCORES = Table("probe_scores", "checkpoint × treebank × layer × probe", columns(
    *CHECKPOINT_COLUMNS, ("treebank", "str", "the treebank input"),
    ("layer", "int", "0 = the embeddings, L = the last layer"), ("probe", "str", "upos, deprel, distance, depth"),
    ("metric", "str", "the probe's main metric: accuracy, uuas, root_accuracy"),
    ("score", "float", "the main metric on the task"), *bounds(("score",), over="eval sentences"),
    ("control", "float", "the same on the control task"), *bounds(("control",), over="eval sentences"),
    ("selectivity", "float", "score − control"), *bounds(("selectivity",), over="eval sentences (paired)"),
    ("spearman", "float", "the distance or depth Spearman correlation on the task (missing for upos, deprel)"),
    ("n", "int", "items behind the score"), ("sentences", "int", "eval sentences"), N_SEEDS, NOTE, *SKIP_COLUMNS,
), "Per layer and probe: the main metric with its control and selectivity, each with a bootstrap interval over "
   "eval sentences.")


@dataclass(frozen=True)
class ProbeOptions(Options):
    pooling: str = option("first", "A word's representation: its first piece or the mean of its pieces.",
                          flag="--probe-pooling", choices=("first", "mean"))
    rank: int = option(64, "Rank k of the structural probes' map B (d when the model is narrower).",
                       flag="--probe-rank", low=1, high=4096)
    seed: int = option(0, "Seed of the fit/eval split, the control labels and the structural probes' start.",
                       flag="--probe-seed", low=0)
    l2: float = option(1e-4, "L2 penalty of the softmax probes (times the squared weights' sum).",
                       flag="--probe-l2", low=0.0)
    steps: int = option(100, "L-BFGS iterations per probe (at most).", flag="--probe-steps", low=1, high=10000)
    tolerance: float = option(1e-10, "Stop a probe's L-BFGS once an iteration changes its loss (or its weights) by "
                              "less than this; the losses are O(1) means.", flag="--probe-tolerance", low=0.0)


# ---------------------------------------------------------------- sentences, trees and controls


@dataclass
class Parsed:
    """One sentence as the probes see it: words, 0-based heads (-1 = root), labels."""

    words: list[str]
    heads: list[int]
    deprels: list[str]
    upos: list[str]

    @classmethod
    def of(cls, sentence: Any) -> Parsed:
        """From a treebank sentence (`words`, 1-based `heads` with 0 = root, `deprels`, `upos`)."""
        return cls(list(sentence.words), [int(h) - 1 for h in sentence.heads], list(sentence.deprels),
                   list(sentence.upos))


def tree_distances(heads: Sequence[int]) -> np.ndarray:
    """[n, n] path lengths in the tree given by 0-based heads (-1 = root)."""
    import numpy as np

    chains = [_ancestors(heads, i) for i in range(len(heads))]
    n = len(heads)
    out = np.zeros((n, n))
    for i in range(n):
        up_i = {a: k for k, a in enumerate(chains[i])}
        for j in range(i + 1, n):
            k = next(k for k, a in enumerate(chains[j]) if a in up_i)
            out[i, j] = out[j, i] = k + up_i[chains[j][k]]
    return out


def tree_depths(heads: Sequence[int]) -> np.ndarray:
    """[n] edges between each word and the root."""
    import numpy as np

    return np.array([len(_ancestors(heads, i)) - 1 for i in range(len(heads))], dtype=float)


def _ancestors(heads: Sequence[int], i: int) -> list[int]:
    chain = [i]
    while heads[chain[-1]] >= 0:
        chain.append(heads[chain[-1]])
        if len(chain) > len(heads):
            raise ValueError("the heads do not form a tree (a cycle)")
    return chain


def type_of(word: str) -> str:
    return word.lower()


def control_labels(sentences: list[Parsed], field: str, seed: int, salt: int) -> dict[str, str]:
    """Word type → a label drawn from the distribution of `field`'s labels (Hewitt & Liang's control)."""
    import numpy as np

    labels = [label for s in sentences for label in getattr(s, field)]
    values, counts = np.unique(labels, return_counts=True)
    types = sorted({type_of(w) for s in sentences for w in s.words})
    draws = np.random.default_rng([seed, salt]).choice(len(values), size=len(types), p=counts / counts.sum())
    return {t: str(values[d]) for t, d in zip(types, draws)}


def control_behaviour(sentences: list[Parsed], seed: int) -> dict[str, bool]:
    """Word type → True: attach to the neighbour towards the control root, False: attach to the root."""
    import numpy as np

    types = sorted({type_of(w) for s in sentences for w in s.words})
    draws = np.random.default_rng([seed, 3]).random(len(types)) < 0.5
    return dict(zip(types, map(bool, draws)))


def type_rank(word: str, seed: int) -> int:
    """A seeded hash of the word's type: the control root is the word of least rank."""
    return zlib.crc32(f"{seed}\x00{type_of(word)}".encode())


def control_root(words: Sequence[str], seed: int) -> int:
    """The control tree's root: the word whose type has the smallest seeded hash (the first such word when
    that type repeats), so the root is chosen by type, not by position."""
    return min(range(len(words)), key=lambda i: (type_rank(words[i], seed), i))


def control_heads(words: Sequence[str], behaviour: dict[str, bool], seed: int = 0) -> list[int]:
    """The control tree (Hewitt & Liang's control: structure fixed by the word types alone): the root is
    `control_root`; every other word attaches, as its type says in `behaviour`, to its neighbour on the side
    towards the root (True) or to the root itself (False). Heads only point towards the root, so it is a tree."""
    if not words:
        return []
    root = control_root(words, seed)
    return [-1 if i == root else (i - 1 if i > root else i + 1) if behaviour[type_of(w)] else root
            for i, w in enumerate(words)]


def split(sentences: list, seed: int) -> tuple[list[int], list[int]]:
    """(fit, eval) sentence indices: a seeded permutation, the first half (rounded up) to fit."""
    import numpy as np

    order = np.random.default_rng([seed, 0]).permutation(len(sentences))
    half = (len(sentences) + 1) // 2
    return sorted(order[:half].tolist()), sorted(order[half:].tolist())


# ---------------------------------------------------------------- representations


def word_representations(model, tokenizer, sentences: Sequence[Sequence[str]], *, pooling: str = "first",
                         batch_size: int = 32, device="cpu", max_length: int | None = None,
                         skipped: dict | None = None) -> tuple[torch.Tensor, list[int]]:
    """([layers + 1, words, d] float32 on the CPU, the indices of the sentences kept): every layer's residual
    stream per word (first piece or mean of pieces), words in sentence order. Pieces are given to words
    through the tokenizer's character offsets of the words joined by spaces (`syntax_heads.align`, the rule
    both syntax analyses share: `is_split_into_words` would drop a byte-level tokenizer's space marker and
    feed pieces the model never read in running text). A sentence longer than `max_length` tokens, or with a
    word that has no piece (a zero-width character), is left out; `skipped`, if given, is filled with the count
    per reason (`long`, `unaligned`)."""
    import torch

    from probekit.analyses.syntax_heads import align
    from probekit.models.families import body_inputs, n_layers
    from probekit.models.hooks import hooked

    names = [readout(layer) for layer in range(n_layers(model) + 1)]
    last = final_norm(model)
    from probekit.analyses.syntax_heads import SKIP_REASONS, skip_reason

    aligned = [align(tokenizer, list(words)) for words in sentences]
    longest = max_length if max_length is not None else float("inf")
    reasons = [skip_reason(ids, owner, len(words), longest) for (ids, owner), words in zip(aligned, sentences)]
    kept = [i for i, reason in enumerate(reasons) if reason is None]
    if skipped is not None:
        skipped.update({reason: reasons.count(reason) for reason in SKIP_REASONS})
    chunks = []
    for start in range(0, len(kept), batch_size):
        batch = [aligned[i] for i in kept[start:start + batch_size]]
        longest = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), longest), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros(len(batch), longest, dtype=torch.long)
        for b, (ids, _) in enumerate(batch):
            input_ids[b, :len(ids)], mask[b, :len(ids)] = torch.tensor(ids), 1
        owners = [[w if w >= 0 else None for w in owner] for _, owner in batch]
        with torch.no_grad(), hooked(model, read=names) as store:
            model(**body_inputs(model, {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}))
        with torch.no_grad():
            store[names[-1]] = last(store[names[-1]])
        states = torch.stack([store[name].float().cpu() for name in names])  # [layers + 1, batch, pos, d]
        chunks.append(pool(states, owners, [len(sentences[i]) for i in kept[start:start + batch_size]], pooling))
    if not chunks:
        return torch.zeros(len(names), 0, 0), kept
    return torch.cat(chunks, dim=1), kept


def pool(states: torch.Tensor, word_ids: list[list[int | None]], lengths: list[int], pooling: str) -> torch.Tensor:
    """[layers, words, d] from [layers, batch, pos, d]: each word's first piece or the mean of its pieces."""
    import torch

    rows, targets, offset = [], [], 0
    for b, ids in enumerate(word_ids):
        seen = set()
        for pos, w in enumerate(ids):
            if w is None or (pooling == "first" and w in seen):
                continue
            seen.add(w)
            rows.append(b * states.shape[2] + pos)
            targets.append(offset + w)
        if len(seen) != lengths[b]:
            raise ValueError(f"sentence {b} of the batch: {lengths[b] - len(seen)} word(s) have no piece")
        offset += lengths[b]
    flat = states.flatten(1, 2)[:, rows]  # [layers, pieces kept, d]
    index = torch.tensor(targets)
    summed = torch.zeros(states.shape[0], offset, states.shape[3]).index_add_(1, index, flat)
    counts = torch.zeros(offset).index_add_(0, index, torch.ones(len(targets)))
    return summed / counts[None, :, None]


def final_norm(model) -> torch.nn.Module:
    """The norm the body applies after its last block (ModernBERT's), else identity: layer L is the model's own
    output, as HF's last hidden state is."""
    import torch

    from probekit.models.families import body, family

    path = family(model).final_norm
    return body(model).get_submodule(path) if path else torch.nn.Identity()


def readout(layer: int) -> str:
    """The hook point holding layer `layer`'s output (0 = the embeddings)."""
    from probekit.models.hooks import hook_name

    return hook_name(0, "hook_resid_pre") if layer == 0 else hook_name(layer - 1, "hook_resid_post")


# ---------------------------------------------------------------- fitting


def standardise(fit: torch.Tensor, *others: torch.Tensor, centre: bool = True) -> list[torch.Tensor]:
    """Every tensor centred and scaled by `fit`'s per-feature mean and standard deviation (scaled only when
    not `centre`: the depth probe ||Bh||² has no bias, so its origin must stay where it is)."""
    mean, std = fit.mean(0), fit.std(0).clamp_min(1e-6)
    mean = mean if centre else mean * 0
    return [(x - mean) / std for x in (fit, *others)]


def lbfgs(params: list[torch.Tensor], loss_fn, steps: int, tolerance: float = 1e-10) -> None:
    """Minimise `loss_fn()` over `params`, full batch, strong-Wolfe line search, at most `steps` iterations, fewer
    once an iteration changes the loss or the weights by less than `tolerance`: deterministic."""
    import torch

    optimiser = torch.optim.LBFGS(params, lr=1, max_iter=steps, history_size=20, tolerance_grad=1e-7,
                                  tolerance_change=tolerance, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    optimiser.step(closure)


def fit_softmax(parts: list[torch.Tensor], y: torch.Tensor, n_classes: int, *, l2: float, steps: int,
                tolerance: float = 1e-10) -> list[torch.Tensor]:
    """Weights [(C, d_p)] and bias of a multinomial logistic regression on features given as parts whose
    logits add up (an arc's [head; dependent] is two parts): zero start, so the fit is deterministic."""
    import torch

    weights = [torch.zeros(n_classes, x.shape[1], requires_grad=True) for x in parts]
    bias = torch.zeros(n_classes, requires_grad=True)

    def loss():
        logits = sum(x @ w.T for x, w in zip(parts, weights)) + bias
        return (torch.nn.functional.cross_entropy(logits, y)
                + l2 * sum((w * w).sum() for w in weights))

    lbfgs([*weights, bias], loss, steps, tolerance)
    return [*(w.detach() for w in weights), bias.detach()]


def softmax_predict(parts: list[torch.Tensor], params: list[torch.Tensor]) -> torch.Tensor:
    logits = sum(x @ w.T for x, w in zip(parts, params[:-1])) + params[-1]
    return logits.argmax(-1)


def padded(x: torch.Tensor, lengths: list[int], chunk: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Sentences of words × d as padded chunks of similar length: [(index [S, T] into x (−1 = pad), mask)]."""
    import torch

    starts = torch.tensor([0, *lengths]).cumsum(0)[:-1].tolist()
    order = sorted(range(len(lengths)), key=lambda s: lengths[s])
    out = []
    for c in range(0, len(order), chunk):
        ids = order[c:c + chunk]
        longest = max(lengths[s] for s in ids)
        index = torch.full((len(ids), longest), -1, dtype=torch.long)
        for r, s in enumerate(ids):
            index[r, :lengths[s]] = torch.arange(starts[s], starts[s] + lengths[s])
        out.append((index, index >= 0))
    return out


def fit_structural(x: torch.Tensor, lengths: list[int], gold: list[np.ndarray], kind: str, *, rank: int,
                   steps: int, seed: int, tolerance: float = 1e-10) -> torch.Tensor:
    """B [k, d] of the distance probe (gold: [n, n] tree distances) or the depth probe (gold: [n] depths):
    L1 loss per sentence divided by its length squared (distance) or its length (depth), averaged over
    sentences, as in Hewitt & Manning (2019); full-batch L-BFGS from a seeded start."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    k = min(rank, x.shape[1])
    start = torch.randn(k, x.shape[1], generator=generator) / x.shape[1] ** 0.5
    b = start.requires_grad_(True)
    terms = structural_terms(x, lengths, gold, kind)
    lbfgs([b], lambda: structural_loss(x @ b.T, terms, kind), steps, tolerance)
    return b.detach()


def structural_terms(x: torch.Tensor, lengths: list[int], gold: list[np.ndarray], kind: str) -> dict:
    """What the structural loss needs besides z, made once per fit. Depth: every word's depth and weight
    1 / (n · sentences), flat. Distance: the sentences as padded chunks of similar length (`padded`) with their
    gold distances [S, T, T] and 1 / n² (padded chunks measured faster than a flat list of word pairs, whose
    gathers and scatters cost more than the small batched products)."""
    import numpy as np
    import torch

    if kind == "depth":
        weight = np.concatenate([np.full(n, 1.0 / n) for n in lengths]) / len(lengths)
        target = np.concatenate([np.asarray(g, dtype=float) for g in gold])
        return {"target": torch.as_tensor(target, dtype=torch.float32),
                "weight": torch.as_tensor(weight, dtype=torch.float32)}
    chunks = [(index, mask, _gold_chunk(index, lengths, gold)) for index, mask in padded(x, lengths)]
    return {"chunks": chunks, "norm": [mask.sum(1).float() ** 2 for _, mask, _ in chunks], "sentences": len(lengths)}


def structural_loss(z: torch.Tensor, terms: dict, kind: str) -> torch.Tensor:
    """The structural probe's loss from z = x Bᵀ [words, k] and `structural_terms`: per sentence Σ |pred − gold|
    over every ordered word pair with pred = ||z_i − z_j||² (distance, / n²) or over every word with pred =
    ||z_i||² (depth, / n), averaged over sentences."""
    if kind == "depth":
        return (terms["weight"] * ((z * z).sum(1) - terms["target"]).abs()).sum()
    total = 0.0
    for (index, mask, target), by in zip(terms["chunks"], terms["norm"]):
        err = (structural_predict(z, index, mask, kind) - target).abs()
        total = total + (err.flatten(1).sum(1) / by).sum()
    return total / terms["sentences"]


def _gold_chunk(index: torch.Tensor, lengths: list[int], gold: list[np.ndarray]) -> torch.Tensor:
    """The gold distances [S, T, T] of a padded chunk, zero at the padding."""
    import torch

    s, t = index.shape
    out = torch.zeros((s, t, t))
    starts = torch.tensor([0, *lengths]).cumsum(0)[:-1].tolist()
    where = {start: i for i, start in enumerate(starts)}
    for r, f in enumerate(index[:, 0].tolist()):
        g = torch.as_tensor(gold[where[f]], dtype=torch.float32)
        out[r, :g.shape[0], :g.shape[0]] = g
    return out


def structural_predict(z: torch.Tensor, index: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Predicted squared distances [S, T, T] or depths [S, T] of a padded chunk from z = x Bᵀ (zero at pads)."""
    zs = z[index.clamp_min(0)] * mask[..., None]
    if kind == "depth":
        return (zs * zs).sum(-1)
    norms = (zs * zs).sum(-1)  # ||z_i − z_j||² = |z_i|² + |z_j|² − 2 z_i·z_j: no [S, T, T, k] tensor
    squared = norms[:, :, None] + norms[:, None, :] - 2 * zs @ zs.transpose(1, 2)
    return squared.clamp_min(0) * (mask[:, :, None] & mask[:, None, :])


def predicted(x: torch.Tensor, b: torch.Tensor, lengths: list[int], kind: str) -> list[np.ndarray]:
    """Per sentence, in order: predicted distances [n, n] or depths [n]."""
    import torch

    starts = torch.tensor([0, *lengths]).cumsum(0)[:-1].tolist()
    where = {start: i for i, start in enumerate(starts)}
    out: list = [None] * len(lengths)
    with torch.no_grad():
        z = x @ b.T
        for index, mask in padded(x, lengths):
            pred = structural_predict(z, index, mask, kind).numpy()
            for r, f in enumerate(index[:, 0].tolist()):
                n = lengths[where[f]]
                out[where[f]] = pred[r, :n, :n] if kind == "distance" else pred[r, :n]
    return out


# ---------------------------------------------------------------- metrics


def spanning_edges(distances: np.ndarray, keep: Sequence[int]) -> set[frozenset]:
    """Edges (pairs of word indices) of the minimum spanning tree over the words `keep` (Prim's algorithm;
    ties go to the lower index, as a stable argmin does)."""
    import numpy as np

    keep = list(keep)
    if len(keep) < 2:
        return set()
    d = distances[np.ix_(keep, keep)]
    inside = np.zeros(len(keep), bool)
    inside[0] = True
    best, parent = d[0].copy(), np.zeros(len(keep), int)
    edges = set()
    for _ in range(len(keep) - 1):
        j = int(np.argmin(np.where(inside, np.inf, best)))
        edges.add(frozenset((keep[parent[j]], keep[j])))
        inside[j] = True
        closer = d[j] < best
        best, parent = np.where(closer, d[j], best), np.where(closer, j, parent)
    return edges


def uuas_hits(pred: np.ndarray, gold: np.ndarray, upos: Sequence[str]) -> tuple[int, int]:
    """(gold edges found, gold edges) of one sentence, over its non-punctuation words."""
    keep = [i for i, tag in enumerate(upos) if tag != PUNCT]
    gold_edges = spanning_edges(gold, keep)
    return len(spanning_edges(pred, keep) & gold_edges), len(gold_edges)


def root_hit(pred_depth: np.ndarray, heads: Sequence[int], upos: Sequence[str]) -> int | None:
    """1 when the non-punctuation word of least predicted depth is the gold root (None: no such word)."""
    import numpy as np

    keep = [i for i, tag in enumerate(upos) if tag != PUNCT]
    if not keep:
        return None
    return int(keep[int(np.argmin(pred_depth[keep]))] == list(heads).index(-1))


def spearman_by_length(pairs: list[tuple[np.ndarray, np.ndarray]], lengths: Sequence[int]) -> tuple[float, int]:
    """(Spearman correlation averaged per sentence length, then over the lengths 5–50; sentences used).
    Each pair is (predicted, gold): depths [n] (one correlation per sentence) or distances [n, n] (one per
    word's row, averaged in with the sentence's length), as in the paper's code."""
    import numpy as np

    low, high = SPEARMAN_LENGTHS
    per_length: dict[int, list[float]] = {}
    for (pred, gold), n in zip(pairs, lengths):
        if not low <= n <= high:
            continue
        p, g = np.atleast_2d(pred), np.atleast_2d(gold)
        per_length.setdefault(n, []).extend(_row_pearson(average_ranks(p), average_ranks(g)))
    means = [np.nanmean(v) for v in per_length.values() if np.isfinite(v).any()]
    used = sum(1 for (_, _), n in zip(pairs, lengths) if low <= n <= high)
    return (float(np.mean(means)) if means else float("nan")), used


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Each row's values replaced by their ranks (1 = smallest), ties sharing their mean rank: Spearman's ranks
    (scipy's `rankdata(..., axis=1)`, which probekit does not depend on)."""
    return pd.DataFrame(values).rank(axis=1, method="average").to_numpy()


def _row_pearson(a: np.ndarray, b: np.ndarray) -> list[float]:
    import numpy as np

    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return list(np.where(denom > 0, (a * b).sum(1) / denom, np.nan))


# ---------------------------------------------------------------- one layer, all probes


@dataclass
class Prepared:
    """Everything about the sentences a layer's probes need besides the features: labels, trees, controls."""

    fit: list[Parsed]
    eval: list[Parsed]
    tags: list[str]
    labels: list[str]
    targets: dict[str, dict[str, list]]
    """task|control → {"upos": per-word tag ids, "deprel": per-arc label ids, "distance"/"depth": per-sentence
    gold arrays, "heads": per-sentence heads} for fit+eval sentences in order."""


def prepare(fit: list[Parsed], eval: list[Parsed], seed: int) -> Prepared:
    """Labels as ids and the gold and control trees of the fit then eval sentences."""
    everything = fit + eval
    tags = sorted({t for s in everything for t in s.upos})
    labels = sorted({r for s in everything for r in s.deprels})
    upos_control = control_labels(everything, "upos", seed, 1)
    deprel_control = control_labels(everything, "deprels", seed, 2)
    behaviour = control_behaviour(everything, seed)
    tag_id, label_id = {t: i for i, t in enumerate(tags)}, {r: i for i, r in enumerate(labels)}
    targets = {}
    for task in ("task", "control"):
        heads = [s.heads if task == "task" else control_heads(s.words, behaviour, seed) for s in everything]
        upos = [[tag_id[t if task == "task" else upos_control[type_of(w)]] for w, t in zip(s.words, s.upos)]
                for s in everything]
        deprel = [[label_id[r if task == "task" else deprel_control[type_of(w)]]
                   for w, r, h in zip(s.words, s.deprels, s.heads) if h >= 0] for s in everything]
        targets[task] = {"heads": heads, "upos": upos, "deprel": deprel,
                         "distance": [tree_distances(h) for h in heads], "depth": [tree_depths(h) for h in heads]}
    return Prepared(fit, eval, tags, labels, targets)


def probe_layer(x_fit: torch.Tensor, x_eval: torch.Tensor, prep: Prepared, opts: ProbeOptions,
                probes: Sequence[str] = PROBES) -> dict[tuple[str, str], dict]:
    """(probe, task|control) → {"hits": [sentences], "items": [sentences], "spearman": (value, n)} on the eval
    sentences, each probe fitted on the fit sentences of this layer's features."""
    import torch

    scaled_fit, scaled_eval = standardise(x_fit, x_eval, centre=False)
    x_fit, x_eval = standardise(x_fit, x_eval)
    n_fit = len(prep.fit)
    out = {}
    for task in ("task", "control"):
        t = prep.targets[task]
        if "upos" in probes:
            out["upos", task] = _softmax_probe(x_fit, x_eval, prep, t["upos"], len(prep.tags), opts, arcs=False)
        if "deprel" in probes:
            out["deprel", task] = _softmax_probe(x_fit, x_eval, prep, t["deprel"], len(prep.labels), opts,
                                                 arcs=True)
        for kind in ("distance", "depth"):
            if kind not in probes:
                continue
            fit_lengths = [len(s.words) for s in prep.fit]
            eval_lengths = [len(s.words) for s in prep.eval]
            b = fit_structural(scaled_fit, fit_lengths, t[kind][:n_fit], kind, rank=opts.rank, steps=opts.steps,
                               seed=opts.seed, tolerance=opts.tolerance)
            pred = predicted(scaled_eval, b, eval_lengths, kind)
            out[kind, task] = _structural_scores(pred, t, prep, kind)
    return out


def _softmax_probe(x_fit, x_eval, prep: Prepared, ids: list[list[int]], n_classes: int, opts: ProbeOptions,
                   arcs: bool) -> dict:
    """Fit on the fit sentences' words (or arcs: [head; dependent]), hits and items per eval sentence."""
    import numpy as np
    import torch

    n_fit = len(prep.fit)
    fit_parts, y_fit = _examples(x_fit, prep.fit, ids[:n_fit], arcs)
    eval_parts, y_eval = _examples(x_eval, prep.eval, ids[n_fit:], arcs)
    params = fit_softmax(fit_parts, y_fit, n_classes, l2=opts.l2, steps=opts.steps, tolerance=opts.tolerance)
    with torch.no_grad():
        right = (softmax_predict(eval_parts, params) == y_eval).numpy()
    sizes = [len(i) for i in ids[n_fit:]]
    bounds_ = np.cumsum([0, *sizes])
    hits = np.array([right[a:b].sum() for a, b in zip(bounds_[:-1], bounds_[1:])], float)
    return {"hits": hits, "items": np.array(sizes, float)}


def _examples(x: torch.Tensor, sentences: list[Parsed], ids: list[list[int]], arcs: bool
              ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Features as parts and the labels: words, or arcs as ([heads], [dependents])."""
    import torch

    y = torch.tensor([i for s in ids for i in s], dtype=torch.long)
    if not arcs:
        return [x], y
    heads, deps, offset = [], [], 0
    for s in sentences:
        for i, h in enumerate(s.heads):
            if h >= 0:
                heads.append(offset + h)
                deps.append(offset + i)
        offset += len(s.words)
    return [x[heads], x[deps]], y


def _structural_scores(pred: list, targets: dict, prep: Prepared, kind: str) -> dict:
    import numpy as np

    n_fit = len(prep.fit)
    gold = targets[kind][n_fit:]
    heads = targets["heads"][n_fit:]
    upos = [s.upos for s in prep.eval]
    lengths = [len(s.words) for s in prep.eval]
    if kind == "distance":
        scored = [uuas_hits(p, g, u) for p, g, u in zip(pred, gold, upos)]
        hits, items = np.array([h for h, _ in scored], float), np.array([n for _, n in scored], float)
    else:
        roots = [root_hit(p, h, u) for p, h, u in zip(pred, heads, upos)]
        hits = np.array([r or 0 for r in roots], float)
        items = np.array([r is not None for r in roots], float)
    return {"hits": hits, "items": items, "spearman": spearman_by_length(list(zip(pred, gold)), lengths)}


def layer_rows(layer: int, scores: dict, key: str, seed: int | None = None) -> list[dict]:
    """Rows of the `probes` table for one layer: each probe's main metric on task and control with paired
    intervals (`probekit.analyses.stats.ratio_intervals`, seeded from `seed` — default `stats.SEED` — and the
    treebank, layer and probe), its selectivity, and the Spearman correlations."""
    import numpy as np

    from probekit.analyses.stats import SEED, ratio_intervals

    rows = []
    for probe in dict.fromkeys(p for p, _ in scores):
        task, control = scores[probe, "task"], scores[probe, "control"]
        hits, items = np.stack([task["hits"], control["hits"]]), np.stack([task["items"], control["items"]])
        low, high, diff_low, diff_high = ratio_intervals(hits, items, key=f"{key}/{layer}/{probe}",
                                                         seed=SEED if seed is None else seed)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = hits.sum(1) / items.sum(1)
        n, sentences = int(items[0].sum()), int(hits.shape[1])
        note = too_few(sentences)
        kept = [(_ints(hits[0]), _ints(items[0])), (_ints(hits[1]), _ints(items[1])), ("", "")]
        for (name, value, lo, hi), (h, i) in zip((("task", values[0], low[0], high[0]),
                                                  ("control", values[1], low[1], high[1]),
                                                  ("selectivity", values[0] - values[1], diff_low, diff_high)), kept):
            rows.append(dict(layer=layer, probe=probe, task=name, metric=MAIN[probe], value=float(value),
                             value_low=float(lo), value_high=float(hi), n=n, sentences=sentences, hits=h, items=i,
                             note=note))
        for name, result in (("task", task), ("control", control)):
            if "spearman" in result:
                value, used = result["spearman"]
                rows.append(dict(layer=layer, probe=probe, task=name, metric="spearman", value=value,
                                 value_low=float("nan"), value_high=float("nan"), n=used, sentences=sentences,
                                 hits="", items="", note="" if used else "no eval sentence of 5-50 words"))
    return rows


def too_few(sentences: int, fit: int | None = None) -> str:
    """The note of a row whose interval (or value) rests on too few sentences; empty when there are enough."""
    from probekit.analyses.stats import MIN_ITEMS

    if fit is not None and (fit < 1 or sentences < 1):
        return (f"too few sentences to fit and evaluate ({fit} to fit, {sentences} to evaluate): the treebank "
                f"needs at least 2 that the model can read")
    if sentences < MIN_ITEMS:
        return f"no interval: {sentences} eval sentence{'s' if sentences != 1 else ''}, fewer than {MIN_ITEMS}"
    return ""


def _ints(values: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in values)


def probe_features(features: torch.Tensor, parsed: list[Parsed], fit_ids: list[int], eval_ids: list[int],
                   opts: ProbeOptions, *, key: str = "", probes: Sequence[str] = PROBES) -> pd.DataFrame:
    """The `probes` rows (without checkpoint and treebank columns) of features [layers, words, d] of the
    sentences `parsed` (words in sentence order), fitted on `fit_ids` and scored on `eval_ids`."""
    import torch

    starts = torch.tensor([0, *(len(s.words) for s in parsed)]).cumsum(0).tolist()

    def rows_of(ids):
        return torch.cat([torch.arange(starts[i], starts[i + 1]) for i in ids]) if ids else torch.zeros(0, dtype=torch.long)

    if not fit_ids or not eval_ids:
        return empty_rows(features.shape[0], probes, too_few(len(eval_ids), len(fit_ids)), len(eval_ids))
    fit_rows, eval_rows = rows_of(fit_ids), rows_of(eval_ids)
    prep = prepare([parsed[i] for i in fit_ids], [parsed[i] for i in eval_ids], opts.seed)
    rows = []
    for layer in range(features.shape[0]):
        scores = probe_layer(features[layer, fit_rows], features[layer, eval_rows], prep, opts, probes)
        rows += layer_rows(layer, scores, key)
    return pd.DataFrame(rows)


def empty_rows(layers: int, probes: Sequence[str], note: str, sentences: int = 0) -> pd.DataFrame:
    """The `probes` rows of a treebank too small to fit and evaluate: every value missing, with `note`."""
    nan = float("nan")
    rows = [dict(layer=layer, probe=probe, task=task, metric=metric, value=nan, value_low=nan, value_high=nan,
                 n=0, sentences=sentences, hits="", items="", note=note)
            for layer in range(layers) for probe in PROBES if probe in probes
            for task, metric in (("task", MAIN[probe]), ("control", MAIN[probe]), ("selectivity", MAIN[probe]),
                                 *((("task", "spearman"), ("control", "spearman"))
                                   if probe in ("distance", "depth") else ()))]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the analysis


class Probes(Analysis):
    name = "probes"
    version = 4  # 2: the control tree's root is chosen by word type, not the first word; 3: per-sentence hits;
    # 4: the statistics module's bootstrap (seed stats.SEED), skips by reason, `note`, no interval under 5 sentences
    help = ("classifier and structural probes with control tasks on every layer: UPOS, arc label, tree distance "
            "and depth (tables probes, probe_scores)")
    options = ProbeOptions
    inputs = "treebank"
    tables = (PROBES_TABLE, PROBE_SCORES)
    on_control = True
    report = "probekit.report.probes:section"
    report_title = "Syntax probes"

    def cost(self, shape: Shape, item) -> float:
        return float(getattr(item, "size", 1) or 1) * (shape.layers + 1)

    def run(self, checkpoint, ctx: Context, treebank) -> pd.DataFrame:
        from probekit.models.families import max_tokens

        opts = ctx.opts(self.name)
        fit, eval_ = parts(treebank, opts.seed)
        parsed = [Parsed.of(s) for s in fit + eval_]
        model = checkpoint.model(ctx.device)
        skipped: dict = {}
        features, kept = word_representations(model, checkpoint.tokenizer, [s.words for s in parsed],
                                              pooling=opts.pooling, batch_size=ctx.batch_size, device=ctx.device,
                                              max_length=max_tokens(checkpoint.config), skipped=skipped)
        kept_set = set(kept)
        parsed_kept = [parsed[i] for i in kept]
        position = {i: k for k, i in enumerate(kept)}
        fit_ids = [position[i] for i in range(len(fit)) if i in kept_set]
        eval_ids = [position[i] for i in range(len(fit), len(parsed)) if i in kept_set]
        frame = probe_features(features, parsed_kept, fit_ids, eval_ids, opts, key=treebank.name)
        self._say(ctx, treebank, skipped, frame, len(parsed))
        return frame.assign(treebank=treebank.name, skipped_long=skipped.get("long", 0),
                            skipped_unaligned=skipped.get("unaligned", 0))

    def _say(self, ctx: Context, treebank, skipped: dict, frame: pd.DataFrame, total: int) -> None:
        """One line per treebank (not per checkpoint) for sentences skipped and for too few sentences."""
        from probekit.analyses.syntax_heads import skip_line
        from probekit.core.log import logger

        said = ctx.state.setdefault(f"{self.name}:said", set())
        lines = [skip_line(skipped, total)]
        notes = [n for n in frame.get("note", pd.Series(dtype=str)).unique() if n]
        loud = [bool(skipped.get("unaligned")), *(True for _ in notes[:1])]  # long ones alone: info, as before
        for line, warn in zip(lines + notes[:1], loud):
            if line and (treebank.name, line) not in said:
                said.add((treebank.name, line))
                (logger.warning if warn else logger.info)(f"probes: {treebank.name}: {line}")

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        return {PROBE_SCORES.name: probe_scores(frame)}

    def manifest(self, ctx: Context) -> dict:
        from probekit.analyses.stats import interval_settings

        return {self.name: {"intervals": interval_settings("eval sentences (ratio of sums: Σhits / Σitems), task "
                                                           "and control on the same draws")}}


def parts(treebank, seed: int) -> tuple[list, list]:
    """(fit, eval) sentences: dev to fit and test to report on when the treebank holds both (`ewt:dev+test`),
    else a seeded half-and-half split of its sentences."""
    sentences = list(treebank.sentences)
    splits = {getattr(s, "split", "") for s in sentences}
    if {"dev", "test"} <= splits:
        return [s for s in sentences if s.split == "dev"], [s for s in sentences if s.split == "test"]
    fit_ids, eval_ids = split(sentences, seed)
    return [sentences[i] for i in fit_ids], [sentences[i] for i in eval_ids]


SCORE_KEYS = ["checkpoint", "run", "step", "seed", "treebank", "layer", "probe"]


def probe_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per checkpoint × treebank × layer × probe: score, control and selectivity with intervals; with
    several training seeds also per shared step pooled over them (`pooled_scores`)."""
    if frame.empty:
        return pd.DataFrame(columns=PROBE_SCORES.names)
    keys = SCORE_KEYS
    main = frame[frame["metric"] != "spearman"]
    wide = None
    for task, prefix in (("task", "score"), ("control", "control"), ("selectivity", "selectivity")):
        part = main[main["task"] == task][[*keys, "metric", "value", "value_low", "value_high", "n", "sentences"]]
        part = part.rename(columns={"value": prefix, "value_low": f"{prefix}_low", "value_high": f"{prefix}_high"})
        if task != "task":
            part = part.drop(columns=["metric", "n", "sentences"])
        wide = part if wide is None else wide.merge(part, on=keys, how="left")
    spearman = frame[(frame["metric"] == "spearman") & (frame["task"] == "task")][[*keys, "value"]]
    wide = wide.merge(spearman.rename(columns={"value": "spearman"}), on=keys, how="left").assign(n_seeds=1)
    extra = [c for c in ("note", *(c for c, *_ in SKIP_COLUMNS)) if c in main.columns]
    if extra:
        wide = wide.merge(main[main["task"] == "task"][[*keys, *extra]], on=keys, how="left")
    wide = _filled(wide)
    pooled = pooled_scores(frame)
    out = pd.concat([wide, pooled], ignore_index=True) if len(pooled) else wide
    return _filled(out)[PROBE_SCORES.names]


def _filled(frame: pd.DataFrame) -> pd.DataFrame:
    """`note` empty and the skip counts 0 where missing (rows made before the columns existed)."""
    frame = frame.assign(note=frame["note"].fillna("") if "note" in frame.columns else "")
    for column, *_ in SKIP_COLUMNS:
        frame[column] = frame[column].fillna(0).astype(int) if column in frame.columns else 0
    return frame


def pooled_scores(frame: pd.DataFrame, *, resamples: int | None = None, level: float | None = None,
                  seed: int | None = None) -> pd.DataFrame:
    """The `probe_scores` rows pooled over the training seeds of a series (run `all-seeds`, one per step the
    seeds share; empty with one seed): Σhits / Σitems over seeds and eval sentences, each interval a
    Multi-Bootstrap — every resample draws seeds and sentences with replacement, task and control on the same
    draws (selectivity paired) — seeded from `seed` and the treebank, layer and probe (the same draws at every
    step). The Spearman correlation is the seeds' mean. The settings default to the statistics module's (LEVEL,
    RESAMPLES, SEED), the resampling is its `ratio_intervals`."""
    import numpy as np

    from probekit.analyses import stats
    from probekit.analyses.stats import with_pooled_seeds

    resamples = stats.RESAMPLES if resamples is None else resamples
    level = stats.LEVEL if level is None else level
    seed = stats.SEED if seed is None else seed
    columns = PROBE_SCORES.names
    if "hits" not in frame.columns or frame.empty:
        return pd.DataFrame(columns=columns)
    work = with_pooled_seeds(frame)
    work = work[work["_seed"] != ""]
    if work.empty:
        return pd.DataFrame(columns=columns)
    records = []
    for key, rows in work.groupby(SCORE_KEYS, sort=False):
        row = dict(zip(SCORE_KEYS, key))
        main = rows[(rows["metric"] != "spearman") & rows["task"].isin(["task", "control"])]
        seeds = sorted(main["_seed"].unique())
        hits, items = (np.stack([[np.array(main.loc[(main["_seed"] == s) & (main["task"] == t), column].iloc[0]
                                            .split(), float) for t in ("task", "control")] for s in seeds])
                        for column in ("hits", "items"))  # [seeds, task|control, sentences]
        low, high, diff_low, diff_high = stats.ratio_intervals(
            hits, items, key=f"{row['treebank']}/{row['layer']}/{row['probe']}", level=level, resamples=resamples,
            seed=seed)
        with np.errstate(invalid="ignore", divide="ignore"):
            score, control = hits.sum((0, 2)) / items.sum((0, 2))
        spearman = rows[(rows["metric"] == "spearman") & (rows["task"] == "task")]["value"].dropna()
        skips = {c: int(main[c].max()) if c in main.columns else 0 for c, *_ in SKIP_COLUMNS}
        records.append({**row, "metric": main["metric"].iloc[0], "score": score, "score_low": low[0],
                        "score_high": high[0], "control": control, "control_low": low[1], "control_high": high[1],
                        "selectivity": score - control, "selectivity_low": diff_low, "selectivity_high": diff_high,
                        "spearman": spearman.mean() if len(spearman) else float("nan"),
                        "n": int(items[0, 0].sum()), "sentences": hits.shape[2], "n_seeds": len(seeds),
                        "note": too_few(hits.shape[2]), **skips})
    return pd.DataFrame(records, columns=columns)


def definitions(settings: dict) -> str:
    """Markdown stating what the probes compute under `settings` (the run's options for them, as the manifest's
    `options["probes"]` holds; missing keys: the defaults): where they follow Hewitt & Manning (2019) and
    Hewitt & Liang (2019), and where they differ. For the report pages."""
    import dataclasses

    from probekit.analyses.stats import LEVEL, MIN_ITEMS, RESAMPLES, SEED

    defaults = ProbeOptions()
    o = {f.name: settings.get(f.name, getattr(defaults, f.name)) for f in dataclasses.fields(defaults)}
    pooling = ("the **mean** of its pieces (as Hewitt & Manning's BERT features)" if o["pooling"] == "mean" else
               "its **first** piece (Hewitt & Manning average a word's pieces; `--probe-pooling mean` does that)")
    low, high = SPEARMAN_LENGTHS
    return "\n".join([
        "**Structural probes (Hewitt & Manning 2019, \"A Structural Probe for Finding Syntax in Word "
        "Representations\"; john-hewitt/structural-probes) and classifier probes with control tasks (Hewitt & "
        "Liang 2019)**", "",
        f"- **Word representations:** every layer's residual stream (0 = embeddings), a word being {pooling}; "
        "pieces go to words by the tokenizer's character offsets. Features are scaled per layer by the fit "
        "sentences' standard deviation (not in the paper; a linear probe can absorb it). Sentences the model "
        "cannot read (too long, or a word with no piece) are left out and counted (`skipped_long`, "
        "`skipped_unaligned`).",
        "- **Distance probe — as the paper:** ||B(h_i − h_j)||² fits the tree distance with an L1 loss summed "
        "over every ordered word pair of a sentence and **divided by the sentence's length squared**, then averaged over "
        "sentences (their `L1DistanceLoss`). **Depth probe:** ||B h_i||² fits the depth, L1 divided by the length "
        "(their `L1DepthLoss`). Punctuation is in the loss, as in theirs.",
        f"- **Differs from the paper in fitting:** rank k = {o['rank']} (their BERT-base configs use the full 768), "
        f"full-batch L-BFGS for at most {o['steps']} iterations from a seeded start (theirs: Adam, lr 0.001, decay "
        "on plateau, early stopping on dev loss, up to 40 epochs); fitted on EWT dev and scored on EWT test for "
        "`ewt:dev+test`, else on a seeded half of the sentences and scored on the other half (theirs: PTB train → "
        "dev/test).",
        "- **UUAS — as the paper:** the minimum spanning tree of the predicted distances against the gold tree, both "
        "over the words that are **not punctuation** (UPOS `PUNCT`; theirs: the PTB punctuation tags), the gold "
        "tree's edges being those of the spanning tree of the gold distances over the same words, as their code "
        "does; pooled over sentences (gold edges found / gold edges).",
        f"- **Spearman — as the paper:** per word, the Spearman correlation of its predicted and gold distances to "
        f"every word of the sentence (distance), or per sentence of predicted and gold depths (depth); averaged per "
        f"sentence length, then over the lengths **{low}–{high}** (`spearmanr-5_50-mean`). Words with a constant "
        "row are left out of the mean (theirs would give NaN). **Root accuracy:** the non-punctuation word of least "
        "predicted depth is the gold root (their `root_acc`).",
        "- **Classifier probes:** UPOS (per word) and the arc label (per arc, [head; dependent]), multinomial "
        f"logistic regression with L2 {o['l2']:g}, L-BFGS; accuracy.",
        "- **Control tasks (Hewitt & Liang 2019):** labels fixed per word type at random from the label "
        "distribution; for the structural probes a control tree that is a function of the word types only "
        "(probekit's stand-in, not the paper's). Selectivity = task − control of the main metric.",
        f"- **Intervals:** {LEVEL:.0%} percentile bootstrap over eval sentences of Σhits / Σitems, {RESAMPLES:,} "
        f"resamples, seed {SEED} (`probekit.analyses.stats`), task and control on the same draws (selectivity "
        f"paired); seeds drawn with the sentences when the series holds several. With fewer than {MIN_ITEMS} eval "
        "sentences no interval is given (`note` says so); the Spearman rows carry none.",
    ])


register(Probes)
