import json

import pytest

from probekit import ProbekitError
from probekit.training.corpus import load_corpus, split_heldout, wiki_leads


def test_embedded_default_is_the_wikipedia_leads():
    docs = load_corpus()
    assert len(docs) == 10033 == len(wiki_leads())
    assert sum("capital of" in d for d in docs) > 100


def test_text_file_gives_one_document_per_nonblank_line(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("first line\n\n  \nsecond line\n")
    assert load_corpus(str(path)) == ["first line", "second line"]


def test_jsonl_and_folder(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "alpha"}) + "\n" + json.dumps({"text": "beta"}) + "\n")
    (tmp_path / "b.txt").write_text("gamma\n")
    assert load_corpus(str(tmp_path)) == ["alpha", "beta", "gamma"]


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(ProbekitError, match=r"bad.jsonl:2: not valid JSON"):
        load_corpus(str(path))


def test_missing_and_empty_corpus(tmp_path):
    with pytest.raises(ProbekitError, match="missing.txt: no such corpus file"):
        load_corpus(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ProbekitError, match="empty.txt: corpus is empty"):
        load_corpus(str(tmp_path / "empty.txt"))


def test_unreachable_hub_dataset_is_one_clear_error(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # datasets and huggingface_hub read these variables once, at import: once another test has imported them,
    # only their constants make load_dataset offline (else it retries the hub for 23 s before failing)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ProbekitError, match="corpus 'no-such-dataset-xyz': not a local file"):
        load_corpus("no-such-dataset-xyz")


def test_heldout_split_is_deterministic_and_disjoint():
    docs = [f"doc {i}" for i in range(250)]
    train, held = split_heldout(docs)
    assert (train, held) == split_heldout(docs)
    assert len(held) == 2 and not set(train) & set(held) and len(train) + len(held) == 250
