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

Prompts of different lengths share a pass, padded on the right with an attention mask; the activations are read
and their gradients taken through the one hook layer (`probekit.models.hooks.hooked`): a `write` edit that
keeps the tensor it is handed (part of the autograd graph) and returns it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from probekit.analyses.sites import COMPONENTS, HEAD, KNOCKOUT, Trace
from probekit.core import lazy

np = lazy.module("numpy")
hooks = lazy.module("probekit.models.hooks")

METRICS = ("prob", "logprob")


@dataclass
class Estimate:
    """One prompt's attribution: the metric clean and corrupted, and per component the estimated change of the
    metric when the site is restored ([layers, positions]; [layers, heads] for `head`)."""

    clean: float
    corrupt: float
    delta: dict


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
    layer × head) for each prompt of `sites` (`tracing.Site`), its corruption the tensor [subject pieces,
    d_embed] added to the embeddings' output at the subject (`tracing`'s noise or subject swap). Prompts share
    passes, at most `max_rows` a pass."""
    out = []
    for start in range(0, len(sites), max_rows):
        out += _estimate_batch(model, sites[start:start + max_rows], corruptions[start:start + max_rows],
                               components, metric)
    return out


def _estimate_batch(model, sites: list, corruptions: list, components: list[str], metric: str) -> list[Estimate]:
    import torch
    from probekit.models.families import body, n_layers

    device = next(model.parameters()).device
    width = max(len(s.ids) for s in sites)
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    ids = torch.full((len(sites), width), pad, dtype=torch.long, device=device)
    attend = torch.zeros((len(sites), width), dtype=torch.long, device=device)
    for r, site in enumerate(sites):
        ids[r, :len(site.ids)] = torch.tensor(site.ids)
        attend[r, :len(site.ids)] = 1
    masks, gold = [s.masks for s in sites], [s.gold for s in sites]
    layers = n_layers(model)
    wanted = [c for c in components if c != KNOCKOUT]
    names = {c: [hooks.hook_name(layer, COMPONENTS[c]) for layer in range(layers)] for c in wanted}
    points = [name for c in wanted for name in names[c]]

    with torch.no_grad(), hooks.hooked(model, read=points) as seen:
        clean_metric = gold_metric(model, body(model)(input_ids=ids, attention_mask=attend).last_hidden_state,
                                   masks, gold, metric)
        clean = {name: seen[name].clone() for name in points}

    kept: dict = {}

    def corrupt(embedded):
        full = torch.zeros_like(embedded)
        for r, (site, noise) in enumerate(zip(sites, corruptions)):
            full[r, site.subject] = noise.to(device=embedded.device, dtype=embedded.dtype)
        return (embedded + full).detach().requires_grad_(True)  # a leaf: no gradient into the weights

    def keep(name):
        def edit(tensor):
            kept[name] = tensor
            return tensor
        return edit

    write = {hooks.EMBED: corrupt, **{name: keep(name) for name in points}}
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
            if c == HEAD:  # [batch, pos, head, d_head] → [batch, head]
                per_layer.append((term.sum(-1) * real[:, :, None]).sum(1))
            else:  # [batch, pos, d] → [batch, pos]
                per_layer.append(term.sum(-1) * real)
        delta[c] = torch.stack(per_layer, 1).cpu().numpy()  # [batch, layers, pos or heads]
    out = []
    for r, site in enumerate(sites):
        per = {c: d[r] if c == HEAD else d[r, :, :len(site.ids)] for c, d in delta.items()}
        out.append(Estimate(float(clean_metric[r]), float(corrupt_metric[r].detach()), per))
    return out


def as_trace(result: Estimate, metric: str):
    """The estimate as a `tracing.Trace` on the probability scale: p_restored ≈ p_corrupt + estimate (`prob`) or
    p_corrupt · exp(estimate) (`logprob`), so its rows are read like exact tracing's."""
    if metric == "logprob":
        p_clean, p_corrupt = float(np.exp(result.clean)), float(np.exp(result.corrupt))
        restored = {c: p_corrupt * np.exp(d) for c, d in result.delta.items()}
    else:
        p_clean, p_corrupt = result.clean, result.corrupt
        restored = {c: p_corrupt + d for c, d in result.delta.items()}
    return Trace(p_clean, p_corrupt, restored)
