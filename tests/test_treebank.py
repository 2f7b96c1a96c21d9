"""The treebank input kind: the shipped UD English EWT splits, any CoNLL-U file, one-line errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from probekit.benchmarks.kinds import load_input
from probekit.benchmarks.treebank import EWT_DIR, load_treebank
from probekit.core.errors import ProbekitError

GOOD = """# sent_id = s1
# text = The cat can't sleep.
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t5\tnsubj\t_\t_
3-4\tcan't\t_\t_\t_\t_\t_\t_\t_\t_
3\tca\tcan\tAUX\tMD\t_\t5\taux\t_\t_
4\tn't\tnot\tPART\tRB\t_\t5\tadvmod\t_\t_
5\tsleep\tsleep\tVERB\tVB\t_\t0\troot\t_\t_
5.1\tslept\tsleep\tVERB\tVB\t_\t_\t_\t_\t_
6\t.\t.\tPUNCT\t.\t_\t5\tpunct\t_\t_

# sent_id = s2
1\tYesterday\tyesterday\tNOUN\tNN\t_\t2\tobl:tmod\t_\t_
2\trained\train\tVERB\tVBD\t_\t0\troot\t_\t_
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_words_heads_and_universal_relations_without_ranges_or_empty_nodes(tmp_path):
    bank = load_treebank(write(tmp_path / "mine.conllu", GOOD))
    first, second = bank.sentences
    assert first.words == ["The", "cat", "ca", "n't", "sleep", "."]
    assert first.heads == [2, 5, 5, 5, 0, 5]
    assert first.deprels == ["det", "nsubj", "aux", "advmod", "root", "punct"]
    assert first.upos == ["DET", "NOUN", "AUX", "PART", "VERB", "PUNCT"]
    assert (first.sent_id, first.line, first.split) == ("s1", 1, "mine")
    assert second.deprels == ["obl", "root"] and second.line == 12
    assert bank.name == "mine" and bank.size == 2 and bank.problems == []
    assert bank.describe()["words"] == 8


def test_a_gzipped_file_and_the_treebank_prefix_read_the_same(tmp_path):
    plain = load_treebank(write(tmp_path / "a.conllu", GOOD))
    path = tmp_path / "a.conllu.gz"
    path.write_bytes(gzip.compress(GOOD.encode()))
    kind, zipped = load_input(f"treebank:{path}")
    assert kind == "treebank" and zipped.sha256 == plain.sha256


@pytest.mark.parametrize("line, says", [
    ("2\tcat\tcat\tNOUN\tNN\t_\t5\tnsubj", "line 4: 8 tab-separated fields"),
    ("x\tcat\tcat\tNOUN\tNN\t_\t5\tnsubj\t_\t_", "line 4: Failed parsing field 'id'"),
    ("2\tcat\tcat\tNOUN\tNN\t_\tfive\tnsubj\t_\t_", "line 4: Failed parsing field 'head'"),
])
def test_a_line_that_is_not_conllu_is_a_one_line_error_naming_file_and_line(tmp_path, line, says):
    path = write(tmp_path / "bad.conllu", GOOD.replace(GOOD.splitlines()[3], line))
    with pytest.raises(ProbekitError) as err:
        load_treebank(path)
    assert str(path) in str(err.value) and says in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("line, says", [
    ("2\tcat\tcat\tNOUN\tNN\t_\t9\tnsubj\t_\t_", "head 9 on line 4"),
    ("2\tcat\tcat\tNOUN\tNN\t_\t0\tnsubj\t_\t_", "2 roots"),
    ("7\tcat\tcat\tNOUN\tNN\t_\t5\tnsubj\t_\t_", "word ID 7 on line 4"),
    ("2\tcat\tcat\tNOUN\tNN\t_\t1\tnsubj\t_\t_", "cycle"),
    ("2\tcat\tcat\tNOUN\tNN\t_\t2\tnsubj\t_\t_", "word 2 on line 4 is its own head"),
])
def test_a_broken_tree_is_skipped_with_one_problem_line(tmp_path, line, says):
    path = write(tmp_path / "broken.conllu", GOOD.replace(GOOD.splitlines()[3], line))  # cycle: The ↔ cat
    bank = load_treebank(path)
    assert [s.sent_id for s in bank.sentences] == ["s2"]
    assert len(bank.problems) == 1 and says in bank.problems[0]
    assert bank.problems[0].startswith(f"{path}: line 1:")
    assert ("is not a word of the sentence" in bank.problems[0]) == says.startswith("head 9")


def test_missing_and_empty_files_are_one_line_errors(tmp_path):
    with pytest.raises(ProbekitError, match="no such treebank file"):
        load_treebank(tmp_path / "nowhere.conllu")
    with pytest.raises(ProbekitError, match="no valid sentence"):
        load_treebank(write(tmp_path / "empty.conllu", "# nothing\n"))
    path = tmp_path / "junk.conllu.gz"
    path.write_bytes(b"not gzip")
    with pytest.raises(ProbekitError, match="not a readable CoNLL-U file"):
        load_treebank(path)


def test_the_shipped_ewt_splits_with_their_license():
    assert (EWT_DIR / "LICENSE.txt").read_text().startswith("Attribution-ShareAlike 4.0")
    assert "CC BY-SA 4.0" in (EWT_DIR / "README.md").read_text()
    kind, test = load_input("ewt")
    assert kind == "treebank" and test.name == "ewt-test" and (test.size, test.words) == (2077, 25094)
    dev = load_treebank("ewt:dev")
    assert (dev.size, dev.words) == (2001, 25147) and dev.problems == []
    both = load_treebank("ewt:dev+test")
    assert both.size == 4078 and {s.split for s in both.sentences} == {"dev", "test"}


def test_a_sample_is_seeded_and_taken_per_split():
    one, again = load_treebank("ewt:dev+test", sample=20), load_treebank("ewt:dev+test", sample=20)
    assert one.sha256 == again.sha256 and one.name == "ewt-dev+test@20"
    assert len(one.split("dev")) == len(one.split("test")) == 20
    assert one.sha256 != load_treebank("ewt:dev+test").sha256
    with pytest.raises(ProbekitError, match="at least 1"):
        load_treebank("ewt", sample=0)
