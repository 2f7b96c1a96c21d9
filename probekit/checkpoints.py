"""A series on disk → ordered, fingerprinted, safely loaded checkpoints (or a clear one-line error).

Weights load from safetensors; pickle files (`pytorch_model.bin`) only when the caller allows them, and then
with `weights_only=True`. No code from a checkpoint is ever run (`trust_remote_code` is never set).
"""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, PreTrainedTokenizerBase
from transformers.initialization import no_init_weights

from probekit.errors import ProbekitError
from probekit.folders import PICKLE_WEIGHTS, SAFE_WEIGHTS, looks_like_checkpoint, step_of

TIED_KEYS = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}


@dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint of a series: where it is and when in training it was written."""

    name: str
    location: str
    step: int | None

    @property
    def is_local(self) -> bool:
        return Path(self.location).exists()


def resolve_checkpoints(specs: list[str] | str) -> list[CheckpointRef]:
    """Checkpoints from paths, quoted globs, parent folders or hub names, in training order.

    Order is by step (trainer_state.json's global_step, else the number ending the folder name), so
    checkpoint-14400 comes before checkpoint-144000; unnumbered ones keep their given order at the end.
    """
    specs = [specs] if isinstance(specs, (str, Path)) else list(specs)
    locations: list[str] = []
    for spec in map(str, specs):
        path = Path(spec)
        if any(ch in spec for ch in "*?["):
            matches = [m for m in sorted(glob.glob(spec)) if looks_like_checkpoint(Path(m))]
            if not matches:
                raise ProbekitError(f"{spec}: matches no checkpoint folder")
            locations += matches
        elif path.is_file():
            if len(specs) == 1:
                raise ProbekitError(f"{spec}: a file, not a checkpoint folder")
            continue  # a shell glob also expands to files beside the checkpoints (probekit_run.json)
        elif path.is_dir() and not (path / "config.json").exists():
            children = [str(p) for p in sorted(path.iterdir()) if looks_like_checkpoint(p)]
            locations += children or [spec]
        elif path.exists() or not _looks_like_path(spec):
            locations.append(spec)
        else:
            raise ProbekitError(f"{spec}: no such checkpoint folder")
    refs = list(dict.fromkeys(locations))
    found = [CheckpointRef(Path(loc).name if Path(loc).exists() else loc, loc, step_of(Path(loc))) for loc in refs]
    order = {ref.location: i for i, ref in enumerate(found)}
    return sorted(found, key=lambda r: (r.step is None, r.step if r.step is not None else order[r.location]))


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or Path(spec).suffix != ""


def read_weights(ref: CheckpointRef, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors from safetensors (or, if allowed, pickle with weights_only)."""
    path = Path(ref.location)
    if (path / SAFE_WEIGHTS).is_file():
        try:
            return load_file(path / SAFE_WEIGHTS)
        except Exception as exc:  # safetensors raises its own error types for truncation and bad headers
            raise ProbekitError(f"{path / SAFE_WEIGHTS}: corrupt or truncated weights ({_short(exc)})") from exc
    if (path / PICKLE_WEIGHTS).is_file():
        if not allow_pickle:
            raise ProbekitError(f"{path}: only pickle weights ({PICKLE_WEIGHTS}); pass --allow-pickle to load them")
        try:
            return torch.load(path / PICKLE_WEIGHTS, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ProbekitError(f"{path / PICKLE_WEIGHTS}: unreadable weights ({_short(exc)})") from exc
    raise ProbekitError(f"{path}: no {SAFE_WEIGHTS} (or {PICKLE_WEIGHTS})")


def fingerprint(weights: dict[str, torch.Tensor]) -> str:
    """A hash of the tensors themselves (names, dtypes, shapes, values): equal weights, equal fingerprint."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def read_config(ref: CheckpointRef) -> BertConfig:
    """The checkpoint's config, refused unless it describes a BERT whose heads divide its width."""
    path = Path(ref.location) / "config.json"
    if not path.is_file():
        raise ProbekitError(f"{ref.location}: no config.json")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ProbekitError(f"{path}: not valid JSON ({exc.msg})") from exc
    if raw.get("model_type") != "bert":
        raise ProbekitError(f"{ref.location}: not a BERT model (model_type {raw.get('model_type')!r})")
    config = BertConfig.from_dict(raw)
    if config.num_attention_heads <= 0 or config.hidden_size % config.num_attention_heads:
        raise ProbekitError(f"{ref.location}: {config.num_attention_heads} attention heads do not divide "
                            f"hidden size {config.hidden_size}")
    return config


def load_tokenizer_for(ref: CheckpointRef, tokenizer: PreTrainedTokenizerBase | None = None,
                       vocab_size: int | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer saved with the checkpoint (or the one given), checked against the model's vocabulary."""
    if tokenizer is None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref.location, local_files_only=ref.is_local)
        except (OSError, ValueError) as exc:
            raise ProbekitError(f"{ref.location}: no tokenizer saved with it; pass --tokenizer") from exc
    if vocab_size is not None and len(tokenizer) != vocab_size:
        raise ProbekitError(f"{ref.location}: vocabulary mismatch: the tokenizer has {len(tokenizer)} tokens, "
                            f"the model {vocab_size}")
    if tokenizer.mask_token_id is None:
        raise ProbekitError(f"{ref.location}: the tokenizer has no mask token")
    return tokenizer


def load_checkpoint(
    ref: CheckpointRef | str,
    tokenizer: PreTrainedTokenizerBase | None = None,
    allow_pickle: bool = False,
    attn_implementation: str = "eager",
    weights: dict[str, torch.Tensor] | None = None,
) -> tuple[BertForMaskedLM, PreTrainedTokenizerBase]:
    """A `BertForMaskedLM` in eval mode and its tokenizer, or a ProbekitError naming what is wrong.

    BertForPreTraining checkpoints load too (their MLM head is the same). Eager attention is the default
    because SDPA returns no attention weights.
    """
    if isinstance(ref, (str, Path)):
        ref = resolve_checkpoints([str(ref)])[0]
    if not ref.is_local:
        return _load_from_hub(ref, tokenizer, attn_implementation)
    config = read_config(ref)
    config._attn_implementation = attn_implementation
    weights = weights if weights is not None else read_weights(ref, allow_pickle)
    with no_init_weights():
        model = BertForMaskedLM(config)
    missing, _unexpected = model.load_state_dict(weights, strict=False)
    missing = set(missing) - TIED_KEYS
    if missing:
        raise ProbekitError(f"{ref.location}: weights lack {len(missing)} tensors of a BERT MLM "
                            f"(e.g. {sorted(missing)[0]}); is it a masked-LM checkpoint?")
    model.tie_weights()
    if not decoder_is_tied(model):
        raise ProbekitError(f"{ref.location}: MLM decoder is not tied to the word embeddings")
    return model.eval(), load_tokenizer_for(ref, tokenizer, config.vocab_size)


def _load_from_hub(ref: CheckpointRef, tokenizer, attn_implementation: str):
    try:
        model = BertForMaskedLM.from_pretrained(ref.location, attn_implementation=attn_implementation,
                                                use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise ProbekitError(f"{ref.location}: not a local folder, and the hub could not provide it "
                            f"({exc.__class__.__name__})") from exc
    return model.eval(), load_tokenizer_for(ref, tokenizer, model.config.vocab_size)


def decoder_is_tied(model: torch.nn.Module) -> bool:
    """True when the MLM decoder shares its weight with the word embeddings (BERT's design)."""
    decoder = model.get_output_embeddings()
    embeddings = model.get_input_embeddings()
    return decoder is not None and decoder.weight.data_ptr() == embeddings.weight.data_ptr()


def decoder_tie_message(model: torch.nn.Module) -> str:
    """What the seed's "missing keys: cls.predictions.decoder.weight" warning should have said."""
    if decoder_is_tied(model):
        return ("MLM decoder: tied to the word embeddings, so it is stored once "
                "(no 'cls.predictions.decoder' in the file is expected)")
    return "MLM decoder: NOT tied to the word embeddings; its weights were loaded separately"


def _short(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:100]}" if str(exc) else exc.__class__.__name__


class Series:
    """A training series opened once and indexed by step: `series[600]`, `series.steps`, `series.load(600)`."""

    def __init__(self, specs: list[str] | str):
        self.refs = resolve_checkpoints(specs)

    @property
    def steps(self) -> list[int | None]:
        return [r.step for r in self.refs]

    def __len__(self) -> int:
        return len(self.refs)

    def __iter__(self):
        return iter(self.refs)

    def __getitem__(self, step: int) -> CheckpointRef:
        """The checkpoint written at `step` (negative numbers count from the end, like a list)."""
        by_step = {r.step: r for r in self.refs}
        if step in by_step:
            return by_step[step]
        if step < 0 and -step <= len(self.refs):
            return self.refs[step]
        raise KeyError(f"no checkpoint at step {step}; steps: {self.steps}")

    def load(self, step: int, **kwargs):
        """(model, tokenizer) of the checkpoint at `step`."""
        return load_checkpoint(self[step], **kwargs)

    def __repr__(self) -> str:
        return f"Series({len(self)} checkpoints, steps {self.steps})"


def open_series(specs: list[str] | str) -> Series:
    """Open a checkpoint series (paths, a glob such as 'local/my_bert/*', or a parent folder)."""
    return Series(specs)
