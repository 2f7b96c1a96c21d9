"""One hook layer for reading and writing activations: capture, head ablation and the logit lens all use it.

Hook points carry TransformerLens's names *and* TransformerLens's layouts, so code written against
TransformerLens reads probekit's captures unchanged:

  blocks.{l}.hook_resid_pre     [batch, pos, d_model]               hidden state entering layer l
  blocks.{l}.attn.hook_q        [batch, pos, head_index, d_head]    queries, split per head
  blocks.{l}.attn.hook_k        [batch, pos, head_index, d_head]    keys
  blocks.{l}.attn.hook_v        [batch, pos, head_index, d_head]    values
  blocks.{l}.attn.hook_pattern  [batch, head_index, query_pos, key_pos]  attention probabilities (read only)
  blocks.{l}.attn.hook_z        [batch, pos, head_index, d_head]    pattern × V per head, before the output projection
  blocks.{l}.hook_resid_post    [batch, pos, d_model]               hidden state leaving layer l

Points for activation patching (causal tracing), in TransformerLens's names:

  hook_full_embed               [batch, pos, d_embed]               the embeddings module's output (token +
                                                                    position (+ type) embeddings, after its norm)
  blocks.{l}.hook_attn_out      [batch, pos, d_model]               attention output: the output projection's
                                                                    output (bias included), before dropout, the
                                                                    residual add and any norm
  blocks.{l}.hook_mlp_out       [batch, pos, d_model]               MLP output: its last Linear's output, likewise

  blocks.{l}.attn.hook_mask      [batch, 1, query_pos, key_pos]      the additive mask the attention scores receive
                                                                    before the softmax (0 = attend, the dtype's
                                                                    minimum = not): write it to knock attention
                                                                    out (the pattern entries zeroed and each row
                                                                    renormalised, exactly). Not TransformerLens's:
                                                                    the attention module's `attention_mask`

For post-LN families (BERT, RoBERTa, ELECTRA, DistilBERT, ALBERT) the attention and MLP outputs are taken where
TransformerLens's are, before the residual add — there the LayerNorm follows the add, so patching them changes
the block's output through that norm. BERT: `attention.output.dense` and `output.dense`; DistilBERT:
`attention.out_lin` and `ffn.lin2`; ALBERT: `attention.dense` and `ffn_output`; ModernBERT (pre-LN): `attn.Wo`
and `mlp.Wo`. ELECTRA's and ALBERT's hook_full_embed is at embedding width, before their projection to the hidden
width (`embeddings_project`, `embedding_hidden_mapping_in`).

Hooks are forward hooks on the stock HF modules (no copy of the model's code, no monkeypatching), registered
for the length of a `with hooked(...)` block and always removed. The model-specific module paths live in
`probekit.models.families`, the one place a new model family is taught to probekit. Family notes: ModernBERT's
hook_q and hook_k are taken after its rotary embedding (what the scores are made of), and its last
hook_resid_post is before its final norm; ALBERT's blocks are applications of its shared layers.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch

from probekit.models import families
from probekit.core.errors import ProbekitError

POINTS = ("hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z",
          "hook_resid_post")
PATCH_POINTS = ("hook_attn_out", "hook_mlp_out", "attn.hook_mask")
"""Block points beyond `POINTS` (not captured by default): what activation patching writes."""
EMBED = "hook_full_embed"
"""The one point outside the blocks: the embeddings module's output."""
READ_ONLY = {"attn.hook_pattern"}
Edit = Callable[[torch.Tensor], torch.Tensor]


def hook_name(layer: int, point: str) -> str:
    return f"blocks.{layer}.{point}"


def hook_names(n_layers: int, points: Iterable[str] = POINTS) -> list[str]:
    """Every hook name of a model of `n_layers` layers, layer by layer, in forward order."""
    points = list(points)
    return [hook_name(layer, point) for layer in range(n_layers) for point in points]


# ---------------------------------------------------------------- reading and writing


@contextlib.contextmanager
def hooked(model: torch.nn.Module, read: Iterable[str] = (),
           write: Mapping[str, Edit] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Read the named hook points into the yielded dict, and replace the tensors at `write`'s points.

    Each edit receives the tensor in the layout above and returns one of the same shape (e.g. zero one
    head of `hook_z`). Reading a pattern switches attention to the eager implementation inside the block
    (SDPA computes no probabilities) and restores it afterwards. Where one module runs as several blocks
    (ALBERT's shared layers), its hooks fire once per application, each under its own block's name.
    """
    read, write = set(read), dict(write or {})
    blocks = families.blocks(model)  # in the order they run (ALBERT: its shared layer once per application)
    n_layers = len(blocks)
    known = set(hook_names(n_layers, (*POINTS, *PATCH_POINTS))) | {EMBED}
    for name in read | set(write):
        if name not in known:
            raise ProbekitError(f"no hook point {name!r}; points look like {hook_name(0, 'attn.hook_q')!r} "
                                f"for layers 0–{n_layers - 1}")
    for name in write:
        if _point(name) in READ_ONLY:
            raise ProbekitError(f"{name}: read-only hook point")
    store: dict[str, torch.Tensor] = {}
    handles = []
    wants_pattern = any(name.endswith("hook_pattern") for name in read)
    previous = model.config._attn_implementation
    if wants_pattern and previous != "eager":
        model.set_attn_implementation("eager")
    try:
        wanted = {_point(name) for name in read | set(write)}
        if EMBED in wanted:
            handles.append(families.embeddings(model).register_forward_hook(
                _output(lambda point: EMBED, EMBED, store, write)))
        if wanted - {EMBED}:
            where = _Position(n_layers)
            handles.append(families.body(model).register_forward_pre_hook(where.restart))
            for block in dict.fromkeys(blocks):  # each module once, however often it runs
                handles += _register(model, block, wanted, where, store, read | set(write), write)
        yield store
    finally:
        for handle in handles:
            handle.remove()
        if wants_pattern and previous != "eager":
            model.set_attn_implementation(previous)


def _point(name: str) -> str:
    """The point of a hook name without its block (`attn.hook_q` of `blocks.0.attn.hook_q`)."""
    return name if name == EMBED else name.split(".", 2)[2]


class _Position:
    """Which block is running: counts block calls since the body's forward began."""

    def __init__(self, n_layers: int):
        self.n_layers, self.block = n_layers, -1

    def restart(self, module, args) -> None:
        self.block = -1

    def advance(self, module, args) -> None:
        self.block = (self.block + 1) % self.n_layers


def _register(model, block, wanted: set[str], where: _Position, store: dict, names: set[str], write: dict) -> list:
    att = families.attention(model, block)
    n_heads, d_head = att.n_heads, att.d_head

    def name(point: str) -> str | None:
        full = hook_name(where.block, point)
        return full if full in names else None

    handles = [block.register_forward_pre_hook(where.advance, prepend=True)]
    if "hook_resid_pre" in wanted:
        handles.append(block.register_forward_pre_hook(_resid_pre(name, store, write), with_kwargs=True))
    if att.fused is not None:
        if wanted & {"attn.hook_q", "attn.hook_k", "attn.hook_v"}:
            rotation: dict = {}
            if att.rotary:
                handles.append(att.module.register_forward_pre_hook(_keep_rotation(rotation), with_kwargs=True))
            handles.append(att.fused.register_forward_hook(_fused_qkv(name, store, write, n_heads, d_head,
                                                                      rotation)))
    else:
        for short, proj in att.projections.items():
            if f"attn.hook_{short}" in wanted:
                handles.append(proj.register_forward_hook(
                    _per_head_output(name, f"attn.hook_{short}", store, write, n_heads, d_head)))
    if "attn.hook_pattern" in wanted:
        handles.append(att.module.register_forward_hook(_pattern(name, store)))
    if "attn.hook_mask" in wanted:
        handles.append(att.module.register_forward_pre_hook(_mask(name, store, write), with_kwargs=True))
    if "attn.hook_z" in wanted:
        handles.append(att.out.register_forward_pre_hook(_per_head_input(name, store, write, n_heads, d_head)))
    if "hook_attn_out" in wanted:
        handles.append(att.out.register_forward_hook(_output(name, "hook_attn_out", store, write)))
    if "hook_mlp_out" in wanted:
        handles.append(families.mlp_out(model, block).register_forward_hook(
            _output(name, "hook_mlp_out", store, write)))
    if "hook_resid_post" in wanted:
        handles.append(block.register_forward_hook(_resid_post(name, store, write)))
    return handles


def _seen(name: str | None, tensor: torch.Tensor, store: dict, write: dict) -> torch.Tensor:
    """Apply the edit for `name` (if any) and record what flows on (the edited tensor)."""
    if name is None:
        return tensor
    if name in write:
        edited = write[name](tensor)
        if edited.shape != tensor.shape:
            raise ProbekitError(f"{name}: an edit must keep the shape {tuple(tensor.shape)}, "
                                f"got {tuple(edited.shape)}")
        tensor = edited
    store[name] = tensor.detach()
    return tensor


def _resid_pre(name, store, write):
    def hook(module, args, kwargs):
        if args:
            return (_seen(name("hook_resid_pre"), args[0], store, write), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": _seen(name("hook_resid_pre"), kwargs["hidden_states"], store,
                                                       write)}
    return hook


def _resid_post(name, store, write):
    def hook(module, args, output):
        if isinstance(output, tuple):
            return (_seen(name("hook_resid_post"), output[0], store, write), *output[1:])
        return _seen(name("hook_resid_post"), output, store, write)
    return hook


def _output(name, point, store, write):
    """A module's whole output as the point (attention output, MLP output, the embeddings)."""
    def hook(module, args, output):
        return _seen(name(point), output, store, write)
    return hook


def _per_head_output(name, point, store, write, n_heads, d_head):
    def hook(module, args, output):
        batch, pos, _ = output.shape
        split = _seen(name(point), output.view(batch, pos, n_heads, d_head), store, write)
        return split.reshape(batch, pos, n_heads * d_head)
    return hook


def _keep_rotation(rotation: dict):
    """Remember the (cos, sin) the attention module is called with, for the fused projection's hook."""
    def hook(module, args, kwargs):
        rotation["cos_sin"] = kwargs.get("position_embeddings", args[1] if len(args) > 1 else None)
    return hook


def _fused_qkv(name, store, write, n_heads, d_head, rotation: dict):
    """Q, K, V from a fused projection (ModernBERT's Wqkv), Q and K after the rotary embedding: what the
    attention scores are made of. An edit of Q or K is made on the rotated tensor and rotated back, so
    the model's own rotation turns it into the edited tensor."""
    def hook(module, args, output):
        batch, pos, _ = output.shape
        q, k, v = output.view(batch, pos, 3, n_heads, d_head).unbind(2)
        cos_sin = rotation.get("cos_sin")
        if cos_sin is not None:
            q, k = families.rotate(q, k, *cos_sin)
        edited = [_seen(name(f"attn.hook_{short}"), t, store, write) for short, t in zip("qkv", (q, k, v))]
        if all(new is old for new, old in zip(edited, (q, k, v))):
            return output
        q, k, v = edited
        if cos_sin is not None:
            q, k = families.rotate(q, k, cos_sin[0], -cos_sin[1])
        return torch.stack((q, k, v), dim=2).reshape(batch, pos, 3 * n_heads * d_head)
    return hook


def _per_head_input(name, store, write, n_heads, d_head):
    def hook(module, args):
        batch, pos, _ = args[0].shape
        split = _seen(name("attn.hook_z"), args[0].view(batch, pos, n_heads, d_head), store, write)
        return (split.reshape(batch, pos, n_heads * d_head), *args[1:])
    return hook


def _mask(name, store, write):
    """The attention module's `attention_mask` keyword as a float additive mask [batch, 1, query, key] (None
    and boolean masks made additive), edited; SDPA and eager attention both add a float mask to the scores."""
    def hook(module, args, kwargs):
        full = name("attn.hook_mask")
        if full is None:
            return None
        params = list(inspect.signature(module.forward).parameters)
        if "attention_mask" not in params:
            raise ProbekitError(f"{full}: {type(module).__name__} takes no `attention_mask`")
        at = params.index("attention_mask")
        positional = "attention_mask" not in kwargs and at < len(args)  # ALBERT passes it by position
        hidden = args[0] if args else kwargs["hidden_states"]
        batch, pos = hidden.shape[:2]
        mask, low = args[at] if positional else kwargs.get("attention_mask"), torch.finfo(hidden.dtype).min
        if mask is None:
            mask = hidden.new_zeros(batch, 1, pos, pos)
        elif mask.dim() == 2:  # [batch, key] (1 = attend): as a 4-D mask
            mask = mask[:, None, None, :].bool()
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=hidden.dtype, device=hidden.device).masked_fill(~mask, low)
        mask = _seen(full, mask.to(hidden.dtype).expand(batch, 1, pos, pos), store, write)
        if positional:
            return (*args[:at], mask, *args[at + 1:]), kwargs
        return args, {**kwargs, "attention_mask": mask}
    return hook


def _pattern(name, store):
    def hook(module, args, output):
        full = name("attn.hook_pattern")
        if full is None:
            return
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None:
            raise ProbekitError(f"{full}: the attention implementation returned no attention probabilities")
        store[full] = weights.detach()
    return hook


def zero_head(head: int) -> Edit:
    """An edit for `attn.hook_z` (or q/k/v) that zeroes one head: its contribution to the output vanishes."""
    def edit(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = 0
        return z
    return edit


def zero_each_head(n_heads: int) -> Edit:
    """An edit for `attn.hook_z` of a batch tiled `n_heads` times (copy h is rows h·b … h·b + b − 1): copy h
    has head h zeroed, so one forward pass ablates every head of a layer in turn."""
    def edit(z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[0] // n_heads
        keep = 1 - torch.eye(n_heads, dtype=z.dtype, device=z.device)  # [copy, head]
        return (z.view(n_heads, batch, *z.shape[1:]) * keep[:, None, None, :, None]).view(z.shape)
    return edit
