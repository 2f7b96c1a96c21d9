"""One checkpoint, read safely and lazily: its config, weights, fingerprint, tokenizer and model — or a one-line
error naming the file.

Weights load from safetensors; pickle files (`pytorch_model.bin`) only when the caller allows them, and then
with `weights_only=True`. No code from a checkpoint is ever run (`trust_remote_code` is never set). A
`Checkpoint` reads a folder; `probekit.models.hub.HubCheckpoint` is one whose folder is fetched into the hub cache
first; `probekit.models.series` turns specs (paths, globs, hub names) into an ordered series of them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import (CONFIG_MAPPING, AutoModelForMaskedLM, AutoTokenizer, PretrainedConfig, PreTrainedModel,
                          PreTrainedTokenizerBase)
from transformers.initialization import no_init_weights
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING

from probekit.core.errors import ProbekitError
from probekit.models.families import family_of, weight_names
from probekit.training.folders import CONFIG, PICKLE_WEIGHTS, SAFE_WEIGHTS, TOKENIZER_FILES, decoder_is_tied


class Checkpoint:
    """One checkpoint of a series: where it is, when in training it was written, and — read lazily, once —
    its config, weights, fingerprint, tokenizer and model. What a `Series` yields and every analysis takes.

    A Checkpoint reads the folder at `location` and nothing else (a hub name is a `probekit.models.hub.HubCheckpoint`).
    `name` is unique within the series it was resolved with (the folder name, prefixed by its run where
    folder names repeat, as with `runs/*/checkpoint-8000`); `run` is the folder holding it.
    """

    def __init__(self, name: str, location: str, step: int | None, run: str = "", allow_pickle: bool = False,
                 tokenizer: PreTrainedTokenizerBase | None = None):
        self.name, self.step, self.run = name, step, run
        self._location = location
        self.allow_pickle = allow_pickle
        self._tokenizer = tokenizer
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Checkpoint({self.name!r}, step={self.step}, location={self.location!r})"

    @property
    def location(self) -> str:
        """The folder its files are in."""
        return self._location

    @property
    def source(self) -> str:
        """Where it comes from as given — a folder, or a hub spec — read without fetching anything."""
        return self.location

    @property
    def is_local(self) -> bool:
        """True when its folder is on disk (never fetches)."""
        return Path(self.location).is_dir()

    def fetch(self) -> Path:
        """The folder its files are read from: for a local checkpoint its location, so nothing is fetched.
        Every read of its files goes through here (a hub checkpoint downloads here, and only here)."""
        return Path(self.location)

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def config(self) -> PretrainedConfig:
        """The checkpoint's config, checked before anything else is read."""
        return self._once("config", lambda: read_config(self))

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        """Its tensors (safetensors; pickle only if allowed), checked against the config and to be finite."""
        def read() -> dict[str, torch.Tensor]:
            config = self.config
            weights = read_weights(self, self.allow_pickle)
            _check_shapes(config, weights, self.location)
            _check_finite(weights, self.location)
            return weights
        return self._once("weights", read)

    @property
    def family(self) -> str | None:
        """Its model family (`config.model_type`: bert, roberta, …), or None when its config is unreadable
        (the error then surfaces where the checkpoint is analysed)."""
        try:
            return self._once("family", lambda: self.config.model_type)
        except Exception:  # any failure to read is reported by the analysis that needs the config
            return None

    @property
    def fingerprint(self) -> str:
        """A hash of the weights alone: equal weights, equal fingerprint."""
        return self._once("fingerprint", lambda: fingerprint(self.weights))

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer saved with it (or the one given), checked against the model's vocabulary."""
        return self._once("tokenizer", lambda: load_tokenizer_for(self, self._tokenizer, self.config.vocab_size))

    @property
    def identity(self) -> str:
        """What makes two checkpoints score alike: weights, config and tokenizer (duplicates, cache keys)."""
        def make() -> str:
            config = {k: v for k, v in self.config.to_dict().items()
                      if k not in ("_name_or_path", "transformers_version", "_attn_implementation_autoset")}
            parts = [self.fingerprint, json.dumps(config, sort_keys=True, default=str),
                     tokenizer_identity(self.tokenizer)]
            return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
        return self._once("identity", make)

    def model(self, device: str | torch.device = "cpu", attn_implementation: str = "sdpa") -> PreTrainedModel:
        """The masked-LM model in eval mode on `device`, built once from the weights already read."""
        model = self._once("model", lambda: build_model(self.config, self.weights, self.location))
        if model.config._attn_implementation != attn_implementation:
            model.set_attn_implementation(attn_implementation)
        return model.to(device)

    def release(self) -> None:
        """Forget the weights and model (the fingerprint and identity stay): one checkpoint in memory at a time."""
        for key in ("weights", "model"):
            self._cache.pop(key, None)


class RandomInit(Checkpoint):
    """A seeded random initialisation of another checkpoint's architecture: what prompt bias alone scores."""

    def __init__(self, like: Checkpoint, seed: int = 0):
        super().__init__("random-init", "", 0, like.run, tokenizer=like.tokenizer)
        self._cache["config"] = like.config
        self.seed = seed

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        return self.model().state_dict()

    def model(self, device: str | torch.device = "cpu", attn_implementation: str = "sdpa") -> PreTrainedModel:
        def build() -> PreTrainedModel:
            config = copy.deepcopy(self.config)
            torch.manual_seed(self.seed)
            return AutoModelForMaskedLM.from_config(config, attn_implementation=attn_implementation).eval()
        return self._once("model", build).to(device)

    def release(self) -> None:
        """Nothing to forget: the model is rebuilt from a seed."""

    @property
    def is_local(self) -> bool:
        return False

    def fetch(self) -> Path:
        """A random initialisation has no files: it is built from its seed."""
        raise ProbekitError(f"{self.name}: no files to read; it is built from seed {self.seed}")


def read_weights(ref: Checkpoint, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors from safetensors (or, if allowed, pickle with weights_only)."""
    path = ref.fetch()
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
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no copy of the weights
    return digest.hexdigest()[:16]


SIZE_LIMITS = {"vocab_size": 2_000_000, "hidden_size": 65_536, "num_hidden_layers": 1_024,
               "num_attention_heads": 1_024, "intermediate_size": 262_144, "max_position_embeddings": 1_048_576}


def read_config(ref: Checkpoint) -> PretrainedConfig:
    """The checkpoint's config, refused unless it describes a masked-LM family probekit reads
    (`probekit.models.families`), of sane sizes, whose heads divide its width."""
    folder = ref.fetch()
    path = folder / CONFIG
    if not path.is_file():
        raise ProbekitError(f"{folder}: no {CONFIG}")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProbekitError(f"{path}: not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(raw, dict):
        raise ProbekitError(f"{path}: not a JSON object")
    model_type = raw.get("model_type")
    family_of(model_type if isinstance(model_type, str) else None, str(path))
    for key, limit in SIZE_LIMITS.items():  # before the config class sees them (it may compute with them)
        _check_size(path, key, raw.get(key, 1), limit)
    try:
        config = CONFIG_MAPPING[model_type].from_dict(raw)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ProbekitError(f"{path}: not a valid {model_type} config ({_short(exc)})") from exc
    for key, limit in SIZE_LIMITS.items():  # the same sizes under the family's own names (DistilBERT: dim)
        _check_size(path, key, getattr(config, key, 1), limit)
    if config.hidden_size % config.num_attention_heads:
        raise ProbekitError(f"{folder}: {config.num_attention_heads} attention heads do not divide "
                            f"hidden size {config.hidden_size}")
    return config


def _check_size(path: Path, key: str, value, limit: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= limit:
        raise ProbekitError(f"{path}: {key} must be a whole number from 1 to {limit:,}, not {value!r}")


def tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of what the tokenizer does: its full serialisation when it has one, else vocabulary and specials."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:
        text = json.dumps([sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens])
    return hashlib.sha256(f"{type(tokenizer).__name__}|{text}".encode()).hexdigest()[:16]


def load_tokenizer_for(ref: Checkpoint, tokenizer: PreTrainedTokenizerBase | None = None,
                       vocab_size: int | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer saved with the checkpoint (or the one given), checked against the model's vocabulary."""
    if tokenizer is None:
        tokenizer = saved_tokenizer(ref.fetch())
    if vocab_size is not None and len(tokenizer) != vocab_size:
        raise ProbekitError(f"{ref.location}: vocabulary mismatch: the tokenizer has {len(tokenizer)} tokens, "
                            f"the model {vocab_size}")
    if tokenizer.mask_token_id is None:
        raise ProbekitError(f"{ref.location}: the tokenizer has no mask token")
    return tokenizer


def saved_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in a checkpoint folder, read from that folder alone (no download, no remote code)."""
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ProbekitError(f"{folder}: no tokenizer files saved with it ({', '.join(TOKENIZER_FILES)}); "
                            "pass --tokenizer")
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # tokenizers raise many types on malformed files
        raise ProbekitError(f"{folder}: unreadable tokenizer ({_short(exc)}); pass --tokenizer") from exc


BUFFERS = (".position_ids", ".token_type_ids")  # buffers older transformers saved with the weights


def masked_lm_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    """The `*ForMaskedLM` class `AutoModelForMaskedLM` builds for this config."""
    return MODEL_FOR_MASKED_LM_MAPPING[type(config)]


def build_model(config: PretrainedConfig, weights: dict[str, torch.Tensor], where: str) -> PreTrainedModel:
    """The family's masked-LM model (`AutoModelForMaskedLM`) in eval mode from a config and its weights,
    refused unless they agree exactly.

    Weights tied by the model (the decoder to the word embeddings) may be absent; pretraining checkpoints
    load too (their NSP/SOP head and pooler are the only tensors left over).
    """
    with no_init_weights():
        model = AutoModelForMaskedLM.from_config(config)
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:
        raise ProbekitError(f"{where}: weights do not fit its config ({_short(exc)})") from exc
    model.tie_weights()
    missing = sorted(k for k in missing if not _is_tied(model, k))
    extra = family_of(config.model_type).extra_keys
    unexpected = sorted(k for k in unexpected if not k.startswith(extra) and not k.endswith(BUFFERS))
    if missing:
        raise ProbekitError(f"{where}: weights lack {len(missing)} tensors of a {type(model).__name__} of its "
                            f"config (e.g. {missing[0]}); is it a masked-LM checkpoint?")
    if unexpected:
        raise ProbekitError(f"{where}: weights hold {len(unexpected)} tensors its config has no place for "
                            f"(e.g. {unexpected[0]}); config and weights disagree")
    if getattr(config, "tie_word_embeddings", True) and not decoder_is_tied(model):
        raise ProbekitError(f"{where}: MLM decoder is not tied to the word embeddings")
    return model.eval()


def _is_tied(model: PreTrainedModel, key: str) -> bool:
    """Whether `key` is a weight the model shares with another (so a checkpoint stores it once)."""
    source = (getattr(model, "_tied_weights_keys", None) or {}).get(key)
    if not isinstance(source, str):
        return False
    try:
        return model.get_parameter(key).data_ptr() == model.get_parameter(source).data_ptr()
    except AttributeError:
        return False


def _check_shapes(config: PretrainedConfig, weights: dict[str, torch.Tensor], where: str) -> None:
    """Refuse before building anything when the config's sizes are not those of the weights."""
    family = family_of(config.model_type)
    embedding_key, layer_key = weight_names(config.model_type, masked_lm_class(config).base_model_prefix)
    embedding = weights.get(embedding_key)
    width = getattr(config, family.embedding_width, config.hidden_size)
    if embedding is not None and tuple(embedding.shape) != (config.vocab_size, width):
        raise ProbekitError(f"{where}: config says vocab {config.vocab_size} × hidden {width}, "
                            f"the weights' embeddings are {tuple(embedding.shape)}")
    layers = {int(m.group(1)) for k in weights if (m := layer_key.match(k))}
    expected = getattr(config, family.layer_count)
    if layers and max(layers) + 1 != expected:
        raise ProbekitError(f"{where}: config says {expected} {family.layer_count.replace('num_hidden_', '')}, "
                            f"the weights have {max(layers) + 1}")


def _check_finite(weights: dict[str, torch.Tensor], where: str) -> None:
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ProbekitError(f"{where}: {len(bad)} weight tensors hold NaN or Inf (e.g. {bad[0]}); a diverged run?")


def _short(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:100]}" if str(exc) else exc.__class__.__name__
