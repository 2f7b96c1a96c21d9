"""Data preparation for pretraining, apart from the recipe (as nanoGPT keeps `prepare.py` beside `train.py`).

Text → token ids → fixed-length rows (packed blocks, the notebook's padded lines, or next-sentence pairs)
held as tensors, masked afresh at every step by a vectorised collator; plus the fixed-mask held-out set and
the exact masked-LM loss every recipe is scored with.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from probekit.core.errors import ProbekitError
from probekit.training.presets import Recipe

EVAL_BLOCKS = 64
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


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


def _chunks(sentences: list[list[int]], target: int) -> Iterator[list[list[int]]]:
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
    """Rows of equally long tensors, one training example each.

    `__getitems__` hands the DataLoader a whole batch as one index per column (no per-example Python), and
    the columns may live on the GPU (`to`), so a step's batch never crosses the bus.
    """

    def __init__(self, columns: dict[str, torch.Tensor], batched: bool = True):
        self.columns = columns
        self.batched = batched  # False: a list of rows per batch, for collators that take examples (HF's)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {name: column[i] for name, column in self.columns.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        if not self.batched:
            return [self[i] for i in indices]
        device = next(iter(self.columns.values())).device
        index = torch.as_tensor(indices, dtype=torch.long).to(device, non_blocking=True)
        return {name: column.index_select(0, index) for name, column in self.columns.items()}

    def to(self, device: torch.device | str) -> TensorRows:
        return TensorRows({name: column.to(device) for name, column in self.columns.items()}, self.batched)

    def real_tokens_per_row(self) -> float:
        """Mean non-padding tokens per row (what a tokens/s figure counts)."""
        mask = self.columns.get("attention_mask")
        return float(mask.float().sum(1).mean()) if mask is not None else float(self.columns["input_ids"].shape[1])


def build_dataset(tokenizer: PreTrainedTokenizerBase, docs: list[str], recipe: Recipe) -> TensorRows:
    """The training rows `recipe` asks for: NSP pairs, packed blocks, or padded lines."""
    if recipe.nsp:
        return TensorRows(nsp_pairs(tokenizer, docs, recipe.block_size, recipe.seed))
    if recipe.packing:
        blocks = pack_blocks(tokenize_documents(tokenizer, docs), recipe.block_size,
                             tokenizer.cls_token_id, tokenizer.sep_token_id)
        return TensorRows({"input_ids": blocks})
    return TensorRows(padded_lines(tokenizer, docs, recipe.block_size))


class MaskingCollator:
    """BERT's masking (of the non-special tokens: `p` become targets; of those 80% [MASK], 10% a random token,
    10% kept), done on a whole batch of equal-length rows in a few tensor operations, on the rows' device.

    It draws from the global random state exactly as HF's `DataCollatorForLanguageModeling` does (same calls,
    same shapes, same order), so on the CPU it gives the same masks for the same state; what it leaves out is
    HF's per-example padding and per-row special-token lists, which rows of one length do not need.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, mlm_probability: float = 0.15):
        self.mlm_probability = mlm_probability
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        self.mask_id = tokenizer.convert_tokens_to_ids(tokenizer.mask_token)
        self.vocab_size = len(tokenizer)

    def __call__(self, rows: dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if not isinstance(rows, dict):
            rows = {name: torch.stack([row[name] for row in rows]) for name in rows[0]}
        batch = dict(rows)
        ids = batch["input_ids"]
        device = ids.device
        if self.special_ids.device != device:
            self.special_ids = self.special_ids.to(device)
        probability = torch.full(ids.shape, self.mlm_probability, device=device)
        probability.masked_fill_(torch.isin(ids, self.special_ids), 0.0)
        masked = torch.bernoulli(probability).bool()
        replaced = torch.bernoulli(torch.full(ids.shape, 0.8, device=device)).bool() & masked
        randomised = torch.bernoulli(torch.full(ids.shape, 0.5, device=device)).bool() & masked & ~replaced
        random_words = torch.randint(self.vocab_size, ids.shape, dtype=torch.long, device=device)
        # masked_fill / where, not boolean indexing: no step waits for the device to count the masked tokens
        batch["labels"] = ids.masked_fill(~masked, -100)
        batch["input_ids"] = torch.where(randomised, random_words, ids.masked_fill(replaced, self.mask_id))
        return batch


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
    """Mean cross-entropy over the masked positions of `batch` (exact; the decoder runs only there).

    Sums stay on the model's device until the end: one synchronisation per call, not per batch.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for start in range(0, len(batch["input_ids"]), batch_size):
        ids = batch["input_ids"][start:start + batch_size].to(device)
        labels = batch["labels"][start:start + batch_size]
        keep = labels != -100
        count += int(keep.sum())
        hidden = model.bert(ids).last_hidden_state
        logits = model.cls.predictions(hidden[keep.to(device)]).float()
        total += F.cross_entropy(logits, labels[keep].to(device), reduction="sum")
    model.train(was_training)
    return float(total) / max(count, 1)
