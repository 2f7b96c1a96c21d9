"""Causal tracing (`probekit.analyses.tracing`) on tiny random BERT, RoBERTa and ModernBERT models: restoring a
whole layer's residual stream gives the clean run, restoring nothing the corrupted one, no noise nothing to
restore, and every restored probability equals a plain loop written here with forward hooks on the stock HF
modules (one patch per forward, no probekit code)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from probekit import probe
from probekit.analyses.scoring import encode_prompts
from probekit.analyses.tracing import (Site, noise_for, patched_probs, prompt_sites, restoration, trace,
                                       tracing_scores)
from probekit.models.families import max_tokens, n_layers
from probekit.models.hooks import EMBED, hook_name, hooked
from probekit.models.series import load_checkpoint
from probekit.running.results import ProbeResult
from test_families import write_checkpoint

FAMILIES = ["bert", "roberta", "modernbert"]
PROMPTS = pd.DataFrame({
    "relation": ["capital", "capital_reverse"],
    "template": ["The capital of [X] is [MASK].", "[MASK] is the capital of [X]."],
    "subject": ["Italy", "Japan"], "answer": ["Rome", "Tokyo"],
})
PROMPTS["prompt"] = [t.replace("[X]", s) for t, s in zip(PROMPTS["template"], PROMPTS["subject"])]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """model_type → (model, tokenizer, sites by prompt index)."""
    root = tmp_path_factory.mktemp("tracing")
    out = {}
    for model_type in FAMILIES:
        model, tok = load_checkpoint(str(write_checkpoint(root / model_type, model_type)))
        limit = max_tokens(model.config)
        out[model_type] = model, tok, prompt_sites(PROMPTS, tok, encode_prompts(PROMPTS, tok, limit), limit)
    return out


def noise(site: Site, model, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    width = model.get_input_embeddings().weight.shape[1]
    return torch.randn(len(site.subject), width, generator=torch.Generator().manual_seed(seed)) * scale


# ---------------------------------------------------------------- a plain reference, stock HF modules only


def modules(model, model_type: str):
    """(embeddings, blocks, {component: per-layer modules}) by the HF models' own attribute names."""
    if model_type == "modernbert":
        body = model.model
        blocks = list(body.layers)
        return body.embeddings, blocks, {"attn": [b.attn.Wo for b in blocks], "mlp": [b.mlp.Wo for b in blocks]}
    body = getattr(model, model_type)
    blocks = list(body.encoder.layer)
    return body.embeddings, blocks, {"attn": [b.attention.output.dense for b in blocks],
                                     "mlp": [b.output.dense for b in blocks]}


def first(output):
    return output[0] if isinstance(output, tuple) else output


def replace_first(output, tensor):
    return (tensor, *output[1:]) if isinstance(output, tuple) else tensor


def gold_probability(model, ids: torch.Tensor, site: Site) -> float:
    """The gold answer's probability in one plain forward: the product over its masked pieces."""
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, site.masks].float().log_softmax(-1)
    return float(logits[range(len(site.gold)), site.gold].double().sum().exp())


def noising(site: Site, eps: torch.Tensor):
    """A forward hook for the embeddings module that adds `eps` at the subject's positions (the corruption)."""
    def corrupt(module, args, output):
        output = output.clone()
        output[0, site.subject] += eps
        return output
    return corrupt


def reference(model, model_type: str, site: Site, eps: torch.Tensor) -> tuple[float, float, dict]:
    """p_clean, p_corrupt and p_restored [layers, positions] per component, one patch per forward."""
    embeddings, blocks, parts = modules(model, model_type)
    parts = {"resid": blocks, **parts}
    ids = torch.tensor([site.ids])

    def p() -> float:
        return gold_probability(model, ids, site)

    clean = {}
    handles = [m.register_forward_hook(lambda m, a, o, key=(c, i): clean.__setitem__(key, first(o).clone()))
               for c, ms in parts.items() for i, m in enumerate(ms)]
    p_clean = p()
    for h in handles:
        h.remove()

    handles = [embeddings.register_forward_hook(noising(site, eps))]
    p_corrupt = p()
    restored = {}
    for component, ms in parts.items():
        grid = np.zeros((len(ms), len(site.ids)))
        for layer, m in enumerate(ms):
            for t in range(len(site.ids)):
                def patch(module, args, output, key=(component, layer), t=t):
                    value = first(output).clone()
                    value[0, t] = clean[key][0, t]
                    return replace_first(output, value)
                h = m.register_forward_hook(patch)
                grid[layer, t] = p()
                h.remove()
        restored[component] = grid
    for h in handles:
        h.remove()
    return p_clean, p_corrupt, restored


@pytest.mark.parametrize("model_type", FAMILIES)
def test_tracing_equals_a_plain_hook_loop(models, model_type):
    model, tok, sites = models[model_type]
    assert set(sites) == {0, 1}
    for site in sites.values():
        eps = noise(site, model)
        ours = trace(model, site, eps, ["resid", "attn", "mlp"], max_rows=7)  # rows split over passes
        p_clean, p_corrupt, restored = reference(model, model_type, site, eps)
        # log-probabilities within 1e-5: multi-piece answers of a random model have tiny probabilities
        assert np.log(ours.p_clean) == pytest.approx(np.log(p_clean), abs=1e-5)
        assert np.log(ours.p_corrupt) == pytest.approx(np.log(p_corrupt), abs=1e-5)
        assert abs(np.log(ours.p_clean / ours.p_corrupt)) > 1e-2  # the noise does something
        for component, grid in restored.items():
            np.testing.assert_allclose(np.log(ours.restored[component]), np.log(grid), atol=1e-5, rtol=0)
            np.testing.assert_allclose(restoration(ours.restored[component], ours.p_clean, ours.p_corrupt),
                                       restoration(grid, p_clean, p_corrupt), atol=1e-4, rtol=0)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_restoring_a_whole_layer_is_clean_and_restoring_nothing_is_corrupted(models, model_type):
    model, tok, sites = models[model_type]
    site = sites[0]
    eps = noise(site, model)
    clean = trace(model, site, eps, ["resid"])
    points = [hook_name(layer, "hook_resid_post") for layer in range(n_layers(model))]
    with torch.no_grad(), hooked(model, read=points) as seen:
        model(input_ids=torch.tensor([site.ids]))
    every = list(range(len(site.ids)))
    rows = [(-1, []), *((layer, every) for layer in range(n_layers(model)))]
    p = patched_probs(model, site, eps, "hook_resid_post", dict(seen), rows)
    assert p[0] == pytest.approx(clean.p_corrupt, rel=1e-5)
    np.testing.assert_allclose(p[1:], clean.p_clean, rtol=1e-5)
    assert np.allclose(restoration(p[1:], clean.p_clean, clean.p_corrupt), 1, atol=1e-3)
    assert restoration(p[:1], clean.p_clean, clean.p_corrupt)[0] == pytest.approx(0, abs=1e-4)


def test_no_noise_leaves_nothing_to_restore(models):
    model, tok, sites = models["bert"]
    site = sites[0]
    result = trace(model, site, noise(site, model, scale=0.0), ["resid", "attn", "mlp"])
    assert result.p_clean == result.p_corrupt
    for grid in result.restored.values():
        np.testing.assert_allclose(grid, result.p_clean, rtol=1e-5)
        assert np.isnan(restoration(grid, result.p_clean, result.p_corrupt)).all()  # defined: missing


def test_noise_is_seeded(models):
    model, tok, sites = models["roberta"]
    site = sites[1]
    a, b = noise_for(3, "x", (2, 5), 1.0), noise_for(3, "x", (2, 5), 1.0)
    assert torch.equal(a, b) and not torch.equal(a, noise_for(4, "x", (2, 5), 1.0))
    assert not torch.equal(a, noise_for(3, "y", (2, 5), 1.0))
    eps = lambda seed: noise_for(seed, "p", (len(site.subject), model.config.hidden_size), 1.0)  # noqa: E731
    one, two = trace(model, site, eps(1), ["mlp"]), trace(model, site, eps(1), ["mlp"])
    assert one.p_corrupt == two.p_corrupt and np.array_equal(one.restored["mlp"], two.restored["mlp"])
    assert trace(model, site, eps(2), ["mlp"]).p_corrupt != one.p_corrupt


def test_roles_place_the_subject_and_the_mask(models):
    for model_type, (model, tok, sites) in models.items():
        for site in sites.values():
            roles = site.roles()
            text = tok.decode([site.ids[t] for t in site.subject]).strip()
            assert text.lower() == PROMPTS.at[site.index, "subject"].lower(), model_type
            assert roles["mask"] == site.masks and roles["subject_first"][0] == site.subject[0]
            covered = sorted(t for r, ts in roles.items() if r != "subject_first" or ts != roles["subject_last"]
                             for t in ts)
            assert set(covered) == set(range(len(site.ids)))


def test_the_hook_layer_writes_the_full_embedding(models):
    model, tok, sites = models["bert"]
    ids = torch.tensor([sites[0].ids])
    with torch.no_grad(), hooked(model, read=[EMBED, hook_name(0, "hook_resid_pre")]) as seen:
        model(input_ids=ids)
    assert torch.equal(seen[EMBED], seen[hook_name(0, "hook_resid_pre")])


@pytest.mark.slow
def test_probe_runs_tracing_with_its_control(tiny_series, tiny_benchmark, tmp_path):
    result = probe(str(tiny_series / "checkpoint-8"), [str(tiny_benchmark)], {"tracing": {"sample": 2}},
                   out=tmp_path / "out", options={"tracing": {"components": "resid,mlp", "noise_seed": 1}})
    rows, scores = result.tables["tracing"], result.tables["tracing_scores"]
    assert set(rows["checkpoint"]) == {"checkpoint-8", "random-init"}
    assert set(rows["component"]) == {"resid", "mlp"} and set(rows["layer"]) == {0, 1}
    assert {"subject_last", "mask", "special"} <= set(rows["role"])
    assert rows["restoration"].notna().any()
    assert (scores["n"] >= 0).all() and len(scores) == len(rows.groupby(
        ["checkpoint", "relation", "group", "component", "layer", "role"]))
    again = tracing_scores(rows)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), scores.reset_index(drop=True), check_dtype=False)


# ---------------------------------------------------------------- head patching (attn.hook_z)


def reference_heads(model, model_type: str, site: Site, eps: torch.Tensor) -> np.ndarray:
    """p_restored [layers, heads]: each head's slice of the output projection's input (hook_z) restored at
    every position, one patch per forward, with hooks on the stock HF modules."""
    embeddings, blocks, parts = modules(model, model_type)
    outs = parts["attn"]  # the output projections: their input is the heads' outputs side by side
    heads = model.config.num_attention_heads
    d_head = model.config.hidden_size // heads
    ids = torch.tensor([site.ids])

    def p() -> float:
        return gold_probability(model, ids, site)

    clean = {}
    handles = [m.register_forward_pre_hook(lambda m, a, i=i: clean.__setitem__(i, a[0].clone()))
               for i, m in enumerate(outs)]
    p()
    for h in handles:
        h.remove()

    handle = embeddings.register_forward_hook(noising(site, eps))
    grid = np.zeros((len(outs), heads))
    for layer, m in enumerate(outs):
        for head in range(heads):
            cut = slice(head * d_head, (head + 1) * d_head)

            def patch(module, args, layer=layer, cut=cut):
                z = args[0].clone()
                z[0, :, cut] = clean[layer][0, :, cut]
                return (z, *args[1:])
            h = m.register_forward_pre_hook(patch)
            grid[layer, head] = p()
            h.remove()
    handle.remove()
    return grid


@pytest.mark.parametrize("model_type", FAMILIES)
def test_head_patching_equals_a_plain_hook_loop(models, model_type):
    model, tok, sites = models[model_type]
    for site in sites.values():
        eps = noise(site, model)
        ours = trace(model, site, eps, ["head"], max_rows=3)  # rows split over passes
        expected = reference_heads(model, model_type, site, eps)
        assert ours.restored["head"].shape == (n_layers(model), model.config.num_attention_heads)
        np.testing.assert_allclose(np.log(ours.restored["head"]), np.log(expected), atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_every_head_of_a_layer_at_once_is_the_layers_attention_output(models, model_type):
    """The attention output is the output projection (a Linear: W z + b) of hook_z in BERT, RoBERTa and
    ModernBERT alike, so restoring every head's z at every position is restoring hook_attn_out at every
    position — equal up to float rounding, and both are the component's `attn` rows at all positions."""
    model, tok, sites = models[model_type]
    site = sites[0]
    eps = noise(site, model)
    layers, heads = n_layers(model), model.config.num_attention_heads
    points = [hook_name(layer, p) for layer in range(layers) for p in ("attn.hook_z", "hook_attn_out")]
    with torch.no_grad(), hooked(model, read=points) as seen:
        model(input_ids=torch.tensor([site.ids]))
    clean = dict(seen)
    every_head = patched_probs(model, site, eps, "attn.hook_z", clean,
                               [(layer, list(range(heads))) for layer in range(layers)], over="head")
    every_position = patched_probs(model, site, eps, "hook_attn_out", clean,
                                   [(layer, list(range(len(site.ids)))) for layer in range(layers)])
    np.testing.assert_allclose(np.log(every_head), np.log(every_position), atol=1e-5, rtol=0)
    none = patched_probs(model, site, eps, "attn.hook_z", clean, [(0, [])], over="head")
    corrupt = trace(model, site, eps, ["head"])
    assert none[0] == pytest.approx(corrupt.p_corrupt, rel=1e-5)  # no head restored: the corrupted run


def test_head_rows_and_their_scores(models):
    """Head rows sit in the one row table (component head, role all, the head in `head`); the position
    sites' summary leaves them out and `head_scores` summarises them per layer × head."""
    from probekit.analyses.tracing import head_scores, role_rows

    model, tok, sites = models["bert"]
    frames = []
    for site in sites.values():
        result = trace(model, site, noise(site, model), ["resid", "head"])
        info = PROMPTS.loc[site.index, ["relation", "template", "subject", "answer", "prompt"]].to_dict()
        frames.append(pd.DataFrame(role_rows(result, site)).assign(**info, benchmark="b", group="all"))
    rows = pd.concat(frames, ignore_index=True).assign(checkpoint="c", run="r", step=1, seed="")
    heads = rows[rows["component"] == "head"]
    assert set(heads["role"]) == {"all"} and heads["head"].notna().all() and rows.loc[
        rows["component"] != "head", "head"].isna().all()
    assert len(heads) == 2 * n_layers(model) * model.config.num_attention_heads
    scores = head_scores(rows)
    assert len(scores) == len(heads) and set(scores["n"]) == {1}
    assert (scores["restoration_low"] <= scores["restoration"] + 1e-12).all()
    assert "head" not in set(tracing_scores(rows)["component"])


# ---------------------------------------------------------------- the report page


@pytest.fixture(scope="module")
def traced(probed_facts, tmp_path_factory):
    """Results of tracing the tiny series (italy's facts injected, france's held back; steps 0, 4 and 8, both
    methods, K = 10) and its built site: conftest's `probed_facts` (shared with the notebooks' tests) probed
    again for tracing alone in a copy, every unit read from its cache, so that the site has tracing only."""
    import shutil

    from conftest import FACTS_TRACING
    from probekit.report import build_report

    root = tmp_path_factory.mktemp("traced")
    shutil.copytree(probed_facts / "probe", root / "results")
    probe(str(probed_facts / "my_bert"), [str(probed_facts / "bench.csv")], ["tracing"], out=root / "results",
          options={"tracing": FACTS_TRACING["options"]}, at={"tracing": FACTS_TRACING["at"]})
    index = build_report(root / "results", root / "site")
    return root / "results", index.parent


@pytest.mark.slow
def test_the_tracing_page_has_its_heatmap_curves_heads_and_words(traced):
    from probekit.analyses.tracing import definitions

    results, site = traced
    html = (site / "tracing.html").read_text()
    docs = (site.parent / "docs" / "tracing.md").read_text()
    assert "## capital" in docs and "Read from the **injected** prompts" in docs
    manifest = ProbeResult.load(results).manifest
    options = manifest["options"]["tracing"]
    assert f"This run: corruption = Gaussian noise of {options['noise']} × σ" in docs
    # the definitions this run implements, from the manifest's tracing entry: K, σ's reference, joint scoring
    assert manifest["tracing"]["noise_samples"] == options["noise_samples"] == 10
    said = definitions({**options, **manifest["tracing"]})
    assert "K = 10 noise draws" in said and "countries-subjects" in said and "What this run's causal tracing" in docs
    assert 'id="chart-chart-capital-delta-p-by-site"' in html  # the heatmap, an interactive chart
    assert "**Top heads**" in docs and "step 8" in docs and "**Attention knockout**" in docs
    overview = (site / "index.html").read_text()
    assert "Causal tracing" in overview
    nav = (site.parent / "mkdocs.yml").read_text()
    assert "Causal tracing: tracing.md" in nav
    # the heatmap of every traced step (the chart's step slider picks one), its numbers downloadable beside it
    steps = sorted({int(s) for s in ProbeResult.load(results).tables["tracing_scores"]["step"].dropna()})
    assert steps == [0, 4, 8] and "data/capital-delta-p-by-site.csv" in html
    numbers = pd.read_csv(site / "data" / "capital-delta-p-by-site.csv")
    assert sorted(numbers["step"].unique()) == steps and {"component", "layer", "role", "delta_p"} <= set(numbers)
    assert "## Attribution patching against exact patching" in docs


@pytest.mark.slow
def test_the_notebook_draws_the_heatmap_and_curves(traced):
    from matplotlib.figure import Figure

    from probekit.core.errors import ProbekitError
    from probekit.report.tracing import tracing_curves, tracing_heatmap

    result = ProbeResult.load(traced[0])
    fig = tracing_heatmap(result, "capital")
    assert isinstance(fig, Figure) and "step 8" in fig.texts[0].get_text()
    assert [ax.get_title() for ax in fig.axes[:3]] == ["resid", "attn", "mlp"]
    assert "step 4" in tracing_heatmap(result.tables, "capital", step=4, method="attribution").texts[0].get_text()
    curves = tracing_curves(result, "capital", site=("mlp", 0, "subject_last"))
    assert isinstance(curves, Figure) and curves.axes[0].get_ylabel().endswith("p_restored − p_corrupt")
    assert {line.get_label() for line in curves.axes[0].get_lines()} >= {"injected", "held back"}
    with pytest.raises(ProbekitError, match="no tracing rows at step 3"):
        tracing_heatmap(result, "capital", step=3)
    with pytest.raises(ProbekitError, match="relation 'nope'"):
        tracing_curves(result, "nope")


# ---------------------------------------------------------------- shards


@pytest.mark.slow
def test_sharded_tracing_equals_one_process(tiny_series, tiny_benchmark, tmp_path):
    """Two `--shard I/2` runs (the last merges) write the tables of one process, control included."""
    import shutil

    from probekit.running.results import ProbeResult

    series = tmp_path / "series"
    for step in (4, 8):  # no step 0: the runner adds the random-init control, traced too
        shutil.copytree(tiny_series / f"checkpoint-{step}", series / f"checkpoint-{step}")
    args = (str(series / "*"), [str(tiny_benchmark)], ["tracing"])
    options = {"tracing": {"sample": 2, "components": "resid,attn,head"}}
    one = probe(*args, out=tmp_path / "one", options=options)
    assert probe(*args, out=tmp_path / "sharded", shard="0/2", options=options) is None
    last = probe(*args, out=tmp_path / "sharded", shard="1/2", options=options)
    assert last.manifest["world_size"] == 2
    merged = ProbeResult.load(tmp_path / "sharded")
    assert {"tracing", "tracing_scores", "tracing_head_scores"} <= set(one.tables)
    assert "random-init" in set(one.tables["tracing"]["checkpoint"])
    assert {u["shard"][0] for u in last.manifest["units"]} == {0, 1}
    for name, table in one.tables.items():
        pd.testing.assert_frame_equal(merged.tables[name], table, check_exact=True, obj=name)


# ---------------------------------------------------------------- attention knockout (attn.hook_mask)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_knockout_zeroes_the_mask_to_subject_pattern_and_renormalises(models, model_type):
    """Blocking [MASK] → subject at layer l: that layer's pattern (read in the same run) is the unblocked
    pattern with those entries zeroed and each [MASK] row renormalised; every other row is unchanged."""
    from probekit.analyses.tracing import _block, knockout_probs

    model, tok, sites = models[model_type]
    site = sites[0]
    ids = torch.tensor([site.ids])
    for layer in range(n_layers(model)):
        pattern = hook_name(layer, "attn.hook_pattern")
        with torch.no_grad(), hooked(model, read=[pattern]) as seen:
            model(input_ids=ids)
        before = seen[pattern][0].double()
        with torch.no_grad(), hooked(model, read=[pattern], write={
                hook_name(layer, "attn.hook_mask"): _block(0, site.masks, site.subject)}) as seen:
            model(input_ids=ids)
        after = seen[pattern][0].double()
        expected = before.clone()
        q, k = torch.tensor(site.masks)[:, None], torch.tensor(site.subject)[None, :]
        expected[:, q, k] = 0
        expected[:, site.masks] /= expected[:, site.masks].sum(-1, keepdim=True)
        torch.testing.assert_close(after, expected, atol=1e-6, rtol=0)
    # batched rows (one layer each) equal one run per layer, under SDPA as under eager
    batched = knockout_probs(model, site, n_layers(model), max_rows=1)
    whole = knockout_probs(model, site, n_layers(model))
    np.testing.assert_allclose(np.log(batched), np.log(whole), atol=1e-5, rtol=0)
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        np.testing.assert_allclose(np.log(knockout_probs(model, site, n_layers(model))), np.log(whole), atol=1e-5)
    finally:
        model.set_attn_implementation(previous)
    result = trace(model, site, noise(site, model), ["knockout"])
    np.testing.assert_allclose(result.restored["knockout"][:, 0], whole, rtol=1e-6)
    assert np.abs(np.log(whole / result.p_clean)).max() > 1e-3  # blocking the subject does something


# ---------------------------------------------------------------- subject swap, effect and the cache key


COUNTRIES = pd.DataFrame({
    "relation": "capital", "template": "The capital of [X] is [MASK].",
    "subject": ["Italy", "Spain", "Japan", "France", "Egypt", "Peru", "Chile", "China", "Kenya", "Nepal", "Cuba",
                "Greece", "Norway", "Sweden", "Poland", "Brazil"],
    "answer": ["Rome", "Madrid", "Tokyo", "Paris", "Cairo", "Lima", "Santiago", "Beijing", "Nairobi", "Kathmandu",
               "Havana", "Athens", "Oslo", "Stockholm", "Warsaw", "Brasilia"]})
COUNTRIES["prompt"] = [t.replace("[X]", s) for t, s in zip(COUNTRIES["template"], COUNTRIES["subject"])]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_subject_swap_runs_the_counterfactual_prompt(models, model_type):
    """The swapped subject has the subject's piece count and another answer, and the corrupted run is the plain
    model on the counterfactual prompt's ids; every restored site equals the plain hook loop as with noise."""
    from probekit.analyses.tracing import swap_corruption, swap_pieces

    model, tok, _ = models[model_type]
    limit = max_tokens(model.config)
    sites = prompt_sites(COUNTRIES, tok, encode_prompts(COUNTRIES, tok, limit), limit)
    pairs = list(zip(COUNTRIES["subject"], COUNTRIES["answer"]))
    swapped = {i: swap_pieces(site, COUNTRIES.loc[i], pairs, tok, seed=0) for i, site in sites.items()}
    found = {i: pieces for i, pieces in swapped.items() if pieces is not None}
    assert len(found) >= 4, "the countries give most subjects a partner of the same piece count"
    for i, pieces in list(found.items())[:2]:
        site = sites[i]
        ids = list(site.ids)
        for t, piece in zip(site.subject, pieces):
            ids[t] = piece
        partner = tok.decode([ids[t] for t in site.subject]).strip()
        row = COUNTRIES[COUNTRIES["subject"].str.lower() == partner.lower()]
        assert len(row) == 1 and row["answer"].iloc[0] != COUNTRIES.at[i, "answer"] and partner != COUNTRIES.at[
            i, "subject"]
        assert tok(COUNTRIES.at[i, "template"].replace("[X]", row["subject"].iloc[0]).replace(
            "[MASK]", " ".join([tok.mask_token] * len(site.gold))))["input_ids"] == ids
        delta = swap_corruption(model, site, pieces)
        result = trace(model, site, delta, ["resid", "mlp"], max_rows=5)
        assert np.log(result.p_corrupt) == pytest.approx(np.log(gold_probability(model, torch.tensor([ids]), site)),
                                                         abs=1e-5)
        p_clean, p_corrupt, restored = reference(model, model_type, site, delta)
        for component in ("resid", "mlp"):
            np.testing.assert_allclose(np.log(result.restored[component]), np.log(restored[component]), atol=1e-5)
    # the draw is seeded: the same seed the same partner, and some prompt draws another with another seed
    again = {i: swap_pieces(sites[i], COUNTRIES.loc[i], pairs, tok, seed=0) for i in found}
    other = {i: swap_pieces(sites[i], COUNTRIES.loc[i], pairs, tok, seed=1) for i in found}
    assert again == found and other != found


def test_a_prompt_without_a_same_length_partner_has_none(models):
    from probekit.analyses.tracing import swap_pieces

    model, tok, sites = models["bert"]
    site = sites[0]
    row = PROMPTS.loc[0]
    assert swap_pieces(site, row, [("Italy", "Rome")], tok, 0) is None  # only itself
    assert swap_pieces(site, row, [("Italy", "Rome"), ("Vatican", "Rome")], tok, 0) is None  # same answer
    long = "Federal Democratic Republic of Nepal"
    assert swap_pieces(site, row, [(long, "Kathmandu")], tok, 0) is None  # more pieces


def test_the_cache_key_holds_the_corruption_and_the_method():
    from types import SimpleNamespace

    from probekit.analyses import Context, get
    from probekit.analyses.tracing import TracingOptions
    from probekit.running.runner import unit_key

    tracing = get(["tracing"])[0]
    ref, bench = SimpleNamespace(identity="ckpt"), SimpleNamespace(sha256="bench", groups=None)

    def key(**values) -> str:
        return unit_key(ref, tracing, Context(options={"tracing": TracingOptions(**values)}), bench)

    base = key()
    assert key() == base
    for change in ({"corrupt": "subject-swap"}, {"noise_seed": 1}, {"noise": 2.0}, {"method": "both"},
                   {"metric": "logprob"}, {"sample": 8}, {"noise_samples": 3}):
        assert key(**change) != base, change
    from probekit.core.errors import ProbekitError

    with pytest.raises(ProbekitError, match="corrupt"):
        TracingOptions(corrupt="swap").validate("tracing")


def test_effect_is_the_restorations_numerator(models):
    from probekit.analyses.tracing import role_rows

    model, tok, sites = models["roberta"]
    site = sites[0]
    result = trace(model, site, noise(site, model), ["resid", "head", "knockout"])
    rows = pd.DataFrame(role_rows(result, site))
    np.testing.assert_allclose(rows["effect"], rows["p_restored"] - result.p_corrupt)
    np.testing.assert_allclose(rows["restoration"], rows["effect"] / (result.p_clean - result.p_corrupt))


@pytest.mark.slow
def test_subject_swap_through_probe_counts_the_skipped(tiny_series, tiny_benchmark, tmp_path):
    """The tiny benchmark's capital_reverse and plural relations hold one subject each: no counterfactual, so
    their prompts are skipped — one `skipped` row each, no site rows; the capital prompts are traced or skipped."""
    result = probe(str(tiny_series / "checkpoint-8"), [str(tiny_benchmark)], ["tracing"], out=tmp_path / "out",
                   options={"tracing": {"corrupt": "subject-swap", "components": "resid"}})
    rows = result.tables["tracing"]
    skipped = rows[rows["component"] == "skipped"]
    assert {"capital_reverse", "plural"} <= set(skipped["relation"])
    assert skipped["restoration"].isna().all() and skipped["noise_std"].isna().all()
    traced = rows[rows["component"] == "resid"]
    assert not ({"capital_reverse", "plural"} & set(traced["relation"]))
    assert traced["noise_std"].isna().all()
    scores = result.tables["tracing_scores"]
    for (checkpoint, relation), got in scores.groupby(["checkpoint", "relation"]):
        expected = skipped[(skipped["checkpoint"] == checkpoint) & (skipped["relation"] == relation)]
        assert set(got["skipped"]) == {len(expected)}


# ---------------------------------------------------------------- multi-piece answers, K draws, σ, the share


WORDS = ("Rome Paris Tokyo Cairo Lima Nairobi Madrid Santiago city river king queen people music the of and north "
         "south old new war language capital").split()


def answers_of_1_to_6_pieces(tok) -> pd.DataFrame:
    """Prompts `The capital of Italy is [MASK].` whose answers are spelled by 1, 2, … 6 pieces: words that are one
    piece each after a space, joined (found with the tokenizer alone)."""
    single = [w for w in WORDS if len(tok(f"The capital of Italy is {w}.", add_special_tokens=False)["input_ids"])
              == len(tok("The capital of Italy is.", add_special_tokens=False)["input_ids"]) + 1]
    assert len(single) >= 6
    frame = pd.DataFrame({"relation": "capital", "template": "The capital of [X] is [MASK].", "subject": "Italy",
                          "answer": [" ".join(single[:k]) for k in range(1, 7)]})
    frame["prompt"] = "The capital of Italy is [MASK]."
    return frame


@pytest.mark.parametrize("model_type", FAMILIES)
def test_restoring_the_last_layer_at_every_mask_gives_the_clean_answer(models, model_type):
    """Issue 32: restoring the last layer's residual stream at every [MASK] is the clean run, whatever the noise
    — for answers of 1 to 6 pieces, scored jointly over their masks. The reference is a plain forward-hook loop
    on the stock HF modules (the last block's output patched at the masks, the noise added to the embeddings
    module's output); probekit's mask row equals it and p_clean to 1e-5 in log-probability, with K = 2 draws."""
    from probekit.analyses.tracing import role_rows

    model, tok, _ = models[model_type]
    limit = max_tokens(model.config)
    frame = answers_of_1_to_6_pieces(tok)
    sites = prompt_sites(frame, tok, encode_prompts(frame, tok, limit), limit)
    assert sorted(len(site.gold) for site in sites.values()) == [1, 2, 3, 4, 5, 6]
    embeddings, blocks, _ = modules(model, model_type)
    last = n_layers(model) - 1
    for site in sites.values():
        assert tok.decode(site.gold).strip() == frame.at[site.index, "answer"].lower() if model_type == "bert" \
            else tok.decode(site.gold).strip() == frame.at[site.index, "answer"]
        ids = torch.tensor([site.ids])
        draws = torch.stack([noise(site, model, scale=3.0, seed=s) for s in (0, 1)])
        clean = {}
        handle = blocks[-1].register_forward_hook(lambda m, a, o: clean.__setitem__("last", first(o).clone()))
        p_clean = gold_probability(model, ids, site)
        handle.remove()

        def patch(module, args, output):
            value = first(output).clone()
            value[0, site.masks] = clean["last"][0, site.masks]
            return replace_first(output, value)

        corrupt, restored = [], []
        for eps in draws:
            handles = [embeddings.register_forward_hook(noising(site, eps))]
            corrupt.append(gold_probability(model, ids, site))
            handles.append(blocks[-1].register_forward_hook(patch))
            restored.append(gold_probability(model, ids, site))
            for h in handles:
                h.remove()
        assert abs(np.log(np.mean(corrupt) / p_clean)) > 1e-3  # the noise does something
        assert np.log(np.mean(restored)) == pytest.approx(np.log(p_clean), abs=1e-5)  # the reference's property

        ours = trace(model, site, draws, ["resid"], max_rows=5)
        assert np.log(ours.p_clean) == pytest.approx(np.log(p_clean), abs=1e-5)
        assert np.log(ours.p_corrupt) == pytest.approx(np.log(np.mean(corrupt)), abs=1e-5)
        rows = pd.DataFrame(role_rows(ours, site))
        row = rows[(rows["component"] == "resid") & (rows["layer"] == last) & (rows["role"] == "mask")].iloc[0]
        assert row["positions"] == len(site.gold) and row["samples"] == 2
        assert np.log(row["p_restored"]) == pytest.approx(np.log(p_clean), abs=1e-5)
        assert row["restoration"] == pytest.approx(1.0, abs=1e-4)
        if len(site.gold) > 1:  # one mask of several restored is not the answer's read-out
            assert abs(np.log(ours.restored["resid"][last, site.masks[0]] / p_clean)) > 1e-3


@pytest.mark.parametrize("model_type", ["bert", "modernbert"])
def test_k_draws_are_the_mean_of_single_draws_batched_as_rows(models, model_type):
    """K noise draws in one batch (rows × draws, split over passes) give, at every site, the mean over the draws
    of the probability each draw gives alone — and the corrupted run the mean of the corrupted runs: the
    average is taken on the probability scale before any difference (ROME's samples)."""
    model, tok, sites = models[model_type]
    site = sites[0]
    draws = torch.stack([noise(site, model, scale=2.0, seed=s) for s in range(3)])
    together = trace(model, site, draws, ["resid", "mlp", "head"], max_rows=4)  # 4 rows a pass: split draws
    alone = [trace(model, site, eps, ["resid", "mlp", "head"]) for eps in draws]
    assert together.draws == 3 and all(a.draws == 1 for a in alone)
    assert together.p_corrupt == pytest.approx(np.mean([a.p_corrupt for a in alone]), rel=1e-5)
    assert len({round(float(np.log(a.p_corrupt)), 6) for a in alone}) == 3  # the draws differ
    for component in ("resid", "mlp", "head"):
        np.testing.assert_allclose(together.restored[component],
                                   np.mean([a.restored[component] for a in alone], 0), rtol=1e-5)
    for component in ("resid", "mlp"):
        np.testing.assert_allclose(together.masks[component], np.mean([a.masks[component] for a in alone], 0),
                                   rtol=1e-5)
    # the reference loop, draw by draw, on the stock modules
    expected = [reference(model, model_type, site, eps) for eps in draws]
    np.testing.assert_allclose(np.log(together.restored["mlp"]),
                               np.log(np.mean([e[2]["mlp"] for e in expected], 0)), atol=1e-5, rtol=0)


def test_attribution_averages_its_draws_on_the_probability_scale(models):
    from probekit.analyses.attribution import as_trace, estimate

    model, tok, sites = models["roberta"]
    site = sites[0]
    draws = torch.stack([noise(site, model, seed=s) for s in range(3)])
    for metric in ("prob", "logprob"):
        together = estimate(model, [site, sites[1]], [draws, draws[:1].clone() if False else
                                                      noise(sites[1], model)], ["resid", "head"], metric,
                            max_rows=2)[0]
        alone = [estimate(model, [site], [eps], ["resid", "head"], metric)[0] for eps in draws]
        assert together.corrupt.shape == (3,) and together.delta["resid"].shape[0] == 3
        for j, one in enumerate(alone):
            scale = np.abs(one.delta["resid"]).max()
            np.testing.assert_allclose(together.delta["resid"][j] / scale, one.delta["resid"][0] / scale, atol=1e-5)
        mean = as_trace(together, metric)
        singles = [as_trace(one, metric) for one in alone]
        assert mean.p_corrupt == pytest.approx(np.mean([s.p_corrupt for s in singles]), rel=1e-5)
        scale = max(np.abs(s.restored["resid"]).max() for s in singles)
        np.testing.assert_allclose(mean.restored["resid"] / scale,
                                   np.mean([s.restored["resid"] for s in singles], 0) / scale, atol=1e-5)
        last = n_layers(model) - 1  # the mask role's joint estimate: the sum of the estimates over the masks
        assert mean.masks["resid"][last] == pytest.approx(mean.restored["resid"][last, site.masks[0]], rel=1e-9)


def test_sigma_comes_from_the_fixed_reference_subjects(models):
    """σ is the std of the embeddings module's output over the shipped countries' subjects (country and capital
    names, read here from the CSV), each tokenised alone, special tokens left out — computed here with a hook
    on the stock embeddings module, one subject at a time."""
    import csv

    from probekit.analyses.tracing import reference_std, reference_subjects
    from probekit.benchmarks import HERE

    with open(HERE / "countries.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = list(dict.fromkeys([r["country"].strip() for r in rows] + [r["capital"].strip() for r in rows]))
    assert reference_subjects() == names and len(names) > 400
    for model_type in ("bert", "roberta"):
        model, tok, _ = models[model_type]
        embeddings, _, _ = modules(model, model_type)
        seen = []
        handle = embeddings.register_forward_hook(lambda m, a, o: seen.append(o.detach().clone()))
        values = []
        with torch.no_grad():
            for name in names[:60]:
                enc = tok(name, return_special_tokens_mask=True)
                model(input_ids=torch.tensor([enc["input_ids"]]))
                keep = [t for t, s in enumerate(enc["special_tokens_mask"]) if not s]
                values.append(seen[-1][0, keep].double().flatten())
        handle.remove()
        expected = float(torch.cat(values).std())
        assert reference_std(model, tok, names[:60], batch=7) == pytest.approx(expected, rel=1e-6)
        assert reference_std(model, tok) > 0


def _score_rows(rows: list[dict]) -> pd.DataFrame:
    base = {"checkpoint": "c", "run": "r", "step": 5, "seed": "", "benchmark": "b", "relation": "capital",
            "group": "injected", "method": "exact", "head": None, "template": "t", "subject": "s"}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_the_share_is_a_ratio_of_means_missing_where_the_gap_is_unclear():
    """restoration = mean Δp / mean (p_clean − p_corrupt) over the prompts of the site, not a mean of ratios (a
    prompt whose corruption barely moves p does not swing it); missing where the gap's interval includes 0;
    gap and its interval are columns; the last layer's residual stream at the mask is by construction."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        p_clean = 0.3 + 0.01 * i
        p_corrupt = p_clean - 0.1 if i else p_clean - 1e-6  # prompt 0: the corruption barely moves p
        for component, layer, role, restored in (("resid", 1, "mask", p_clean), ("mlp", 0, "subject_last",
                                                                                   p_corrupt + 0.04 * rng.random())):
            rows.append({"prompt": f"p{i}", "answer": "a", "component": component, "layer": layer, "role": role,
                         "effect": restored - p_corrupt, "p_clean": p_clean, "p_corrupt": p_corrupt,
                         "restoration": (restored - p_corrupt) / (p_clean - p_corrupt)})
    frame = _score_rows(rows)
    scores = tracing_scores(frame).set_index(["component", "layer"])
    mlp = frame[frame["component"] == "mlp"]
    gap = (mlp["p_clean"] - mlp["p_corrupt"]).mean()
    assert scores.loc[("mlp", 0), "gap"] == pytest.approx(gap)
    assert scores.loc[("mlp", 0), "restoration"] == pytest.approx(mlp["effect"].mean() / gap)
    assert abs(mlp["restoration"].mean() - mlp["effect"].mean() / gap) > 0.5  # a mean of ratios would differ
    assert scores.loc[("mlp", 0), "restoration_low"] <= scores.loc[("mlp", 0), "restoration"] <= \
        scores.loc[("mlp", 0), "restoration_high"]
    assert scores.loc[("mlp", 0), "gap_low"] > 0 and scores.loc[("mlp", 0), "n"] == 12
    assert scores.loc[("resid", 1), "restoration"] == pytest.approx(1.0)
    assert list(scores["by_construction"]) == [True, False] or dict(scores["by_construction"]) == {
        ("resid", 1): True, ("mlp", 0): False}
    # a gap whose interval includes 0: the share is missing, Δp is not
    unclear = frame.assign(p_corrupt=frame["p_clean"] + np.where(np.arange(len(frame)) % 4 < 2, 0.05, -0.05))
    unclear = unclear.assign(effect=0.01)
    found = tracing_scores(unclear)
    assert found["restoration"].isna().all() and found["restoration_low"].isna().all()
    assert found["effect"].notna().all() and (found["gap_low"] < 0).all() and (found["gap_high"] > 0).all()


# ---------------------------------------------------------------- hostile input (issue 33)


def _bench(tmp_path, name: str, rows: str) -> str:
    path = tmp_path / f"{name}.csv"
    path.write_text("relation,template,subject,answer\n" + rows)
    return str(path)


FAST = {"components": "resid", "noise_samples": 2}


@pytest.mark.slow
def test_adding_a_prompt_changes_no_other_prompts_rows(tiny_series, tmp_path):
    """σ comes from a fixed reference set and each prompt's noise from its own text: the rows of the prompts two
    benchmarks share are equal, one benchmark holding one prompt more."""
    rows = ("capital,the capital of [X] is [MASK].,italy,rome\n"
            "capital,the capital of [X] is [MASK].,france,paris\n")
    extra = "capital,the capital of [X] is [MASK].,rome,paris\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    few = probe(str(tiny_series / "checkpoint-8"), [_bench(tmp_path / "a", "bench", rows)], ["tracing"],
                out=tmp_path / "few", options={"tracing": FAST}, control=False).tables["tracing"]
    more = probe(str(tiny_series / "checkpoint-8"), [_bench(tmp_path / "b", "bench", rows + extra)], ["tracing"],
                 out=tmp_path / "more", options={"tracing": FAST}, control=False).tables["tracing"]
    key = ["prompt", "component", "layer", "role"]
    shared = more[more["prompt"].isin(set(few["prompt"]))]
    assert len(shared) == len(few) > 0
    assert set(more["prompt"]) - set(few["prompt"]) == {"the capital of rome is [MASK]."}
    pd.testing.assert_frame_equal(few.sort_values(key).reset_index(drop=True)[key + ["p_corrupt", "p_restored",
                                                                                     "noise_std", "samples"]],
                                  shared.sort_values(key).reset_index(drop=True)[key + ["p_corrupt", "p_restored",
                                                                                        "noise_std", "samples"]])
    assert set(few["samples"].dropna()) == {2}


@pytest.mark.slow
def test_prompts_that_cannot_be_traced_are_counted_by_reason_and_said(tiny_series, tmp_path, caplog):
    """Templates without [X] or with two, a zero-width subject: each prompt skipped with its reason in the row
    table, one line saying how many per reason, the group kept in tracing_scores with its count — a group none
    of whose prompts was traced included. The cost is said before the bulk of a checkpoint."""
    import logging

    bench = _bench(tmp_path, "hostile", "capital,the capital of [X] is [MASK].,italy,rome\n"
                                        "capital,the capital of [X] is [MASK].,france,paris\n"
                                        "capital,the capital of [X] is [MASK].,\u200b,rome\n"
                                        "plural,the king of the [MASK].,king,kings\n"
                                        "echo,the [X] of [X] is [MASK].,king,queen\n")
    with caplog.at_level(logging.INFO, logger="probekit"):
        result = probe(str(tiny_series / "checkpoint-8"), [bench], ["tracing"], out=tmp_path / "out",
                       options={"tracing": FAST}, control=False)
    rows, scores = result.tables["tracing"], result.tables["tracing_scores"]
    skipped = rows[rows["component"] == "skipped"].set_index("relation")
    assert skipped.loc["plural", "reason"] == "no [X] in the template"
    assert skipped.loc["echo", "reason"] == "[X] more than once in the template"
    assert skipped.loc["capital", "reason"] == "the subject has no piece (empty or invisible)"
    counts = scores.groupby("relation")["skipped"].max()
    assert dict(counts) == {"capital": 1, "echo": 1, "plural": 1}  # no group dropped
    empty = scores[scores["relation"].isin(["plural", "echo"])]
    assert set(empty["component"]) == {"skipped"} and (empty["n"] == 0).all()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tracing hostile:")]
    assert said == ["tracing hostile: 3 prompts not traced ([X] more than once in the template: 1; no [X] in the "
                    "template: 1; the subject has no piece (empty or invisible): 1); 2 traced"]
    assert any("tracing checkpoint-8: 2 prompts × ~" in r.getMessage() and "2 draws" in r.getMessage()
               for r in caplog.records)
    assert result.manifest["tracing"]["noise_samples"] == 2
    assert result.manifest["tracing"]["noise_reference"]["name"] == "countries-subjects"
    sigma = result.manifest["tracing"]["sigma"]["checkpoint-8"]
    assert rows["noise_std"].dropna().unique().tolist() == [pytest.approx(3.0 * sigma)]


@pytest.mark.slow
def test_nothing_to_trace_is_said_in_one_line(tiny_series, tmp_path, caplog):
    """No template has [X]; only minimal pairs: the run ends with tables holding the counts and one line why."""
    import logging

    bench = _bench(tmp_path, "nox", "plural,the king of the [MASK].,king,kings\n")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("good,bad\nthe king is old.,the king are old.\n")
    with caplog.at_level(logging.WARNING, logger="probekit"):
        result = probe(str(tiny_series / "checkpoint-8"), [bench], ["tracing"], out=tmp_path / "one",
                       options={"tracing": FAST}, control=False)
        assert result.tables["tracing_scores"]["skipped"].tolist() == [1]
        probe(str(tiny_series / "checkpoint-8"), [str(pairs)], ["tracing"], out=tmp_path / "two",
              options={"tracing": FAST}, control=False)
    lines = [r.getMessage() for r in caplog.records]
    assert "tracing nox: 1 prompts not traced (no [X] in the template: 1); nothing traced" in lines
    assert any(line.startswith("tracing: no fill-mask prompts in this run") for line in lines)


@pytest.mark.slow
def test_subject_swap_without_any_counterfactual_keeps_its_groups(tiny_series, tmp_path):
    """Issue 33: every prompt without a counterfactual of as many pieces — tables with the counts, no traceback."""
    bench = _bench(tmp_path, "lonely", "capital,the capital of [X] is [MASK].,italy,rome\n"
                                       "plural,the [X] of the [MASK].,king,kings\n")
    result = probe(str(tiny_series / "checkpoint-8"), [bench], ["tracing"], out=tmp_path / "out", control=False,
                   options={"tracing": {**FAST, "corrupt": "subject-swap"}})
    scores = result.tables["tracing_scores"]
    assert sorted(scores["relation"]) == ["capital", "plural"] and set(scores["component"]) == {"skipped"}
    assert scores["skipped"].tolist() == [1, 1]
    assert set(result.tables["tracing"]["reason"]) == {"no counterfactual subject of the relation with as many pieces"}


@pytest.mark.parametrize("options, message", [
    ({"noise": float("nan")}, "option noise=nan is outside"),
    ({"noise": float("inf")}, "option noise=inf is outside"),
    ({"noise": -1.0}, "option noise=-1.0 is outside"),
    ({"noise_samples": 0}, "option noise_samples=0 is outside"),
    ({"method": "attribution", "components": "knockout"}, "knockout has no attribution estimate"),
])
def test_bad_options_are_refused_in_one_line(options, message):
    from probekit.analyses.tracing import TracingOptions
    from probekit.core.errors import ProbekitError

    with pytest.raises(ProbekitError, match=message) as caught:
        TracingOptions(**options).validate("tracing")
    assert "\n" not in str(caught.value)
    TracingOptions(method="both", components="knockout").validate("tracing")  # exact knockout beside: fine


def test_the_cli_refuses_nan_noise_and_attribution_knockout(tiny_series, tmp_path):
    from click.testing import CliRunner

    from probekit.cli import main

    for extra, said in ((["--noise", "nan"], "noise"), (["--noise", "inf"], "noise"),
                        (["--trace-method", "attribution", "--trace-components", "knockout"],
                         "knockout has no attribution estimate")):
        run = CliRunner().invoke(main, ["probe", str(tiny_series / "checkpoint-8"), "--with", "tracing",
                                        "--out", str(tmp_path / "x"), *extra])
        assert run.exit_code != 0 and said in run.output and "Traceback" not in run.output, run.output


def test_the_cost_is_estimated_from_a_first_batch_not_the_first_prompt(caplog):
    """Issue 33: estimated from the first prompt alone (which pays the warm-up), a 4-minute run was said to take
    2.3 h. The rate of the batch after it, per site (prompts differ in length), times the sites left."""
    import logging

    from probekit.analyses.tracing import FIRST_BATCH, Tracing, cost_estimate

    sites = [10] * 4 + [20] * 46  # 50 prompts, 4 short ones first
    elapsed = [100.0]  # a slow first prompt, then 0.1 s a site
    for n in sites[1:FIRST_BATCH]:
        elapsed.append(elapsed[-1] + 0.1 * n)
    total = cost_estimate(elapsed, sites)
    assert total == pytest.approx(111.0 + 0.1 * 20 * 42)  # 111 s so far and 84 s to go, not 50 × 100 s
    assert cost_estimate([2.0], sites[:2]) == pytest.approx(4.0)  # one prompt measured: all there is
    assert cost_estimate([2.0, 4.0, 6.0], [10, 10, 10]) == pytest.approx(6.0)  # all done: the time taken
    with caplog.at_level(logging.INFO, logger="probekit"):
        Tracing._say_cost(logging.getLogger("probekit"), "checkpoint-8", sites, 10, elapsed, checkpoints=5)
    line = caplog.records[-1]
    assert line.levelno == logging.INFO and line.getMessage() == (
        "tracing checkpoint-8: 50 prompts × ~19 sites × 10 draws × 5 checkpoints; about 3 min a checkpoint (from "
        "the first 8 prompts, 111.00 s), about 16 min for the 5 (+ the random-init control)")


def test_definitions_state_what_the_run_implements():
    from probekit.analyses.tracing import TracingOptions, definitions, manifest_settings

    text = definitions(manifest_settings(TracingOptions(noise_samples=7), {"checkpoint-8": 0.3}))
    for words in ("embeddings module's output", "LayerNorm", "ROME", "K = 7", "countries-subjects",
                  "checkpoint-8: 0.1", "product of the pieces' probabilities", "ratio of means",
                  "Δp = p_restored − p_corrupt", "exactly (no noise, no samples)", "By construction"):
        assert words in text, words
    swap = definitions(manifest_settings(TracingOptions(corrupt="subject-swap", noise_samples=3), {}))
    assert "up to 3 counterfactual subjects" in swap and "countries-subjects" not in swap
