import pandas as pd
import pytest
import torch

from probekit import ProbekitError
from probekit.models.hooks import POINTS, hook_name, hook_names, hooked, zero_head
from probekit.models.series import load_checkpoint


@pytest.fixture(scope="module")
def model_and_inputs(tiny_series):
    model, tok = load_checkpoint(str(tiny_series / "checkpoint-8"), attn_implementation="sdpa")
    return model, tok(["the capital of italy is rome.", "a king"], return_tensors="pt", padding=True)


def test_every_point_reads_in_transformer_lens_layout(model_and_inputs):
    model, inputs = model_and_inputs
    c = model.config
    batch, pos = inputs["input_ids"].shape
    d_head = c.hidden_size // c.num_attention_heads
    with torch.no_grad(), hooked(model, read=hook_names(c.num_hidden_layers)) as seen:
        out = model.bert(**inputs)
    shapes = {"hook_resid_pre": (batch, pos, c.hidden_size), "hook_resid_post": (batch, pos, c.hidden_size),
              "attn.hook_pattern": (batch, c.num_attention_heads, pos, pos)}
    for layer in range(c.num_hidden_layers):
        for point in POINTS:
            assert seen[hook_name(layer, point)].shape == shapes.get(point, (batch, pos, c.num_attention_heads, d_head))
    assert torch.equal(seen[hook_name(c.num_hidden_layers - 1, "hook_resid_post")], out.last_hidden_state)
    assert torch.equal(seen[hook_name(1, "hook_resid_pre")], seen[hook_name(0, "hook_resid_post")])


def test_writing_zero_to_a_head_equals_zeroing_its_value_projection(model_and_inputs):
    model, inputs = model_and_inputs
    with torch.no_grad(), hooked(model, write={hook_name(0, "attn.hook_z"): zero_head(1)}):
        ablated = model.bert(**inputs).last_hidden_state
    d = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        value = model.bert.encoder.layer[0].attention.self.value
        saved = value.weight.clone(), value.bias.clone()
        value.weight[d:2 * d] = 0
        value.bias[d:2 * d] = 0
        try:
            silenced = model.bert(**inputs).last_hidden_state
        finally:
            value.weight.copy_(saved[0])
            value.bias.copy_(saved[1])
        plain = model.bert(**inputs).last_hidden_state
    assert torch.allclose(ablated, silenced, atol=1e-5)
    assert not torch.allclose(ablated, plain, atol=1e-3)


def test_hooks_are_removed_even_when_the_block_fails(model_and_inputs):
    model, inputs = model_and_inputs
    modules = list(model.modules())
    with pytest.raises(RuntimeError, match="interrupted"):
        with hooked(model, read=hook_names(2), write={hook_name(1, "attn.hook_v"): zero_head(0)}):
            assert model.config._attn_implementation == "eager"
            raise RuntimeError("interrupted")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in modules)
    assert model.config._attn_implementation == "sdpa"


def test_unknown_and_read_only_points_are_refused(model_and_inputs):
    model, _ = model_and_inputs
    with pytest.raises(ProbekitError, match="no hook point 'blocks.7.attn.hook_q'.*layers 0–1"):
        with hooked(model, read=["blocks.7.attn.hook_q"]):
            pass
    with pytest.raises(ProbekitError, match="read-only"):
        with hooked(model, write={hook_name(0, "attn.hook_pattern"): lambda t: t}):
            pass
    with pytest.raises(ProbekitError, match="must keep the shape"):
        with torch.no_grad(), hooked(model, write={hook_name(0, "hook_resid_post"): lambda t: t[:, :1]}):
            model.bert(input_ids=torch.tensor([[2, 5, 3]]))


# ---------------------------------------------------------------- head ablation, all heads of a layer in one pass

ABLATED = {"bert": lambda m, l: m.bert.encoder.layer[l].attention.output.dense,
           "roberta": lambda m, l: m.roberta.encoder.layer[l].attention.output.dense,
           "modernbert": lambda m, l: m.model.layers[l].attn.Wo}
"""The module whose input is the heads' concatenated outputs, per family: the plain loop zeroes a slice of it."""


def plain_ablation(model, tok, prompts: pd.DataFrame, family: str) -> pd.DataFrame:
    """Per (layer, head, relation): P@1 and mean gold log-probability with that head zeroed, one prompt and
    one head at a time, through stock HF modules only (a forward pre-hook zeroing the head's input slice)."""
    c = model.config
    d = c.hidden_size // c.num_attention_heads
    rows = []
    for layer in range(c.num_hidden_layers):
        for head in range(c.num_attention_heads):
            def zero(module, args, head=head):
                x = args[0].clone()
                x[..., head * d:(head + 1) * d] = 0
                return (x, *args[1:])
            handle = ABLATED[family](model, layer).register_forward_pre_hook(zero)
            try:
                for prompt, answer, relation in zip(prompts.prompt, prompts.answer, prompts.relation):
                    before = prompt[:prompt.index("[MASK]")]
                    stem = tok(before.rstrip(), add_special_tokens=False)["input_ids"]
                    gold = tok(before + answer, add_special_tokens=False)["input_ids"][len(stem):]
                    text = prompt.replace("[MASK]", " ".join([tok.mask_token] * len(gold)))
                    ids = tok(text, return_tensors="pt")
                    with torch.no_grad():
                        logp = torch.log_softmax(model(**ids).logits[0].float(), -1)
                    masks = (ids["input_ids"][0] == tok.mask_token_id).nonzero().flatten()
                    rows.append({"layer": layer, "head": head, "relation": relation,
                                 "logprob": float(sum(logp[m, g] for m, g in zip(masks, gold))),
                                 "hit": float(all(int(logp[m].argmax()) == g for m, g in zip(masks, gold)))})
            finally:
                handle.remove()
    return (pd.DataFrame(rows).groupby(["layer", "head", "relation"])
            .agg(p_at_1=("hit", "mean"), mean_gold_logprob=("logprob", "mean")).reset_index())


@pytest.mark.parametrize("family", list(ABLATED))
def test_all_heads_of_a_layer_in_one_pass_equal_a_plain_loop_one_head_at_a_time(family, tmp_path):
    from test_families import write_checkpoint

    from probekit.analyses import Context
    from probekit.analyses.ablation import Ablation
    from probekit.benchmarks import load_benchmark
    from probekit.models.series import resolve_checkpoints

    bench_file = tmp_path / "bench.csv"
    bench_file.write_text("relation,template,subject,answer\n"
                          "capital,The capital of [X] is [MASK].,Italy,Rome\n"
                          "capital,The capital of [X] is [MASK].,France,Paris\n"
                          "capital,The capital of [X] is [MASK].,Peru,Lima\n"
                          "capital,The capital of [X] is [MASK].,Spain,Romeparis\n"
                          "reverse,[MASK] is the capital of [X].,Japan,Tokyo\n"
                          "reverse,[MASK] is the capital of [X].,Egypt,Cairo\n")
    checkpoint = resolve_checkpoints(str(write_checkpoint(tmp_path / family, family)))[0]
    bench = load_benchmark(bench_file)
    bench.groups = ["all"] * len(bench.prompts)
    ours = Ablation().run(checkpoint, Context({"prompts": [bench]}, batch_size=4), bench)  # 2 batches
    theirs = plain_ablation(checkpoint.model(), checkpoint.tokenizer, bench.prompts, family)
    merged = ours.merge(theirs, on=["layer", "head", "relation"], suffixes=("", "_plain"))
    assert len(merged) == len(theirs) == 2 * 4 * 2 and (merged.n == merged.groupby("relation").n.transform("max")).all()
    assert merged.p_at_1.tolist() == merged.p_at_1_plain.tolist()
    assert merged.mean_gold_logprob.to_numpy() == pytest.approx(merged.mean_gold_logprob_plain.to_numpy(), abs=1e-5)
