"""Syntactic heads: does a single attention head attend from a word to its syntactic head (Clark et al. 2019)?

Runs over a treebank (`probekit.benchmarks.treebank`, default `ewt`). Each sentence is given to the model as its
words joined by single spaces; every wordpiece is assigned to the word its characters come from through the
tokenizer's offsets (the same for WordPiece, byte-level BPE and SentencePiece tokenizers: `word_ids()` with
`is_split_into_words=True` tokenizes a byte-level tokenizer's words without their leading space unless it was
made with `add_prefix_space=True`, which stock ModernBERT and many RoBERTa tokenizers are not). A space-only
piece belongs to the word after it.

Word-level attention (Clark et al. 2019, "What Does BERT Look At?"): from the wordpiece attention
`blocks.{l}.attn.hook_pattern` [query, key], attention *to* a word is the **sum** over its key pieces and
attention *from* a word the **mean** over its query pieces (the paper's rule for split-up words; the released code's
`get_word_word_attention` defaults to the first piece). Special tokens ([CLS], [SEP], <s>, </s>) are dropped as
queries and as keys; each word's row keeps its raw weights, so they sum to 1 minus what it gives the special
tokens (Clark et al. keep [CLS]/[SEP] in the map and slice them off just before the argmax: the same numbers).
A sentence that does not fit the model's positions, or that has a word the tokenizer turns into no piece (a
zero-width character), is skipped and counted by reason (`skipped_long`, `skipped_unaligned`).

Head rules (`--head-rules`, recorded in the manifest's options):
- `clark` (default), Clark et al. (2019)'s `attn_head_predictor` (clarkkev/attention-analysis,
  `Syntax_Analysis.ipynb`) exactly: attention to the word itself is zeroed before the argmax;
  `dep->head` is a hit when the word the *dependent* attends to most (itself excluded) is its head
  (`mode="normal"`); `head->dep` (their "head<-dep", `mode="transpose"`) reads the *transposed* map: a hit when,
  of all the words, the one that attends most to the dependent (the dependent itself excluded) is its head.
  The fixed-offset baseline is their `offset_predictor`: offsets −3 … +2 (head position − dependent position)
  tried for each relation, a prediction past the sentence's ends clamped to the root or the last word as their
  code clamps it, the offset of best accuracy kept (ties: the larger offset, as their `max((score, i))`).
  Their special case for Stanford Dependencies' `poss` (score the word before `'s`) is not applied: UD has no
  `poss` relation (it is `nmod:poss`, read as `nmod` here).
- `own`, probekit's rules before Clark's were adopted: self-attention kept (a head that attends to the word
  itself scores a miss); `head->dep` a hit when the *head's own* most-attended word is the dependent (one
  dependent per head word can be right, however many it has); the baseline the single most frequent offset of
  any length (ties: the shorter, then the leftward one), unclamped. Per-head accuracies differ from Clark's by
  up to ~0.4, mostly upwards under Clark's rules.
Both rules score every relation the same way (universal, without subtype; `root` has no head word and is left
out), and the baseline scores the same in both directions.

UUAS (probekit's own measure, not in Clark et al.; the same under both rules): every head's word map with its
rows renormalised to sum to 1 over the sentence's words (so the share given to [CLS]/[SEP] does not count), the
maximum spanning tree of W + Wᵀ (Prim's algorithm), and the share of gold undirected edges it contains. Its
structural baseline (`syntax_uuas` row with `baseline_kind` = `adjacent`, layer and head −1): the tree that links
each word to the next — as an undirected tree this *is* the right-branching tree (each word's head the next
word) and the left-branching one, so one baseline stands for all three; its interval is over the same edges.

The best head of each relation × direction, each baseline and the best head of each layer by UUAS keep their
per-arc hits in the row table (`hits`, one 0/1 character per arc in treebank order), so the summaries' 95%
intervals are bootstraps over arcs (edges for UUAS), with `probekit.analyses.stats.share_intervals` (its level,
resamples and seed; the manifest's `syntax-heads` entry records them). A best head "beats its baseline" when
its interval lies wholly above the baseline's.

Seeds: when the series holds several training seeds (`probekit.analyses.stats.seeds_of`), the summaries also hold,
per step the seeds share, a row pooled over them (run `all-seeds`): the accuracy of *each seed's own* best head
(the best head of one seed is not the best of another), averaged over seeds, its interval a Multi-Bootstrap over
seeds and arcs together (the arcs are the same sentences in every seed); layer and head are missing there.

Over the series, what is claimed (a relation's best head learned, and since when) is decided by the findings'
rules (`probekit.analyses.findings`: above its baseline and the random-init model's best head, sustained).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from probekit.analyses.base import Analysis, Context, Options, Shape, option, register
from probekit.core import lazy
from probekit.core.errors import ProbekitError
from probekit.core.schema import CHECKPOINT_COLUMNS, CHECKPOINT_ID, N_SEEDS, Table, bounds, columns

pd = lazy.module("pandas")
np = lazy.module("numpy")

DIRECTIONS = ("dep->head", "head->dep")
TREE, MST = "all", "mst"
"""relation and direction of the UUAS rows."""
BASELINE = -1
"""layer and head of a baseline row."""
TOKEN_BUDGET = 2 ** 24
"""Floats of attention held per batch (sentences × heads × tokens², all layers): keeps memory flat."""
CLARK, OWN = "clark", "own"
RULES = (CLARK, OWN)
CLARK_OFFSETS = range(-3, 3)
"""The offsets Clark et al.'s baseline tries (`baseline_scores = {i: … for i in range(-3, 3)}`)."""
ADJACENT = "adjacent"
"""The UUAS baseline: each word linked to the next (= the right-branching tree, undirected)."""
LONG, UNALIGNED = "long", "unaligned"
SKIP_REASONS = {LONG: "longer than the model's positions",
                UNALIGNED: "with a word the tokenizer turns into no piece, e.g. a zero-width character"}
NOTE = ("note", "str", "why the interval is missing (fewer than 5 arcs or edges behind it), else empty")
SKIP_COLUMNS = (("skipped_long", "int", "treebank sentences skipped: longer than the model's positions"),
                ("skipped_unaligned", "int", "treebank sentences skipped: a word the tokenizer turns into no piece "
                                             "(e.g. a zero-width character)"))

SYNTAX_HEADS = Table("syntax_heads", "checkpoint × treebank × layer × head × relation × direction", columns(
    *CHECKPOINT_COLUMNS, ("treebank", "str", "the treebank input (e.g. ewt-test@300)"),
    ("layer", "int", "layer, from 0; -1 on the baselines' rows"),
    ("head", "int", "head, from 0; -1 on the baselines' rows"),
    ("baseline_kind", "str", "empty on a head's rows; `offset` (the fixed-offset baseline) or `adjacent` (each word "
                             "linked to the next: the UUAS of the right-branching tree) on a baseline's"),
    ("relation", "str", "universal dependency relation (no subtype); `all` on the UUAS rows"),
    ("direction", "str", "dep->head (the dependent's most-attended word is its head), head->dep (the head's is "
                         "the dependent), or mst (UUAS of the maximum spanning tree of the symmetrised attention)"),
    ("n", "int", "arcs of the relation (gold edges for mst)"),
    ("correct", "int", "arcs found"),
    ("accuracy", "float", "correct / n"),
    ("offset", "int", "the baseline's offset (head position − dependent position); missing on head rows"),
    ("hits", "str", "per-arc 0/1 in treebank order, kept for the best head of the relation and direction, the "
                    "baselines and each layer's best UUAS head (for the intervals); empty on the other rows"),
    *SKIP_COLUMNS,
), "Per head and relation, how often the most-attended word is the syntactic head (Clark et al. 2019), the "
   "fixed-offset baseline, and each head's UUAS.")
SYNTAX_BEST_HEADS = Table("syntax_best_heads", "checkpoint × treebank × relation × direction", columns(
    *CHECKPOINT_COLUMNS, ("treebank", "str", "the treebank input"), ("relation", "str", "universal relation"),
    ("direction", "str", "dep->head or head->dep"), ("n", "int", "arcs of the relation"),
    ("layer", "int", "the best head's layer"), ("head", "int", "the best head"),
    ("accuracy", "float", "the best head's accuracy"), *bounds(("accuracy",), over="arcs"),
    ("offset", "int", "the baseline's offset"), ("baseline", "float", "the fixed-offset baseline's accuracy"),
    *bounds(("baseline",), over="arcs"),
    ("beats_baseline", "bool", "the best head's lower bound is above the baseline's upper bound"), N_SEEDS,
    NOTE, *SKIP_COLUMNS,
), "The best head of each relation against the best fixed offset, with 95% bootstrap intervals over arcs.")
SYNTAX_UUAS = Table("syntax_uuas", "checkpoint × treebank × layer × head", columns(
    *CHECKPOINT_COLUMNS, ("treebank", "str", "the treebank input"),
    ("layer", "int", "layer, from 0; -1 on the baseline's row"),
    ("head", "int", "head, from 0; -1 on the baseline's row"),
    ("baseline_kind", "str", "empty on a head's rows; `adjacent` on the structural baseline's row: each word "
                             "linked to the next, which as an undirected tree is also the right-branching (and "
                             "left-branching) tree"),
    ("n", "int", "gold undirected edges"),
    ("uuas", "float", "share of gold edges in the maximum spanning tree of the head's symmetrised attention (the "
                      "baseline's: in the adjacent-word tree)"),
    ("best_in_layer", "bool", "the layer's best head by UUAS (with the baseline, the only rows with an interval)"),
    *bounds(("uuas",), over="edges"), N_SEEDS, NOTE, *SKIP_COLUMNS,
), "Undirected attachment score of each head's maximum spanning tree; the best head per layer and the "
   "adjacent-word (= right-branching) baseline with their intervals.")


@dataclass(frozen=True)
class HeadOptions(Options):
    head_rules: str = option(CLARK, "How a head is scored: clark = Clark et al. (2019)'s attn_head_predictor "
                             "(self-attention ignored, head->dep on the transposed map, offsets -3..+2 as the "
                             "baseline); own = probekit's earlier rules (self-attention kept, head->dep from the "
                             "head's own argmax, any offset).", flag="--head-rules", choices=RULES)


class SyntaxHeads(Analysis):
    name = "syntax-heads"
    version = 2  # 2: Clark et al.'s rules by default (`--head-rules`), the adjacent-word UUAS baseline, skips by reason
    help = ("attention heads that find a word's syntactic head, per relation, by Clark et al. (2019)'s rules "
            "(--head-rules), vs a fixed-offset baseline; UUAS vs the adjacent-word tree (tables syntax_heads, "
            "syntax_best_heads, syntax_uuas; needs a treebank, default ewt)")
    options = HeadOptions
    inputs = "treebank"
    tables = (SYNTAX_HEADS, SYNTAX_BEST_HEADS, SYNTAX_UUAS)
    on_control = True
    report = "probekit.report.syntax:section"
    report_title = "Syntax"

    def default_inputs(self, opts: Options) -> list[str]:
        return ["ewt"]

    def cost(self, shape: Shape, item) -> float:
        return float(item.size)

    def run(self, checkpoint, ctx: Context, item) -> pd.DataFrame:
        model = checkpoint.model(ctx.device)
        rules = ctx.opts(self.name).head_rules
        found = measure(model, checkpoint.tokenizer, item.sentences, rules=rules, quiet=True)
        said = ctx.state.setdefault(f"{self.name}:skips", set())
        if found.skipped and item.name not in said:  # once per treebank, not once per checkpoint
            said.add(item.name)
            from probekit.core.log import logger

            say = logger.warning if found.skipped.get(UNALIGNED) else logger.info  # long ones: as before
            say(f"syntax-heads: {item.name}: {skip_line(found.skipped, len(item.sentences))}")
        return head_rows(found).assign(treebank=item.name)

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        return {SYNTAX_BEST_HEADS.name: best_heads(frame), SYNTAX_UUAS.name: uuas_table(frame)}

    def manifest(self, ctx: Context) -> dict:
        from probekit.analyses.stats import interval_settings

        return {self.name: {"head_rules": ctx.opts(self.name).head_rules,
                            "intervals": interval_settings("arcs (gold edges for UUAS), as share_intervals")}}


def skip_line(skipped: dict, total: int) -> str:
    """'3 of 150 sentences skipped: 2 longer than …, 1 with a word …' (empty when none)."""
    if not sum(skipped.values()):
        return ""
    parts = [f"{count} {SKIP_REASONS.get(reason, reason)}" for reason, count in skipped.items() if count]
    return f"{sum(skipped.values())} of {total} sentences skipped ({'; '.join(parts)})"


# ---------------------------------------------------------------- words from pieces


def align(tokenizer, words: list[str]) -> tuple[list[int], list[int]]:
    """(input ids, word of each piece: -1 for special tokens) of `words` joined by single spaces, through the
    tokenizer's character offsets."""
    if not getattr(tokenizer, "is_fast", False):
        raise ProbekitError(f"{type(tokenizer).__name__}: syntax-heads needs a fast tokenizer (character offsets)")
    text, starts = " ".join(words), []
    char_word = []
    for i, word in enumerate(words):
        starts.append(len(char_word) + (1 if i else 0))
        char_word += ([-1] if i else []) + [i] * len(word)
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    owner = []
    for (start, end), special in zip(enc["offset_mapping"], enc["special_tokens_mask"]):
        inside = [char_word[c] for c in range(start, end) if char_word[c] >= 0]
        after = [i for i, s in enumerate(starts) if s >= start]
        owner.append(-1 if special or start == end and not inside else
                     inside[0] if inside else (after[0] if after else len(words) - 1))
    return list(enc["input_ids"]), owner


def pooling(owners: list[list[int]], n_tokens: int, n_words: int):
    """[batch, words, tokens] mean-over-query-pieces and [batch, tokens, words] sum-over-key-pieces matrices."""
    import torch

    keys = torch.zeros(len(owners), n_tokens, n_words)
    for b, owner in enumerate(owners):
        for t, w in enumerate(owner):
            if w >= 0:
                keys[b, t, w] = 1.0
    queries = keys.transpose(1, 2) / keys.sum(1).clamp_min(1.0)[:, :, None]
    return queries, keys


def word_attention(pattern, queries, keys, renormalise: bool = True):
    """[batch, head, words, words] word-level attention from [batch, head, tokens, tokens] piece attention:
    mean over the query word's pieces, sum over the key word's pieces, special tokens out, rows renormalised to
    sum to 1 over the words (or, `renormalise=False`, left as they are: each row then sums to 1 minus what the
    word gives the special tokens, as in Clark et al.'s word-level maps once [CLS]/[SEP] are sliced off)."""
    import torch

    words = torch.einsum("bwq,bhqk,bkv->bhwv", queries, pattern.float(), keys)
    return words / words.sum(-1, keepdim=True).clamp_min(1e-12) if renormalise else words


# ---------------------------------------------------------------- one forward per batch


@dataclass
class Found:
    """Per-arc hits of every head over a treebank, in treebank order; `heads` = layers × heads per layer."""

    layers: int
    heads: int
    relations: list  # [arcs] relation of each arc
    offsets: list  # [arcs] head position − dependent position
    to_head: list  # per sentence: [layer·head, arcs] bool, dep->head
    to_dependent: list  # per sentence: [layer·head, arcs] bool, head->dep
    tree: list  # per sentence: [layer·head, edges] bool, gold edge in the head's maximum spanning tree
    skipped: dict = field(default_factory=dict)  # reason (LONG, UNALIGNED) → sentences skipped
    rules: str = CLARK
    positions: list = field(default_factory=list)  # [arcs] the dependent's position (0-based)
    lengths: list = field(default_factory=list)  # [arcs] its sentence's length in words


def measure(model, tokenizer, sentences, rules: str = CLARK, quiet: bool = False) -> Found:
    """Run the sentences through `model` in batches of similar length, one forward each, and score every head
    on every arc under `rules` (`clark` or `own`, see the module doc). Sentences longer than the model's
    positions, or with a word that has no piece, are skipped and counted by reason (`Found.skipped`; logged
    unless `quiet`)."""
    import torch

    from probekit.core.log import logger
    from probekit.models import families
    from probekit.models.hooks import hook_name, hooked

    n_layers, n_heads = families.n_layers(model), model.config.num_attention_heads
    longest = families.max_tokens(model.config)
    if rules not in RULES:
        raise ProbekitError(f"syntax-heads: head rules {rules!r} are not one of {', '.join(RULES)}")
    encoded = [align(tokenizer, s.words) for s in sentences]
    reasons = {i: skip_reason(ids, owner, len(sentences[i]), longest) for i, (ids, owner) in enumerate(encoded)}
    keep = [i for i in range(len(sentences)) if reasons[i] is None]
    names = [hook_name(layer, "attn.hook_pattern") for layer in range(n_layers)]
    device = next(model.parameters()).device
    scored: dict[int, tuple] = {}
    for batch in _batches(keep, [len(encoded[i][0]) for i in range(len(encoded))], n_layers * n_heads):
        inputs = tokenizer.pad([{"input_ids": encoded[i][0]} for i in batch], padding=True, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        with torch.no_grad(), hooked(model, read=names) as store:
            families.body(model)(**families.body_inputs(model, inputs))
        width = max(len(sentences[i]) for i in batch)
        queries, keys = pooling([encoded[i][1] for i in batch], inputs["input_ids"].shape[1], width)
        attention = torch.stack([word_attention(store[name].cpu(), queries, keys, renormalise=False)
                                 for name in names], 1)
        for b, i in enumerate(batch):
            n = len(sentences[i])
            scored[i] = score_sentence(attention[b, :, :, :n, :n].reshape(n_layers * n_heads, n, n).numpy(),
                                       sentences[i].heads, rules)
    skipped = {reason: sum(r == reason for r in reasons.values()) for reason in SKIP_REASONS}
    if sum(skipped.values()) and not quiet:
        logger.info(f"syntax-heads: {skip_line(skipped, len(sentences))}")
    found = Found(n_layers, n_heads, [], [], [], [], [], skipped, rules)
    for i in keep:
        s = sentences[i]
        arcs = [(d, h - 1) for d, h in enumerate(s.heads) if h > 0]
        found.relations += [s.deprels[d] for d, _ in arcs]
        found.offsets += [h - d for d, h in arcs]
        found.positions += [d for d, _ in arcs]
        found.lengths += [len(s)] * len(arcs)
        for field_, part in zip(("to_head", "to_dependent", "tree"), scored[i]):
            getattr(found, field_).append(part)
    return found


def skip_reason(ids: list[int], owner: list[int], n_words: int, longest: int) -> str | None:
    """Why a sentence cannot be scored (LONG: more tokens than the model's positions; UNALIGNED: a word with no
    piece, e.g. a zero-width character the tokenizer drops), or None."""
    if len(ids) > longest:
        return LONG
    if len({w for w in owner if w >= 0}) != n_words:
        return UNALIGNED
    return None


def _batches(order: list[int], lengths: list[int], heads: int) -> list[list[int]]:
    """Sentences grouped by length (shortest first) so that a batch's attention stays under TOKEN_BUDGET."""
    batches, batch = [], []
    for i in sorted(order, key=lambda i: lengths[i]):
        if batch and (len(batch) + 1) * heads * lengths[i] ** 2 > TOKEN_BUDGET:
            batches.append(batch)
            batch = []
        batch.append(i)
    return batches + ([batch] if batch else [])


def score_sentence(attention, heads: list[int], rules: str = CLARK):
    """Per-arc hits of each of K heads on one sentence from its [K, words, words] word attention (special tokens
    out; rows raw or renormalised, the argmaxes do not depend on it): dep->head, head->dep (arcs without the
    root's), and the gold undirected edges found by each head's spanning tree (of the row-renormalised map).

    clark — Clark et al.'s `attn_head_predictor`: the diagonal (attention to the word itself) zeroed; dep->head
    is the argmax of the dependent's row, head->dep the argmax of the dependent's row of the transposed map (the
    word that attends most to it). own — self-attention kept; head->dep the argmax of the head's own row."""
    attention = np.asarray(attention)
    arcs = [(d, h - 1) for d, h in enumerate(heads) if h > 0]
    deps = np.array([d for d, _ in arcs], dtype=int)
    govs = np.array([h for _, h in arcs], dtype=int)
    if rules == CLARK:
        ignored = attention.copy()
        n = ignored.shape[-1]
        ignored[:, np.arange(n), np.arange(n)] = 0
        to_head = ignored.argmax(-1)[:, deps] == govs[None, :]
        to_dependent = ignored.transpose(0, 2, 1).argmax(-1)[:, deps] == govs[None, :]
    else:
        best = attention.argmax(-1)  # [K, words]
        to_head = best[:, deps] == govs[None, :]
        to_dependent = best[:, govs] == deps[None, :]
    rows = attention / np.maximum(attention.sum(-1, keepdims=True), 1e-12)
    parents = max_spanning_tree(rows + rows.transpose(0, 2, 1))
    return to_head, to_dependent, tree_hits(parents, arcs)


# ---------------------------------------------------------------- maximum spanning tree


def max_spanning_tree(scores):
    """Prim's algorithm on K symmetric [n, n] score matrices at once: [K, n] parent of each word in the maximum
    spanning tree grown from word 0 (parent[:, 0] = -1). Ties go to the lowest word index."""
    scores = np.asarray(scores, dtype=float)
    k, n, _ = scores.shape
    rows = np.arange(k)
    parent = np.full((k, n), -1)
    if n < 2:
        return parent
    in_tree = np.zeros((k, n), dtype=bool)
    in_tree[:, 0] = True
    best = np.where(in_tree, -np.inf, scores[:, 0, :])
    parent[:, 1:] = 0
    for _ in range(n - 1):
        nearest = best.argmax(1)
        in_tree[rows, nearest] = True
        offer = scores[rows, nearest, :]
        better = (offer > best) & ~in_tree
        best = np.where(in_tree, -np.inf, np.where(better, offer, best))
        parent = np.where(better, nearest[:, None], parent)
    return parent


def tree_hits(parents, arcs: list[tuple[int, int]]):
    """[K, gold edges] whether each gold undirected edge (dependent, head) is in each tree of `parents`."""
    k, n = parents.shape
    found = np.zeros((k, n, n), dtype=bool)
    kids = np.arange(1, n)
    rows = np.repeat(np.arange(k), n - 1)
    found[rows, np.tile(kids, k), parents[:, 1:].ravel()] = True
    found |= found.transpose(0, 2, 1)
    return np.stack([found[:, d, h] for d, h in arcs], 1) if arcs else np.zeros((k, 0), dtype=bool)


def uuas(scores, heads: list[int]) -> float:
    """UUAS of the maximum spanning tree of one [n, n] score matrix (symmetrised) against 1-based gold heads."""
    scores = np.asarray(scores, dtype=float)
    parents = max_spanning_tree((scores + scores.T)[None])
    arcs = [(d, h - 1) for d, h in enumerate(heads) if h > 0]
    return float(tree_hits(parents, arcs).mean()) if arcs else float("nan")


# ---------------------------------------------------------------- rows


def best_offset(offsets) -> int:
    """The most frequent offset (ties: the shorter, then the leftward one): the `own` rules' baseline."""
    values, counts = np.unique(np.asarray(offsets), return_counts=True)
    return int(min(zip(-counts, np.abs(values), values))[2])


def offset_hits(offset: int, positions, lengths, offsets):
    """Per arc, whether Clark et al.'s `offset_predictor(offset)` finds the head: it predicts the word at
    `offset` from the dependent, clamped to the root (0) or the last word (1-based `max(0, min(i + offset + 1,
    n))`), so a prediction past the end lands on the last word."""
    positions, lengths, offsets = (np.asarray(a, dtype=int) for a in (positions, lengths, offsets))
    predicted = np.clip(positions + offset + 1, 0, lengths)  # 1-based, 0 = root
    return predicted == positions + offsets + 1


def clark_offset(positions, lengths, offsets) -> tuple[int, "np.ndarray"]:
    """(offset, per-arc hits) of Clark et al.'s baseline for one relation's arcs: the offset in −3 … +2 of best
    accuracy, ties to the larger offset (their `max((scores[reln], i) for i, scores in …)`)."""
    scored = [(int(offset_hits(o, positions, lengths, offsets).sum()), o) for o in CLARK_OFFSETS]
    offset = max(scored)[1]
    return offset, offset_hits(offset, positions, lengths, offsets)


def head_rows(found: Found) -> pd.DataFrame:
    """The `syntax_heads` rows (without checkpoint columns or treebank) of one checkpoint."""
    k = found.layers * found.heads
    relations, offsets = np.array(found.relations, dtype=object), np.array(found.offsets, dtype=int)
    positions, lengths = np.array(found.positions, dtype=int), np.array(found.lengths, dtype=int)
    hits = {d: _joined(parts, k) for d, parts in zip(DIRECTIONS, (found.to_head, found.to_dependent))}
    frames = []
    for relation in sorted(set(found.relations)):
        mask = relations == relation
        if found.rules == CLARK:
            offset, base = clark_offset(positions[mask], lengths[mask], offsets[mask])
        else:
            offset = best_offset(offsets[mask])
            base = offsets[mask] == offset
        for direction in DIRECTIONS:
            frames.append(_head_block(found, relation, direction, hits[direction][:, mask], best=True))
            frames.append(_baseline_row(relation, direction, base, offset))
    frames.append(_uuas_block(found, _joined(found.tree, k)))
    frames.append(_baseline_row(TREE, MST, np.abs(offsets) == 1, None, ADJACENT))
    out = pd.concat(frames, ignore_index=True)
    for reason, (column, *_rest) in zip(SKIP_REASONS, SKIP_COLUMNS):
        out[column] = int(found.skipped.get(reason, 0))
    return out


def _joined(parts: list, k: int):
    return np.concatenate(parts, 1) if parts else np.zeros((k, 0), dtype=bool)


def _bits(hits) -> str:
    return "".join("1" if h else "0" for h in hits)


def _head_block(found: Found, relation: str, direction: str, hits, best: bool) -> pd.DataFrame:
    correct = hits.sum(1)
    n = hits.shape[1]
    top = int(correct.argmax())
    return pd.DataFrame({
        "layer": np.repeat(np.arange(found.layers), found.heads), "head": np.tile(np.arange(found.heads), found.layers),
        "relation": relation, "direction": direction, "n": n, "correct": correct,
        "accuracy": correct / n if n else np.nan, "offset": pd.array([None] * len(correct), dtype="Int64"),
        "hits": [_bits(hits[top]) if best and i == top else "" for i in range(len(correct))], "baseline_kind": ""})


def _baseline_row(relation: str, direction: str, hits, offset: int | None, name: str = "offset") -> pd.DataFrame:
    """A baseline's row: the fixed-offset baseline of a relation, or (relation `all`, direction `mst`) the
    adjacent-word tree's UUAS, its hits over the same gold edges as the heads' trees."""
    n, correct = len(hits), int(np.sum(hits))
    return pd.DataFrame({"layer": [BASELINE], "head": [BASELINE], "relation": [relation], "direction": [direction],
                         "n": [n], "correct": [correct], "accuracy": [correct / n if n else np.nan],
                         "offset": pd.array([offset], dtype="Int64"), "hits": [_bits(hits)], "baseline_kind": [name]})


def _uuas_block(found: Found, hits) -> pd.DataFrame:
    block = _head_block(found, TREE, MST, hits, best=False)
    per_layer = hits.sum(1).reshape(found.layers, found.heads).argmax(1) + np.arange(found.layers) * found.heads
    block["hits"] = ["" if i not in set(per_layer) else _bits(hits[i]) for i in range(len(block))]
    return block


# ---------------------------------------------------------------- summaries


def _arcs(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per arc of the rows' `hits` (`hit` 0/1, `_arc` its position), with `keys` (and `_seed`)."""
    keys = [*keys, "_seed"] if "_seed" in rows.columns else keys
    records = [(*row, i, float(bit == "1")) for *row, hits in rows[[*keys, "hits"]].itertuples(index=False)
               for i, bit in enumerate(hits)]
    return pd.DataFrame(records, columns=[*keys, "_arc", "hit"])


def _intervals(rows: pd.DataFrame, keys: list[str], name: str) -> pd.DataFrame:
    from probekit.analyses.stats import share_intervals

    if rows.empty:
        return pd.DataFrame(columns=[*keys, f"{name}_low", f"{name}_high", "n_seeds"])
    bounds_ = share_intervals(_arcs(rows, keys), keys, "hit", item="_arc")
    return bounds_.rename(columns={"hit_low": f"{name}_low", "hit_high": f"{name}_high"})


def _pooled(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with `_seed` and, with several seeds, their copies pooled per shared step (`all-seeds`)."""
    from probekit.analyses.stats import with_pooled_seeds

    return with_pooled_seeds(frame)


def _one_per_key(rows: pd.DataFrame, keys: list[str], value: str, ids: tuple[str, ...]) -> pd.DataFrame:
    """One row per key: `value` averaged over the seeds of a pooled key, `n` their maximum, and the `ids`
    (layer, head) kept where every seed agrees, else missing."""
    grouped = rows.groupby(keys, sort=False, dropna=False)
    out = grouped.agg(n=("n", "max"), **{value: (value, "mean")},
                      **{c: (c, "first") for c in ids}, **{f"_{c}": (c, "nunique") for c in ids}).reset_index()
    for c in ids:
        out[c] = out[c].astype("Int64").mask(out.pop(f"_{c}") > 1)
    return out


def best_heads(frame: pd.DataFrame) -> pd.DataFrame:
    """`syntax_best_heads`: per checkpoint × treebank × relation × direction, the best head and the baseline,
    each with its interval over arcs; with several seeds also per shared step pooled over them."""
    keys = [*CHECKPOINT_ID, "treebank", "relation", "direction"]
    frame = _pooled(frame)
    rows = frame[(frame["direction"] != MST) & (frame["hits"].fillna("") != "")]
    heads, base = rows[rows["layer"] >= 0], rows[rows["layer"] == BASELINE]
    out = _one_per_key(heads, keys, "accuracy", ("layer", "head")).merge(
        _intervals(heads, keys, "accuracy").drop(columns="n_seeds"), on=keys, how="left")
    baseline = _one_per_key(base, keys, "accuracy", ("offset",)).drop(columns="n")
    out = out.merge(baseline.rename(columns={"accuracy": "baseline"}), on=keys, how="left")
    out = out.merge(_intervals(base, keys, "baseline"), on=keys, how="left")
    out = _too_few(out, ("accuracy", "baseline"))
    out["beats_baseline"] = (out["accuracy_low"] > out["baseline_high"]).astype(bool)
    out = _with_skips(out, frame)
    return out[SYNTAX_BEST_HEADS.names].reset_index(drop=True)


def _too_few(out: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """No interval where fewer than `stats.MIN_ITEMS` arcs (edges) are behind it (a bootstrap over 1–4 arcs
    gives zero-width or meaningless bounds): the bounds missing and a `note` saying why."""
    from probekit.analyses.stats import MIN_ITEMS

    few = out["n"].fillna(0) < MIN_ITEMS
    for name in names:
        out.loc[few, [f"{name}_low", f"{name}_high"]] = np.nan
    unit = "edges" if "uuas" in names else "arcs"
    return out.assign(note=np.where(few, [f"no interval: {int(n)} {unit}, fewer than {MIN_ITEMS}"
                                          for n in out["n"].fillna(0)], ""))


def _with_skips(out: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """`out` with the sentences skipped per reason of its checkpoint × treebank (pooled rows: the most of any
    seed; 0 for rows made before the columns existed)."""
    names = [c for c, *_ in SKIP_COLUMNS]
    keys = [*CHECKPOINT_ID, "treebank"]
    if not set(names) <= set(frame.columns):
        return out.assign(**{c: 0 for c in names})
    skips = frame.groupby(keys, sort=False, dropna=False)[names].max().reset_index()
    out = out.drop(columns=[c for c in names if c in out.columns]).merge(skips, on=keys, how="left")
    return out.assign(**{c: out[c].fillna(0).astype(int) for c in names})


def uuas_table(frame: pd.DataFrame) -> pd.DataFrame:
    """`syntax_uuas`: every head's UUAS; the best head of each layer and the adjacent-word baseline (layer and
    head −1, `baseline_kind` = `adjacent`) with their intervals over edges. With several seeds also, per shared
    step, each layer's best head (head missing) and the baseline pooled over them."""
    keys = [*CHECKPOINT_ID, "treebank", "layer", "head"]
    frame = _pooled(frame)
    if "baseline_kind" not in frame.columns:
        frame = frame.assign(baseline_kind="")
    frame["baseline_kind"] = frame["baseline_kind"].fillna("")
    rows = frame[frame["direction"] == MST]
    single = rows[rows["_seed"] == ""]
    kept = single[single["hits"].fillna("") != ""]
    out = single[[*keys, "baseline_kind", "n", "accuracy"]].rename(columns={"accuracy": "uuas"})
    out = out.merge(_intervals(kept, keys, "uuas"), on=keys, how="left")
    out["best_in_layer"] = out["uuas_low"].notna() & (out["baseline_kind"] == "")
    pooled = rows[(rows["_seed"] != "") & (rows["hits"].fillna("") != "")]
    if len(pooled):
        layer_keys = [k for k in keys if k != "head"]
        merged = _one_per_key(pooled.rename(columns={"accuracy": "uuas"}), layer_keys, "uuas", ("head",))
        merged = merged.merge(_intervals(pooled, layer_keys, "uuas"), on=layer_keys, how="left")
        merged["baseline_kind"] = np.where(merged["layer"] == BASELINE, ADJACENT, "")
        out = pd.concat([out, merged.assign(best_in_layer=merged["baseline_kind"] == "")], ignore_index=True)
    out["n_seeds"] = out["n_seeds"].fillna(1).astype(int)
    out = _too_few(out.assign(best_in_layer=out["best_in_layer"].astype(bool)), ("uuas",))
    out = _with_skips(out, frame)
    return out[SYNTAX_UUAS.names].reset_index(drop=True)


# ---------------------------------------------------------------- what is implemented


def definitions(settings: dict) -> str:
    """Markdown stating what syntax-heads computes under `settings` (the run's options for it, e.g.
    `{"head_rules": "clark"}`, as the manifest's `options["syntax-heads"]` holds; missing keys: the defaults),
    for the report pages."""
    from probekit.analyses.stats import LEVEL, RESAMPLES, SEED

    rules = settings.get("head_rules", CLARK)
    intervals = (f"{LEVEL:.0%} percentile bootstrap intervals over arcs (gold edges for UUAS), {RESAMPLES:,} "
                 f"resamples, seed {SEED} (`probekit.analyses.stats`; seeds drawn with the arcs when the series "
                 "holds several)")
    pooling = ("- **Words from pieces.** The words are joined by single spaces and each piece goes to the word its "
               "characters come from (the tokenizer's offsets). Attention *to* a word is the **sum** over its "
               "pieces, attention *from* a word the **mean** over its pieces (Clark et al. 2019's rule for split-up "
               "words; their released `get_word_word_attention` defaults to the first piece instead). Special tokens "
               "are dropped as queries and keys. Sentences longer than the model's positions, or with a word that "
               "becomes no piece (e.g. a zero-width character), are skipped and counted (`skipped_long`, "
               "`skipped_unaligned`).")
    if rules == CLARK:
        heads = ["- **Head rules: Clark et al. (2019)'s `attn_head_predictor`** (clarkkev/attention-analysis, "
                 "`Syntax_Analysis.ipynb`), reproduced exactly (checked against their code in the tests). Attention "
                 "to the word itself is set to 0 before any argmax.",
                 "    - `dep->head` (their `mode=\"normal\"`): a hit when the word the dependent attends to most is "
                 "its head.",
                 "    - `head->dep` (their \"head<-dep\", `mode=\"transpose\"`): the argmax of the *transposed* "
                 "map — a hit when, of all the words, the one that attends most to the dependent is its head.",
                 "    - Rows are not renormalised after dropping [CLS]/[SEP] (as in their maps), which matters for "
                 "the transposed direction only.",
                 "- **Fixed-offset baseline: their `offset_predictor`.** Each relation gets the offset in −3 … +2 "
                 "(head position − dependent position) that finds its head most often, ties going to the larger "
                 "offset; a prediction past either end of the sentence is clamped (to the root or the last word) as "
                 "their code clamps it. It is chosen on the same sentences it is scored on, and it scores the same in "
                 "both directions. Their special case for Stanford Dependencies' `poss` is not applied (UD has no "
                 "`poss`: `nmod:poss` is read as `nmod`)."]
    else:
        heads = ["- **Head rules: probekit's own** (`--head-rules own`; Clark et al.'s are the default). Attention "
                 "to the word itself is kept (a head that attends to the word itself scores a miss).",
                 "    - `dep->head`: a hit when the word the dependent attends to most is its head.",
                 "    - `head->dep`: a hit when the word the *head* attends to most is the dependent (its own "
                 "argmax, not the transposed map: at most one dependent of each head word can be found).",
                 "- **Fixed-offset baseline:** per relation, the single most frequent offset of any length (ties: "
                 "the shorter, then the leftward), unclamped; the same in both directions."]
    return "\n".join([
        "**Syntactic heads (Clark et al. 2019, \"What Does BERT Look At?\")**", "",
        pooling, *heads,
        "- **Relations:** universal dependency relations without subtype; `root` has no head word and is left out; "
        "`punct` is scored like any other relation (Clark et al.'s table does not list it).",
        "- **UUAS per head** (probekit's own measure, not in the paper; the same under both head rules): the word map "
        "with each row renormalised over the sentence's words, the maximum spanning tree of W + Wᵀ (Prim), and the "
        "share of gold undirected edges in it.",
        "- **UUAS baseline: the adjacent-word tree** (each word linked to the next). As an undirected tree it is "
        "also the right-branching tree (each word's head the next word) and the left-branching one, so this one "
        "baseline stands for all of them; it is scored on the same gold edges.",
        f"- **Intervals:** {intervals}. A best head is reported with the baseline's interval beside it; which "
        f"claims follow is decided in the findings.",
    ])


register(SyntaxHeads)
