"""Causal tracing (Meng et al. 2022, ROME): where in depth and at which token the answer is recalled.

Per fill-mask prompt with a subject (`[X]` in its template), three kinds of run:

- clean: the prompt as it is;
- corrupted: Gaussian noise added to the subject's pieces at the embeddings module's output
  (`hook_full_embed`: after BERT's embedding LayerNorm; ROME noises the token embeddings), of `--noise` × σ,
  where σ is the standard deviation of that output over a fixed reference set of subjects (`NOISE_REFERENCE`:
  the shipped countries benchmark's subjects, each tokenised alone with the checkpoint's tokenizer, as ROME's
  `collect_embedding_std`), measured once per checkpoint — so a prompt's noise depends only on the checkpoint,
  the seed and the prompt's text, never on which other prompts were traced. `--noise-samples K` draws
  (ROME's `samples=10`) are drawn per prompt from `--noise-seed` and its text, and batched as rows: the
  corrupted run and every restored site see the same K draws, and their probabilities are averaged over the
  draws before any difference. With `--corrupt subject-swap` the draws are up to K counterfactual subjects;
- restored: the corrupted run with one clean activation patched back in, at one (layer, token position) of one
  component: the residual stream leaving the layer (`blocks.{l}.hook_resid_post`), the attention output
  (`hook_attn_out`) or the MLP output (`hook_mlp_out`) — see `probekit.models.hooks` for the module each is;
  or, for the component `head`, one attention head's output before the output projection (`attn.hook_z`,
  that head's slice) at every position at once: which heads carry the fact;
- knocked out (component `knockout`, Geva et al. 2023): the *clean* run with attention from the [MASK]
  position(s) to the subject's pieces blocked at one layer, in every head — the pattern entries zeroed and each
  [MASK] row renormalised, done exactly by the dtype's minimum added to those scores (`attn.hook_mask`). It is
  sample-free and exact only (attribution has no estimate of it); its role is `mask` (the query positions).

Corrupted and clean runs share their token positions (the noise replaces nothing), which patching needs.
The metric is the gold answer's probability as the scoring kernel defines it (`probekit.analyses.scoring`:
all its k pieces masked at once, the product of the pieces' probabilities). The effect of a site is
Δp = p_restored − p_corrupt (the primary statistic); the per-prompt share (p_restored − p_corrupt) /
(p_clean − p_corrupt) is kept in the row table but the summaries' share is a ratio of means over prompts
(mean Δp / mean (p_clean − p_corrupt)), missing where the denominator's interval includes 0.

Positions are summed up by role — the subject's first, middle and last piece, the mask, the other prompt tokens
and the special tokens — as the mean over the role's positions of p_restored with one position restored (as
ROME averages its token categories), except the mask role: the answer is read from all its k masks jointly,
so that row restores every [MASK] at once (restoring the last layer's residual stream there gives p_clean by
construction; column `by_construction` of `tracing_scores`). A one-piece subject is its own first and last
piece (no middle).

Batching: the clean activations are read once per prompt; every (layer, position) site of one component is a
row of one batched forward pass of the corrupted input, times the K draws (at most the run's batch size rows a
pass), each row patching its own site; heads likewise, every (layer, head) a row, and knockouts, every layer a
row of one pass of the clean input.

Head rows live in the one row table (`tracing`, component `head`, the head in `head`, role `all`) rather than
a table of their own: the runner caches, shards and assembles exactly one row table per analysis (`run`'s
rows), so a second row table would be lost on a cache hit or in another shard. Their summary is
`tracing_head_scores`; `tracing_scores` summarises the other components (resid, attn, mlp and knockout).
Prompts that cannot be traced are rows of component `skipped` with their reason, counted per group in the
summaries (a group whose prompts were all skipped keeps one `skipped` row there).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from probekit.core import lazy
from probekit.analyses.sites import COMPONENTS, HEAD, KNOCKOUT, Trace  # noqa: F401 (also tracing's names)
from probekit.analyses.base import Analysis, Context, Options, Shape, digest, option, register
from probekit.core.schema import CHECKPOINT_COLUMNS, CHECKPOINT_ID, N_SEEDS, PROMPT_COLUMNS, RELATION_ID, \
    Table, bounds, columns

np = lazy.module("numpy")
pd = lazy.module("pandas")
hooks = lazy.module("probekit.models.hooks")

ROLES = ("subject_first", "subject_middle", "subject_last", "mask", "other", "special")
ALL = "all"
"""The role of a head row: every position of the prompt."""
MIN_EFFECT = 1e-4
"""Restoration is missing where |p_clean − p_corrupt| ≤ MIN_EFFECT × max(p_clean, p_corrupt)."""
SAMPLE_SEED = 0
"""Seed of the prompts sampled per relation × group (the same prompts at every checkpoint)."""
NOISE_REFERENCE = "countries-subjects"
"""The fixed set σ is measured over: every distinct subject of the shipped countries benchmark (its country and
capital names, `probekit/benchmarks/countries.csv`), each tokenised alone (with the tokenizer's special tokens,
which are left out of the std) by the checkpoint's tokenizer; σ = the std of the embeddings module's output
over all their pieces and hidden units (ROME's `collect_embedding_std`)."""

# why a prompt is not traced (the `reason` of its `skipped` row)
NO_X = "no [X] in the template"
TWO_X = "[X] more than once in the template"
NO_PIECE = "the subject has no piece (empty or invisible)"
UNSCORABLE = "the answer cannot be spelled in the vocabulary"
TOO_LONG = "longer than the model's limit"
UNLOCATED = "the subject's pieces cannot be told apart from the template's"
NO_SWAP = "no counterfactual subject of the relation with as many pieces"

TRACING = Table("tracing", "checkpoint × prompt × method × component × layer × role, and heads", columns(
    *CHECKPOINT_COLUMNS, *PROMPT_COLUMNS,
    ("method", "str", "exact (the restored run itself) or attribution (its first-order estimate from one "
                      "backward pass, Nanda 2023)"),
    ("component", "str", "what is restored: resid (the layer's output hidden state), attn (attention output), "
                         "mlp (MLP output), head (one head's output before the output projection, hook_z); "
                         "knockout: attention from the [MASK] to the subject blocked in the clean run; skipped: "
                         "a prompt left out (its reason in `reason`; one row, no values)"),
    ("layer", "int", "the block patched (0 = the first); missing for skipped prompts"),
    ("head", "int", "the head restored (component head); missing for the other components"),
    ("role", "str", "token positions patched: subject_first, subject_middle, subject_last, mask, other, special; "
                    "all for a head (every position at once)"),
    ("positions", "int", "positions of the role: the row is the mean over them of restoring one at a time, "
                         "except the mask role, which restores every [MASK] of the answer at once"),
    ("restoration", "float", "this prompt's (p_restored − p_corrupt) / (p_clean − p_corrupt): 0 = corrupted, "
                             "1 = clean; missing where the corruption did not move p (not used for claims: the "
                             "summaries' share is a ratio of means)"),
    ("effect", "float", "Δp = p_restored − p_corrupt: the absolute indirect effect, the primary statistic"),
    ("p_restored", "float", "gold probability with the clean value restored (mean over the role's positions, "
                            "each alone; all masks at once for the mask role), averaged over the draws; "
                            "knockout: with the attention blocked; attribution: its estimate"),
    ("p_clean", "float", "gold probability of the clean run (all pieces masked at once, as the scores)"),
    ("p_corrupt", "float", "gold probability with the subject corrupted (noised or swapped), averaged over the "
                           "draws"),
    ("noise_std", "float", "std of the noise added: --noise × σ, σ the std of the embeddings' output over the "
                           "fixed reference subjects (NOISE_REFERENCE) at this checkpoint; missing for "
                           "subject-swap"),
    ("samples", "int", "draws averaged: noise samples (--noise-samples), or the counterfactual subjects found "
                       "(at most --noise-samples) for subject-swap"),
    ("reason", "str", "why a prompt was skipped (component skipped); missing otherwise"),
), "Causal tracing: how much of the gold answer's probability comes back when one clean activation is "
   "restored in a run whose subject was corrupted (noised embeddings or a counterfactual subject).")
_SHARE = (
    ("n", "int", "prompts traced at the site"),
    ("restoration", "float", "the share: mean Δp / mean (p_clean − p_corrupt) over the prompts (a ratio of "
                             "means); missing where the denominator's interval includes 0"),
    *bounds(("restoration",)),
    ("effect", "float", "mean Δp = p_restored − p_corrupt over prompts: the primary statistic"),
    *bounds(("effect",)),
    ("gap", "float", "mean p_clean − p_corrupt over the same prompts: the share's denominator"),
    *bounds(("gap",)),
)
TRACING_SCORES = Table("tracing_scores",
                       "checkpoint × benchmark × relation × group × method × component × layer × role", columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"),
    ("group", "str", "fact-injection group"), ("method", "str", "exact or attribution"),
    ("component", "str", "resid, attn, mlp or knockout; skipped: the one row of a group none of whose prompts "
                         "was traced (its count in `skipped`)"),
    ("layer", "int", "the block patched"), ("role", "str", "token positions patched"),
    *_SHARE,
    ("by_construction", "bool", "the site restores the answer by construction (the last layer's residual stream "
                                "at the [MASK]s: what the MLM head reads), not a finding"),
    ("skipped", "int", "prompts of the relation and group left out (tracing table rows of component skipped, "
                       "each with its reason)"),
    N_SEEDS,
), "Mean Δp per site, the mean gap p_clean − p_corrupt and their ratio (the share) with bootstrap intervals over "
   "prompts (and seeds), the same resamples for numerator and denominator.")
TRACING_HEAD_SCORES = Table("tracing_head_scores",
                            "checkpoint × benchmark × relation × group × method × layer × head",
                            columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"),
    ("group", "str", "fact-injection group"), ("method", "str", "exact or attribution"),
    ("layer", "int", "the block of the head"),
    ("head", "int", "the head restored (its hook_z at every position)"),
    *_SHARE,
    N_SEEDS,
), "Mean Δp per attention head (its clean output restored at every position), the mean gap and their ratio with "
   "bootstrap intervals over prompts (and seeds): which heads carry the fact; rank by Δp.")
TRACING_AGREEMENT = Table("tracing_agreement", "checkpoint × benchmark × component", columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"),
    ("component", "str", "resid, attn, mlp or head"),
    ("n", "int", "prompt-level sites traced both ways (prompt × layer × role, or prompt × layer × head)"),
    ("spearman", "float", "rank correlation of attribution's and exact patching's absolute effect over those "
                          "sites: 1 = attribution orders the sites as exact patching does"),
    ("n_sites", "int", "sites after the mean over prompts (relation × group × layer × role, or × head)"),
    ("spearman_sites", "float", "rank correlation of the two methods' mean effects over those sites (what the "
                                "heatmap shows)"),
), "Attribution patching against exact patching on the prompts traced both ways (`--trace-method both`): "
   "when to trust the fast estimate.")
TRACING_ID = [*CHECKPOINT_ID, *RELATION_ID, "method", "component", "layer", "role"]
HEAD_ID = [*CHECKPOINT_ID, *RELATION_ID, "method", "layer", "head"]
SITE = ["component", "layer", "role"]
EXACT, ATTRIBUTION, BOTH = "exact", "attribution", "both"
SKIPPED = "skipped"
CORRUPTIONS = ("noise", "subject-swap")


@dataclass(frozen=True)
class TracingOptions(Options):
    sample: int = option(64, "Prompts traced per relation and fact group (seeded sample; 0 = all).",
                         flag="--trace-sample", low=0)
    corrupt: str = option("noise", "How the subject is corrupted: noise (Gaussian noise added to its embeddings, "
                          "ROME) or subject-swap (counterfactual subjects of the same relation with as many "
                          "pieces, seeded; prompts without one are skipped and counted).",
                          flag="--corrupt", choices=CORRUPTIONS)
    noise: float = option(3.0, "Noise std as a multiple of σ, the std of the embeddings' output over a fixed "
                          "reference set of subjects (ROME: 3).", flag="--noise", low=0.0)
    noise_samples: int = option(10, "Noise draws per prompt (ROME: 10), or at most this many counterfactual "
                                "subjects with subject-swap: the same draws for the corrupted and every restored "
                                "run, probabilities averaged over them before any difference.",
                                flag="--noise-samples", low=1)
    noise_seed: int = option(0, "Seed of the corruption: the noise, or the counterfactual subjects drawn.",
                             flag="--noise-seed", low=0)
    components: str = option("resid,attn,mlp,head,knockout", "Components restored, comma-separated: resid, attn, mlp, "
                             "head (each attention head at every position), knockout (attention from the "
                             "[MASK] to the subject blocked, per layer; exact only).",
                             flag="--trace-components")
    method: str = option("exact", "exact (one restored run per site), attribution (first-order estimate of "
                         "every site from one forward and backward pass, Nanda 2023) or both (and their rank "
                         "correlation, table tracing_agreement).", flag="--trace-method",
                         choices=(EXACT, ATTRIBUTION, BOTH))
    metric: str = option("prob", "The metric attribution differentiates: prob (the gold probability) or logprob.",
                         flag="--attribution-metric", choices=("prob", "logprob"))

    def validate(self, analysis: str) -> None:
        from probekit.core.errors import ProbekitError

        super().validate(analysis)  # the bounds, NaN and inf refused as out of range
        unknown = [c for c in self.parts() if c not in COMPONENTS]
        if unknown or not self.parts():
            raise ProbekitError(f"analysis {analysis!r}: option components={self.components!r}: use a "
                                f"comma-separated list of {', '.join(COMPONENTS)}")
        if self.method == ATTRIBUTION and not [c for c in self.parts() if c != KNOCKOUT]:
            raise ProbekitError(f"analysis {analysis!r}: --trace-components {self.components} with --trace-method "
                                "attribution: knockout has no attribution estimate (use --trace-method exact or "
                                "both, or add resid, attn, mlp or head)")

    def parts(self) -> list[str]:
        return [c.strip() for c in self.components.split(",") if c.strip()]

    def methods(self) -> list[str]:
        return [EXACT, ATTRIBUTION] if self.method == BOTH else [self.method]


@dataclass
class Site:
    """One traced prompt: token ids, where its mask and subject are, its gold pieces."""

    index: int
    ids: list[int]
    masks: list[int]
    subject: list[int]
    special: list[int]
    gold: list[int]

    def roles(self) -> dict[str, list[int]]:
        """Role → positions (a one-piece subject is first and last; a role without positions is left out)."""
        taken = {*self.subject, *self.masks, *self.special}
        roles = {"subject_first": self.subject[:1], "subject_middle": self.subject[1:-1],
                 "subject_last": self.subject[-1:], "mask": self.masks, "special": self.special,
                 "other": [t for t in range(len(self.ids)) if t not in taken]}
        return {role: roles[role] for role in ROLES if roles[role]}


# ---------------------------------------------------------------- the kernel


def gold_prob(model, hidden, masks: list[int], gold: list[int]):
    """[rows] probability of the gold pieces at the mask positions (pieces jointly: product)."""
    import torch
    from probekit.models.families import mlm_head

    logits = mlm_head(model)(hidden[:, masks])
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # float64 stays float64
    logprob = logits.log_softmax(-1).gather(2, torch.tensor(gold, device=logits.device)[None, :, None].expand(
        logits.shape[0], -1, 1)).squeeze(2)
    return logprob.double().sum(1).exp()


def draws_of(noise):
    """The corruption as [draws, subject pieces, d_embed] (a [pieces, d_embed] tensor is one draw)."""
    return noise if noise.dim() == 3 else noise[None]


def corruption(subject: list[int], noise):
    """The edit of `hook_full_embed` that adds the draws of `noise` ([draws, pieces, d_embed] or one draw) at the
    subject's positions: a batch of rows × draws, batch row r·K + j getting draw j."""
    draws = draws_of(noise)

    def edit(embedded):
        k = draws.shape[0]
        full = embedded.new_zeros(embedded.shape)
        full[:, subject] = draws.to(device=embedded.device, dtype=embedded.dtype).repeat(embedded.shape[0] // k, 1, 1)
        return embedded + full
    return edit


def clean_run(model, site: Site, points: list[str]) -> tuple[float, dict]:
    """p_clean and the clean activations at `points` (one forward pass)."""
    import torch
    from probekit.models.families import body

    ids = torch.tensor([site.ids], device=next(model.parameters()).device)
    with torch.inference_mode(), hooks.hooked(model, read=points) as seen:
        hidden = body(model)(input_ids=ids).last_hidden_state
        p_clean = float(gold_prob(model, hidden, site.masks, site.gold)[0])
    return p_clean, dict(seen)


def patched_probs(model, site: Site, noise, point: str | None, clean: dict, rows: list[tuple[int, list[int]]],
                  max_rows: int = 128, over: str = "position"):
    """p of the corrupted run with, per row, the clean value of `point` restored at (layer, indices) of that
    row; a row with layer -1 restores nothing. The indices are token positions (`over="position"`, restored
    together), or heads of a per-head point such as `attn.hook_z` [batch, pos, head, d_head] (`over="head"`:
    the heads' values at every position). `noise` holds K draws ([K, pieces, d_embed]; or one, [pieces,
    d_embed]): every row runs once per draw and its p is the mean over the draws. Rows × draws share forward
    passes, at most `max_rows` batch rows a pass (at least one row's draws)."""
    import torch
    from probekit.models.families import body

    device = next(model.parameters()).device
    draws = draws_of(noise)
    k = draws.shape[0]
    per_pass = max(1, max_rows // k)
    out = []
    for start in range(0, len(rows), per_pass):
        chunk = rows[start:start + per_pass]
        ids = torch.tensor([site.ids], device=device).expand(len(chunk) * k, -1)
        write = {hooks.EMBED: corruption(site.subject, draws)}
        for layer in sorted({layer for layer, _ in chunk if layer >= 0}):
            name = hooks.hook_name(layer, point)
            where = _where(chunk, layer, clean[name], over).repeat_interleave(k, 0)
            write[name] = _restore(where, clean[name])
        with torch.inference_mode(), hooks.hooked(model, write=write):
            hidden = body(model)(input_ids=ids).last_hidden_state
            p = gold_prob(model, hidden, site.masks, site.gold).cpu().numpy()
        out.append(p.reshape(len(chunk), k).mean(1))  # probabilities averaged over the draws
    return np.concatenate(out)


def _where(chunk: list[tuple[int, list[int]]], layer: int, clean, over: str):
    """Which entries each row of `chunk` restores at `layer`: [rows, positions, 1] for positions,
    [rows, 1, heads, 1] for heads (broadcast against the point's tensor)."""
    import torch

    shape = (len(chunk), clean.shape[1], 1) if over == "position" else (len(chunk), 1, clean.shape[2], 1)
    where = torch.zeros(shape, dtype=torch.bool, device=clean.device)
    for r, (row_layer, indices) in enumerate(chunk):
        if row_layer == layer:
            if over == "position":
                where[r, indices] = True
            else:
                where[r, 0, indices] = True
    return where


def _restore(where, clean):
    """The edit that takes the clean value (batch 1) where `where` (broadcast to the tensor) is set."""
    import torch

    def edit(tensor):
        return torch.where(where, clean.to(tensor.dtype), tensor)
    return edit


def knockout_probs(model, site: Site, layers: int, max_rows: int = 128):
    """[layers] p of the clean run with attention from the [MASK] position(s) to the subject's pieces
    blocked at one layer (row l: layer l), every head; the rows share forward passes."""
    import torch
    from probekit.models.families import body

    device = next(model.parameters()).device
    out = []
    for start in range(0, layers, max_rows):
        chunk = list(range(start, min(layers, start + max_rows)))
        ids = torch.tensor([site.ids], device=device).expand(len(chunk), -1)
        write = {hooks.hook_name(layer, COMPONENTS[KNOCKOUT]): _block(row, site.masks, site.subject)
                 for row, layer in enumerate(chunk)}
        with torch.inference_mode(), hooks.hooked(model, write=write):
            hidden = body(model)(input_ids=ids).last_hidden_state
            out.append(gold_prob(model, hidden, site.masks, site.gold).cpu().numpy())
    return np.concatenate(out)


def _block(row: int, queries: list[int], keys: list[int]):
    """The edit of `attn.hook_mask` [rows, 1, query, key] that blocks `queries` → `keys` in one row."""
    import torch

    def edit(mask):
        mask = mask.clone()
        q, k = torch.tensor(queries)[:, None], torch.tensor(keys)[None, :]
        mask[row, 0, q, k] = torch.finfo(mask.dtype).min
        return mask
    return edit


def trace(model, site: Site, noise, components: list[str], max_rows: int = 128) -> Trace:
    """Every (layer, position) site of every component restored in turn, every mask at once per layer (answers of
    several pieces), and every (layer, head) for the component `head`: p_restored per site, averaged over the
    draws of `noise` ([K, pieces, d_embed], or one draw [pieces, d_embed])."""
    from probekit.models.families import n_layers

    layers, width = n_layers(model), len(site.ids)
    points = [hooks.hook_name(layer, COMPONENTS[c]) for c in components if c != KNOCKOUT
              for layer in range(layers)]
    p_clean, clean = clean_run(model, site, points)
    p_corrupt = float(patched_probs(model, site, noise, None, clean, [(-1, [])], max_rows)[0])
    rows = [(layer, [t]) for layer in range(layers) for t in range(width)]
    joint = [(layer, list(site.masks)) for layer in range(layers)] if len(site.masks) > 1 else []
    restored, masks = {}, {}
    for c in components:
        if c in (HEAD, KNOCKOUT):
            continue
        p = patched_probs(model, site, noise, COMPONENTS[c], clean, rows + joint, max_rows)
        restored[c] = p[:len(rows)].reshape(layers, width)
        masks[c] = p[len(rows):] if joint else restored[c][:, site.masks[0]]
    if KNOCKOUT in components:
        restored[KNOCKOUT] = knockout_probs(model, site, layers, max_rows)[:, None]
    if HEAD in components:
        heads = clean[hooks.hook_name(0, COMPONENTS[HEAD])].shape[2]
        head_rows = [(layer, [h]) for layer in range(layers) for h in range(heads)]
        restored[HEAD] = patched_probs(model, site, noise, COMPONENTS[HEAD], clean, head_rows, max_rows,
                                       over="head").reshape(layers, heads)
    return Trace(p_clean, p_corrupt, restored, masks, draws=int(draws_of(noise).shape[0]))


def restoration(p_restored, p_clean: float, p_corrupt: float):
    """(p_restored − p_corrupt) / (p_clean − p_corrupt); missing where the corruption moved p by less than
    MIN_EFFECT of it."""
    effect = p_clean - p_corrupt
    if abs(effect) <= MIN_EFFECT * max(p_clean, p_corrupt):
        return np.full(np.shape(p_restored), np.nan)
    return (np.asarray(p_restored) - p_corrupt) / effect


# ---------------------------------------------------------------- prompts → sites


def prompt_sites(prompts, tokenizer, encoded: dict, limit: int, reasons: dict | None = None) -> dict[int, Site]:
    """A `Site` per prompt (by row index) whose subject can be located in its tokens and whose answer is
    scorable; the others are left out, with their reason in `reasons` (row index → reason) when given."""
    mask = tokenizer.mask_token
    sites = {}
    reasons = {} if reasons is None else reasons
    for i, (template, subject) in enumerate(zip(prompts["template"], prompts["subject"])):
        ids, gold = encoded["input_ids"][i], encoded["pieces"][i]
        subject = "" if subject is None or (isinstance(subject, float) and np.isnan(subject)) else str(subject)
        if "[X]" not in template:
            reasons[i] = NO_X
            continue
        if template.count("[X]") > 1:
            reasons[i] = TWO_X
            continue
        if not gold or "[MASK]" not in template:
            reasons[i] = UNSCORABLE
            continue
        if len(ids) > limit:
            reasons[i] = TOO_LONG
            continue
        if not subject.strip():
            reasons[i] = NO_PIECE
            continue
        masks_text = " ".join([mask] * len(gold))
        filled = template.replace("[X]", subject)
        x, m = template.index("[X]"), template.index("[MASK]")
        start = x if x < m else x - len("[MASK]") + len(masks_text)
        text = filled.replace("[MASK]", masks_text)
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        if enc["input_ids"] != ids:
            reasons[i] = UNLOCATED
            continue
        masks = [t for t, tok in enumerate(ids) if tok == tokenizer.mask_token_id]
        special = [t for t, s in enumerate(enc["special_tokens_mask"]) if s and t not in masks]
        end = start + len(subject)
        subj = [t for t, (a, b) in enumerate(enc["offset_mapping"])
                if b > a and a < end and b > start and t not in masks and t not in special]
        if not subj:
            reasons[i] = NO_PIECE
        elif len(masks) != len(gold):
            reasons[i] = UNLOCATED
        else:
            sites[i] = Site(i, ids, masks, subj, special, gold)
    return sites


def sample(prompts, groups: list[str], n: int) -> list[int]:
    """Row indices of up to `n` prompts per relation × group, drawn with a fixed seed (all when n is 0)."""
    frame = prompts.reset_index(drop=True).assign(group=groups)
    picked = []
    for (relation, group), rows in frame.groupby(["relation", "group"], sort=False):
        index = rows.index.to_numpy()
        if n and len(index) > n:
            rng = np.random.default_rng([SAMPLE_SEED, zlib.crc32(f"{relation}|{group}".encode())])
            index = np.sort(rng.choice(index, n, replace=False))
        picked += index.tolist()
    return sorted(picked)


def noise_for(seed: int, prompt: str, shape: tuple[int, ...], scale: float):
    """Standard normal noise × scale, drawn from the seed and the prompt's text; shape (K, pieces, d_embed) for K
    draws (draw j is the same whatever K: the draws fill the tensor in order)."""
    import torch

    generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}|{prompt}".encode()))
    return torch.randn(shape, generator=generator) * scale


def reference_subjects() -> list[str]:
    """`NOISE_REFERENCE`: the distinct country and capital names of the shipped countries benchmark, in file
    order."""
    import csv

    from probekit.benchmarks import HERE

    with open(HERE / "countries.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return list(dict.fromkeys(str(r[c]).strip() for c in ("country", "capital") for r in rows if str(r[c]).strip()))


def reference_std(model, tokenizer, subjects: list[str] | None = None, batch: int = 128) -> float:
    """σ: the std of the embeddings module's output over every non-special piece of `subjects` (default
    `reference_subjects()`), each tokenised alone — ROME's `collect_embedding_std`, on a fixed set."""
    import torch
    from probekit.models.families import body

    subjects = reference_subjects() if subjects is None else subjects
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    values = []
    for start in range(0, len(subjects), batch):
        enc = tokenizer(subjects[start:start + batch], return_special_tokens_mask=True)
        width = max(len(ids) for ids in enc["input_ids"])
        ids = torch.full((len(enc["input_ids"]), width), pad, dtype=torch.long)
        attend = torch.zeros_like(ids)
        keep = torch.zeros_like(ids, dtype=torch.bool)
        for r, (row, special) in enumerate(zip(enc["input_ids"], enc["special_tokens_mask"])):
            ids[r, :len(row)] = torch.tensor(row)
            attend[r, :len(row)] = 1
            keep[r, :len(row)] = torch.tensor(special) == 0
        with torch.inference_mode(), hooks.hooked(model, read=[hooks.EMBED]) as seen:
            body(model)(input_ids=ids.to(device), attention_mask=attend.to(device))
        values.append(seen[hooks.EMBED][keep.to(device)].double().flatten().cpu())
    found = torch.cat(values) if values else torch.zeros(0)
    return float(found.std()) if found.numel() > 1 else 0.0


def embedding_std(model, sites: list[Site]) -> float:
    """Std of the embeddings module's output over the subject pieces of `sites` in their prompts (the noise scale
    of probekit before version 4 of tracing; kept for comparison — σ now comes from `reference_std`)."""
    import torch
    from probekit.models.families import body

    device = next(model.parameters()).device
    values = []
    for site in sites:
        with torch.inference_mode(), hooks.hooked(model, read=[hooks.EMBED]) as seen:
            body(model)(input_ids=torch.tensor([site.ids], device=device))
        values.append(seen[hooks.EMBED][0, site.subject].float().flatten().cpu())
    return float(torch.cat(values).std()) if values else 0.0


def swap_pieces(site: Site, prompt: pd.Series, candidates: list[tuple[str, str]], tokenizer,
                seed: int, k: int = 1) -> list[list[int]] | list[int] | None:
    """The piece ids of counterfactual subjects for `site` (subject-swap): among `candidates` ((subject, answer)
    pairs of the prompt's relation) in an order drawn from `seed`, the prompt's text and each candidate's name
    (so adding a candidate moves no other), the first `k` whose answer differs from the prompt's and whose
    pieces, in the prompt's template, take exactly the subject's positions (every other token unchanged, so
    clean and corrupted runs share positions). k = 1: that one's pieces, or None; k > 1: a list of up to k
    (empty if none)."""
    own_subject, own_answer = str(prompt["subject"]), str(prompt["answer"]).strip().lower()
    pool = list(dict.fromkeys(s for s, a in candidates if a.strip().lower() != own_answer and s != own_subject))
    text = str(prompt["prompt"])
    pool.sort(key=lambda name: (zlib.crc32(f"{seed}|{text}|{name}".encode()), name))
    masks = " ".join([tokenizer.mask_token] * len(site.gold))
    template = str(prompt["template"]).replace("[MASK]", masks)
    subject, width = set(site.subject), len(site.ids)
    found: list[list[int]] = []
    for start in range(0, len(pool), 64):
        texts = [template.replace("[X]", name) for name in pool[start:start + 64]]
        for ids in tokenizer(texts)["input_ids"]:
            if len(ids) == width and all(ids[t] == site.ids[t] for t in range(width) if t not in subject) and \
                    any(ids[t] != site.ids[t] for t in subject):
                pieces = [ids[t] for t in site.subject]
                if pieces not in found:
                    found.append(pieces)
                if len(found) == k:
                    break
        if len(found) == k:
            break
    if k == 1:
        return found[0] if found else None
    return found


def swap_corruption(model, site: Site, pieces):
    """The subject swap as a corruption of `hook_full_embed`: [subject pieces, d_embed] (one counterfactual's
    pieces) or [K, subject pieces, d_embed] (a list of K) = the embeddings' output of the counterfactual pieces
    minus that of the subject's, at the subject's positions (the embeddings are per position, so adding it
    gives the swapped input's embeddings)."""
    import torch
    from probekit.models.families import body

    several = bool(pieces) and isinstance(pieces[0], (list, tuple))
    options = list(pieces) if several else [pieces]
    rows = [list(site.ids)]
    for option_ in options:
        swapped = list(site.ids)
        for t, piece in zip(site.subject, option_):
            swapped[t] = piece
        rows.append(swapped)
    ids = torch.tensor(rows, device=next(model.parameters()).device)
    with torch.inference_mode(), hooks.hooked(model, read=[hooks.EMBED]) as seen:
        body(model)(input_ids=ids)
    embedded = seen[hooks.EMBED][:, site.subject]
    delta = (embedded[1:] - embedded[:1]).float().cpu()
    return delta if several else delta[0]


def role_rows(result: Trace, site: Site) -> list[dict]:
    """Rows component × layer × role: p_restored averaged over the role's positions each restored alone, and for
    the mask role every mask restored at once (`Trace.masks`); for heads, rows layer × head (role `all`)."""
    rows = []
    common = {"p_clean": result.p_clean, "p_corrupt": result.p_corrupt, "samples": result.draws}
    for component, grid in result.restored.items():
        if component == HEAD:
            ratio = restoration(grid, result.p_clean, result.p_corrupt)
            rows += [{"component": HEAD, "layer": layer, "head": head, "role": ALL, "positions": len(site.ids),
                      "restoration": float(ratio[layer, head]), "effect": float(grid[layer, head] - result.p_corrupt),
                      "p_restored": float(grid[layer, head]), **common}
                     for layer in range(grid.shape[0]) for head in range(grid.shape[1])]
            continue
        if component == KNOCKOUT:
            ratio = restoration(grid[:, 0], result.p_clean, result.p_corrupt)
            rows += [{"component": KNOCKOUT, "layer": layer, "head": None, "role": "mask",
                      "positions": len(site.masks), "restoration": float(ratio[layer]),
                      "effect": float(grid[layer, 0] - result.p_corrupt), "p_restored": float(grid[layer, 0]),
                      **common} for layer in range(grid.shape[0])]
            continue
        for role, positions in site.roles().items():
            if role == "mask" and component in result.masks:
                p = np.asarray(result.masks[component], dtype=float)  # every mask at once
            else:
                p = grid[:, positions].mean(1)
            for layer, (p_layer, r) in enumerate(zip(p, restoration(p, result.p_clean, result.p_corrupt))):
                rows.append({"component": component, "layer": layer, "head": None, "role": role,
                             "positions": len(positions), "restoration": float(r),
                             "effect": float(p_layer - result.p_corrupt), "p_restored": float(p_layer), **common})
    return rows


# ---------------------------------------------------------------- the spec


class Tracing(Analysis):
    name = "tracing"
    help = ("causal tracing: corrupt the subject (noise or a counterfactual subject), restore one clean activation "
            "per layer × position × component and per head, exactly or by attribution patching (tables tracing, "
            "tracing_scores, tracing_head_scores, tracing_agreement; its claims are the findings')")
    options = TracingOptions
    tables = (TRACING, TRACING_SCORES, TRACING_HEAD_SCORES, TRACING_AGREEMENT)
    on_control = True
    version = 4
    report = "probekit.report.tracing:section"
    report_title = "Causal tracing"

    def settings(self, ctx: Context, bench) -> dict:
        return {**super().settings(ctx, bench), "groups": digest(bench.groups),  # sampled per fact group
                "noise_reference": reference_settings()}

    def cost(self, shape: Shape, item) -> float:
        opts = TracingOptions()
        prompts = getattr(item, "prompts", None)
        groups = prompts["relation"].nunique() * 2 if prompts is not None else 1
        traced = min(float(item.size), opts.sample * groups) if opts.sample else float(item.size)
        sites = shape.layers * sum(shape.heads if c == HEAD else 1 if c == KNOCKOUT else 12  # ~12 positions
                                   for c in opts.parts())
        return traced * sites * opts.noise_samples

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        import time

        from probekit.core.log import logger, progress
        from probekit.models.families import max_tokens

        opts = ctx.opts(self.name)
        model = checkpoint.model(ctx.device)
        prompts = bench.prompts.reset_index(drop=True)
        groups = list(bench.groups or ["all"] * len(prompts))
        reasons: dict[int, str] = {}
        sites = prompt_sites(prompts, checkpoint.tokenizer, ctx.encoded(checkpoint, bench),
                             max_tokens(model.config), reasons)
        traceable = prompts.index.isin(list(sites))
        chosen = [sites[int(i)] for i in prompts.index[traceable][sample(prompts[traceable],
                                                                        [g for g, t in zip(groups, traceable) if t],
                                                                        opts.sample)]]
        corrupt, scale = self._corruptions(model, checkpoint.tokenizer, chosen, prompts, opts)
        for site in chosen:
            if site.index not in corrupt:
                reasons[site.index] = NO_SWAP
        traced = [site for site in chosen if site.index in corrupt]
        frames = []
        if EXACT in opts.methods() and traced:
            from probekit.models.families import n_layers

            layers, heads = n_layers(model), model.config.num_attention_heads
            sites = [layers * sum(len(site.ids) + 1 if c not in (HEAD, KNOCKOUT) else heads if c == HEAD else 1
                                  for c in opts.parts()) for site in traced]
            first = min(FIRST_BATCH, len(traced) - 1)  # the prompts the estimate is made from (none for one)
            began, elapsed = time.perf_counter(), []
            for number, site in enumerate(progress(traced, desc=f"tracing {checkpoint.name}", unit="prompt")):
                result = trace(model, site, corrupt[site.index], opts.parts(), max_rows=ctx.batch_size)
                frames.append(self._frame(role_rows(result, site), site, prompts, groups, EXACT, scale))
                if len(elapsed) < first:
                    elapsed.append(time.perf_counter() - began)
                    if len(elapsed) == first or (len(elapsed) >= 2 and elapsed[-1] > SAY_COST_AFTER):
                        self._say_cost(logger, checkpoint.name, sites, result.draws, elapsed,
                                       self._checkpoints(ctx))
                        first = len(elapsed)
        parts = [c for c in opts.parts() if c != KNOCKOUT]
        if ATTRIBUTION in opts.methods() and parts and traced:
            from probekit.analyses import attribution

            found = attribution.estimate(model, traced, [corrupt[s.index] for s in traced], parts, opts.metric,
                                         max_rows=ctx.batch_size)
            for site, result in zip(traced, found):
                rows = role_rows(attribution.as_trace(result, opts.metric), site)
                frames.append(self._frame(rows, site, prompts, groups, ATTRIBUTION, scale))
        if reasons:
            frames.append(self._skipped(reasons, prompts, groups))
        if not frames:
            return TRACING.conform(pd.DataFrame(columns=TRACING.names)).drop(columns=CHECKPOINT_ID)
        out = pd.concat(frames, ignore_index=True)
        for column in TRACING.names:
            if column not in out.columns and column not in CHECKPOINT_ID:
                out[column] = None
        return out

    def _checkpoints(self, ctx: Context) -> int:
        """The checkpoints tracing runs at in this run (0 when unknown): the steps `at` names, else the series'
        (the runner's count)."""
        if steps := ctx.at.get(self.name):
            return len(steps)
        return ctx.checkpoints

    @staticmethod
    def _say_cost(logger, name: str, sites: list[int], draws: int, elapsed: list[float],
                  checkpoints: int = 0) -> None:
        """The cost of a checkpoint before the bulk of it, said once the first prompts are traced: prompts ×
        sites × draws (× checkpoints), and the time `cost_estimate` makes of the first batch (a warning when
        it runs past ten minutes); × the checkpoints tracing runs at, the random-init control besides."""
        total = cost_estimate(elapsed, sites)
        line = (f"tracing {name}: {len(sites):,} prompts × ~{round(sum(sites) / len(sites)):,} sites × {draws} draws"
                + (f" × {checkpoints} checkpoints" if checkpoints > 1 else "")
                + f"; about {_duration(total)} a checkpoint (from the first {len(elapsed)} "
                + ("prompt" if len(elapsed) == 1 else "prompts") + f", {elapsed[-1]:.2f} s)")
        if checkpoints > 1:
            line += f", about {_duration(total * checkpoints)} for the {checkpoints} (+ the random-init control)"
        if total > 600:
            logger.warning(line + "; --trace-sample N traces N prompts per relation and group")
        else:
            logger.info(line)

    def _corruptions(self, model, tokenizer, chosen: list[Site], prompts, opts: TracingOptions):
        """prompt index → its corruption [draws, subject pieces, d_embed] (a prompt without one is skipped), and
        the noise std (missing for subject-swap)."""
        if opts.corrupt == "subject-swap":
            pairs = {relation: list(dict.fromkeys(zip(rows["subject"].astype(str), rows["answer"].astype(str))))
                     for relation, rows in prompts.groupby("relation", sort=False)}
            out = {}
            for site in chosen:
                row = prompts.loc[site.index]
                found = swap_pieces(site, row, pairs[row["relation"]], tokenizer, opts.noise_seed,
                                    k=max(opts.noise_samples, 2))[:opts.noise_samples]
                if found:
                    out[site.index] = swap_corruption(model, site, found)
            return out, float("nan")
        if not chosen:
            return {}, float("nan")
        scale = opts.noise * reference_std(model, tokenizer)
        d_embed = _embed_width(model)
        return {site.index: noise_for(opts.noise_seed, prompts.at[site.index, "prompt"],
                                      (opts.noise_samples, len(site.subject), d_embed), scale)
                for site in chosen}, scale

    @staticmethod
    def _frame(rows: list[dict], site: Site, prompts, groups, method: str, scale: float) -> pd.DataFrame:
        info = prompts.loc[site.index, ["benchmark", "relation", "template", "subject", "answer", "prompt"]]
        return pd.DataFrame(rows).assign(method=method, noise_std=scale, reason=None, **info.to_dict(),
                                         group=groups[site.index])

    @staticmethod
    def _skipped(reasons: dict[int, str], prompts, groups) -> pd.DataFrame:
        """One row per prompt not traced, with its reason, the other columns None: one frame for them all (a
        frame per prompt took 5 s of CPU a checkpoint for the 3,594 untraceable prompts of the demo test)."""
        index = sorted(reasons)
        out = prompts.loc[index, ["benchmark", "relation", "template", "subject", "answer", "prompt"]].reset_index(
            drop=True).assign(component=SKIPPED, role=ALL, method=EXACT, group=[groups[i] for i in index],
                              reason=[reasons[i] for i in index], noise_std=float("nan"))
        columns = [c for c in TRACING.names if c not in CHECKPOINT_ID]
        for column in columns:
            if column not in out.columns:
                out[column] = None
        return out[columns]

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        from probekit.core.log import logger

        ctx.state[self.name] = {"noise_std": _noise_by_checkpoint(frame)}
        for line in skip_lines(frame, bool(ctx.of("prompts"))):
            logger.warning(line)
        scores = tracing_scores(frame)
        return {TRACING_SCORES.name: scores, TRACING_HEAD_SCORES.name: head_scores(frame),
                TRACING_AGREEMENT.name: agreement(frame)}

    def nothing_computed(self, frame: pd.DataFrame, ctx: Context) -> str | None:
        """Why nothing was traced in this run (None when some prompt was): no fill-mask prompts, or every
        prompt skipped — the reasons counted (the runner's `nothing_computed`, the CLI's exit 1)."""
        if not ctx.of("prompts"):
            return NO_PROMPTS
        if "component" not in frame.columns or frame.empty:
            return "its table is empty"
        if (frame["component"] != SKIPPED).any():
            return None
        skipped = frame.drop_duplicates(["benchmark", "relation", "prompt", "answer", "reason"])
        counts = sorted(skipped["reason"].value_counts().items(), key=lambda kv: (-kv[1], str(kv[0])))
        return (f"none of its {len(skipped):,} prompts could be traced ("
                + "; ".join(f"{reason}: {count:,}" for reason, count in counts) + ")")

    def manifest(self, ctx: Context) -> dict:
        opts = ctx.options.get(self.name)
        if opts is None:
            return {}
        return {"tracing": manifest_settings(opts, ctx.state.get(self.name, {}).get("noise_std", {}))}


FIRST_BATCH = 8
"""Prompts traced before the cost of a checkpoint is said (fewer when it has fewer, or when they are slow)."""
SAY_COST_AFTER = 60.0
"""Seconds after which the cost is said from the prompts traced so far (two at least)."""


def cost_estimate(elapsed: list[float], sites: list[int]) -> float:
    """Seconds one checkpoint's exact tracing takes, from the first prompts: `elapsed[i]` the time since the start
    when prompt i was done, `sites` every prompt's sites (restored runs; prompts differ in length). The time per
    site is that of the batch after the first prompt, which pays the warm-up (allocations, thread pools) and
    alone made the estimate 30× too long; with fewer than three prompts, that of them all. The time so far plus
    that rate times the sites still to do."""
    done = len(elapsed)
    if done >= 3:
        rate = (elapsed[-1] - elapsed[0]) / max(sum(sites[1:done]), 1)
    else:
        rate = elapsed[-1] / max(sum(sites[:done]), 1)
    return elapsed[-1] + rate * sum(sites[done:])


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def reference_settings() -> dict:
    """What σ is measured over (part of the cache key and the manifest)."""
    subjects = reference_subjects()
    return {"name": NOISE_REFERENCE, "subjects": len(subjects), "sha256": digest(subjects)}


def manifest_settings(opts: TracingOptions, noise_std: dict) -> dict:
    """The manifest's `tracing` entry: what this run's tracing implements (read by `definitions`)."""
    noise = opts.corrupt == "noise"
    return {"corrupt": opts.corrupt, "noise": opts.noise, "noise_samples": opts.noise_samples,
            "noise_seed": opts.noise_seed, "noise_point": hooks_point(),
            "noise_reference": {**reference_settings(), "file": "probekit/benchmarks/countries.csv",
                                "columns": ["country", "capital"]} if noise else None,
            "sigma": {name: std / opts.noise if opts.noise else None for name, std in noise_std.items()}
            if noise else None,
            "noise_std": noise_std if noise else None,
            "answer_scoring": "joint: all k pieces masked at once, p = product of the pieces' probabilities; the "
                              "mask role restores every [MASK] at once",
            "share": "ratio of means: mean Δp / mean (p_clean − p_corrupt) over prompts, missing where the "
                     "denominator's interval includes 0",
            "components": opts.parts(), "method": opts.method, "metric": opts.metric, "sample": opts.sample,
            "version": Tracing.version}


def hooks_point() -> str:
    return "hook_full_embed (the embeddings module's output, after its LayerNorm)"


def _noise_by_checkpoint(frame: pd.DataFrame) -> dict:
    """checkpoint → the noise std its rows were traced with (noise corruption only)."""
    if frame.empty or "noise_std" not in frame:
        return {}
    rows = frame.dropna(subset=["noise_std"])
    return {str(k): float(v) for k, v in rows.groupby("checkpoint", sort=False)["noise_std"].first().items()}


NO_PROMPTS = ("no fill-mask prompts in this run (a benchmark of prompts with [X] and [MASK] is needed; minimal "
              "pairs, treebanks and sentences are not traced)")


def skip_lines(frame: pd.DataFrame, had_prompts: bool = True) -> list[str]:
    """One line per benchmark saying how many prompts were not traced and why (nothing when every prompt was
    traced); one line when the run had no fill-mask prompts at all."""
    if not had_prompts:
        return [f"tracing: {NO_PROMPTS}: nothing traced"]
    if frame.empty:
        return []
    lines = []
    for bench, rows in frame.groupby("benchmark", sort=False):
        skipped = rows[rows["component"] == SKIPPED].drop_duplicates(["relation", "prompt", "answer", "reason"])
        if skipped.empty:
            continue
        traced = rows[rows["component"] != SKIPPED].drop_duplicates(["relation", "prompt", "answer"])
        counts = sorted(skipped["reason"].value_counts().items(), key=lambda kv: (-kv[1], str(kv[0])))
        said = "; ".join(f"{reason}: {count:,}" for reason, count in counts)
        what = "nothing traced" if traced.empty else f"{len(traced):,} traced"
        lines.append(f"tracing {bench}: {skipped.drop_duplicates(['relation', 'prompt', 'answer']).shape[0]:,} "
                     f"prompts not traced ({said}); {what}")
    return lines


def definitions(settings: dict) -> str:
    """Markdown stating what this run's tracing implements, from the manifest's `tracing` entry
    (`manifest_settings`), following ROME (Meng et al. 2022, `calculate_hidden_flow` in kmeng01/rome) or
    naming where it differs."""
    settings = settings or {}
    k = settings.get("noise_samples", TracingOptions().noise_samples)
    lines = ["**What this run's causal tracing implements** (ROME: Meng et al. 2022, *Locating and Editing "
             "Factual Associations in GPT*, `calculate_hidden_flow` in kmeng01/rome; differences named):", ""]
    if settings.get("corrupt", "noise") == "subject-swap":
        lines.append(f"- **Corruption**: the subject is swapped for up to {k} counterfactual subjects of the same "
                     "relation with as many pieces and another answer (seed "
                     f"{settings.get('noise_seed', 0)}), added as the difference of their embeddings at the "
                     "embeddings module's output; probabilities are averaged over the counterfactuals found (the "
                     "`samples` column). ROME corrupts by noise only; a prompt without such a subject is skipped "
                     "and counted.")
    else:
        ref = settings.get("noise_reference") or {}
        sigma = settings.get("sigma") or {}
        sigmas = ", ".join(f"{name}: {value:.4g}" for name, value in sigma.items() if value is not None)
        lines += [
            "- **Where the noise goes**: Gaussian noise is added to the subject's pieces at the embeddings "
            "module's output (`hook_full_embed`: token + position (+ type) embeddings *after* the embedding "
            "LayerNorm). ROME adds it to the token embeddings (GPT has no embedding norm); here the norm would "
            "rescale noise added before it, so it is added after.",
            f"- **Noise scale**: std = {settings.get('noise', 3.0)} × σ (ROME: 3 × σ), σ = the std of the "
            f"embeddings module's output over a fixed reference set of subjects, `{ref.get('name', NOISE_REFERENCE)}`"
            f" ({ref.get('subjects', '?')} country and capital names of the shipped countries benchmark, each "
            "tokenised alone by the checkpoint's tokenizer, special tokens left out; ROME's "
            "`collect_embedding_std` over its known facts' subjects), measured once per checkpoint, so a "
            "prompt's numbers never depend on which other prompts were traced"
            + (f" (σ per checkpoint: {sigmas})." if sigmas else "."),
            f"- **Samples**: K = {k} noise draws per prompt (ROME: `samples=10`), seeded by `--noise-seed` "
            f"({settings.get('noise_seed', 0)}) and the prompt's text, batched as rows; the corrupted run and every "
            "restored site see the same K draws, and probabilities are averaged over them before any difference."]
    lines += [
        "- **Answer**: a k-piece answer is scored jointly over its k [MASK]s, all masked at once: its probability "
        "is the product of the pieces' probabilities (ROME scores one next token). The mask role restores every "
        "[MASK] at once; the other roles are the mean over their positions of restoring one position (as ROME "
        "averages its token categories).",
        "- **Effect**: Δp = p_restored − p_corrupt, averaged over prompts with a bootstrap interval over prompts "
        "— the primary statistic (ROME's average indirect effect); sites and heads are ranked by it.",
        "- **Share**: mean Δp / mean (p_clean − p_corrupt) over the same prompts (a ratio of means, not a mean of "
        "per-prompt ratios), with the same bootstrap resamples for numerator and denominator; missing where the "
        "denominator's interval includes 0.",
        "- **By construction**: restoring the last layer's residual stream at the [MASK]s gives p_clean (share 1) "
        "whatever the model knows — it is what the MLM head reads (hatched, never a finding); last-layer sites at "
        "the other positions change nothing for the same reason.",
        "- **Knockout** (Geva et al. 2023): attention from the [MASK]s to the subject blocked at one layer in the "
        "clean run, exactly (no noise, no samples); attribution patching has no estimate of it."]
    if settings.get("method") in (ATTRIBUTION, BOTH):
        lines.append("- **Attribution patching** (Nanda 2023): the first-order estimate of every site's Δp from "
                     "one backward pass (a row per draw), averaged over the same draws; compared with exact "
                     "patching in the agreement table.")
    return "\n".join(lines) + "\n"


def _embed_width(model) -> int:
    """Width of the embeddings module's output (ELECTRA, ALBERT: the embedding size)."""
    config = model.config
    return getattr(config, "embedding_size", None) or config.hidden_size


def tracing_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean Δp, mean gap and their ratio per checkpoint × relation × group × method × component × layer × role
    (all but the head rows), with the count of skipped prompts of each relation and group, and a `skipped` row
    for a group none of whose prompts was traced."""
    sites = frame[~frame["component"].isin([HEAD, SKIPPED])]
    out = _means(sites, TRACING_ID, TRACING_SCORES)
    keys = [*CHECKPOINT_ID, *RELATION_ID]
    skipped_rows = frame[frame["component"] == SKIPPED]
    if len(skipped_rows):
        from probekit.analyses.stats import with_pooled_seeds

        skipped = with_pooled_seeds(skipped_rows)
        counts = skipped.groupby(keys, dropna=False, sort=False)[["prompt", "answer"]].apply(
            lambda rows: len(rows.drop_duplicates())).rename("skipped").reset_index()
        out = out.drop(columns="skipped").merge(counts, on=keys, how="left")
        present = out[keys].drop_duplicates().assign(_present=True)
        empty = counts.merge(present, on=keys, how="left")
        empty = empty[empty["_present"].isna()].drop(columns="_present")
        if len(empty):  # every prompt of the group skipped: one row keeps its count
            filler = {c: None for c in TRACING_SCORES.names if c not in empty.columns}
            filler.update(method=EXACT, component=SKIPPED, role=ALL, n=0, by_construction=False, n_seeds=1)
            out = pd.concat([out, empty.assign(**filler)], ignore_index=True)
    out["skipped"] = out["skipped"].fillna(0).astype(int) if len(out) else out["skipped"]
    if out.empty:
        return pd.DataFrame(columns=TRACING_SCORES.names)
    return TRACING_SCORES.conform(out[TRACING_SCORES.names])


def head_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean Δp, mean gap and their ratio per checkpoint × relation × group × method × layer × head (the `head`
    rows)."""
    return _means(frame[frame["component"] == HEAD], HEAD_ID, TRACING_HEAD_SCORES)


SITE_KEYS = ("component", "layer", "role", "head")


def _means(frame: pd.DataFrame, keys: list[str], table: Table) -> pd.DataFrame:
    """Per group of `keys`: n, mean Δp (`effect`), mean gap p_clean − p_corrupt over the same prompts and their
    ratio (`restoration`, missing where the gap's interval includes 0), each with its percentile bootstrap
    interval over prompts (and over seeds, on rows pooled over seeds: Multi-Bootstrap). The sites of one
    checkpoint × relation × group × method share their resamples (seeded from the relation, group and method,
    not the checkpoint), and numerator and denominator are resampled together."""
    from probekit.analyses.stats import LEVEL, RESAMPLES, SEED, _counts, _percentiles, _resampled_means, \
        _seed_counts, with_pooled_seeds

    if frame.empty:
        return pd.DataFrame(columns=table.names)
    work = with_pooled_seeds(frame.assign(method=frame["method"] if "method" in frame else EXACT))
    effect = pd.to_numeric(work["effect"], errors="coerce").to_numpy(float)
    gap = (pd.to_numeric(work["p_clean"], errors="coerce") - pd.to_numeric(work["p_corrupt"], errors="coerce"))
    gap = np.where(np.isfinite(effect), gap.to_numpy(float), np.nan)  # the denominator over the numerator's prompts
    work = work.assign(_effect=effect, _gap=gap, _item=work["prompt"].astype(str) + "\x00" + work["answer"].astype(str))
    site = [k for k in keys if k in SITE_KEYS]
    block_keys = [k for k in keys if k not in SITE_KEYS]
    stable = [k for k in block_keys if k not in CHECKPOINT_ID]
    records = []
    for block_key, block in work.groupby(block_keys, sort=False, dropna=False):
        block_key = block_key if isinstance(block_key, tuple) else (block_key,)
        found = dict(zip(block_keys, block_key))
        site_codes = block.groupby(site, sort=False, dropna=False).ngroup().to_numpy()
        names = block.loc[~pd.Series(site_codes, index=block.index).duplicated(), site].reset_index(drop=True)
        seed_codes, seed_names = pd.factorize(block["_seed"])
        item_codes, item_names = pd.factorize(block["_item"])
        n_sites = len(names)
        values = np.full((len(seed_names), 2 * n_sites, len(item_names)), np.nan)
        values[seed_codes, site_codes, item_codes] = block["_effect"].to_numpy(float)
        values[seed_codes, n_sites + site_codes, item_codes] = block["_gap"].to_numpy(float)
        rng = np.random.default_rng([SEED, zlib.crc32(repr(tuple(found[k] for k in stable)).encode())])
        draws = _counts(rng, RESAMPLES, len(item_names))
        seeds = _seed_counts(rng, RESAMPLES, len(seed_names))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = _resampled_means(values, draws, seeds)  # [2 × sites, resamples]
            ratios = means[:n_sites] / means[n_sites:]
            flat = values.transpose(1, 0, 2).reshape(2 * n_sites, -1)
            present = np.isfinite(flat)
            point = np.where(present, flat, 0.0).sum(1) / present.sum(1)
        eff_low, eff_high = _percentiles(means[:n_sites], LEVEL)
        gap_low, gap_high = _percentiles(means[n_sites:], LEVEL)
        r_low, r_high = _percentiles(ratios, LEVEL)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = point[:n_sites] / point[n_sites:]
        unclear = ~((gap_low > 0) | (gap_high < 0))  # the denominator's interval includes 0 (or is missing)
        ratio, r_low, r_high = (np.where(unclear, np.nan, v) for v in (ratio, r_low, r_high))
        out = names.assign(**found)
        out = out.assign(n=present[:n_sites].sum(1), restoration=ratio, restoration_low=r_low,
                         restoration_high=r_high, effect=point[:n_sites], effect_low=eff_low, effect_high=eff_high,
                         gap=point[n_sites:], gap_low=gap_low, gap_high=gap_high, n_seeds=len(seed_names))
        records.append(out)
    out = pd.concat(records, ignore_index=True)
    if "by_construction" in table.names:
        out["by_construction"] = by_construction(out)
    if "skipped" in table.names:
        out["skipped"] = 0
    return out[table.names]


def by_construction(scores: pd.DataFrame) -> pd.Series:
    """Whether a site restores the answer by construction: the residual stream leaving the last layer (of its
    checkpoint) at the mask role, which is exactly what the MLM head reads — restoring it gives p_clean whatever
    the model knows. No other site does: an attention or MLP output, or a head, of the last layer leaves the
    rest of that layer's residual stream corrupted, and an earlier layer's leaves every later layer to mix in
    the corrupted subject. (Last-layer sites at other roles change nothing, equally by construction.)"""
    layers = pd.to_numeric(scores["layer"], errors="coerce")
    last = layers.groupby(scores["checkpoint"]).transform("max")
    return ((scores["component"] == "resid") & (scores["role"] == "mask") & (layers == last)).fillna(False) \
        .astype(bool)


def agreement(frame: pd.DataFrame) -> pd.DataFrame:
    """Attribution against exact patching where a run has both: per checkpoint × benchmark × component, the
    Spearman correlation of their absolute effects over the prompt-level sites and over the sites' means."""
    sites = frame[frame["component"].isin(["resid", "attn", "mlp", HEAD])]
    if "method" not in sites or not {EXACT, ATTRIBUTION} <= set(sites["method"]):
        return pd.DataFrame(columns=TRACING_AGREEMENT.names)
    site = ["benchmark", "relation", "group", "component", "layer", "role", "head"]
    keys = [*CHECKPOINT_ID, *site, "prompt"]
    sides = [sites[sites["method"] == m][keys + ["effect"]].astype({"head": "float", "layer": "float"})
             .fillna({"head": -1}) for m in (EXACT, ATTRIBUTION)]
    both = sides[0].merge(sides[1], on=keys, suffixes=("_exact", "_attribution"))
    means = both.groupby([*CHECKPOINT_ID, *site], sort=False, dropna=False)[
        ["effect_exact", "effect_attribution"]].mean().reset_index()
    group = [*CHECKPOINT_ID, "benchmark", "component"]
    no_step = {"step": NO_STEP}  # a hub checkpoint without a step: NaN keys would never match
    pooled_by = dict(iter(means.fillna(no_step).groupby(group, sort=False)))
    records = []
    for key, rows in both.fillna(no_step).groupby(group, sort=False):
        pooled = pooled_by[key]
        found = dict(zip(group, key))
        records.append({**found, "step": np.nan if found["step"] == NO_STEP else found["step"], "n": len(rows),
                        "spearman": _spearman(rows["effect_exact"], rows["effect_attribution"]),
                        "n_sites": len(pooled),
                        "spearman_sites": _spearman(pooled["effect_exact"], pooled["effect_attribution"])})
    return pd.DataFrame(records, columns=TRACING_AGREEMENT.names)


NO_STEP = -1.0
"""Stands for a missing step while rows are grouped (no checkpoint has a negative step)."""


def _spearman(a: pd.Series, b: pd.Series) -> float:
    """Rank correlation (missing where either side is constant or fewer than 3 values)."""
    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(a.rank().corr(b.rank()))


register(Tracing)
