import pytest
import torch

from probekit import ProbekitError
from probekit.models.activations import Capture, capture, read_sentences
from probekit.models.hooks import hook_name, hook_names, hooked
from probekit.models.series import load_checkpoint

SENTENCES = ["the capital of italy is rome.", "rome is the capital of [MASK].",
             ("paris is a city in france.", "the king of the people."), "a"]


@pytest.fixture(scope="module")
def captured(tiny_series):
    model, tok = load_checkpoint(str(tiny_series / "checkpoint-8"))
    return model, tok, capture(model, SENTENCES, tok)


def test_names_shapes_and_tokens(captured):
    model, tok, cap = captured
    c = model.config
    d_head = c.hidden_size // c.num_attention_heads
    width = cap.attention_mask.shape[1]
    for layer in range(c.num_hidden_layers):
        assert cap[hook_name(layer, "hook_resid_pre")].shape == (4, width, c.hidden_size)
        for h in ("q", "k", "v"):
            assert cap[hook_name(layer, f"attn.hook_{h}")].shape == (4, width, c.num_attention_heads, d_head)
        assert cap[hook_name(layer, "attn.hook_pattern")].shape == (4, c.num_attention_heads, width, width)
        assert cap[hook_name(layer, "attn.hook_z")].shape == (4, width, c.num_attention_heads, d_head)
    assert cap.tokens[0] == ["[CLS]", "the", "capital", "of", "italy", "is", "rome", ".", "[SEP]"]
    assert cap.tokens[2].count("[SEP]") == 2 and cap.tokens[3] == ["[CLS]", "a", "[SEP]"]


def test_q_k_v_are_the_projections_of_the_layer_input(captured):
    model, _, cap = captured
    for layer, block in enumerate(model.bert.encoder.layer):
        x = cap[hook_name(layer, "hook_resid_pre")]
        q = block.attention.self.query(x).view(*x.shape[:2], cap.n_heads, -1)  # [batch, pos, head, d_head]
        assert torch.allclose(q, cap[hook_name(layer, "attn.hook_q")], atol=1e-6)


def test_attention_is_softmax_of_scaled_qk_plus_mask_on_every_layer(captured):
    _, _, cap = captured
    additive = (1.0 - cap.attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for layer in range(cap.n_layers):
        q, k = (cap[hook_name(layer, f"attn.hook_{h}")].transpose(1, 2) for h in "qk")  # [batch, head, pos, d]
        recomputed = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + additive, dim=-1)
        assert (recomputed - cap.pattern(layer)).abs().max() <= 1e-5


def test_attention_times_v_is_the_head_output_on_every_layer(captured):
    model, tok, cap = captured
    for layer in range(cap.n_layers):
        z = cap.pattern(layer) @ cap[hook_name(layer, "attn.hook_v")].transpose(1, 2)  # [batch, head, pos, d]
        assert (z.transpose(1, 2) - cap[hook_name(layer, "attn.hook_z")]).abs().max() <= 1e-5
    # and hook_z, heads concatenated, is what the attention output projection receives
    inputs = tok(["the capital of italy is rome."], return_tensors="pt")
    seen = []
    dense = model.bert.encoder.layer[1].attention.output.dense
    handle = dense.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    try:
        with torch.no_grad(), hooked(model, read=[hook_name(1, "attn.hook_z")]) as store:
            model.bert(**inputs)
    finally:
        handle.remove()
    assert torch.equal(store[hook_name(1, "attn.hook_z")].flatten(2), seen[0])


def test_hooks_are_removed_and_sdpa_restored(tiny_series):
    model, tok = load_checkpoint(str(tiny_series / "checkpoint-8"), attn_implementation="sdpa")
    modules = list(model.modules())
    with pytest.raises(RuntimeError):
        with hooked(model, read=hook_names(2)) as store:
            assert model.config._attn_implementation == "eager"
            model.bert(**tok(["the king"], return_tensors="pt"))
            assert store[hook_name(1, "attn.hook_pattern")] is not None
            raise RuntimeError("interrupted")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in modules)
    assert model.config._attn_implementation == "sdpa"


def test_save_and_load_round_trip(captured, tmp_path):
    _, _, cap = captured
    back = Capture.load(cap.save(tmp_path / "c.safetensors", torch.float16))
    assert back.tokens == cap.tokens and back.names() == cap.names()
    assert torch.allclose(back.pattern(1), cap.pattern(1), atol=1e-3)


def test_equal_captures_are_byte_equal_and_older_files_still_load(captured, tmp_path):
    """Issue 33: safetensors writes metadata keys in a random order (a new one per map, in one process too), so
    two saves of one capture differed byte-wise; now one sorted JSON key. Files of the earlier layout (a key per
    field, every value a string) still load."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from probekit.core.schema import FORMAT_VERSION
    from probekit.models.activations import METADATA_KEY

    _, _, cap = captured
    saved = {cap.save(tmp_path / f"c{i}.safetensors").read_bytes() for i in range(6)}
    assert len(saved) == 1
    with safe_open(str(tmp_path / "c0.safetensors"), "pt") as f:
        meta = f.metadata()
    assert list(meta) == [METADATA_KEY] and json.loads(meta[METADATA_KEY])["family"] == "bert"
    old = {"tokens": json.dumps(cap.tokens), "n_layers": str(cap.n_layers), "n_heads": str(cap.n_heads),
           "format_version": str(FORMAT_VERSION), **{k: json.dumps(v) for k, v in cap.meta.items()}}
    save_file(load_file(tmp_path / "c0.safetensors"), tmp_path / "old.safetensors", metadata=old)
    for back in (Capture.load(tmp_path / "old.safetensors"), Capture.load(tmp_path / "c0.safetensors")):
        assert back.tokens == cap.tokens and back.meta == cap.meta and back.names() == cap.names()
        assert (back.n_layers, back.n_heads) == (cap.n_layers, cap.n_heads)
        assert torch.equal(back.attention_mask, cap.attention_mask.long())
        assert torch.equal(back.additive_mask(1), cap.additive_mask(1))


def test_long_sentences_are_truncated_and_said(captured, caplog):
    model, tok, _ = captured
    with caplog.at_level("INFO", logger="probekit"):
        cap = capture(model, ["the king " * 40], tok)
    assert cap.attention_mask.shape[1] == model.config.max_position_embeddings
    assert caplog.messages == ["1 of 1 sentences longer than 64 tokens were truncated"]


def test_a_capture_of_another_format_is_refused(captured, tmp_path):
    from safetensors.torch import load_file, save_file

    _, _, cap = captured
    path = cap.save(tmp_path / "c.safetensors")
    save_file(load_file(path), tmp_path / "old.safetensors", metadata={"tokens": "[]", "n_layers": "2",
                                                                       "n_heads": "2"})
    with pytest.raises(ProbekitError, match="old.safetensors: a capture of results format 1"):
        Capture.load(tmp_path / "old.safetensors")


def test_bad_inputs_are_one_line(captured, tmp_path):
    model, tok, _ = captured
    with pytest.raises(ProbekitError, match="no sentences to capture"):
        capture(model, [], tok)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ProbekitError, match="empty.txt: no sentences"):
        read_sentences(tmp_path / "empty.txt")
    (tmp_path / "pairs.txt").write_text("first\tsecond\nalone\n")
    assert read_sentences(tmp_path / "pairs.txt") == [("first", "second"), "alone"]
