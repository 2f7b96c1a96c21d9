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

Hooks are forward hooks on the stock HF modules (no copy of the model's code, no monkeypatching), registered
for the length of a `with hooked(...)` block and always removed. The model-specific module paths live in the
few functions at the top of this file: the one place a new model family is taught to probekit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch

from probekit.errors import ProbekitError

POINTS = ("hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z",
          "hook_resid_post")
READ_ONLY = {"attn.hook_pattern"}
Edit = Callable[[torch.Tensor], torch.Tensor]


def hook_name(layer: int, point: str) -> str:
    return f"blocks.{layer}.{point}"


def hook_names(n_layers: int, points: Iterable[str] = POINTS) -> list[str]:
    """Every hook name of a model of `n_layers` layers, layer by layer, in forward order."""
    points = list(points)
    return [hook_name(layer, point) for layer in range(n_layers) for point in points]


# ---------------------------------------------------------------- where things are in a HF model


def body(model: torch.nn.Module) -> torch.nn.Module:
    """The encoder without its pretraining heads (BertModel inside BertForMaskedLM / BertForPreTraining)."""
    return getattr(model, "bert", model)


def mlm_head(model: torch.nn.Module) -> torch.nn.Module:
    """The masked-LM head: hidden states → vocabulary logits."""
    return model.cls.predictions


def layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    return body(model).encoder.layer


def _attention(layer: torch.nn.Module):
    """(self-attention module, its q/k/v projections, the output projection, heads, head size)."""
    attn = layer.attention.self
    return (attn, {"q": attn.query, "k": attn.key, "v": attn.value}, layer.attention.output.dense,
            attn.num_attention_heads, attn.attention_head_size)


# ---------------------------------------------------------------- reading and writing


@contextlib.contextmanager
def hooked(model: torch.nn.Module, read: Iterable[str] = (),
           write: Mapping[str, Edit] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Read the named hook points into the yielded dict, and replace the tensors at `write`'s points.

    Each edit receives the tensor in the layout above and returns one of the same shape (e.g. zero one
    head of `hook_z`). Reading a pattern switches attention to the eager implementation inside the block
    (SDPA computes no probabilities) and restores it afterwards.
    """
    read, write = set(read), dict(write or {})
    n_layers = len(layers(model))
    known = set(hook_names(n_layers))
    for name in read | set(write):
        if name not in known:
            raise ProbekitError(f"no hook point {name!r}; points look like {hook_name(0, 'attn.hook_q')!r} "
                                f"for layers 0–{n_layers - 1}")
    for name in write:
        if name.split(".", 2)[2] in READ_ONLY:
            raise ProbekitError(f"{name}: read-only hook point")
    store: dict[str, torch.Tensor] = {}
    handles = []
    wants_pattern = any(name.endswith("hook_pattern") for name in read)
    previous = model.config._attn_implementation
    if wants_pattern and previous != "eager":
        model.set_attn_implementation("eager")
    try:
        for i, layer in enumerate(layers(model)):
            wanted = {p for p in POINTS if hook_name(i, p) in read or hook_name(i, p) in write}
            if wanted:
                handles += _register(layer, i, wanted, store, write)
        yield store
    finally:
        for handle in handles:
            handle.remove()
        if wants_pattern and previous != "eager":
            model.set_attn_implementation(previous)


def _register(layer, index: int, wanted: set[str], store: dict, write: dict) -> list:
    attn, projections, out_proj, n_heads, d_head = _attention(layer)
    name = lambda point: hook_name(index, point)  # noqa: E731
    handles = []
    if "hook_resid_pre" in wanted:
        handles.append(layer.register_forward_pre_hook(_resid_pre(name("hook_resid_pre"), store, write),
                                                       with_kwargs=True))
    for short, proj in projections.items():
        if f"attn.hook_{short}" in wanted:
            handles.append(proj.register_forward_hook(
                _per_head_output(name(f"attn.hook_{short}"), store, write, n_heads, d_head)))
    if "attn.hook_pattern" in wanted:
        handles.append(attn.register_forward_hook(_pattern(name("attn.hook_pattern"), store)))
    if "attn.hook_z" in wanted:
        handles.append(out_proj.register_forward_pre_hook(_per_head_input(name("attn.hook_z"), store, write,
                                                                          n_heads, d_head)))
    if "hook_resid_post" in wanted:
        handles.append(layer.register_forward_hook(_resid_post(name("hook_resid_post"), store, write)))
    return handles


def _seen(name: str, tensor: torch.Tensor, store: dict, write: dict) -> torch.Tensor:
    """Apply the edit for `name` (if any) and record what flows on (the edited tensor)."""
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
            return (_seen(name, args[0], store, write), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": _seen(name, kwargs["hidden_states"], store, write)}
    return hook


def _resid_post(name, store, write):
    def hook(module, args, output):
        if isinstance(output, tuple):
            return (_seen(name, output[0], store, write), *output[1:])
        return _seen(name, output, store, write)
    return hook


def _per_head_output(name, store, write, n_heads, d_head):
    def hook(module, args, output):
        batch, pos, _ = output.shape
        split = _seen(name, output.view(batch, pos, n_heads, d_head), store, write)
        return split.reshape(batch, pos, n_heads * d_head)
    return hook


def _per_head_input(name, store, write, n_heads, d_head):
    def hook(module, args):
        batch, pos, _ = args[0].shape
        split = _seen(name, args[0].view(batch, pos, n_heads, d_head), store, write)
        return (split.reshape(batch, pos, n_heads * d_head), *args[1:])
    return hook


def _pattern(name, store):
    def hook(module, args, output):
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None:
            raise ProbekitError(f"{name}: the attention implementation returned no attention probabilities")
        store[name] = weights.detach()
    return hook


def zero_head(head: int) -> Edit:
    """An edit for `attn.hook_z` (or q/k/v) that zeroes one head: its contribution to the output vanishes."""
    def edit(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = 0
        return z
    return edit
