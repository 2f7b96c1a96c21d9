"""What probekit knows about each masked-LM family: where its blocks, attention and MLM head are.

The one place a new family is taught to probekit. Everything else asks this module, never a model's own
attribute names: the hook layer (`probekit.models.hooks`) for blocks and attention projections, scoring and the
logit lens for the MLM head, `probekit.models.checkpoints` for the weight names it checks before building a model,
`probekit.diff` for the block each weight belongs to, `probekit.analyses.metrics` for the [CLS]/[SEP] of a capture
that did not record its tokenizer's.

Supported (`config.model_type`, loaded through `AutoModelForMaskedLM`, never with `trust_remote_code`):

  bert, roberta, xlm-roberta, camembert, electra   BERT's layer code (`encoder.layer[i].attention.self`)
  distilbert                                      `transformer.layer[i].attention` (q_lin/k_lin/v_lin/out_lin)
  albert                                          one set of layer weights applied num_hidden_layers times
  modernbert                                      fused Wqkv, rotary embeddings, local/global attention

DeBERTa-v2 is refused: its attention adds content→position and position→content terms (relative
position embeddings projected by the layer's own key/query weights) to Q·Kᵀ, so no hook_q/hook_k pair in
TransformerLens's layout reproduces its pattern, and captures of it could not be verified as every other
family's are.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from probekit.core.errors import ProbekitError


@dataclass(frozen=True)
class Attention:
    """One block's self-attention as the hooks see it.

    `module` returns (output, pattern); `projections` maps q/k/v to the Linear producing each (`fused` is
    the one Linear producing all three, ModernBERT's Wqkv); `out` is the output projection whose input is
    the heads' concatenated outputs (hook_z); `rotary` when Q and K are rotated after projection.
    """

    module: nn.Module
    projections: dict[str, nn.Linear]
    fused: nn.Linear | None
    out: nn.Linear
    n_heads: int
    d_head: int
    rotary: bool = False
    window: int | None = None


@dataclass(frozen=True)
class Family:
    """How to find the parts of one family's `*ForMaskedLM` model."""

    model_type: str
    blocks: Callable[[nn.Module], list[nn.Module]]
    """The body's blocks in the order they run (ALBERT repeats its shared ones)."""
    attention: Callable[[nn.Module, nn.Module], Attention]
    """(block, body) → its attention."""
    head: tuple[str, ...]
    """Paths from the masked-LM model to the modules that turn the body's output into logits, in order."""
    final_norm: str | None = None
    """Path from the body to a norm it applies after the last block (the lens applies it too)."""
    embedding_key: str = "{prefix}.embeddings.word_embeddings.weight"
    embedding_width: str = "hidden_size"
    layer_key: str = r"^{prefix}\.encoder\.layer\.(\d+)\."
    layer_count: str = "num_hidden_layers"
    position_offset: bool = False
    """RoBERTa's positions start after the padding index: two fewer usable positions."""
    attention_output_block: str | None = None
    """Path from a block to a module called as (attention output, residual) right after attention; lets
    PLL finish the last block at one position (None: the block runs in full)."""
    extra_keys: tuple[str, ...] = ()
    """Weight-name prefixes a checkpoint may carry that the masked-LM model has no place for (NSP heads)."""
    embedding_parts: tuple[str, ...] = ("{prefix}.embeddings.",)
    """Weight-name prefixes of the embeddings, with any projection from embedding to hidden width."""
    mlp_out: str = "output.dense"
    """Path from a block to the MLP's last Linear, whose output (before dropout, residual add and norm) is
    TransformerLens's `hook_mlp_out` (BERT's `BertOutput.dense`)."""
    embeddings: str = "embeddings"
    """Path from the body to its embeddings module, whose output is `hook_full_embed`."""
    special_tokens: tuple[str, str] = ("[CLS]", "[SEP]")
    """The (classifier, separator) tokens its tokenizers ship: what a capture that did not record its own
    tokenizer's tokens falls back to."""


def _bert_blocks(body: nn.Module) -> list[nn.Module]:
    return list(body.encoder.layer)


def _bert_attention(block: nn.Module, body: nn.Module) -> Attention:
    attn = block.attention.self
    return Attention(attn, {"q": attn.query, "k": attn.key, "v": attn.value}, None, block.attention.output.dense,
                     attn.num_attention_heads, attn.attention_head_size)


def _distilbert_blocks(body: nn.Module) -> list[nn.Module]:
    return list(body.transformer.layer)


def _distilbert_attention(block: nn.Module, body: nn.Module) -> Attention:
    attn = block.attention
    return Attention(attn, {"q": attn.q_lin, "k": attn.k_lin, "v": attn.v_lin}, None, attn.out_lin,
                     attn.n_heads, attn.attention_head_size)


def _albert_blocks(body: nn.Module) -> list[nn.Module]:
    """Every application of ALBERT's shared layers, in the order AlbertTransformer.forward makes them."""
    config, groups = body.config, body.encoder.albert_layer_groups
    per_group = config.num_hidden_layers / config.num_hidden_groups
    return [layer for i in range(config.num_hidden_layers)
            for layer in groups[int(i / per_group)].albert_layers]


def _albert_attention(block: nn.Module, body: nn.Module) -> Attention:
    attn = block.attention
    return Attention(attn, {"q": attn.query, "k": attn.key, "v": attn.value}, None, attn.dense,
                     attn.num_attention_heads, attn.attention_head_size)


def _modernbert_blocks(body: nn.Module) -> list[nn.Module]:
    return list(body.layers)


def _modernbert_attention(block: nn.Module, body: nn.Module) -> Attention:
    attn, config = block.attn, body.config
    window = config.sliding_window if block.attention_type == "sliding_attention" else None
    return Attention(attn, {}, attn.Wqkv, attn.Wo, config.num_attention_heads, attn.head_dim, rotary=True,
                     window=window)


_BERT_LIKE = dict(blocks=_bert_blocks, attention=_bert_attention, attention_output_block="attention.output")
_ROBERTA_LIKE = dict(_BERT_LIKE, head=("lm_head",), position_offset=True, special_tokens=("<s>", "</s>"))

FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    Family("bert", head=("cls.predictions",), extra_keys=("cls.seq_relationship.", "bert.pooler."), **_BERT_LIKE),
    Family("roberta", **_ROBERTA_LIKE, extra_keys=("roberta.pooler.",)),
    Family("xlm-roberta", **_ROBERTA_LIKE, extra_keys=("roberta.pooler.",)),
    Family("camembert", **_ROBERTA_LIKE, extra_keys=("roberta.pooler.",)),
    Family("electra", head=("generator_predictions", "generator_lm_head"), embedding_width="embedding_size",
           embedding_parts=("{prefix}.embeddings.", "{prefix}.embeddings_project."), **_BERT_LIKE),
    Family("distilbert", blocks=_distilbert_blocks, attention=_distilbert_attention,
           head=("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector"),
           layer_key=r"^{prefix}\.transformer\.layer\.(\d+)\.", mlp_out="ffn.lin2"),
    Family("albert", blocks=_albert_blocks, attention=_albert_attention, head=("predictions",),
           embedding_width="embedding_size", layer_key=r"^{prefix}\.encoder\.albert_layer_groups\.(\d+)\.",
           layer_count="num_hidden_groups", mlp_out="ffn_output", extra_keys=("sop_classifier.", "albert.pooler"),
           embedding_parts=("{prefix}.embeddings.", "{prefix}.encoder.embedding_hidden_mapping_in.")),
    Family("modernbert", blocks=_modernbert_blocks, attention=_modernbert_attention, head=("head", "decoder"),
           final_norm="final_norm", embedding_key="{prefix}.embeddings.tok_embeddings.weight",
           layer_key=r"^{prefix}\.layers\.(\d+)\.", mlp_out="mlp.Wo"),
)}

REFUSED = {
    "deberta-v2": "DeBERTa-v2's disentangled attention adds relative-position terms to Q·Kᵀ that no captured "
                  "Q and K reproduce, so its attention cannot be captured and verified",
    "deberta": "DeBERTa's disentangled attention adds relative-position terms to Q·Kᵀ that no captured Q and K "
               "reproduce, so its attention cannot be captured and verified",
}


def family_of(model_type: str | None, where: str = "") -> Family:
    """The family of a `model_type`, or one line saying it is not one probekit reads (and why, if known)."""
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    prefix = f"{where}: " if where else ""
    if model_type in REFUSED:
        raise ProbekitError(f"{prefix}model_type {model_type!r} is not supported: {REFUSED[model_type]}")
    raise ProbekitError(f"{prefix}model_type {model_type!r} is not a BERT model or another masked-LM family "
                        f"probekit reads ({', '.join(FAMILIES)})")


def family(model: nn.Module) -> Family:
    """The family of a loaded model."""
    return family_of(getattr(model.config, "model_type", None), type(model).__name__)


def body(model: nn.Module) -> nn.Module:
    """The encoder without its pretraining heads (e.g. BertModel inside BertForMaskedLM)."""
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix, model) if prefix else model


def blocks(model: nn.Module) -> list[nn.Module]:
    """The body's blocks in the order they run: block i is TransformerLens's `blocks.{i}`."""
    return family(model).blocks(body(model))


def n_layers(model: nn.Module) -> int:
    """How many blocks run (ALBERT: applications of its shared layers)."""
    return len(blocks(model))


def attention(model: nn.Module, block: nn.Module) -> Attention:
    return family(model).attention(block, body(model))


def mlp_out(model: nn.Module, block: nn.Module) -> nn.Module:
    """A block's MLP output projection: its output is `blocks.{l}.hook_mlp_out`."""
    return _module(block, family(model).mlp_out)


def embeddings(model: nn.Module) -> nn.Module:
    """The body's embeddings module: its output is `hook_full_embed`."""
    return _module(body(model), family(model).embeddings)


def windows(model: nn.Module) -> list[int | None]:
    """Per block, the half-width of its local attention window (a query sees keys at most this far), or
    None for global attention. Part of the mask a pattern is verified against."""
    return [attention(model, block).window for block in blocks(model)]


def _module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path)


def mlm_head(model: nn.Module) -> nn.Module:
    """The masked-LM head: the body's output (last_hidden_state) → vocabulary logits."""
    return nn.Sequential(*(_module(model, path) for path in family(model).head))


def unembed(model: nn.Module) -> nn.Module:
    """The residual stream after any block → logits: the family's final norm (ModernBERT) and its head.
    What the logit lens reads each layer through; at the last block it gives the model's own logits."""
    fam = family(model)
    norm = [_module(body(model), fam.final_norm)] if fam.final_norm else []
    return nn.Sequential(*norm, *(_module(model, path) for path in fam.head))


def attention_output_block(model: nn.Module, block: nn.Module) -> nn.Module | None:
    path = family(model).attention_output_block
    return _module(block, path) if path else None


def max_tokens(config) -> int:
    """The longest input the model takes, special tokens included."""
    fam = family_of(getattr(config, "model_type", None))
    positions = config.max_position_embeddings
    if fam.position_offset:
        positions -= (config.pad_token_id or 0) + 1
    return positions


def body_inputs(model: nn.Module, batch: dict) -> dict:
    """The tokenizer's outputs the body's forward takes (DistilBERT and ModernBERT take no token types)."""
    accepted = inspect.signature(body(model).forward).parameters
    return {k: v for k, v in batch.items() if k in accepted}


def weight_names(model_type: str, prefix: str) -> tuple[str, re.Pattern]:
    """(the word-embedding weight's name, a pattern whose group 1 is a layer index) in checkpoints."""
    fam = family_of(model_type)
    return fam.embedding_key.format(prefix=prefix), re.compile(fam.layer_key.format(prefix=re.escape(prefix)))


def weight_block(model_type: str, prefix: str, name: str) -> str:
    """The part of the model a checkpoint's weight belongs to: "embeddings", "layer i" (ALBERT: "layer group
    i", the shared layers applied in turn), "mlm head" (the readout the lens reads through: a final norm and
    the head) or "other" (a pooler, an NSP/SOP head). What `probekit.diff` measures weight change by."""
    fam = family_of(model_type)
    _, layer = weight_names(model_type, prefix)
    if match := layer.match(name):
        return f"{'layer group' if fam.layer_count == 'num_hidden_groups' else 'layer'} {match.group(1)}"
    if name.startswith(tuple(part.format(prefix=prefix) for part in fam.embedding_parts)):
        return "embeddings"
    readout = (*(f"{path}." for path in fam.head), *([f"{prefix}.{fam.final_norm}."] if fam.final_norm else []))
    return "mlm head" if name.startswith(readout) else "other"


def special_tokens(model_type: str | None) -> tuple[str, str]:
    """The (classifier, separator) tokens a family's tokenizers ship (BERT's when the family is unknown)."""
    return FAMILIES.get(model_type, FAMILIES["bert"]).special_tokens


def rotate(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
    """ModernBERT's rotary embedding of Q and K in [batch, pos, head, d_head] layout, by the model's own
    function (pass -sin to undo it)."""
    from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

    return apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
