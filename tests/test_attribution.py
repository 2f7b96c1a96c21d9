"""Attribution patching (`probekit.analyses.attribution`) on tiny random BERT, RoBERTa and ModernBERT models: its
estimates equal a plain loop written here with torch autograd and forward hooks on the stock HF modules (no
probekit code), prompts of different lengths batched together or not; in the small-corruption limit (float64)
it is exact patching to first order; through `probe(..., method="both")` it is reported beside exact patching
with their rank correlation, and a sharded run equals one process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from probekit import probe
from probekit.analyses.attribution import as_trace, estimate
from probekit.analyses.scoring import encode_prompts
from probekit.analyses.tracing import prompt_sites, trace
from probekit.models.families import max_tokens, n_layers
from probekit.models.series import load_checkpoint
from test_families import write_checkpoint
from test_tracing import first, modules, noising

FAMILIES = ["bert", "roberta", "modernbert"]
PROMPTS = pd.DataFrame({
    "relation": ["capital", "capital_reverse", "capital"],
    "template": ["The capital of [X] is [MASK].", "[MASK] is the capital of [X].",
                 "Everyone knows that the capital city of [X] is [MASK]."],
    "subject": ["Italy", "Japan", "France"], "answer": ["Rome", "Tokyo", "Paris"],
})
PROMPTS["prompt"] = [t.replace("[X]", s) for t, s in zip(PROMPTS["template"], PROMPTS["subject"])]
COMPONENTS = ["resid", "attn", "mlp", "head"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """model_type → (model, tokenizer, sites in prompt order)."""
    root = tmp_path_factory.mktemp("attribution")
    out = {}
    for model_type in FAMILIES:
        model, tok = load_checkpoint(str(write_checkpoint(root / model_type, model_type)))
        limit = max_tokens(model.config)
        sites = prompt_sites(PROMPTS, tok, encode_prompts(PROMPTS, tok, limit), limit)
        out[model_type] = model, tok, [sites[i] for i in sorted(sites)]
    return out


def noise(site, model, scale: float = 1.0, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    width = model.get_input_embeddings().weight.shape[1]
    return (torch.randn(len(site.subject), width, generator=torch.Generator().manual_seed(seed)) * scale).to(dtype)


def plain_attribution(model, model_type: str, site, eps: torch.Tensor, metric: str) -> dict:
    """{component: [layers, positions] (head: [layers, heads])}: Σ_hidden (clean − corrupt) ·
    ∂metric/∂activation at the corrupted run, with hooks on the stock HF modules and one `backward()`."""
    embeddings, blocks, parts = modules(model, model_type)
    parts = {"resid": blocks, **parts}
    outs = parts["attn"]  # the output projections: their input is every head's output (hook_z)
    heads = model.config.num_attention_heads
    ids = torch.tensor([site.ids])
    clean, seen = {}, {}

    def read(key, store, grad):
        def hook(module, args, output):
            value = first(output)
            if grad:
                value.retain_grad()
            store[key] = value if grad else value.detach().clone()
        return hook

    def read_input(key, store, grad):
        def hook(module, args):
            if grad:
                args[0].retain_grad()
            store[key] = args[0] if grad else args[0].detach().clone()
        return hook

    def hooks(store, grad):
        return ([m.register_forward_hook(read((c, i), store, grad)) for c, ms in parts.items()
                 for i, m in enumerate(ms)]
                + [m.register_forward_pre_hook(read_input(("head", i), store, grad)) for i, m in enumerate(outs)])

    handles = hooks(clean, False)
    with torch.no_grad():
        model(input_ids=ids)
    for h in handles:
        h.remove()
    handles = [embeddings.register_forward_hook(noising(site, eps)), *hooks(seen, True)]
    logits = model(input_ids=ids).logits[0, site.masks]
    logprob = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)[
        range(len(site.gold)), site.gold].double().sum()
    (logprob if metric == "logprob" else logprob.exp()).backward()
    for h in handles:
        h.remove()
    out = {}
    for component in parts:
        out[component] = np.stack([((clean[(component, i)] - seen[(component, i)].detach())
                                    * seen[(component, i)].grad).double().sum(-1)[0].numpy()
                                   for i in range(len(blocks))])
    out["head"] = np.stack([((clean[("head", i)] - seen[("head", i)].detach()) * seen[("head", i)].grad)
                            .double()[0].view(len(site.ids), heads, -1).sum((0, 2)).numpy()
                            for i in range(len(blocks))])
    return out


@pytest.mark.parametrize("model_type", FAMILIES)
def test_attribution_equals_a_plain_autograd_loop(models, model_type):
    model, tok, sites = models[model_type]
    assert len(sites) == 3 and len({len(s.ids) for s in sites}) > 1  # padded together in one pass
    eps = [noise(s, model, seed=i) for i, s in enumerate(sites)]
    for metric in ("logprob", "prob"):
        batched = estimate(model, sites, eps, COMPONENTS, metric)
        single = estimate(model, sites, eps, COMPONENTS, metric, max_rows=1)
        for site, noise_, ours, alone in zip(sites, eps, batched, single):
            expected = plain_attribution(model, model_type, site, noise_, metric)
            for component in COMPONENTS:
                assert ours.delta[component].shape == (1, *expected[component].shape)  # one draw
                ours.delta[component], alone.delta[component] = ours.delta[component][0], alone.delta[component][0]
                # float32 sums of (clean − corrupt) × gradient: absolute rounding error of a few float32
                # epsilons of the grid's largest entry (probabilities of a random model are ~1e-4, log-
                # probability estimates ~1), so the floor is relative to that scale: 1e-5 ≈ 84 epsilons
                scale = np.abs(expected[component]).max()
                np.testing.assert_allclose(ours.delta[component] / scale, expected[component] / scale,
                                           atol=1e-5, rtol=0)
                np.testing.assert_allclose(ours.delta[component] / scale, alone.delta[component] / scale,
                                           atol=1e-5, rtol=0)  # padded beside other prompts or alone
            assert np.abs(expected["resid"]).max() > 1e-3 * (1 if metric == "logprob" else ours.corrupt[0])


@pytest.mark.parametrize("model_type", FAMILIES)
def test_attribution_is_exact_patching_to_first_order(models, model_type):
    """In float64, with the corruption scaled by s, exact patching's Δp and attribution's differ by O(s²): tiny
    against Δp at small s, and 100× smaller when s is 10× smaller — the first-order term is right, site by site
    and head by head (a wrong gradient, sign or site would leave an O(s) difference)."""
    model, tok, sites = models[model_type]
    model = model.double()
    try:
        site = sites[0]
        errors = []
        for scale in (1e-2, 1e-3):
            eps = noise(site, model, scale=scale, dtype=torch.float64)
            exact = trace(model, site, eps, COMPONENTS)
            guess = as_trace(estimate(model, [site], [eps], COMPONENTS, "prob")[0], "prob")
            assert guess.p_clean == pytest.approx(exact.p_clean, rel=1e-10)
            assert guess.p_corrupt == pytest.approx(exact.p_corrupt, rel=1e-10)
            size = max(np.abs(exact.restored[c] - exact.p_corrupt).max() for c in COMPONENTS)
            error = max(np.abs(exact.restored[c] - guess.restored[c]).max() for c in COMPONENTS)
            assert size > 0
            errors.append((error, size))
        (e1, s1), (e2, s2) = errors
        assert e2 / s2 < 1e-2  # at s = 1e-3 the estimate is exact patching within 1% of the largest effect
        assert e1 / e2 > 30  # and its error shrinks as s² (a first-order error would shrink as s: 10×)
    finally:
        model.float()


def test_logprob_estimates_convert_to_the_probability_scale(models):
    model, tok, sites = models["bert"]
    eps = [noise(s, model) for s in sites]
    as_log = estimate(model, sites, eps, ["mlp"], "logprob")[0]
    as_p = estimate(model, sites, eps, ["mlp"], "prob")[0]
    # the same first order: ∂p = p ∂log p at the corrupted run. Each entry is a float32 sum over the hidden
    # width of (clean − corrupt) × gradient, the gradient from a float32 backward through every layer: its
    # rounding error is absolute, a few float32 epsilons of the largest terms involved, whatever the entry's own
    # size (entries near 0 come from cancellation, so a relative tolerance alone fails on them at random, with
    # the thread count's summation order). Floor: 64 float32 epsilons of the grid's largest entry (observed
    # ≤ 4 under 1 or 2 threads); relative 1e-5 above it. A wrong factor p, a sign or a site is off by O(1).
    as_p_delta, as_log_delta = as_p.delta["mlp"][0], as_log.delta["mlp"][0]
    floor = 64 * float(np.finfo(np.float32).eps) * np.abs(as_p_delta).max()
    assert np.abs(as_p_delta).max() > 0
    np.testing.assert_allclose(as_p_delta, np.exp(as_log.corrupt[0]) * as_log_delta, rtol=1e-5, atol=floor)
    converted = as_trace(as_log, "logprob")
    # the corrupted metric is one float32 forward either way, read as log p or as p: a float32 relative epsilon
    assert converted.p_corrupt == pytest.approx(float(as_p.corrupt[0]), rel=16 * float(np.finfo(np.float32).eps))
    np.testing.assert_allclose(converted.restored["mlp"], converted.p_corrupt * np.exp(as_log_delta), rtol=1e-12)


@pytest.mark.slow
def test_probe_reports_attribution_beside_exact_and_shards_equal_one_process(tiny_series, tiny_benchmark, tmp_path):
    """`method both`: rows of both methods for the same sites, the agreement table filled (Spearman in
    [-1, 1]), equal to a correlation recomputed here; two `--shard I/2` runs write the tables of one process."""
    import shutil

    from probekit.running.results import ProbeResult

    series = tmp_path / "series"
    for step in (4, 8):
        shutil.copytree(tiny_series / f"checkpoint-{step}", series / f"checkpoint-{step}")
    args = (str(series / "*"), [str(tiny_benchmark)], ["tracing"])
    options = {"tracing": {"sample": 3, "components": "resid,mlp,head", "method": "both"}}
    one = probe(*args, out=tmp_path / "one", options=options)
    rows, agree = one.tables["tracing"], one.tables["tracing_agreement"]
    exact, guess = (rows[rows["method"] == m] for m in ("exact", "attribution"))
    key = ["checkpoint", "prompt", "component", "layer", "role", "head"]
    assert len(exact) == len(guess) and set(map(tuple, exact[key].astype(str).to_numpy())) == set(
        map(tuple, guess[key].astype(str).to_numpy()))
    assert set(agree["component"]) == {"resid", "mlp", "head"}
    assert set(agree["checkpoint"]) == {"checkpoint-4", "checkpoint-8", "random-init"}
    assert agree["spearman"].between(-1, 1).all()
    at = agree[(agree["checkpoint"] == "checkpoint-8") & (agree["component"] == "mlp")].iloc[0]
    both = exact.merge(guess, on=[*key, "relation", "group"], suffixes=("_e", "_a"))
    both = both[(both["checkpoint"] == "checkpoint-8") & (both["component"] == "mlp")]
    assert at["n"] == len(both)
    assert at["spearman"] == pytest.approx(both["effect_e"].rank().corr(both["effect_a"].rank()), abs=1e-12)
    assert probe(*args, out=tmp_path / "sharded", shard="0/2", options=options) is None
    probe(*args, out=tmp_path / "sharded", shard="1/2", options=options)
    merged = ProbeResult.load(tmp_path / "sharded")
    for name in ("tracing", "tracing_scores", "tracing_head_scores", "tracing_agreement"):
        pd.testing.assert_frame_equal(merged.tables[name], one.tables[name], check_exact=True, obj=name)


@pytest.mark.parametrize("step", [5, None])
def test_agreement_pools_site_means_also_for_a_checkpoint_without_a_step(step):
    """Spearman per prompt-level site and over the sites' means, as pandas' rank correlation computes them
    by hand; a hub checkpoint has no step, and its site means must still be found (NaN keys never match)."""
    from probekit.analyses.tracing import agreement

    rng = np.random.default_rng(0)
    rows = []
    for prompt in range(4):
        for layer in range(3):
            exact = float(rng.normal())
            for method, effect in (("exact", exact), ("attribution", exact + float(rng.normal(0, 0.3)))):
                rows.append({"checkpoint": "c", "run": "r", "step": step, "seed": "", "benchmark": "b",
                             "relation": "capital", "group": "injected", "prompt": f"p{prompt}", "method": method,
                             "component": "resid", "layer": layer, "role": "mask", "head": None, "effect": effect})
    frame = pd.DataFrame(rows)
    found = agreement(frame).iloc[0]
    wide = frame.pivot_table(index=["prompt", "layer"], columns="method", values="effect")
    means = wide.groupby("layer").mean()
    assert found["n"] == 12 and found["n_sites"] == 3
    assert found["spearman"] == pytest.approx(wide["exact"].rank().corr(wide["attribution"].rank()))
    assert found["spearman_sites"] == pytest.approx(means["exact"].rank().corr(means["attribution"].rank()))
    assert pd.isna(found["step"]) if step is None else found["step"] == step
