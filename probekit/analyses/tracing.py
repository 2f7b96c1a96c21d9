"""Causal tracing (Meng et al. 2022, ROME): where in depth and at which token the answer is recalled.

Per fill-mask prompt with a subject (`[X]` in its template), three kinds of run:

- clean: the prompt as it is;
- corrupted: Gaussian noise added to the subject's pieces at the embeddings module's output
  (`hook_full_embed`), of `--noise` × the standard deviation of that output over the subject pieces of the
  traced prompts (ROME's 3 × the subject embeddings' std), drawn per prompt from `--noise-seed` and the prompt's
  text, so a prompt's noise does not depend on which other prompts were traced;
- restored: the corrupted run with one clean activation patched back in, at one (layer, token position) of one
  component: the residual stream leaving the layer (`blocks.{l}.hook_resid_post`), the attention output
  (`hook_attn_out`) or the MLP output (`hook_mlp_out`) — see `probekit.models.hooks` for the module each is;
  or, for the component `head`, one attention head's output before the output projection (`attn.hook_z`,
  that head's slice) at every position at once: which heads carry the fact;
- knocked out (component `knockout`, Geva et al. 2023): the *clean* run with attention from the [MASK]
  position(s) to the subject's pieces blocked at one layer, in every head — the pattern entries zeroed and each
  [MASK] row renormalised, done exactly by the dtype's minimum added to those scores (`attn.hook_mask`). Its
  `restoration` is on the same scale, (p_knocked − p_corrupt) / (p_clean − p_corrupt): 1 = blocking that
  attention changes nothing, 0 = as bad as noising the subject; its role is `mask` (the query positions).

Corrupted and clean runs share their token positions (the noise replaces nothing), which patching needs.
The metric is the gold answer's probability as the scoring kernel defines it (`probekit.analyses.scoring`:
all its pieces masked at once, the product of the pieces' probabilities — the first piece's for a one-piece
answer): restoration = (p_restored − p_corrupt) / (p_clean − p_corrupt), 0 = as corrupted, 1 = as clean.
It is missing where the corruption moved the probability by less than `MIN_EFFECT` of it (nothing to restore,
e.g. `--noise 0`). Positions are summed up by role — the subject's first, middle and last piece, the mask,
the other prompt tokens and the special tokens — as the mean over the role's positions of p_restored, so
templates of different lengths pool. A one-piece subject is its own first and last piece (no middle).

Batching: the clean activations are read once per prompt; every (layer, position) site of one component is a
row of one batched forward pass of the corrupted input (at most the run's batch size rows a pass), each row
patching its own site; heads likewise, every (layer, head) a row, and knockouts, every layer a row of one
pass of the clean input.

Head rows live in the one row table (`tracing`, component `head`, the head in `head`, role `all`) rather than
a table of their own: the runner caches, shards and assembles exactly one row table per analysis (`run`'s
rows), so a second row table would be lost on a cache hit or in another shard. Their summary is
`tracing_head_scores`; `tracing_scores` summarises the other components (resid, attn, mlp and knockout).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from probekit.core import lazy
from probekit.analyses.sites import COMPONENTS, HEAD, KNOCKOUT, Trace  # noqa: F401 (also tracing's names)
from probekit.analyses.base import Analysis, Context, Options, Shape, digest, option, register
from probekit.core.schema import CHECKPOINT_COLUMNS, CHECKPOINT_ID, CONTROL, N_SEEDS, PROMPT_COLUMNS, RELATION_ID, \
    Table, bounds, columns

np = lazy.module("numpy")
pd = lazy.module("pandas")
hooks = lazy.module("probekit.models.hooks")

ROLES = ("subject_first", "subject_middle", "subject_last", "mask", "other", "special")
ALL = "all"
"""The role of a head row: every position of the prompt."""
MIN_EFFECT = 1e-4
"""Restoration is missing where |p_clean − p_corrupt| ≤ MIN_EFFECT × max(p_clean, p_corrupt)."""
EFFECT_FLOOR = 0.01
"""A site stands out (and a site forms) only when its effect interval also lies above this absolute effect: one
percentage point of the answer's probability, so that a site of a model that gives the answer ~0 probability
either way does not stand out on an interval of width 1e-6."""
SAMPLE_SEED = 0
"""Seed of the prompts sampled per relation × group (the same prompts at every checkpoint)."""

TRACING = Table("tracing", "checkpoint × prompt × method × component × layer × role, and heads", columns(
    *CHECKPOINT_COLUMNS, *PROMPT_COLUMNS,
    ("method", "str", "exact (the restored run itself) or attribution (its first-order estimate from one "
                      "backward pass, Nanda 2023)"),
    ("component", "str", "what is restored: resid (the layer's output hidden state), attn (attention output), "
                         "mlp (MLP output), head (one head's output before the output projection, hook_z); "
                         "knockout: attention from the [MASK] to the subject blocked in the clean run; skipped: "
                         "a sampled prompt left out because subject-swap found no counterfactual subject of its "
                         "relation with as many pieces (one row, no values)"),
    ("layer", "int", "the block patched (0 = the first); missing for skipped prompts"),
    ("head", "int", "the head restored (component head); missing for the other components"),
    ("role", "str", "token positions patched: subject_first, subject_middle, subject_last, mask, other, special; "
                    "all for a head (every position at once)"),
    ("positions", "int", "positions of the role (the row is their mean)"),
    ("restoration", "float", "(p_restored − p_corrupt) / (p_clean − p_corrupt): 0 = corrupted, 1 = clean; missing "
                             "where the corruption did not move p"),
    ("effect", "float", "p_restored − p_corrupt: the absolute indirect effect (the share's numerator), stable "
                        "where the corruption barely moves p"),
    ("p_restored", "float", "gold probability with the clean value restored at one position of the role (mean); "
                            "knockout: with the attention blocked; attribution: its estimate"),
    ("p_clean", "float", "gold probability of the clean run (all pieces masked at once, as the scores)"),
    ("p_corrupt", "float", "gold probability with the subject corrupted (noised or swapped)"),
    ("noise_std", "float", "std of the noise added (--noise × the std of the subject's embeddings); missing for "
                           "subject-swap"),
), "Causal tracing: how much of the gold answer's probability comes back when one clean activation is "
   "restored in a run whose subject was corrupted (noised embeddings or a counterfactual subject).")
TRACING_SCORES = Table("tracing_scores",
                       "checkpoint × benchmark × relation × group × method × component × layer × role", columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"),
    ("group", "str", "fact-injection group"), ("method", "str", "exact or attribution"),
    ("component", "str", "resid, attn, mlp or knockout"),
    ("layer", "int", "the block patched"), ("role", "str", "token positions patched"),
    ("n", "int", "prompts with a restoration (the corruption moved p)"),
    ("restoration", "float", "mean restoration over prompts"), *bounds(("restoration",)),
    ("effect", "float", "mean absolute effect p_restored − p_corrupt over prompts"), *bounds(("effect",)),
    ("skipped", "int", "sampled prompts of the relation and group left out (subject-swap: no counterfactual "
                       "subject with as many pieces)"),
    N_SEEDS,
), "Mean restoration and absolute effect per site with bootstrap intervals over prompts (and seeds).")
TRACING_HEAD_SCORES = Table("tracing_head_scores",
                            "checkpoint × benchmark × relation × group × method × layer × head",
                            columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"),
    ("group", "str", "fact-injection group"), ("method", "str", "exact or attribution"),
    ("layer", "int", "the block of the head"),
    ("head", "int", "the head restored (its hook_z at every position)"),
    ("n", "int", "prompts with a restoration (the corruption moved p)"),
    ("restoration", "float", "mean restoration over prompts"), *bounds(("restoration",)),
    ("effect", "float", "mean absolute effect p_restored − p_corrupt over prompts"), *bounds(("effect",)),
    N_SEEDS,
), "Mean restoration per attention head (its clean output restored at every position) with a bootstrap "
   "interval over prompts (and seeds): which heads carry the fact.")
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
TRACING_EMERGENCE = Table("tracing_emergence",
                          "run × benchmark × relation × group × method × component × layer × role",
                          columns(
    ("run", "str", "the training run (all-seeds: pooled over seeds)"),
    ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"), ("group", "str", "fact-injection group"),
    ("method", "str", "exact or attribution"), ("component", "str", "resid, attn or mlp"),
    ("layer", "int", "the block patched"), ("role", "str", "token positions patched"), N_SEEDS,
    ("control_high", "float", "the bar: upper end of the random-init control's effect interval at this site, "
                              "or EFFECT_FLOOR (0.01) where higher"),
    ("emerged_at", "int", "the first step whose effect interval lies wholly above the bar; missing if none"),
    ("effect", "float", "mean absolute effect at that step"), *bounds(("effect",)),
), "When each site formed: the first step its absolute effect rose above the random-init control's interval "
   "(the scores' emergence rule).")
TRACING_BEST = Table("tracing_best_sites", "checkpoint × benchmark × relation × group × method", columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"),
    ("group", "str", "fact-injection group"), ("method", "str", "exact or attribution"),
    ("component", "str", "the best site's component (resid, attn, mlp)"), ("layer", "int", "its layer"),
    ("role", "str", "its position role"),
    ("effect", "float", "its mean absolute effect"), *bounds(("effect",)),
    ("restoration", "float", "its mean restoration (share)"),
    ("control_high", "float", "upper end of the random-init control's effect interval at that site"),
    ("stands_out", "bool", "its effect interval lies wholly above the control's and above EFFECT_FLOOR (0.01)"),
    ("moved", "bool", "the best site's layer differs from the previous step's (both standing out)"),
), "The site whose absolute effect rose most above the random-init control's, per step (the last layer's residual "
   "stream left out: restoring it at the [MASK] gives the clean answer by construction); whether it moved.")
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
                          "ROME) or subject-swap (a counterfactual subject of the same relation with as many "
                          "pieces, seeded; prompts without one are skipped and counted).",
                          flag="--corrupt", choices=CORRUPTIONS)
    noise: float = option(3.0, "Noise std as a multiple of the subject embeddings' std (ROME: 3).", flag="--noise",
                          low=0.0)
    noise_seed: int = option(0, "Seed of the corruption: the noise, or the counterfactual subject drawn.",
                             flag="--noise-seed", low=0)
    components: str = option("resid,attn,mlp,head,knockout", "Components restored, comma-separated: resid, attn, mlp, "
                             "head (each attention head at every position), knockout (attention from the "
                             "[MASK] to the subject blocked, per layer).",
                             flag="--trace-components")
    method: str = option("exact", "exact (one restored run per site), attribution (first-order estimate of "
                         "every site from one forward and backward pass, Nanda 2023) or both (and their rank "
                         "correlation, table tracing_agreement).", flag="--trace-method",
                         choices=(EXACT, ATTRIBUTION, BOTH))
    metric: str = option("prob", "The metric attribution differentiates: prob (the gold probability) or logprob.",
                         flag="--attribution-metric", choices=("prob", "logprob"))

    def validate(self, analysis: str) -> None:
        from probekit.core.errors import ProbekitError

        super().validate(analysis)
        unknown = [c for c in self.parts() if c not in COMPONENTS]
        if unknown or not self.parts():
            raise ProbekitError(f"analysis {analysis!r}: option components={self.components!r}: use a "
                                f"comma-separated list of {', '.join(COMPONENTS)}")

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


def corruption(subject: list[int], noise):
    """The edit of `hook_full_embed` that adds `noise` [subject pieces, d_embed] at the subject's positions."""
    def edit(embedded):
        full = embedded.new_zeros(embedded.shape[1:])
        full[subject] = noise.to(embedded.dtype)
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
    row; a row with layer -1 restores nothing. The indices are token positions (`over="position"`), or heads
    of a per-head point such as `attn.hook_z` [batch, pos, head, d_head] (`over="head"`: the heads' values
    at every position). Rows share forward passes, at most `max_rows` a pass."""
    import torch
    from probekit.models.families import body

    device = next(model.parameters()).device
    out = []
    for start in range(0, len(rows), max_rows):
        chunk = rows[start:start + max_rows]
        ids = torch.tensor([site.ids], device=device).expand(len(chunk), -1)
        write = {hooks.EMBED: corruption(site.subject, noise)}
        for layer in sorted({layer for layer, _ in chunk if layer >= 0}):
            name = hooks.hook_name(layer, point)
            write[name] = _restore(_where(chunk, layer, clean[name], over), clean[name])
        with torch.inference_mode(), hooks.hooked(model, write=write):
            hidden = body(model)(input_ids=ids).last_hidden_state
            out.append(gold_prob(model, hidden, site.masks, site.gold).cpu().numpy())
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
    """Every (layer, position) site of every component restored in turn, and every (layer, head) for the
    component `head`: p_restored per site."""
    from probekit.models.families import n_layers

    layers, width = n_layers(model), len(site.ids)
    points = [hooks.hook_name(layer, COMPONENTS[c]) for c in components if c != KNOCKOUT
              for layer in range(layers)]
    p_clean, clean = clean_run(model, site, points)
    p_corrupt = float(patched_probs(model, site, noise, None, clean, [(-1, [])])[0])
    rows = [(layer, [t]) for layer in range(layers) for t in range(width)]
    restored = {c: patched_probs(model, site, noise, COMPONENTS[c], clean, rows, max_rows).reshape(layers, width)
                for c in components if c not in (HEAD, KNOCKOUT)}
    if KNOCKOUT in components:
        restored[KNOCKOUT] = knockout_probs(model, site, layers, max_rows)[:, None]
    if HEAD in components:
        heads = clean[hooks.hook_name(0, COMPONENTS[HEAD])].shape[2]
        head_rows = [(layer, [h]) for layer in range(layers) for h in range(heads)]
        restored[HEAD] = patched_probs(model, site, noise, COMPONENTS[HEAD], clean, head_rows, max_rows,
                                       over="head").reshape(layers, heads)
    return Trace(p_clean, p_corrupt, restored)


def restoration(p_restored, p_clean: float, p_corrupt: float):
    """(p_restored − p_corrupt) / (p_clean − p_corrupt); missing where the corruption moved p by less than
    MIN_EFFECT of it."""
    effect = p_clean - p_corrupt
    if abs(effect) <= MIN_EFFECT * max(p_clean, p_corrupt):
        return np.full(np.shape(p_restored), np.nan)
    return (np.asarray(p_restored) - p_corrupt) / effect


# ---------------------------------------------------------------- prompts → sites


def prompt_sites(prompts, tokenizer, encoded: dict, limit: int) -> dict[int, Site]:
    """A `Site` per prompt (by row index) whose subject can be located in its tokens and whose answer is
    scorable; others are left out (no [X], truncated, answer not spelled by masks)."""
    mask = tokenizer.mask_token
    sites = {}
    for i, (template, subject) in enumerate(zip(prompts["template"], prompts["subject"])):
        ids, gold = encoded["input_ids"][i], encoded["pieces"][i]
        if template.count("[X]") != 1 or "[MASK]" not in template or not subject or not gold or len(ids) > limit:
            continue
        masks_text = " ".join([mask] * len(gold))
        filled = template.replace("[X]", subject)
        x, m = template.index("[X]"), template.index("[MASK]")
        start = x if x < m else x - len("[MASK]") + len(masks_text)
        text = filled.replace("[MASK]", masks_text)
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        if enc["input_ids"] != ids:
            continue
        masks = [t for t, tok in enumerate(ids) if tok == tokenizer.mask_token_id]
        special = [t for t, s in enumerate(enc["special_tokens_mask"]) if s and t not in masks]
        end = start + len(subject)
        subj = [t for t, (a, b) in enumerate(enc["offset_mapping"])
                if b > a and a < end and b > start and t not in masks and t not in special]
        if subj and len(masks) == len(gold):
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


def noise_for(seed: int, prompt: str, shape: tuple[int, int], scale: float):
    """Standard normal noise × scale, drawn from the seed and the prompt's text."""
    import torch

    generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}|{prompt}".encode()))
    return torch.randn(shape, generator=generator) * scale


def embedding_std(model, sites: list[Site]) -> float:
    """Std of the embeddings module's output over the subject pieces of `sites` (ROME's noise scale)."""
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
                seed: int) -> list[int] | None:
    """The piece ids of a counterfactual subject for `site` (subject-swap): among `candidates` ((subject, answer)
    pairs of the prompt's relation) in an order drawn from `seed` and the prompt's text, the first whose
    answer differs from the prompt's and whose pieces, in the prompt's template, take exactly the subject's
    positions (every other token unchanged, so clean and corrupted runs share positions); None if none does."""
    own_subject, own_answer = str(prompt["subject"]), str(prompt["answer"]).strip().lower()
    pool = [(s, a) for s, a in candidates if a.strip().lower() != own_answer and s != own_subject]
    if not pool:
        return None
    order = np.random.default_rng([seed, zlib.crc32(str(prompt["prompt"]).encode())]).permutation(len(pool))
    masks = " ".join([tokenizer.mask_token] * len(site.gold))
    template = str(prompt["template"]).replace("[MASK]", masks)
    texts = [template.replace("[X]", pool[i][0]) for i in order]
    subject, width = set(site.subject), len(site.ids)
    for ids in tokenizer(texts)["input_ids"]:
        if len(ids) == width and all(ids[t] == site.ids[t] for t in range(width) if t not in subject) and \
                any(ids[t] != site.ids[t] for t in subject):
            return [ids[t] for t in site.subject]
    return None


def swap_corruption(model, site: Site, pieces: list[int]):
    """The subject swap as a corruption of `hook_full_embed`: [subject pieces, d_embed] = the embeddings' output
    of the counterfactual pieces minus that of the subject's, at the subject's positions (the embeddings are
    per position, so adding it gives the swapped input's embeddings)."""
    import torch
    from probekit.models.families import body

    swapped = list(site.ids)
    for t, piece in zip(site.subject, pieces):
        swapped[t] = piece
    ids = torch.tensor([site.ids, swapped], device=next(model.parameters()).device)
    with torch.inference_mode(), hooks.hooked(model, read=[hooks.EMBED]) as seen:
        body(model)(input_ids=ids)
    embedded = seen[hooks.EMBED]
    return (embedded[1, site.subject] - embedded[0, site.subject]).float().cpu()


def role_rows(result: Trace, site: Site) -> list[dict]:
    """Rows component × layer × role: p_restored averaged over the role's positions; for heads, rows
    layer × head (role `all`)."""
    rows = []
    common = {"p_clean": result.p_clean, "p_corrupt": result.p_corrupt}
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
            "tracing_scores, tracing_head_scores, tracing_agreement, tracing_emergence, tracing_best_sites)")
    options = TracingOptions
    tables = (TRACING, TRACING_SCORES, TRACING_HEAD_SCORES, TRACING_AGREEMENT, TRACING_EMERGENCE, TRACING_BEST)
    on_control = True
    version = 3
    report = "probekit.report.tracing:section"
    report_title = "Causal tracing"

    def settings(self, ctx: Context, bench) -> dict:
        return {**super().settings(ctx, bench), "groups": digest(bench.groups)}  # sampled per fact group

    def cost(self, shape: Shape, item) -> float:
        opts = TracingOptions()
        prompts = getattr(item, "prompts", None)
        groups = prompts["relation"].nunique() * 2 if prompts is not None else 1
        traced = min(float(item.size), opts.sample * groups) if opts.sample else float(item.size)
        sites = shape.layers * sum(shape.heads if c == HEAD else 1 if c == KNOCKOUT else 12  # ~12 positions
                                   for c in opts.parts())
        return traced * sites

    def run(self, checkpoint, ctx: Context, bench) -> pd.DataFrame:
        from probekit.models.families import max_tokens

        opts = ctx.opts(self.name)
        model = checkpoint.model(ctx.device)
        prompts = bench.prompts.reset_index(drop=True)
        groups = list(bench.groups or ["all"] * len(prompts))
        sites = prompt_sites(prompts, checkpoint.tokenizer, ctx.encoded(checkpoint, bench),
                             max_tokens(model.config))
        chosen = [sites[i] for i in sample(prompts, groups, opts.sample) if i in sites]
        corrupt, scale = self._corruptions(model, checkpoint.tokenizer, chosen, prompts, opts)
        traced = [site for site in chosen if site.index in corrupt]
        frames = []
        if EXACT in opts.methods():
            for site in traced:
                result = trace(model, site, corrupt[site.index], opts.parts(), max_rows=ctx.batch_size)
                frames.append(self._frame(role_rows(result, site), site, prompts, groups, EXACT, scale))
        parts = [c for c in opts.parts() if c != KNOCKOUT]
        if ATTRIBUTION in opts.methods() and parts and traced:
            from probekit.analyses import attribution

            found = attribution.estimate(model, traced, [corrupt[s.index] for s in traced], parts, opts.metric,
                                         max_rows=ctx.batch_size)
            for site, result in zip(traced, found):
                rows = role_rows(attribution.as_trace(result, opts.metric), site)
                frames.append(self._frame(rows, site, prompts, groups, ATTRIBUTION, scale))
        for site in chosen:
            if site.index not in corrupt:
                frames.append(self._frame([{"component": SKIPPED, "role": ALL}], site, prompts, groups, EXACT, scale))
        if not frames:
            return pd.DataFrame(columns=[c.name for c in TRACING.columns if c.name not in CHECKPOINT_ID])
        return pd.concat(frames, ignore_index=True)

    def _corruptions(self, model, tokenizer, chosen: list[Site], prompts, opts: TracingOptions):
        """prompt index → its corruption [subject pieces, d_embed] (a prompt without one is skipped), and the
        noise std (missing for subject-swap)."""
        if opts.corrupt == "subject-swap":
            pairs = {relation: list(dict.fromkeys(zip(rows["subject"].astype(str), rows["answer"].astype(str))))
                     for relation, rows in prompts.groupby("relation", sort=False)}
            out = {}
            for site in chosen:
                row = prompts.loc[site.index]
                pieces = swap_pieces(site, row, pairs[row["relation"]], tokenizer, opts.noise_seed)
                if pieces is not None:
                    out[site.index] = swap_corruption(model, site, pieces)
            return out, float("nan")
        scale = opts.noise * embedding_std(model, chosen)
        d_embed = _embed_width(model)
        return {site.index: noise_for(opts.noise_seed, prompts.at[site.index, "prompt"], (len(site.subject), d_embed),
                                      scale) for site in chosen}, scale

    @staticmethod
    def _frame(rows: list[dict], site: Site, prompts, groups, method: str, scale: float) -> pd.DataFrame:
        info = prompts.loc[site.index, ["benchmark", "relation", "template", "subject", "answer", "prompt"]]
        return pd.DataFrame(rows).assign(method=method, noise_std=scale, **info.to_dict(), group=groups[site.index])

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        scores = tracing_scores(frame)
        return {TRACING_SCORES.name: scores, TRACING_HEAD_SCORES.name: head_scores(frame),
                TRACING_AGREEMENT.name: agreement(frame), TRACING_EMERGENCE.name: site_emergence(scores),
                TRACING_BEST.name: best_sites(scores)}


def _embed_width(model) -> int:
    """Width of the embeddings module's output (ELECTRA, ALBERT: the embedding size)."""
    config = model.config
    return getattr(config, "embedding_size", None) or config.hidden_size


def tracing_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean restoration and effect per checkpoint × relation × group × method × component × layer × role (all
    but the head rows), with the count of skipped prompts of each relation and group."""
    sites = frame[~frame["component"].isin([HEAD, SKIPPED])]
    out = _means(sites, TRACING_ID, TRACING_SCORES)
    if out.empty:
        return out
    from probekit.analyses.stats import with_pooled_seeds

    keys = [*CHECKPOINT_ID, *RELATION_ID]
    skipped = with_pooled_seeds(frame[frame["component"] == SKIPPED]) if (frame["component"] == SKIPPED).any() \
        else frame.iloc[:0]
    counts = skipped.groupby(keys, dropna=False)["prompt"].nunique().rename("skipped").reset_index()
    out = out.drop(columns="skipped").merge(counts, on=keys, how="left") if len(counts) else out
    out["skipped"] = out["skipped"].fillna(0).astype(int)
    return out[TRACING_SCORES.names]


def head_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean restoration and effect per checkpoint × relation × group × method × layer × head (the `head` rows)."""
    return _means(frame[frame["component"] == HEAD], HEAD_ID, TRACING_HEAD_SCORES)


def _means(frame: pd.DataFrame, keys: list[str], table: Table) -> pd.DataFrame:
    """Mean restoration and effect per group of `keys` with their bootstrap intervals over prompts (and over
    seeds, on rows pooled over seeds), as `table`'s columns."""
    from probekit.analyses.stats import share_intervals, with_pooled_seeds

    if frame.empty:
        return pd.DataFrame(columns=table.names)
    work = with_pooled_seeds(frame.assign(method=frame["method"] if "method" in frame else EXACT))
    out = work.groupby(keys, sort=False, dropna=False).agg(
        n=("restoration", "count"), restoration=("restoration", "mean"), effect=("effect", "mean")).reset_index()
    for column in ("restoration", "effect"):
        bounds_of = share_intervals(work, keys, column, item="prompt")
        out = out.merge(bounds_of.drop(columns="n_seeds") if column == "restoration" else bounds_of, on=keys,
                        how="left")
    return out.assign(skipped=0)[table.names] if "skipped" in table.names else out[table.names]


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


def site_emergence(scores: pd.DataFrame) -> pd.DataFrame:
    """Per site (resid, attn, mlp × layer × role), group and method: the first step whose effect interval lies
    wholly above the random-init control's and above `EFFECT_FLOOR` (`probekit.analyses.stats.emergence_steps`,
    the scores' rule, with the control's upper end raised to the floor where it is below: a site that only hurts
    less than at random init, or moves p by a hair, restores nothing)."""
    from probekit.analyses.stats import control_mask, emergence_steps

    rows = scores[scores["component"].isin(["resid", "attn", "mlp"])]
    if rows.empty:
        return pd.DataFrame(columns=TRACING_EMERGENCE.names)
    rows = rows.copy()
    control = control_mask(rows)
    rows.loc[control, "effect_high"] = rows.loc[control, "effect_high"].clip(lower=EFFECT_FLOOR)
    found = emergence_steps(rows, metric="effect", keys=("benchmark", "relation", "group", "method", *SITE))
    return found[TRACING_EMERGENCE.names]


def best_sites(scores: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint (the control left out) × relation × group × method: of the sites (resid, attn, mlp) whose
    effect's interval stands out (above the random-init control's at the same site and `EFFECT_FLOOR`), the one
    whose mean effect rose most above the control's — of all sites when none stands out — the last layer's
    residual stream left out (restoring it at the [MASK] gives the clean answer by construction); whether it
    stands out and whether its layer moved since the previous step."""
    from probekit.analyses.stats import control_mask

    rows = scores[scores["component"].isin(["resid", "attn", "mlp"])].dropna(subset=["effect"])
    if rows.empty:
        return pd.DataFrame(columns=TRACING_BEST.names)
    last_layer = int(rows["layer"].max())
    rows = rows[~((rows["component"] == "resid") & (rows["layer"] == last_layer))]
    control = rows[control_mask(rows)]
    ref = ["benchmark", "relation", "group", "method", *SITE]
    base = control.groupby(ref, dropna=False).agg(control_effect=("effect", "first"),
                                                  control_high=("effect_high", "first")).reset_index()
    series = rows[rows["checkpoint"] != CONTROL].merge(base, on=ref, how="left")
    series["gain"] = series["effect"] - series["control_effect"].fillna(0.0)
    bar = series["control_high"].fillna(EFFECT_FLOOR).clip(lower=EFFECT_FLOOR)
    series["stands_out"] = (series["effect_low"] > bar).fillna(False).astype(bool)
    keys = [*CHECKPOINT_ID, *RELATION_ID, "method"]
    ordered = series.sort_values(["stands_out", "gain"], kind="stable")  # a site that stands out comes first
    best = ordered.groupby(keys, sort=False, dropna=False).tail(1).sort_index().sort_values("step", kind="stable")
    previous = best.groupby(["run", *RELATION_ID, "method"], sort=False, dropna=False)
    before_layer, before_out = previous["layer"].shift(), previous["stands_out"].shift()
    best["moved"] = [bool(out and was is True and pd.notna(layer_before) and layer != layer_before)
                     for layer, out, layer_before, was in zip(best["layer"], best["stands_out"], before_layer,
                                                               before_out)]
    return best[TRACING_BEST.names].reset_index(drop=True)


register(Tracing)
