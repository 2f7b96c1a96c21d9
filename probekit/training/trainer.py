"""The pretraining recipe over HF `Trainer`: the model, the schedule, the callbacks, resume, and `train()`.

`train()` writes `OUTPUT/checkpoint-N/` folders in the layout HF users know (config, model.safetensors,
tokenizer, trainer_state.json), each loadable by `BertForMaskedLM.from_pretrained` alone, plus
`OUTPUT/probekit_run.json` recording what made them (see `probekit.training.folders`). Data preparation lives in
`probekit.training.data`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    DataCollatorForLanguageModeling,
    PreTrainedTokenizerBase,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.modeling_outputs import MaskedLMOutput

from probekit import __version__
from probekit.training.corpus import DEFAULT_CORPUS, corpus_fingerprint, load_training_corpus
from probekit.training.data import MaskingCollator, build_dataset, fixed_mask_eval_set, masked_lm_loss
from probekit.core.errors import ProbekitError
from probekit.training.facts import table_names
from probekit.training.folders import (
    IDENTITY_FIELDS,
    check_output_is_ours,
    checkpoint_dirs,
    decoder_tie_message,
    last_good_checkpoint,
    read_run_record,
    recorded_tokenizer_conflict,
    save_initial_checkpoint,
    seed_folder,
    write_run_record,
)
from probekit.core import log
from probekit.core.log import logger
from probekit.training.presets import PRESETS, Recipe
from probekit.training.vocab import load_tokenizer, train_wordpiece, vocab_fingerprint, wordpiece_size

NAME_REPEATS = 50
# Dense bf16 matrix throughput from the vendors' datasheets, for MFU; matched against the device's name.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


# ---------------------------------------------------------------- model


class MaskedOnlyDecoder:
    """Training forward that runs the MLM decoder only at masked positions.

    The vocabulary projection is most of a tiny BERT's compute; applying it to the ~15% masked positions
    gives the same loss (mean cross-entropy over masked tokens) as the stock forward. Without labels the
    stock forward runs, and the saved checkpoint is a plain `BertForMaskedLM` / `BertForPreTraining`.

    Picking the masked positions out by a boolean mask makes the host wait for the device at every step.
    With `masked_budget` set (the masking probability; the GPU path sets it), a fixed number of positions
    is decoded instead: the masked ones first, padded with unmasked ones that the loss ignores. The budget
    is the expected count plus six standard deviations, so it is exceeded about once in a billion steps
    (and then a few masked tokens are left out of that step's loss).
    """

    accepts_loss_kwargs = False
    masked_budget: float | None = None

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                next_sentence_label=None, **kwargs):
        if labels is None:
            extra = {"next_sentence_label": next_sentence_label} if next_sentence_label is not None else {}
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, **extra, **kwargs)
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        hidden, targets = out.last_hidden_state.flatten(0, 1), labels.flatten()
        if self.masked_budget is None:
            keep = targets != -100
            hidden, targets = hidden[keep], targets[keep]
        else:
            n, p = targets.numel(), self.masked_budget
            size = min(n, math.ceil(n * p + 6 * math.sqrt(n * p * (1 - p))) + 8)
            first = torch.argsort((targets == -100).to(torch.int8), stable=True)[:size]
            hidden, targets = hidden[first], targets[first]
        logits = self.cls.predictions(hidden)
        total = F.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum")
        loss = total / (targets != -100).sum().clamp(min=1)
        if next_sentence_label is not None:
            nsp_logits = self.cls.seq_relationship(out.pooler_output)
            loss = loss + F.cross_entropy(nsp_logits.float(), next_sentence_label.view(-1))
        return MaskedLMOutput(loss=loss, logits=logits)


# Named like their parents so that checkpoints record the stock architecture that loads them.
MaskedOnlyBertForMaskedLM = type("BertForMaskedLM", (MaskedOnlyDecoder, BertForMaskedLM), {})
MaskedOnlyBertForPreTraining = type("BertForPreTraining", (MaskedOnlyDecoder, BertForPreTraining), {})


def model_class(recipe: Recipe) -> type:
    if recipe.masked_only_decoder:
        return MaskedOnlyBertForPreTraining if recipe.nsp else MaskedOnlyBertForMaskedLM
    return BertForPreTraining if recipe.nsp else BertForMaskedLM


def flops_per_token(config: BertConfig, recipe: Recipe) -> float:
    """Model FLOPs per trained token, forward and backward (6 per weight per token, plus attention's
    12·layers·positions·width), counting the vocabulary projection only where it runs (masked positions
    with the masked-only decoder). Embedding lookups cost none."""
    d, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    encoder = layers * (4 * d * d + 2 * d * config.intermediate_size)
    decoded = recipe.mlm_probability if recipe.masked_only_decoder else 1.0
    head = decoded * (d * d + d * vocab)
    return 6 * (encoder + head) + 12 * layers * recipe.block_size * d


def peak_flops(device_name: str) -> float | None:
    """The datasheet's dense bf16 FLOP/s of a GPU named `device_name`, or None when unknown."""
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in device_name), None)


# ---------------------------------------------------------------- schedule


def checkpoint_steps(max_steps: int, log_until: int, save_every: int) -> list[int]:
    """Pythia-style schedule: 1, 2, 4, … up to `log_until`, then every `save_every`, and the last step."""
    steps = {2**k for k in range(int(math.log2(max(log_until, 1))) + 1)} if log_until > 0 else set()
    steps |= set(range(save_every, max_steps + 1, save_every)) if save_every > 0 else set()
    return sorted(s for s in steps | {max_steps} if 0 < s <= max_steps)


def warmup_steps(recipe: Recipe, total: int) -> int:
    return math.ceil(total * recipe.warmup)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Share of the peak learning rate at optimiser step `step` (0-based): linear warmup that starts above
    zero, (step+1)/(warmup+1), so the first step already moves the weights; then linear decay to 1/(total-warmup)
    at the last step."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


class RecipeTrainer(Trainer):
    """HF `Trainer` with the recipe's learning-rate schedule (HF's linear warmup starts at 0)."""

    def __init__(self, *args, recipe: Recipe, **kwargs):
        super().__init__(*args, **kwargs)
        self.recipe = recipe

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            factor = functools.partial(lr_factor, warmup=warmup_steps(self.recipe, num_training_steps),
                                       total=num_training_steps)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, factor)
            self._created_lr_scheduler = True
        return self.lr_scheduler


# ---------------------------------------------------------------- callbacks


class ScheduledSaves(TrainerCallback):
    """Save at the scheduled steps only, and score the fixed held-out set there."""

    def __init__(self, steps: list[int], eval_set: dict[str, torch.Tensor] | None, started: float,
                 quiet: bool = False):
        self.steps = set(steps)
        self.eval_set = eval_set
        self.started = started
        self.quiet = quiet  # the held-out loss goes into ProgressLines' lines instead of a line of its own

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step not in self.steps:
            return control
        control.should_save = True
        if self.eval_set is not None and state.is_world_process_zero:
            loss = masked_lm_loss(model, self.eval_set)
            state.log_history.append({"step": state.global_step, "eval_loss": round(loss, 4),
                                      "elapsed_s": round(time.time() - self.started, 2)})
            (logger.debug if self.quiet else logger.info)(f"step {state.global_step}: held-out MLM loss {loss:.3f}")
        return control


class ProgressLines(TrainerCallback):
    """Where no one watches a bar (output to a log file): one line every `share` of training, with the step,
    the training loss (mean over the logged steps since the last line), the last held-out loss and the real
    tokens per second since the last line, instead of HF's per-step bar and loss dicts."""

    def __init__(self, max_steps: int, tokens_per_step: float, share: float = 0.1):
        every = max(1, round(max_steps * share))
        self.marks = set(range(every, max_steps + 1, every)) | {max_steps}
        self.max_steps, self.tokens_per_step = max_steps, tokens_per_step
        self.losses: list[float] = []
        self.last: tuple[int, float] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = (state.global_step, time.time())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step not in self.marks or not state.is_world_process_zero:
            return control
        before, then = self.last or (0, time.time())
        now = time.time()
        speed = (step - before) * self.tokens_per_step / max(now - then, 1e-9)
        held_out = next((h for h in reversed(state.log_history) if "eval_loss" in h), None)
        parts = [f"step {step:,}/{self.max_steps:,} ({step / self.max_steps:.0%})"]
        if self.losses:
            parts.append(f"loss {sum(self.losses) / len(self.losses):.3f}")
        if held_out is not None:
            parts.append(f"held-out loss {held_out['eval_loss']:.3f} (at step {held_out['step']:,})")
        parts.append(f"{speed:,.0f} tokens/s")
        logger.info(", ".join(parts))
        self.losses, self.last = [], (step, now)
        return control


def watched() -> bool:
    """Whether someone watches progress bars: stdout and stderr are a terminal, or this runs in a notebook
    (whose front end draws them); never when `probekit.set_progress(False)` or PROBEKIT_PROGRESS=0."""
    if not log._progress:
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        return True
    return all(stream is not None and stream.isatty() for stream in (sys.stdout, sys.stderr))


# ---------------------------------------------------------------- the recipe


@dataclass
class TrainResult:
    """Where a run wrote, what it resumed from, and how fast this session trained."""

    output: Path
    checkpoints: list[Path]
    resumed_from: Path | None
    throughput: dict = field(default_factory=dict)


def device_recipe(recipe: Recipe, cuda: bool, world_size: int = 1) -> Recipe:
    """The recipe as it runs: on a GPU, `gpu_tokens_per_step` sets the examples per optimiser step across all
    processes (`Recipe.scaled`), split evenly between them, so batch and learning rate do not change with
    the number of GPUs; elsewhere the recipe as given (batch_size per process)."""
    k = recipe.gpu_scale() if cuda else 1
    if k == 1:
        return recipe
    scaled = recipe.scaled(k)
    per_device = max(1, scaled.batch_size // world_size)
    return Recipe(**{**scaled.to_dict(), "batch_size": per_device})


def train(
    output: str | Path = "local/my_bert",
    recipe: Recipe = PRESETS["default"],
    corpus: str | None = None,
    tokenizer: str | PreTrainedTokenizerBase | None = None,
    callbacks: list[TrainerCallback] = (),
) -> TrainResult:
    """Pretrain a tiny BERT with `recipe` on `corpus` and write a checkpoint series into `output`.

    Running the same call again resumes from the last good checkpoint. A folder holding checkpoints of
    another model, vocabulary or corpus is refused before anything is written.
    """
    if not isinstance(recipe, Recipe):
        raise ProbekitError(f"recipe must be a probekit Recipe, not {type(recipe).__name__}")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ProbekitError(f"{output}: exists and is not a folder; choose another --output")
    read_run_record(output)  # a corrupt run file is reported before any work
    cuda = torch.cuda.is_available()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    run_recipe = device_recipe(recipe, cuda, world_size)

    train_docs, eval_docs, facts = load_training_corpus(corpus, recipe.data_seed)
    tok = _tokenizer(tokenizer, train_docs, output, with_fact_names=facts is not None)
    config = BertConfig(**recipe.model_config(len(tok)), pad_token_id=tok.pad_token_id)
    identity = {k: getattr(config, k) for k in IDENTITY_FIELDS}
    identity["architecture"] = "BertForPreTraining" if recipe.nsp else "BertForMaskedLM"
    record = {
        "probekit": __version__,
        "identity": identity,
        "recipe": recipe.to_dict(),
        "corpus": corpus or DEFAULT_CORPUS,
        "corpus_fingerprint": corpus_fingerprint(train_docs, eval_docs),
        "tokenizer": tokenizer if isinstance(tokenizer, (str, type(None))) else tok.name_or_path,
        "vocab_fingerprint": vocab_fingerprint(tok),
    }
    check_output_is_ours(output, record)

    dataset = build_dataset(tok, train_docs, recipe)
    eval_set = fixed_mask_eval_set(tok, eval_docs, recipe.block_size)
    args = training_arguments(output, run_recipe, len(dataset), cuda)
    max_steps = args.max_steps
    torch.manual_seed(recipe.seed)
    model = model_class(recipe)(config)
    if run_recipe.hf_collator:
        collator = DataCollatorForLanguageModeling(tok, mlm_probability=recipe.mlm_probability)
        dataset.batched = False
    else:
        collator = MaskingCollator(tok, mlm_probability=recipe.mlm_probability)
        if cuda:
            dataset = dataset.to(args.device)
            if recipe.masked_only_decoder:
                model.masked_budget = recipe.mlm_probability
    steps = checkpoint_steps(max_steps, run_recipe.log_until, run_recipe.save_every)
    bars = watched()
    args.disable_tqdm = not bars
    lines = [] if bars else [ProgressLines(max_steps, run_recipe.batch_size * args.world_size
                                           * dataset.real_tokens_per_row())]
    trainer = RecipeTrainer(model=model, args=args, data_collator=collator, train_dataset=dataset,
                            processing_class=tok, recipe=run_recipe,
                            callbacks=[ScheduledSaves(steps, eval_set, time.time(), quiet=not bars), *lines,
                                       *callbacks])
    if not bars:  # no per-step bar (ProgressCallback) and no loss dicts (PrinterCallback, HF's bar-less default)
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)

    rank0 = trainer.is_world_process_zero()
    resume = _broadcast_path(last_good_checkpoint(output) if rank0 else None)
    if resume is not None and _step_of(resume) >= max_steps:  # nothing left to do: change nothing
        if rank0:
            logger.info(f"{output}: already trained to step {_step_of(resume):,} of {max_steps:,}; nothing to do")
        return TrainResult(output, [p for _, p in checkpoint_dirs(output)], resume, {})
    per_step = run_recipe.batch_size * args.world_size
    record.update(train_examples=len(dataset), max_steps=max_steps, examples_per_step=per_step,
                  lr=run_recipe.lr, device=_device_name(args))
    if rank0:
        output.mkdir(parents=True, exist_ok=True)
        write_run_record(output, record)
        if facts is not None:
            facts.save(output)
            logger.info(
                f"fact injection: {len(facts.injected)} countries written into the corpus ({facts.repeats} "
                f"biographies each, {sum(map(len, facts.templates.values()))} paraphrases in turn), "
                f"{len(facts.held_back)} held back")
        if resume is None:
            with _transformers_bars(bars):
                save_initial_checkpoint(output, model, tok, max_steps)
        if resume is not None:
            logger.info(f"resuming from {resume}")
        scale = f", {per_step} examples per step at lr {run_recipe.lr:.3g}" if run_recipe is not recipe else ""
        logger.info(
            f"training {identity['architecture']} ({_n_params(model):,} parameters) on {len(dataset):,} examples "
            f"for {max_steps:,} steps on {_precision(args)}{scale}; checkpoints at {len(steps)} steps into {output}")
    start_step = _step_of(resume)
    with _tied_decoder_keys_not_reported(), _transformers_bars(bars):
        outcome = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if resume is not None and rank0:
        logger.info(decoder_tie_message(trainer.model))
    throughput = _throughput(outcome.metrics.get("train_runtime"), trainer.state.global_step - start_step,
                             per_step * dataset.real_tokens_per_row(), flops_per_token(config, recipe), args)
    checkpoints = [p for _, p in checkpoint_dirs(output)]
    if rank0:
        if throughput:
            logger.info(_throughput_line(throughput))
            write_run_record(output, {**record, "throughput": throughput})
        logger.info(f"{len(checkpoints)} checkpoints in {output}")
    return TrainResult(output, checkpoints, resume, throughput)


def train_seeds(
    output: str | Path,
    recipe: Recipe,
    seeds: Sequence[int],
    corpus: str | None = None,
    tokenizer: str | PreTrainedTokenizerBase | None = None,
    callbacks: list[TrainerCallback] = (),
) -> list[TrainResult]:
    """One run of `recipe` per seed into `OUTPUT/seed-K/checkpoint-N/`, one after the other (each with every
    rank under torchrun), each resumable as `train` is.

    The seed changes initialisation, masking and data order; the corpus, its split, the fact injection and
    a corpus-trained tokenizer come from `recipe.data_seed` and are the same for every seed (each run's
    record says so), so the runs are seeds of one series, and `probekit probe` resamples them together.
    """
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ProbekitError(f"--seeds needs distinct seeds, got {','.join(map(str, seeds)) or 'none'}")
    results = []
    for i, seed in enumerate(seeds, 1):
        logger.info(f"seed {seed} ({i} of {len(seeds)}) into {Path(output) / seed_folder(seed)}")
        results.append(train(Path(output) / seed_folder(seed), replace(recipe, seed=seed), corpus=corpus,
                             tokenizer=tokenizer, callbacks=callbacks))
    return results


def _tokenizer(spec, train_docs: list[str], output: Path, with_fact_names: bool) -> PreTrainedTokenizerBase:
    """The run's tokenizer; a `wordpiece:N` one is built from the corpus once and reused on resume.

    With fact injection, every name of the fact table is counted too, so held-back names get tokens as
    readily as injected ones. Resuming with another tokenizer spec than the run's is refused.
    """
    if isinstance(spec, PreTrainedTokenizerBase):
        return spec
    size = wordpiece_size(spec)
    if size is None:
        return load_tokenizer(spec)
    theirs = recorded_tokenizer_conflict(output, spec)
    if theirs is not None:
        raise ProbekitError(
            f"{output}: its checkpoints were trained with another tokenizer ({spec} here, {theirs} there); "
            "use the same --tokenizer or choose another --output")
    existing = [p for _, p in checkpoint_dirs(output) if (p / "tokenizer.json").is_file()]
    if existing:
        return load_tokenizer(str(existing[-1]))
    return train_wordpiece(train_docs + (NAME_REPEATS * table_names() if with_fact_names else []), size)


def training_arguments(output: Path, recipe: Recipe, n_examples: int, cuda: bool | None = None) -> TrainingArguments:
    """HF `TrainingArguments` for `recipe` as it runs on this device (see `device_recipe`).

    On a GPU: bf16 autocast (fp16 where bf16 is missing), TF32 matrix products, fused AdamW; rows already on
    the device (no loader workers, no pinning) unless the recipe asks for HF's collator; nothing in the
    step loop that waits for the device (no NaN filter on the logged loss).
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    bf16 = cuda and torch.cuda.is_bf16_supported()
    on_device = cuda and not recipe.hf_collator
    args = TrainingArguments(
        output_dir=str(output),
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.lr,
        adam_beta2=recipe.adam_beta2,
        adam_epsilon=recipe.adam_epsilon,
        weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm,
        optim="adamw_torch_fused",
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        save_strategy="no",
        logging_steps=10,
        logging_nan_inf_filter=False,
        report_to="none",
        seed=recipe.seed,
        bf16=bf16,
        fp16=cuda and not bf16,
        tf32=cuda and torch.cuda.get_device_capability()[0] >= 8,
        use_cpu=not cuda,
        torch_compile=recipe.compile,
        dataloader_num_workers=4 if cuda and not on_device else 0,
        dataloader_pin_memory=not on_device,
        dataloader_drop_last=recipe.compile,
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
    )
    if args.max_steps <= 0:
        per_step = recipe.batch_size * args.world_size
        per_epoch = n_examples // per_step if recipe.compile else math.ceil(n_examples / per_step)
        args.max_steps = max(1, math.ceil(max(per_epoch, 1) * recipe.epochs))
    args.logging_steps = max(1, min(100, args.max_steps // 25))
    return args


def _throughput(runtime: float | None, steps: int, tokens_per_step: float, flops: float,
                args: TrainingArguments) -> dict:
    """Real (non-padding) tokens per second over this session's training, wall clock (saves and held-out
    scoring included), and the model FLOP utilisation where the device's peak is known."""
    if not runtime or steps <= 0:
        return {}
    tokens_per_s = steps * tokens_per_step / runtime
    result = {"device": _device_name(args), "steps": steps, "seconds": round(runtime, 2),
              "tokens_per_s": round(tokens_per_s), "model_tflops_per_s": round(tokens_per_s * flops / 1e12, 3)}
    peak = peak_flops(result["device"]) if args.device.type == "cuda" else None
    if peak:
        result["mfu"] = round(tokens_per_s * flops / (peak * args.world_size), 5)
    return result


def _throughput_line(throughput: dict) -> str:
    mfu = f", MFU {throughput['mfu']:.2%}" if "mfu" in throughput else ""
    return (f"trained {throughput['steps']:,} steps in {throughput['seconds']:.1f} s: "
            f"{throughput['tokens_per_s']:,} real tokens/s, {throughput['model_tflops_per_s']:.2f} model TFLOP/s{mfu}")


def _step_of(checkpoint: Path | None) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint is not None else 0


def _broadcast_path(path: Path | None) -> Path | None:
    """Rank 0 decides what to resume from; every rank must agree."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return path
    box = [str(path) if path else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return Path(box[0]) if box[0] else None


TIED_KEYS_WARNING = "There were missing keys in the checkpoint model loaded"


class _DropTiedKeysWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(TIED_KEYS_WARNING):
            return True
        return not all(key in message for key in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"))


@contextlib.contextmanager
def _tied_decoder_keys_not_reported():
    """Resuming warns that the tied decoder is "missing"; it is stored once by design and checked after."""
    trainer_logger = logging.getLogger("transformers.trainer")
    drop = _DropTiedKeysWarning()
    trainer_logger.addFilter(drop)
    try:
        yield
    finally:
        trainer_logger.removeFilter(drop)


@contextlib.contextmanager
def _transformers_bars(shown: bool):
    """transformers' own bars ("Writing model shards" at every save, "Loading weights" on resume) on or off."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if shown and was else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


def _device_name(args: TrainingArguments) -> str:
    if args.device.type == "cuda":
        return torch.cuda.get_device_name(args.device)
    return f"{args.device.type} ({torch.get_num_threads()} threads)"


def _precision(args: TrainingArguments) -> str:
    if args.device.type != "cuda":
        return args.device.type
    return f"{_device_name(args)} ({'bf16' if args.bf16 else 'fp16' if args.fp16 else 'fp32'} autocast)"


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
