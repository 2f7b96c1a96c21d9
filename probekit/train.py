"""The pretraining recipe over HF `Trainer`: packing, masking, a checkpoint schedule for dynamics, resume.

`train()` writes `OUTPUT/checkpoint-N/` folders in the layout HF users know (config, model.safetensors,
tokenizer, trainer_state.json), each loadable by `BertForMaskedLM.from_pretrained` alone, plus
`OUTPUT/probekit_run.json` recording what made them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tqdm.auto import tqdm
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    DataCollatorForLanguageModeling,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerState,
    TrainingArguments,
)
from transformers.modeling_outputs import MaskedLMOutput

from probekit import __version__
from probekit.checkpoints import decoder_tie_message
from probekit.corpus import DEFAULT_CORPUS, load_training_corpus
from probekit.errors import ProbekitError
from probekit.facts import table_names
from probekit.folders import RESUME_FILES, RUN_FILE, checkpoint_dirs
from probekit.presets import DEFAULT, Recipe
from probekit.vocab import load_tokenizer, train_wordpiece, wordpiece_size

NAME_REPEATS = 50
EVAL_BLOCKS = 64


# ---------------------------------------------------------------- data


def tokenize_documents(tokenizer: PreTrainedTokenizerBase, docs: list[str]) -> list[list[int]]:
    """Token ids of each document, without special tokens, in one batched call per 1,000 documents."""
    ids: list[list[int]] = []
    for start in range(0, len(docs), 1000):
        batch = tokenizer(docs[start:start + 1000], add_special_tokens=False, truncation=False)
        ids.extend(batch["input_ids"])
    return ids


def pack_blocks(doc_ids: list[list[int]], block_size: int, cls_id: int, sep_id: int) -> torch.Tensor:
    """Concatenate documents (separated by [SEP]) and cut them into full `[CLS] … [SEP]` blocks.

    Every token trained on is real text; the tail shorter than a block is dropped.
    """
    body = block_size - 2
    stream = [tok for ids in doc_ids for tok in (*ids, sep_id)]
    n_blocks = len(stream) // body
    if n_blocks == 0:
        raise ProbekitError(
            f"corpus too small: {len(stream)} tokens do not fill one block of {block_size}"
        )
    blocks = torch.tensor(stream[: n_blocks * body], dtype=torch.long).view(n_blocks, body)
    ends = lambda value: torch.full((n_blocks, 1), value, dtype=torch.long)  # noqa: E731
    return torch.cat([ends(cls_id), blocks, ends(sep_id)], dim=1)


def padded_lines(tokenizer: PreTrainedTokenizerBase, docs: list[str], block_size: int) -> dict[str, torch.Tensor]:
    """The notebook's data: each document truncated and padded to `block_size` on its own."""
    enc = tokenizer(docs, truncation=True, max_length=block_size, padding="max_length", return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def nsp_pairs(
    tokenizer: PreTrainedTokenizerBase, docs: list[str], block_size: int, seed: int
) -> dict[str, torch.Tensor]:
    """Sentence pairs for next-sentence prediction, as in BERT: half continue, half come from another document.

    Label 0 means "B follows A", 1 means "B is random" (HF `BertForPreTraining`'s convention).
    """
    rng = random.Random(seed)
    sentences = [tokenize_documents(tokenizer, SENTENCE_END.split(doc)) for doc in docs]
    sentences = [[s for s in doc if s] for doc in sentences]
    sentences = [doc for doc in sentences if doc]
    if len(sentences) < 2:
        raise ProbekitError("--nsp needs a corpus of at least two documents with text")
    target = block_size - 3
    rows, labels, types = [], [], []
    for d, doc in enumerate(sentences):
        for chunk in _chunks(doc, target):
            cut = rng.randint(1, len(chunk) - 1) if len(chunk) > 1 else 1
            a = [t for s in chunk[:cut] for t in s]
            if len(chunk) > 1 and rng.random() < 0.5:
                b, label = [t for s in chunk[cut:] for t in s], 0
            else:
                other = rng.choice([i for i in range(len(sentences)) if i != d] or [d])
                start = rng.randrange(len(sentences[other]))
                b, label = [t for s in sentences[other][start:] for t in s][:target], 1
            a, b = _truncate_pair(a, b, target)
            ids = [tokenizer.cls_token_id, *a, tokenizer.sep_token_id, *b, tokenizer.sep_token_id]
            pad = block_size - len(ids)
            rows.append(ids + [tokenizer.pad_token_id] * pad)
            types.append([0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * pad)
            labels.append(label)
    ids = torch.tensor(rows)
    return {
        "input_ids": ids,
        "attention_mask": (ids != tokenizer.pad_token_id).long(),
        "token_type_ids": torch.tensor(types),
        "next_sentence_label": torch.tensor(labels),
    }


def _chunks(sentences: list[list[int]], target: int):
    chunk, length = [], 0
    for sentence in sentences:
        chunk.append(sentence)
        length += len(sentence)
        if length >= target:
            yield chunk
            chunk, length = [], 0
    if chunk:
        yield chunk


def _truncate_pair(a: list[int], b: list[int], target: int) -> tuple[list[int], list[int]]:
    a, b = list(a), list(b)
    while len(a) + len(b) > target:
        (a if len(a) > len(b) else b).pop()
    return a or b[:1], b or a[:1]


class TensorRows(torch.utils.data.Dataset):
    """Rows of equally long tensors, one training example each."""

    def __init__(self, columns: dict[str, torch.Tensor]):
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {name: column[i] for name, column in self.columns.items()}


def build_dataset(tokenizer: PreTrainedTokenizerBase, docs: list[str], recipe: Recipe) -> TensorRows:
    if recipe.nsp:
        return TensorRows(nsp_pairs(tokenizer, docs, recipe.block_size, recipe.seed))
    if recipe.packing:
        blocks = pack_blocks(tokenize_documents(tokenizer, docs), recipe.block_size,
                             tokenizer.cls_token_id, tokenizer.sep_token_id)
        return TensorRows({"input_ids": blocks})
    return TensorRows(padded_lines(tokenizer, docs, recipe.block_size))


def fixed_mask_eval_set(tokenizer: PreTrainedTokenizerBase, docs: list[str], block_size: int,
                        mlm_probability: float = 0.15, seed: int = 1234) -> dict[str, torch.Tensor] | None:
    """Held-out packed blocks masked once with a fixed seed, so every recipe is scored on the same task.

    None when the held-out text does not fill one block (tiny corpora).
    """
    doc_ids = tokenize_documents(tokenizer, docs)
    if sum(len(ids) + 1 for ids in doc_ids) < block_size - 2:
        return None
    blocks = pack_blocks(doc_ids, block_size, tokenizer.cls_token_id, tokenizer.sep_token_id)[:EVAL_BLOCKS]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
    return collator([{"input_ids": row} for row in blocks])


@torch.no_grad()
def masked_lm_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], batch_size: int = 32) -> float:
    """Mean cross-entropy over the masked positions of `batch` (exact; the decoder runs only there)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(batch["input_ids"]), batch_size):
        ids = batch["input_ids"][start:start + batch_size].to(device)
        labels = batch["labels"][start:start + batch_size].to(device)
        hidden = model.bert(ids).last_hidden_state
        keep = labels != -100
        logits = model.cls.predictions(hidden[keep]).float()
        total += F.cross_entropy(logits, labels[keep], reduction="sum").item()
        count += int(keep.sum())
    model.train(was_training)
    return total / max(count, 1)


# ---------------------------------------------------------------- model


class MaskedOnlyDecoder:
    """Training forward that runs the MLM decoder only at masked positions.

    The vocabulary projection is most of a tiny BERT's compute; applying it to the ~15% masked positions
    gives the same loss (mean cross-entropy over masked tokens) as the stock forward. Without labels the
    stock forward runs, and the saved checkpoint is a plain `BertForMaskedLM` / `BertForPreTraining`.
    """

    accepts_loss_kwargs = False

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                next_sentence_label=None, **kwargs):
        if labels is None:
            extra = {"next_sentence_label": next_sentence_label} if next_sentence_label is not None else {}
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, **extra, **kwargs)
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        keep = labels != -100
        logits = self.cls.predictions(out.last_hidden_state[keep])
        loss = F.cross_entropy(logits.float(), labels[keep]) if keep.any() else logits.sum() * 0.0
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


# ---------------------------------------------------------------- checkpoints on disk


def checkpoint_steps(max_steps: int, log_until: int, save_every: int) -> list[int]:
    """Pythia-style schedule: 1, 2, 4, … up to `log_until`, then every `save_every`, and the last step."""
    steps = {2**k for k in range(int(math.log2(max(log_until, 1))) + 1)}
    steps |= set(range(save_every, max_steps + 1, save_every)) if save_every > 0 else set()
    return sorted(s for s in steps | {max_steps} if 0 < s <= max_steps)


def resumable_problem(path: Path) -> str | None:
    """Why `path` cannot be resumed from (a half-written checkpoint), or None if it can."""
    for name in RESUME_FILES:
        if not (path / name).is_file():
            return f"{name} is missing"
    try:
        json.loads((path / "trainer_state.json").read_text())
        load_file(path / "model.safetensors")
    except Exception as exc:  # any parse error means the write did not finish
        return f"unreadable ({exc.__class__.__name__}: {str(exc)[:80]})"
    return None


def last_good_checkpoint(output: Path, say=print) -> Path | None:
    """The newest checkpoint a run can resume from; half-written newer ones are moved aside, with a message."""
    for step, path in reversed(checkpoint_dirs(output)):
        if step == 0:
            return None
        problem = resumable_problem(path)
        if problem is None:
            return path
        aside = output / ".incomplete" / f"{path.name}-{int(time.time())}"
        aside.parent.mkdir(exist_ok=True)
        shutil.move(str(path), aside)
        say(f"{path}: half-written checkpoint ({problem}); moved to {aside}, resuming from an earlier one")
    return None


def vocab_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


IDENTITY_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                   "intermediate_size", "max_position_embeddings")


def check_output_is_ours(output: Path, identity: dict) -> None:
    """Refuse to write into a folder holding another model's checkpoints (nothing is overwritten)."""
    run_file = output / RUN_FILE
    if run_file.is_file():
        theirs = json.loads(run_file.read_text()).get("identity", {})
    else:
        configs = [p / "config.json" for _, p in checkpoint_dirs(output) if (p / "config.json").is_file()]
        if not configs:
            return
        config = json.loads(configs[-1].read_text())
        theirs = {k: config.get(k) for k in IDENTITY_FIELDS}
        theirs["architecture"] = (config.get("architectures") or [None])[0]
    diffs = [f"{k} {identity[k]} here, {theirs[k]} there" for k in identity if k in theirs and theirs[k] != identity[k]]
    if diffs:
        raise ProbekitError(
            f"{output}: holds checkpoints of another model ({'; '.join(diffs)}); choose another --output"
        )


def save_initial_checkpoint(output: Path, model, tokenizer, max_steps: int) -> None:
    """`checkpoint-0`: the random initialisation, the control every probe compares against."""
    path = output / "checkpoint-0"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    TrainerState(global_step=0, max_steps=max_steps).save_to_json(str(path / "trainer_state.json"))


# ---------------------------------------------------------------- callbacks


class ScheduledSaves(TrainerCallback):
    """Save at the scheduled steps only, and score the fixed held-out set there."""

    def __init__(self, steps: list[int], eval_set: dict[str, torch.Tensor] | None, started: float):
        self.steps = set(steps)
        self.eval_set = eval_set
        self.started = started

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step not in self.steps:
            return control
        control.should_save = True
        if self.eval_set is not None and state.is_world_process_zero:
            loss = masked_lm_loss(model, self.eval_set)
            state.log_history.append({"step": state.global_step, "eval_loss": round(loss, 4),
                                      "elapsed_s": round(time.time() - self.started, 2)})
            tqdm.write(f"step {state.global_step}: held-out MLM loss {loss:.3f}")
        return control


# ---------------------------------------------------------------- the recipe


@dataclass
class TrainResult:
    output: Path
    checkpoints: list[Path]
    resumed_from: Path | None


def train(
    output: str | Path = "local/my_bert",
    recipe: Recipe = DEFAULT,
    corpus: str | None = None,
    tokenizer: str | PreTrainedTokenizerBase | None = None,
    say=print,
    callbacks: list[TrainerCallback] = (),
) -> TrainResult:
    """Pretrain a tiny BERT with `recipe` on `corpus` and write a checkpoint series into `output`.

    Running the same call again resumes from the last good checkpoint.
    """
    output = Path(output)
    train_docs, eval_docs, facts = load_training_corpus(corpus, recipe.seed)
    tok = _tokenizer(tokenizer, train_docs, output, with_fact_names=facts is not None)
    config = BertConfig(**recipe.model_config(len(tok)), pad_token_id=tok.pad_token_id)
    identity = {k: getattr(config, k) for k in IDENTITY_FIELDS}
    identity["architecture"] = "BertForPreTraining" if recipe.nsp else "BertForMaskedLM"
    check_output_is_ours(output, identity)
    dataset = build_dataset(tok, train_docs, recipe)
    eval_set = fixed_mask_eval_set(tok, eval_docs, recipe.block_size)

    args = training_arguments(output, recipe, len(dataset))
    max_steps = args.max_steps
    torch.manual_seed(recipe.seed)
    model = model_class(recipe)(config)
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=recipe.mlm_probability)
    steps = checkpoint_steps(max_steps, recipe.log_until, recipe.save_every)
    trainer = Trainer(model=model, args=args, data_collator=collator, train_dataset=dataset,
                      processing_class=tok, callbacks=[ScheduledSaves(steps, eval_set, time.time()), *callbacks])

    if not trainer.is_world_process_zero():
        say = _silent
    resume = _broadcast_path(last_good_checkpoint(output, say) if trainer.is_world_process_zero() else None)
    if trainer.is_world_process_zero():
        output.mkdir(parents=True, exist_ok=True)
        _write_run_file(output, recipe, corpus, tokenizer, identity, tok, len(dataset), max_steps)
        if facts is not None:
            facts.save(output)
            say(f"fact injection: {len(facts.injected)} countries written into the corpus ({facts.repeats} "
                f"biographies each, {sum(map(len, facts.templates.values()))} paraphrases in turn), "
                f"{len(facts.held_back)} held back")
        if resume is None:
            save_initial_checkpoint(output, model, tok, max_steps)
    if resume is not None:
        say(f"resuming from {resume}")
    say(f"training {identity['architecture']} ({_n_params(model):,} parameters) on {len(dataset):,} examples "
        f"for {max_steps:,} steps on {_precision(args)}; checkpoints at {len(steps)} steps into {output}")
    with _tied_decoder_keys_not_reported():
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if resume is not None:
        say(decoder_tie_message(trainer.model))
    checkpoints = [p for _, p in checkpoint_dirs(output)]
    say(f"{len(checkpoints)} checkpoints in {output}")
    return TrainResult(output, checkpoints, resume)


def _tokenizer(spec, train_docs: list[str], output: Path, with_fact_names: bool) -> PreTrainedTokenizerBase:
    """The run's tokenizer; a `wordpiece:N` one is built from the corpus once and reused on resume.

    With fact injection, every name of the fact table is counted too, so held-back names get tokens as
    readily as injected ones.
    """
    if isinstance(spec, PreTrainedTokenizerBase):
        return spec
    size = wordpiece_size(spec)
    if size is None:
        return load_tokenizer(spec)
    existing = [p for _, p in checkpoint_dirs(output) if (p / "tokenizer.json").is_file()]
    if existing:
        return load_tokenizer(str(existing[-1]))
    return train_wordpiece(train_docs + (NAME_REPEATS * table_names() if with_fact_names else []), size)


def training_arguments(output: Path, recipe: Recipe, n_examples: int) -> TrainingArguments:
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(output),
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.lr,
        warmup_steps=recipe.warmup,
        lr_scheduler_type="linear",
        adam_beta2=recipe.adam_beta2,
        adam_epsilon=recipe.adam_epsilon,
        weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm,
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        seed=recipe.seed,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        fp16=cuda and not torch.cuda.is_bf16_supported(),
        tf32=cuda and torch.cuda.get_device_capability()[0] >= 8,
        use_cpu=not cuda,
        dataloader_num_workers=4 if cuda else 0,
        ddp_find_unused_parameters=False,
    )
    if args.max_steps <= 0:
        per_step = recipe.batch_size * args.world_size
        args.max_steps = max(1, math.ceil(math.ceil(n_examples / per_step) * recipe.epochs))
    args.logging_steps = max(1, min(100, args.max_steps // 25))
    return args


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


def _precision(args: TrainingArguments) -> str:
    if args.device.type != "cuda":
        return args.device.type
    return f"{torch.cuda.get_device_name()} ({'bf16' if args.bf16 else 'fp16' if args.fp16 else 'fp32'} autocast)"


def _silent(*_args, **_kwargs) -> None:
    pass


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _write_run_file(output: Path, recipe: Recipe, corpus, tokenizer, identity: dict, tok, n_examples: int,
                    max_steps: int) -> None:
    record = {
        "probekit": __version__,
        "identity": identity,
        "recipe": recipe.to_dict(),
        "corpus": corpus or DEFAULT_CORPUS,
        "tokenizer": tokenizer if isinstance(tokenizer, (str, type(None))) else tok.name_or_path,
        "vocab_fingerprint": vocab_fingerprint(tok),
        "train_examples": n_examples,
        "max_steps": max_steps,
    }
    (output / RUN_FILE).write_text(json.dumps(record, indent=2))
