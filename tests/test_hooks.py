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
