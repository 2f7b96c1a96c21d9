"""What a checkpoint does with a set of sentences: Q/K/V, attention patterns and head outputs of every layer.

`capture()` runs the sentences once through the model with `probekit.models.hooks` reading every layer, and returns
a `Capture`: the tensors by hook name, in TransformerLens's names and layouts (see `probekit.models.hooks`), with
the tokens of each sentence and the attention mask. A Capture saves to and loads from one safetensors file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase

from probekit.models import families
from probekit.core.errors import ProbekitError
from probekit.models.hooks import hook_name, hook_names, hooked
from probekit.core.log import logger
from probekit.core.schema import FORMAT_VERSION
from probekit.models.series import load_checkpoint
from probekit.core.store import atomic_path

METADATA_KEY = "probekit"
"""The one metadata key of a saved capture: its fields as JSON with sorted keys."""
CAPTURED = ("hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z")


@dataclass
class Capture:
    """Captured tensors by name, with the tokens they belong to (one list of tokens per sentence).

    `meta` says the model's family, its tokenizer's classifier and separator tokens, and per layer the
    half-width of a local attention window (`windows`, None for global attention): `additive_mask` is the
    mask each pattern was made with.
    """

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

    def additive_mask(self, layer: int) -> torch.Tensor:
        """[batch, 1, query, key]: 0 where layer `layer` lets a query see a key (a real token, within the
        layer's local window if it has one), the dtype's minimum elsewhere. softmax(QKᵀ/√d + this) is the
        pattern."""
        keep = self.attention_mask[:, None, None, :].bool()
        window = (self.meta.get("windows") or [None] * self.n_layers)[layer]
        if window is not None:
            pos = torch.arange(self.attention_mask.shape[1])
            keep = keep & ((pos[:, None] - pos[None, :]).abs() <= window)
        return torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)

    def save(self, path: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        """Named tensors in one safetensors file; tokens, shape and `meta` in its metadata, as one JSON text
        with sorted keys under `METADATA_KEY` (safetensors writes several metadata keys in a random order, so
        two equal captures were not byte-equal)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.to(dtype).contiguous() for k, v in self.tensors.items()}
        tensors["attention_mask"] = self.attention_mask.to(torch.int8).contiguous()
        meta = {**self.meta, "tokens": self.tokens, "n_layers": self.n_layers, "n_heads": self.n_heads,
                "format_version": FORMAT_VERSION}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Capture":
        """A saved capture: one sorted JSON metadata key, or (files written before it) one key per field, each
        a string (JSON for tokens and `meta`)."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = dict(f.metadata() or {})
            tensors = {k: v.float() for k, v in load_file(path).items()}
            if METADATA_KEY in meta:
                meta = json.loads(meta[METADATA_KEY])
            else:  # the earlier layout: every value a string
                meta = {k: v if k in ("n_layers", "n_heads", "format_version") else json.loads(v)
                        for k, v in meta.items()}
        except Exception as exc:  # safetensors raises its own types for truncated or foreign files
            raise ProbekitError(f"{path}: unreadable capture ({exc.__class__.__name__})") from exc
        if str(meta.get("format_version", "1")) != str(FORMAT_VERSION):
            raise ProbekitError(f"{path}: a capture of results format {meta.get('format_version', '1')}; this "
                                f"probekit reads format {FORMAT_VERSION} (probe again to rewrite it)")
        mask = tensors.pop("attention_mask").long()
        fixed = {"tokens", "n_layers", "n_heads", "format_version"}
        extra = {k: v for k, v in meta.items() if k not in fixed}
        n_layers = int(meta["n_layers"])
        ordered = {name: tensors[name] for name in hook_names(n_layers, CAPTURED) if name in tensors}
        return cls(ordered, meta["tokens"], mask, n_layers, int(meta["n_heads"]), extra)


Sentence = str | tuple[str, str]


def capture(
    model_or_path,
    sentences: list[Sentence],
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_length: int | None = None,
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
    longest = families.max_tokens(config)
    batch, tokens, truncated = encode_sentences(tokenizer, sentences, max_length or longest)
    if truncated:
        logger.info(f"{truncated} of {len(sentences)} sentences longer than {longest} tokens were truncated")
    device = next(model.parameters()).device
    n_layers = families.n_layers(model)
    names = hook_names(n_layers, CAPTURED)
    with torch.no_grad(), hooked(model, read=names) as store:
        families.body(model)(**families.body_inputs(model, {k: v.to(device) for k, v in batch.items()}))
    tensors = {name: store[name].cpu() for name in names}
    meta = {"family": config.model_type, "windows": families.windows(model), "cls_token": tokenizer.cls_token,
            "sep_token": tokenizer.sep_token}
    return Capture(tensors, tokens, batch["attention_mask"], n_layers, config.num_attention_heads, meta)


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
