"""Q/K/V, attention patterns and attention outputs of every layer and head, captured by forward hooks.

Hooks sit on the stock HF modules (no copy of BERT's code, no monkeypatching) and are always removed.
Every captured tensor has a stable name, after TransformerLens:

  blocks.{l}.hook_resid_pre     [batch, token, d_model]        hidden states going into layer l
  blocks.{l}.attn.hook_q        [batch, head, token, d_head]   queries, split per head
  blocks.{l}.attn.hook_k        [batch, head, token, d_head]   keys
  blocks.{l}.attn.hook_v        [batch, head, token, d_head]   values
  blocks.{l}.attn.hook_pattern  [batch, head, query, key]      attention probabilities (softmax output)
  blocks.{l}.attn.hook_z        [batch, token, d_model]        attention × V, heads concatenated
                                                               (the self-attention output, before its dense layer)
Tokens, the attention mask and the model's shape travel alongside.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase

from probekit.checkpoints import load_checkpoint
from probekit.errors import ProbekitError

HOOKS = ("hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z")


def hook_name(layer: int, hook: str) -> str:
    return f"blocks.{layer}.{hook}"


@dataclass
class Capture:
    """Captured tensors by name, with the tokens they belong to (one list of tokens per sentence)."""

    tensors: dict[str, torch.Tensor]
    tokens: list[list[str]]
    attention_mask: torch.Tensor
    n_layers: int
    n_heads: int
    meta: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.tensors:
            raise KeyError(f"{name!r} not captured; names look like {hook_name(0, 'attn.hook_pattern')!r}")
        return self.tensors[name]

    def names(self) -> list[str]:
        return list(self.tensors)

    def pattern(self, layer: int) -> torch.Tensor:
        return self[hook_name(layer, "attn.hook_pattern")]

    def save(self, path: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        """Named tensors in one safetensors file; tokens and shape in its metadata."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.to(dtype).contiguous() for k, v in self.tensors.items()}
        tensors["attention_mask"] = self.attention_mask.to(torch.int8).contiguous()
        meta = {"tokens": json.dumps(self.tokens), "n_layers": str(self.n_layers), "n_heads": str(self.n_heads),
                **{k: json.dumps(v) for k, v in self.meta.items()}}
        tmp = path.with_suffix(".tmp")
        save_file(tensors, tmp, metadata=meta)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Capture":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata())
        tensors = {k: v.float() for k, v in load_file(path).items()}
        mask = tensors.pop("attention_mask").long()
        extra = {k: json.loads(v) for k, v in meta.items() if k not in {"tokens", "n_layers", "n_heads"}}
        n_layers = int(meta["n_layers"])
        ordered = {name: tensors[name] for layer in range(n_layers) for hook in HOOKS
                   if (name := hook_name(layer, hook)) in tensors}
        return cls(ordered, json.loads(meta["tokens"]), mask, n_layers, int(meta["n_heads"]), extra)


@contextlib.contextmanager
def capturing(model: torch.nn.Module):
    """Register capture hooks on every encoder layer of a HF BERT; yields the dict they fill; always removes them.

    Attention is switched to the eager implementation inside the block (SDPA returns no weights) and
    restored afterwards.
    """
    bert = getattr(model, "bert", model)
    layers = bert.encoder.layer
    store: dict[str, torch.Tensor] = {}
    handles = []
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        for i, layer in enumerate(layers):
            attn = layer.attention.self
            n_heads, d_head = attn.num_attention_heads, attn.attention_head_size
            handles.append(layer.register_forward_pre_hook(_keep_input(store, hook_name(i, "hook_resid_pre")),
                                                           with_kwargs=True))
            for proj, hook in ((attn.query, "attn.hook_q"), (attn.key, "attn.hook_k"), (attn.value, "attn.hook_v")):
                handles.append(proj.register_forward_hook(_keep_heads(store, hook_name(i, hook), n_heads, d_head)))
            handles.append(attn.register_forward_hook(_keep_attention(store, i)))
        yield store
    finally:
        for handle in handles:
            handle.remove()
        if previous != "eager":
            model.set_attn_implementation(previous)


def _keep_input(store, name):
    def hook(module, args, kwargs):
        store[name] = (args[0] if args else kwargs["hidden_states"]).detach()
    return hook


def _keep_heads(store, name, n_heads, d_head):
    def hook(module, args, output):
        batch, tokens, _ = output.shape
        store[name] = output.detach().view(batch, tokens, n_heads, d_head).transpose(1, 2)
    return hook


def _keep_attention(store, layer):
    def hook(module, args, output):
        context, weights = output[0], output[1] if len(output) > 1 else None
        if weights is None:
            raise ProbekitError(f"layer {layer}: the attention implementation returned no attention weights")
        store[hook_name(layer, "attn.hook_pattern")] = weights.detach()
        store[hook_name(layer, "attn.hook_z")] = context.detach()
    return hook


Sentence = str | tuple[str, str]


def capture(
    model_or_path,
    sentences: list[Sentence],
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_length: int | None = None,
    say=print,
) -> Capture:
    """Run `sentences` (single sentences or (A, B) pairs) through a checkpoint and capture every layer.

    Sentences longer than the model's max positions are truncated, and the call says how many were.
    """
    if isinstance(model_or_path, (str, Path)):
        model, tokenizer = load_checkpoint(str(model_or_path), tokenizer)
    else:
        model = model_or_path
        if tokenizer is None:
            raise ProbekitError("capture() of a loaded model needs its tokenizer")
    config = model.config
    if config.num_attention_heads <= 0 or config.hidden_size % config.num_attention_heads:
        raise ProbekitError(f"{config.num_attention_heads} attention heads do not divide hidden size "
                            f"{config.hidden_size}")
    if not sentences:
        raise ProbekitError("no sentences to capture")
    batch, tokens, truncated = encode_sentences(tokenizer, sentences, max_length or config.max_position_embeddings)
    if truncated:
        say(f"{truncated} of {len(sentences)} sentences longer than {config.max_position_embeddings} tokens "
            f"were truncated")
    device = next(model.parameters()).device
    with torch.no_grad(), capturing(model) as store:
        bert = getattr(model, "bert", model)
        bert(**{k: v.to(device) for k, v in batch.items()})
    tensors = {name: store[hook_name(i, h)].cpu() for i in range(config.num_hidden_layers) for h in HOOKS
               for name in [hook_name(i, h)]}
    return Capture(tensors, tokens, batch["attention_mask"], config.num_hidden_layers, config.num_attention_heads)


def encode_sentences(tokenizer, sentences: list[Sentence], max_length: int):
    """Padded batch, real tokens per sentence, and how many sentences had to be truncated."""
    encoded, truncated = [], 0
    for sentence in sentences:
        a, b = (sentence[0], sentence[1]) if isinstance(sentence, (tuple, list)) else (sentence, None)
        truncated += len(tokenizer(a, b)["input_ids"]) > max_length
        encoded.append(tokenizer(a, b, truncation=True, max_length=max_length))
    batch = tokenizer.pad(encoded, padding=True, return_tensors="pt")
    tokens = [tokenizer.convert_ids_to_tokens(ids[mask.bool()].tolist())
              for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
    keep = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    return keep, tokens, truncated


def read_sentences(path: str | Path) -> list[Sentence]:
    """Sentences from a .txt (one per line; a tab separates an A/B pair) or .jsonl (`text`, optional `text_pair`)."""
    path = Path(path)
    if not path.is_file():
        raise ProbekitError(f"{path}: no such sentence file")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        records = []
        for i, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                records.append((record["text"], record["text_pair"]) if record.get("text_pair") else record["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ProbekitError(f"{path}:{i}: expected a JSON object with 'text'") from exc
        sentences = records
    else:
        sentences = [tuple(line.split("\t", 1)) if "\t" in line else line for line in lines]
    if not sentences:
        raise ProbekitError(f"{path}: no sentences (the file is empty)")
    return sentences
