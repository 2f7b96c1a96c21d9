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
from probekit.analyses.base import Analysis, Context, Options, Shape, digest, option, register
from probekit.core.schema import CHECKPOINT_COLUMNS, CHECKPOINT_ID, N_SEEDS, PROMPT_COLUMNS, RELATION_ID, Table, \
    bounds, columns

np = lazy.module("numpy")
pd = lazy.module("pandas")

COMPONENTS = {"resid": "hook_resid_post", "attn": "hook_attn_out", "mlp": "hook_mlp_out", "head": "attn.hook_z",
              "knockout": "attn.hook_mask"}
"""Component → the block hook point whose clean value is patched in."""
HEAD = "head"
"""The component restored per attention head (all positions), not per position."""
KNOCKOUT = "knockout"
"""The component that blocks attention from the [MASK] to the subject in the clean run, per layer."""
ROLES = ("subject_first", "subject_middle", "subject_last", "mask", "other", "special")
ALL = "all"
"""The role of a head row: every position of the prompt."""
MIN_EFFECT = 1e-4
"""Restoration is missing where |p_clean − p_corrupt| ≤ MIN_EFFECT × max(p_clean, p_corrupt)."""
SAMPLE_SEED = 0
"""Seed of the prompts sampled per relation × group (the same prompts at every checkpoint)."""

TRACING = Table("tracing", "checkpoint × prompt × component × layer × role", columns(
    *CHECKPOINT_COLUMNS, *PROMPT_COLUMNS,
    ("component", "str", "what is restored: resid (the layer's output hidden state), attn (attention output), "
                         "mlp (MLP output), head (one head's output before the output projection, hook_z); "
                         "knockout: attention from the [MASK] to the subject blocked in the clean run"),
    ("layer", "int", "the block patched (0 = the first)"),
    ("head", "int", "the head restored (component head); missing for the other components"),
    ("role", "str", "token positions patched: subject_first, subject_middle, subject_last, mask, other, special; "
                    "all for a head (every position at once)"),
    ("positions", "int", "positions of the role (the row is their mean)"),
    ("restoration", "float", "(p_restored − p_corrupt) / (p_clean − p_corrupt): 0 = corrupted, 1 = clean; missing "
                             "where the corruption did not move p"),
    ("p_restored", "float", "gold probability with the clean value restored at one position of the role (mean); "
                            "knockout: with the attention blocked"),
    ("p_clean", "float", "gold probability of the clean run (all pieces masked at once, as the scores)"),
    ("p_corrupt", "float", "gold probability with the subject's embeddings noised"),
    ("noise_std", "float", "std of the noise added (--noise × the std of the subject's embeddings)"),
), "Causal tracing: how much of the gold answer's probability comes back when one clean activation is "
   "restored in a run whose subject embeddings were noised.")
TRACING_SCORES = Table("tracing_scores", "checkpoint × benchmark × relation × group × component × layer × role",
                       columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"),
    ("group", "str", "fact-injection group"), ("component", "str", "resid, attn or mlp"),
    ("layer", "int", "the block patched"), ("role", "str", "token positions patched"),
    ("n", "int", "prompts with a restoration (the corruption moved p)"),
    ("restoration", "float", "mean restoration over prompts"), *bounds(("restoration",)), N_SEEDS,
), "Mean restoration per site with a bootstrap interval over prompts (and seeds).")
TRACING_HEAD_SCORES = Table("tracing_head_scores", "checkpoint × benchmark × relation × group × layer × head",
                            columns(
    *CHECKPOINT_COLUMNS, ("benchmark", "str", "benchmark name"), ("relation", "str", "relation"),
    ("group", "str", "fact-injection group"), ("layer", "int", "the block of the head"),
    ("head", "int", "the head restored (its hook_z at every position)"),
    ("n", "int", "prompts with a restoration (the corruption moved p)"),
    ("restoration", "float", "mean restoration over prompts"), *bounds(("restoration",)), N_SEEDS,
), "Mean restoration per attention head (its clean output restored at every position) with a bootstrap "
   "interval over prompts (and seeds): which heads carry the fact.")
TRACING_ID = [*CHECKPOINT_ID, *RELATION_ID, "component", "layer", "role"]
HEAD_ID = [*CHECKPOINT_ID, *RELATION_ID, "layer", "head"]


@dataclass(frozen=True)
class TracingOptions(Options):
    sample: int = option(64, "Prompts traced per relation and fact group (seeded sample; 0 = all).",
                         flag="--trace-sample", low=0)
    noise: float = option(3.0, "Noise std as a multiple of the subject embeddings' std (ROME: 3).", flag="--noise",
                          low=0.0)
    noise_seed: int = option(0, "Seed of the corruption noise.", flag="--noise-seed", low=0)
    components: str = option("resid,attn,mlp,head,knockout", "Components restored, comma-separated: resid, attn, mlp, "
                             "head (each attention head at every position), knockout (attention from the "
                             "[MASK] to the subject blocked, per layer).",
                             flag="--trace-components")

    def validate(self, analysis: str) -> None:
        from probekit.core.errors import ProbekitError

        super().validate(analysis)
        unknown = [c for c in self.parts() if c not in COMPONENTS]
        if unknown or not self.parts():
            raise ProbekitError(f"analysis {analysis!r}: option components={self.components!r}: use a "
                                f"comma-separated list of {', '.join(COMPONENTS)}")

    def parts(self) -> list[str]:
        return [c.strip() for c in self.components.split(",") if c.strip()]


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


def _hooks():
    from probekit.models import hooks

    return hooks


def gold_prob(model, hidden, masks: list[int], gold: list[int]):
    """[rows] probability of the gold pieces at the mask positions (pieces jointly: product)."""
    import torch
    from probekit.models.families import mlm_head

    logits = mlm_head(model)(hidden[:, masks]).float()
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
    with torch.inference_mode(), _hooks().hooked(model, read=points) as seen:
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

    hooks = _hooks()
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

    hooks = _hooks()
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


@dataclass
class Trace:
    """One prompt's tracing: p_clean, p_corrupt and, per component, p_restored [layers, positions] ([layers,
    heads] for the component `head`, [layers, 1] for `knockout`: p with that layer's attention blocked)."""

    p_clean: float
    p_corrupt: float
    restored: dict


def trace(model, site: Site, noise, components: list[str], max_rows: int = 128) -> Trace:
    """Every (layer, position) site of every component restored in turn, and every (layer, head) for the
    component `head`: p_restored per site."""
    from probekit.models.families import n_layers

    hooks = _hooks()
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

    hooks = _hooks()
    device = next(model.parameters()).device
    values = []
    for site in sites:
        with torch.inference_mode(), hooks.hooked(model, read=[hooks.EMBED]) as seen:
            body(model)(input_ids=torch.tensor([site.ids], device=device))
        values.append(seen[hooks.EMBED][0, site.subject].float().flatten().cpu())
    return float(torch.cat(values).std()) if values else 0.0


def role_rows(result: Trace, site: Site) -> list[dict]:
    """Rows component × layer × role: p_restored averaged over the role's positions; for heads, rows
    layer × head (role `all`)."""
    rows = []
    common = {"p_clean": result.p_clean, "p_corrupt": result.p_corrupt}
    for component, grid in result.restored.items():
        if component == HEAD:
            ratio = restoration(grid, result.p_clean, result.p_corrupt)
            rows += [{"component": HEAD, "layer": layer, "head": head, "role": ALL, "positions": len(site.ids),
                      "restoration": float(ratio[layer, head]), "p_restored": float(grid[layer, head]), **common}
                     for layer in range(grid.shape[0]) for head in range(grid.shape[1])]
            continue
        if component == KNOCKOUT:
            ratio = restoration(grid[:, 0], result.p_clean, result.p_corrupt)
            rows += [{"component": KNOCKOUT, "layer": layer, "head": None, "role": "mask",
                      "positions": len(site.masks), "restoration": float(ratio[layer]),
                      "p_restored": float(grid[layer, 0]), **common} for layer in range(grid.shape[0])]
            continue
        for role, positions in site.roles().items():
            p = grid[:, positions].mean(1)
            for layer, (p_layer, r) in enumerate(zip(p, restoration(p, result.p_clean, result.p_corrupt))):
                rows.append({"component": component, "layer": layer, "head": None, "role": role,
                             "positions": len(positions), "restoration": float(r), "p_restored": float(p_layer),
                             **common})
    return rows


# ---------------------------------------------------------------- the spec


class Tracing(Analysis):
    name = "tracing"
    help = ("causal tracing: noise the subject, restore one clean activation per layer × position × component "
            "and per head (tables tracing, tracing_scores, tracing_head_scores)")
    options = TracingOptions
    tables = (TRACING, TRACING_SCORES, TRACING_HEAD_SCORES)
    on_control = True
    version = 2
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
        scale = opts.noise * embedding_std(model, chosen)
        frames = []
        for site in chosen:
            frames.append(self._rows(model, site, prompts, groups, opts, scale, ctx.batch_size))
        if not frames:
            return pd.DataFrame(columns=[c.name for c in TRACING.columns if c.name not in CHECKPOINT_ID])
        return pd.concat(frames, ignore_index=True)

    def _rows(self, model, site: Site, prompts, groups, opts: TracingOptions, scale: float, batch: int):
        d_embed = _embed_width(model)
        noise = noise_for(opts.noise_seed, prompts.at[site.index, "prompt"], (len(site.subject), d_embed), scale)
        result = trace(model, site, noise, opts.parts(), max_rows=batch)
        rows = pd.DataFrame(role_rows(result, site)).assign(noise_std=scale)
        info = prompts.loc[site.index, ["benchmark", "relation", "template", "subject", "answer", "prompt"]]
        return rows.assign(**info.to_dict(), group=groups[site.index])

    def summarize(self, frame: pd.DataFrame, ctx: Context) -> dict[str, pd.DataFrame]:
        return {TRACING_SCORES.name: tracing_scores(frame), TRACING_HEAD_SCORES.name: head_scores(frame)}


def _embed_width(model) -> int:
    """Width of the embeddings module's output (ELECTRA, ALBERT: the embedding size)."""
    config = model.config
    return getattr(config, "embedding_size", None) or config.hidden_size


def tracing_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean restoration per checkpoint × relation × group × component × layer × role (all but the head rows)."""
    return _mean_restoration(frame[frame["component"] != HEAD], TRACING_ID, TRACING_SCORES)


def head_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean restoration per checkpoint × relation × group × layer × head (the `head` rows)."""
    return _mean_restoration(frame[frame["component"] == HEAD], HEAD_ID, TRACING_HEAD_SCORES)


def _mean_restoration(frame: pd.DataFrame, keys: list[str], table: Table) -> pd.DataFrame:
    """Mean restoration per group of `keys` with its bootstrap interval over prompts (and over seeds, on rows
    pooled over seeds), as `table`'s columns."""
    from probekit.analyses.stats import share_intervals, with_pooled_seeds

    if frame.empty:
        return pd.DataFrame(columns=table.names)
    work = with_pooled_seeds(frame)
    out = work.groupby(keys, sort=False, dropna=False)["restoration"].agg(n="count", restoration="mean").reset_index()
    out = out.merge(share_intervals(work, keys, "restoration", item="prompt"), on=keys, how="left")
    return out[table.names]


register(Tracing)
