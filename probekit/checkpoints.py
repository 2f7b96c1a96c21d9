"""A series on disk → ordered, fingerprinted, safely loaded checkpoints (or a clear one-line error).

Weights load from safetensors; pickle files (`pytorch_model.bin`) only when the caller allows them, and then
with `weights_only=True`. No code from a checkpoint is ever run (`trust_remote_code` is never set).
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import (CONFIG_MAPPING, AutoModelForMaskedLM, AutoTokenizer, BertForMaskedLM, PretrainedConfig,
                          PreTrainedModel, PreTrainedTokenizerBase)
from transformers.initialization import no_init_weights
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING

from probekit import hub
from probekit.errors import ProbekitError
from probekit.families import family_of, weight_names
from probekit.folders import (CONFIG, PICKLE_WEIGHTS, SAFE_WEIGHTS, TOKENIZER_FILES, looks_like_checkpoint,
                              seed_in_name, step_of)
from probekit.log import logger

class Checkpoint:
    """One checkpoint of a series: where it is, when in training it was written, and — read lazily, once —
    its config, weights, fingerprint, tokenizer and model. What a `Series` yields and every analysis takes.

    `name` is unique within the series it was resolved with (the folder name, prefixed by its run where
    folder names repeat, as with `runs/*/checkpoint-8000`); `run` is the folder holding it.
    """

    def __init__(self, name: str, location: str, step: int | None, run: str = "", allow_pickle: bool = False,
                 tokenizer: PreTrainedTokenizerBase | None = None):
        self.name, self.location, self.step, self.run = name, location, step, run
        self.allow_pickle = allow_pickle
        self._tokenizer = tokenizer
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"Checkpoint({self.name!r}, step={self.step}, location={self.location!r})"

    @property
    def source(self) -> str:
        """Where it comes from as given — a folder, or a hub spec — read without fetching anything."""
        return self.location

    @property
    def is_local(self) -> bool:
        return Path(self.location).exists()

    def _once(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def config(self) -> PretrainedConfig:
        """The checkpoint's config, checked before anything else is read."""
        return self._once("config", lambda: read_config(self) if self.is_local else self._hub_model().config)

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        """Its tensors (safetensors; pickle only if allowed), checked against the config and to be finite."""
        def read() -> dict[str, torch.Tensor]:
            if not self.is_local:
                return self._hub_model().state_dict()
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
        def build() -> PreTrainedModel:
            if not self.is_local:
                return self._hub_model()
            return build_model(self.config, self.weights, self.location)
        model = self._once("model", build)
        if model.config._attn_implementation != attn_implementation:
            model.set_attn_implementation(attn_implementation)
        return model.to(device)

    def release(self) -> None:
        """Forget the weights and model (the fingerprint and identity stay): one checkpoint in memory at a time."""
        for key in ("weights", "model", "hub_model"):
            self._cache.pop(key, None)

    def _hub_model(self) -> BertForMaskedLM:
        return self._once("hub_model", lambda: _load_from_hub(self.location, self.allow_pickle))


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


def resolve_checkpoints(specs: list[str] | str, allow_pickle: bool = False,
                        tokenizer: PreTrainedTokenizerBase | None = None, *, step_from: str | None = None,
                        evict: bool = False, check_cached: bool = True) -> list[Checkpoint]:
    """Checkpoints from paths, quoted globs, parent folders or hub names (`ORG/NAME`, `ORG/NAME@REVISION`), in
    training order.

    Order is by step (trainer_state.json's global_step, else the number ending the folder name; for a hub name
    the step its name states, else its revision's, else its trainer_state.json), so checkpoint-14400 comes before
    checkpoint-144000; unnumbered ones keep their given order at the end. `step_from`, a regex whose first group
    is the step (k/M suffixes allowed), decides every checkpoint's step instead. Hub checkpoints are fetched one
    at a time when first read (`probekit.hub`); with `evict`, each is deleted from the hub cache when released.
    """

    specs = [specs] if isinstance(specs, (str, Path)) else list(specs)
    pattern = hub.step_pattern(step_from)
    entries: list[str | hub.HubSpec] = []
    for spec in map(str, specs):
        path = Path(spec)
        if any(ch in spec for ch in "*?["):
            matches = [m for m in sorted(glob.glob(spec)) if looks_like_checkpoint(Path(m))]
            if not matches:
                raise ProbekitError(f"{spec}: matches no checkpoint folder")
            entries += matches
        elif path.is_file():
            if len(specs) == 1:
                raise ProbekitError(f"{spec}: a file, not a checkpoint folder")
            continue  # a shell glob also expands to files beside the checkpoints (probekit_run.json)
        elif path.is_dir() and not (path / "config.json").exists():
            children = [str(p) for p in sorted(path.iterdir()) if looks_like_checkpoint(p)]
            entries += children or [spec]
        elif path.exists():
            entries.append(spec)
        elif not _looks_like_path(spec):
            entries.append(hub.parse_spec(spec))
        else:
            raise ProbekitError(f"{spec}: no such checkpoint folder")
    entries = list(dict.fromkeys(entries))
    if check_cached:
        hub.check_cached([e for e in entries if isinstance(e, hub.HubSpec)])
    folders = [e for e in entries if isinstance(e, str)]
    names = dict(zip(folders, _unique_names(folders)))
    found = [hub_checkpoint(e, pattern, allow_pickle, tokenizer, evict) if isinstance(e, hub.HubSpec)
             else Checkpoint(names[e], e, hub.step_from_pattern(pattern, e) if pattern else step_of(Path(e)),
                             _run_of(e), allow_pickle, tokenizer)
             for e in entries]
    taken = [c.name for c in found]
    for ref in found:
        if isinstance(ref, HubCheckpoint) and taken.count(ref.name) > 1:
            ref.name = str(ref.spec)  # two owners' repositories of one name: the full spec tells them apart
    ranked = sorted(enumerate(found), key=lambda p: (p[1].step is None, p[0] if p[1].step is None else p[1].step))
    return [ref for _, ref in ranked]


def _run_of(location: str) -> str:
    path = Path(location)
    if path.exists():
        return path.resolve().parent.name
    return location.split("/")[0] if "/" in location else ""


def _unique_names(locations: list[str]) -> list[str]:
    """Each location's folder name, with as many parent folders as it takes to tell repeated names apart."""
    parts = [Path(loc).resolve().parts if Path(loc).exists() else tuple(loc.split("/")) for loc in locations]
    depth = [1] * len(parts)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clashes = {n for n in names if names.count(n) > 1}
        if not clashes:
            return names
        grown = [d + 1 if n in clashes and d < len(p) else d for n, p, d in zip(names, parts, depth)]
        if grown == depth:
            return names
        depth = grown


def _looks_like_path(spec: str) -> bool:
    """True when a spec that names nothing on disk was meant as a path (the error says so), not a hub name."""
    return hub.looks_like_path(spec)


def read_weights(ref: Checkpoint, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
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
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no copy of the weights
    return digest.hexdigest()[:16]


SIZE_LIMITS = {"vocab_size": 2_000_000, "hidden_size": 65_536, "num_hidden_layers": 1_024,
               "num_attention_heads": 1_024, "intermediate_size": 262_144, "max_position_embeddings": 1_048_576}


def read_config(ref: Checkpoint) -> PretrainedConfig:
    """The checkpoint's config, refused unless it describes a masked-LM family probekit reads
    (`probekit.families`), of sane sizes, whose heads divide its width."""
    path = Path(ref.location) / CONFIG
    if not path.is_file():
        raise ProbekitError(f"{ref.location}: no {CONFIG}")
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
        raise ProbekitError(f"{ref.location}: {config.num_attention_heads} attention heads do not divide "
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
        if ref.is_local and not any((Path(ref.location) / f).is_file() for f in TOKENIZER_FILES):
            raise ProbekitError(f"{ref.location}: no tokenizer files saved with it "
                                f"({', '.join(TOKENIZER_FILES)}); pass --tokenizer")
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref.location, local_files_only=ref.is_local)
        except Exception as exc:  # tokenizers raise many types on malformed files
            raise ProbekitError(f"{ref.location}: unreadable tokenizer ({_short(exc)}); pass --tokenizer") from exc
    if vocab_size is not None and len(tokenizer) != vocab_size:
        raise ProbekitError(f"{ref.location}: vocabulary mismatch: the tokenizer has {len(tokenizer)} tokens, "
                            f"the model {vocab_size}")
    if tokenizer.mask_token_id is None:
        raise ProbekitError(f"{ref.location}: the tokenizer has no mask token")
    return tokenizer


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


def load_checkpoint(
    ref: Checkpoint | str,
    tokenizer: PreTrainedTokenizerBase | None = None,
    allow_pickle: bool = False,
    attn_implementation: str = "eager",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A checkpoint's model in eval mode and its tokenizer, or a ProbekitError naming what is wrong.

    Eager attention is the default here because SDPA returns no attention weights.
    """
    if not isinstance(ref, Checkpoint):
        ref = resolve_checkpoints([str(ref)], allow_pickle, tokenizer)[0]
    tok = ref.tokenizer
    return ref.model(attn_implementation=attn_implementation), tok


def _load_from_hub(location: str, allow_pickle: bool = False) -> BertForMaskedLM:
    """The model of a plain Checkpoint whose location is a hub name: fetched into the hub cache and built from
    that snapshot by the same checked code as a local folder (never `from_pretrained` of a hub name)."""
    return resolve_checkpoints([location], allow_pickle)[0].model()


def decoder_is_tied(model: torch.nn.Module) -> bool:
    """True when the MLM decoder shares its weight with the word embeddings (every supported family's
    default)."""
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
    """A training series opened once: `series[-1]` by position (like a list), `series.at(600)` by step.

    Hub checkpoints in it are fetched when first read; with `evict=True` each is deleted from the hub cache
    when released (`series[i].release()`, as `probe` does after each checkpoint).
    """

    def __init__(self, specs: list[str] | str, allow_pickle: bool = False,
                 tokenizer: PreTrainedTokenizerBase | None = None, *, step_from: str | None = None,
                 evict: bool = False):
        self.checkpoints = resolve_checkpoints(specs, allow_pickle, tokenizer, step_from=step_from, evict=evict)

    @property
    def steps(self) -> list[int | None]:
        return [c.step for c in self.checkpoints]

    def __len__(self) -> int:
        return len(self.checkpoints)

    def __iter__(self):
        return iter(self.checkpoints)

    def __getitem__(self, index: int) -> Checkpoint:
        """The checkpoint at `index` in training order (negative counts from the end)."""
        return self.checkpoints[index]

    def at(self, step: int) -> Checkpoint:
        """The checkpoint written at training step `step`."""
        for checkpoint in self.checkpoints:
            if checkpoint.step == step:
                return checkpoint
        raise KeyError(f"no checkpoint at step {step}; steps: {self.steps}")

    def __repr__(self) -> str:
        return f"Series({len(self)} checkpoints, steps {self.steps})"


def open_series(specs: list[str] | str, allow_pickle: bool = False,
                tokenizer: PreTrainedTokenizerBase | None = None, *, step_from: str | None = None,
                evict: bool = False) -> Series:
    """Open a checkpoint series: paths, a glob such as 'local/my_bert/*', a parent folder, or hub names
    (`google/multiberts-seed_0-step_20k`, `ORG/NAME@REVISION`); `step_from` and `evict` as for `probe`."""
    return Series(specs, allow_pickle, tokenizer, step_from=step_from, evict=evict)


# ---------------------------------------------------------------- a checkpoint on the hub


class HubCheckpoint(Checkpoint):
    """A checkpoint named on the hub. Its snapshot is fetched when it is first read (its config, weights,
    tokenizer, model, or its `location`), then read by the same checked code as a local folder.

    `location` is the snapshot folder once fetched, the spec before that or when it cannot be fetched;
    `spec` says where it came from and `seed` what its name says of its seed ("" for nothing). With
    `evict=True`, `release()` also deletes the snapshot from the hub cache (`evict()` does it at any time).
    """

    def __init__(self, spec: hub.HubSpec, name: str, step: int | None, run: str, seed: str = "",
                 allow_pickle: bool = False, tokenizer: PreTrainedTokenizerBase | None = None, evict: bool = False):
        self.spec = spec
        self._folder: Path | None = None
        self._error: ProbekitError | None = None
        super().__init__(name, str(spec), step, run, allow_pickle, tokenizer)
        self.seed = seed
        self.evict_on_release = evict

    def __repr__(self) -> str:
        return f"HubCheckpoint({self.name!r}, step={self.step}, spec={str(self.spec)!r})"

    @property
    def source(self) -> str:
        return str(self.spec)

    @property
    def location(self) -> str:
        """The snapshot folder it is read from (fetched on first use); the spec while it cannot be fetched."""
        if self._folder is None and self._error is None:
            try:
                self.fetch()
            except ProbekitError:
                pass  # remembered: the next read of its contents raises it
        return str(self._folder) if self._folder is not None else str(self.spec)

    @location.setter
    def location(self, value: str) -> None:
        """Set by `Checkpoint.__init__`; a hub checkpoint's location is decided by its spec and the cache."""

    @property
    def is_local(self) -> bool:
        """True while its snapshot is on disk (never fetches)."""
        return self._folder is not None and self._folder.is_dir()

    def fetch(self) -> Path:
        """Its snapshot folder, downloaded if it is not on disk (again after an eviction); a failure is kept
        and raised again rather than retried."""
        if self._error is not None:
            raise self._error
        if not self.is_local:
            try:
                self._folder = hub.fetch_snapshot(self.spec, self.allow_pickle)
            except ProbekitError as exc:
                self._error = exc
                raise
            logger.debug(f"{self.spec}: snapshot {self._folder}")
        return self._folder

    def _once(self, key: str, make):
        if key not in self._cache:
            self.fetch()
        return super()._once(key, make)

    def release(self) -> None:
        """Forget the weights and model; with `evict=True`, delete the snapshot from the hub cache too."""
        super().release()
        if self.evict_on_release:
            try:
                self.evict()
            except (ProbekitError, OSError) as exc:  # the probe itself succeeded: say so, keep going
                logger.warning(f"{self.spec}: not evicted ({exc})")

    def evict(self) -> None:
        """Delete its snapshot from the hub cache (only this repository's revision); reading it again re-fetches."""
        if not self.is_local:
            return
        freed = hub.evict_snapshot(self._folder)
        logger.info(f"{self.spec}: evicted from the hub cache ({freed / 1e6:,.1f} MB freed)")


def hub_checkpoint(spec: hub.HubSpec, pattern: re.Pattern | None = None, allow_pickle: bool = False,
                   tokenizer: PreTrainedTokenizerBase | None = None, evict: bool = False) -> HubCheckpoint:
    """A HubCheckpoint with its step — from `pattern` (--step-from) when given, else the repository name, else
    the revision, else trainer_state.json — its run and its seed. Nothing but trainer_state.json is fetched."""
    if pattern is not None:
        step = hub.step_from_pattern(pattern, str(spec))
    else:
        step = hub.step_in_name(spec.repo_name)
        if step is None and spec.revision:
            step = hub.step_in_name(spec.revision)
        if step is None:
            step = hub.trainer_state_step(spec)
    name = f"{spec.repo_name}@{spec.revision}" if spec.revision else spec.repo_name
    seed = seed_in_name(spec.repo_name) or (seed_in_name(spec.revision) if spec.revision else "")
    return HubCheckpoint(spec, name, step, hub.run_of(spec), seed, allow_pickle, tokenizer, evict)
