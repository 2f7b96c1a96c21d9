"""Attribution patching (Nanda 2023; Syed et al. 2023): the first-order estimate of causal tracing, every site at
once.

Exact patching (`probekit.analyses.tracing`) runs the corrupted input once per site with one clean activation
restored. Attribution patching replaces those runs by a Taylor step around the corrupted run: for a site s with
clean activation a_clean and corrupted activation a_corrupt,

    metric(restored at s) − metric(corrupt) ≈ Σ_hidden (a_clean − a_corrupt) · ∂metric/∂a, at the corrupted run

so one clean forward (its activations cached), one corrupted forward and one backward of the metric give the
estimate for every (layer, position) of the residual stream, attention output and MLP output and for every
head (`attn.hook_z`, summed over positions and the head's width) together. The estimate is exact where the
metric is linear in the site and good where the restored activation stays close to the corrupted one; it can
miss where restoring crosses a non-linearity (a saturated softmax, a LayerNorm far from its input) — which is
why tracing reports it beside exact patching with their rank correlation (`tracing_agreement`).

Metrics: `prob`, the gold answer's probability (the scale exact restoration is on; p_restored ≈ p_corrupt +
estimate) or `logprob`, its log (p_restored ≈ p_corrupt · exp(estimate)): the same first order at each
prompt, different where p moves far.

With K draws of the corruption (`--noise-samples`), each prompt is K rows of the corrupted pass, each row
linearised around its own corrupted run, and the estimates are averaged over the draws on the probability scale
as exact tracing averages (`as_trace`). Prompts of different lengths share a pass, padded on the right with an
attention mask; the activations are read and their gradients taken through the one hook layer (`probekit.models.hooks.hooked`): a `write` edit that
keeps the tensor it is handed (part of the autograd graph) and returns it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from probekit.analyses.sites import COMPONENTS, HEAD, KNOCKOUT, Trace
from probekit.core import lazy

np = lazy.module("numpy")
hooks = lazy.module("probekit.models.hooks")

METRICS = ("prob", "logprob")


@dataclass
class Estimate:
    """One prompt's attribution: the metric clean, and per draw of the corruption the metric corrupted
    ([draws]) and per component the estimated change of the metric when the site is restored ([draws, layers,
    positions]; [draws, layers, heads] for `head`); `masks`: the prompt's mask positions (restored together
    for the mask role, whose first-order estimate is the sum over them)."""

    clean: float
    corrupt: np.ndarray
    delta: dict
    masks: list = field(default_factory=list)


def gold_metric(model, hidden, masks: list[list[int]], gold: list[list[int]], metric: str):
    """[rows] the gold answer's log-probability (pieces jointly: the sum over its masks) or probability, each
    row with its own mask positions and gold pieces."""
    import torch
    from probekit.models.families import mlm_head

    rows = torch.tensor([r for r, m in enumerate(masks) for _ in m], device=hidden.device)
    positions = torch.tensor([p for m in masks for p in m], device=hidden.device)
    pieces = torch.tensor([g for row in gold for g in row], device=hidden.device)
    logits = mlm_head(model)(hidden[rows, positions])
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    picked = logits.log_softmax(-1).gather(1, pieces[:, None])[:, 0].double()
    logprob = torch.zeros(len(masks), dtype=torch.float64, device=hidden.device).index_add(0, rows, picked)
    return logprob if metric == "logprob" else logprob.exp()


def estimate(model, sites: list, corruptions: list, components: list[str], metric: str = "prob",
             max_rows: int = 64) -> list[Estimate]:
    """Attribution patching of every site of `components` (resid, attn, mlp: per layer × position; head: per
    layer × head) for each prompt of `sites` (`tracing.Site`), its corruption the tensor [draws, subject pieces,
    d_embed] (or one draw, [pieces, d_embed]) added to the embeddings' output at the subject (`tracing`'s noise
    or subject swap): one row per prompt and draw. Rows share passes, at most `max_rows` a pass (at least one
    prompt's draws)."""
    out, chunk, rows = [], [], 0
    for site, noise in zip(sites, corruptions):
        draws = _draws(noise)
        if chunk and rows + draws.shape[0] > max_rows:
            out += _estimate_batch(model, [c[0] for c in chunk], [c[1] for c in chunk], components, metric)
            chunk, rows = [], 0
        chunk.append((site, draws))
        rows += draws.shape[0]
    if chunk:
        out += _estimate_batch(model, [c[0] for c in chunk], [c[1] for c in chunk], components, metric)
    return out


def _draws(noise):
    return noise if noise.dim() == 3 else noise[None]


def _estimate_batch(model, sites: list, corruptions: list, components: list[str], metric: str) -> list[Estimate]:
    import torch
    from probekit.models.families import body, n_layers

    device = next(model.parameters()).device
    owner = [s for s, noise in enumerate(corruptions) for _ in range(noise.shape[0])]  # row → its prompt
    draw_of = [j for noise in corruptions for j in range(noise.shape[0])]
    width = max(len(s.ids) for s in sites)
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0

    def batch(of: list[int]):
        ids = torch.full((len(of), width), pad, dtype=torch.long, device=device)
        attend = torch.zeros((len(of), width), dtype=torch.long, device=device)
        for r, s in enumerate(of):
            ids[r, :len(sites[s].ids)] = torch.tensor(sites[s].ids)
            attend[r, :len(sites[s].ids)] = 1
        return ids, attend

    layers = n_layers(model)
    wanted = [c for c in components if c != KNOCKOUT]
    names = {c: [hooks.hook_name(layer, COMPONENTS[c]) for layer in range(layers)] for c in wanted}
    points = [name for c in wanted for name in names[c]]

    ids, attend = batch(list(range(len(sites))))
    with torch.no_grad(), hooks.hooked(model, read=points) as seen:
        clean_metric = gold_metric(model, body(model)(input_ids=ids, attention_mask=attend).last_hidden_state,
                                   [s.masks for s in sites], [s.gold for s in sites], metric)
        rows_of = torch.tensor(owner, device=device)
        clean = {name: seen[name][rows_of].clone() for name in points}  # each prompt's clean values, per draw

    kept: dict = {}
    ids, attend = batch(owner)

    def corrupt(embedded):
        full = torch.zeros_like(embedded)
        for r, (s, j) in enumerate(zip(owner, draw_of)):
            full[r, sites[s].subject] = corruptions[s][j].to(device=embedded.device, dtype=embedded.dtype)
        return (embedded + full).detach().requires_grad_(True)  # a leaf: no gradient into the weights

    def keep(name):
        def edit(tensor):
            kept[name] = tensor
            return tensor
        return edit

    write = {hooks.EMBED: corrupt, **{name: keep(name) for name in points}}
    masks, gold = [sites[s].masks for s in owner], [sites[s].gold for s in owner]
    with torch.inference_mode(False), torch.enable_grad(), hooks.hooked(model, write=write):
        hidden = body(model)(input_ids=ids, attention_mask=attend).last_hidden_state
        corrupt_metric = gold_metric(model, hidden, masks, gold, metric)
        grads = torch.autograd.grad(corrupt_metric.sum(), [kept[name] for name in points], allow_unused=True)
    grad = dict(zip(points, grads))

    real = attend.bool()
    delta = {}
    for c in wanted:
        per_layer = []
        for name in names[c]:
            g = grad[name]
            if g is None:  # the metric does not depend on it (e.g. a layer after the answer is read)
                g = torch.zeros_like(kept[name])
            term = ((clean[name].to(g.dtype) - kept[name].detach()) * g).double()
            if c == HEAD:  # [rows, pos, head, d_head] → [rows, head]
                per_layer.append((term.sum(-1) * real[:, :, None]).sum(1))
            else:  # [rows, pos, d] → [rows, pos]
                per_layer.append(term.sum(-1) * real)
        delta[c] = torch.stack(per_layer, 1).cpu().numpy()  # [rows, layers, pos or heads]
    corrupt_values = corrupt_metric.detach().cpu().numpy()
    owner_array = np.asarray(owner)
    out = []
    for s, site in enumerate(sites):
        rows = np.flatnonzero(owner_array == s)
        per = {c: d[rows] if c == HEAD else d[rows][:, :, :len(site.ids)] for c, d in delta.items()}
        out.append(Estimate(float(clean_metric[s]), corrupt_values[rows], per, list(site.masks)))
    return out


def as_trace(result: Estimate, metric: str):
    """The estimate as a `tracing.Trace` on the probability scale, averaged over the draws as exact tracing
    averages: p_restored ≈ mean over draws of p_corrupt + estimate (`prob`) or p_corrupt · exp(estimate)
    (`logprob`); the mask role's joint restoration from the sum of the estimates over the masks."""
    corrupt = np.atleast_1d(np.asarray(result.corrupt, dtype=float))
    delta = {c: d if np.ndim(d) == 3 else np.asarray(d)[None] for c, d in result.delta.items()}
    joint = {c: d[:, :, result.masks].sum(-1) for c, d in delta.items() if c != HEAD and result.masks}
    if metric == "logprob":
        p_clean, p = float(np.exp(result.clean)), np.exp(corrupt)
        restored = {c: (p[:, None, None] * np.exp(d)).mean(0) for c, d in delta.items()}
        masks = {c: (p[:, None] * np.exp(d)).mean(0) for c, d in joint.items()}
    else:
        p_clean, p = result.clean, corrupt
        restored = {c: (p[:, None, None] + d).mean(0) for c, d in delta.items()}
        masks = {c: (p[:, None] + d).mean(0) for c, d in joint.items()}
    return Trace(p_clean, float(p.mean()), restored, masks, draws=len(p))
