import json
import shutil

import pytest
import torch

from probekit import ProbekitError
from probekit.models import checkpoints
from probekit.models.checkpoints import RandomInit, fingerprint, read_weights
from probekit.models.series import load_checkpoint, resolve_checkpoints


def test_order_is_training_order_not_lexical(tmp_path):
    for step in (144000, 14400, 5500, 288000):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "probekit_run.json").write_text("{}")
    refs = resolve_checkpoints([str(tmp_path / "*")])
    assert [r.step for r in refs] == [5500, 14400, 144000, 288000]
    assert [r.name for r in resolve_checkpoints(str(tmp_path))] == [r.name for r in refs]


def test_trainer_state_step_wins_over_the_name(tmp_path):
    (tmp_path / "late-step-5").mkdir()
    (tmp_path / "late-step-5" / "trainer_state.json").write_text(json.dumps({"global_step": 900}))
    (tmp_path / "early-step-100").mkdir()
    refs = resolve_checkpoints([str(tmp_path / "late-step-5"), str(tmp_path / "early-step-100")])
    assert [(r.name, r.step) for r in refs] == [("early-step-100", 100), ("late-step-5", 900)]


def test_missing_path_and_empty_glob_are_clear(tmp_path):
    with pytest.raises(ProbekitError, match="no such checkpoint folder"):
        resolve_checkpoints([str(tmp_path / "nope" / "checkpoint-1")])
    with pytest.raises(ProbekitError, match="matches no checkpoint folder"):
        resolve_checkpoints([str(tmp_path / "*")])


def test_loads_a_probekit_checkpoint_with_its_tokenizer(tiny_series):
    model, tok = load_checkpoint(str(tiny_series / "checkpoint-8"))
    assert not model.training and model.config._attn_implementation == "eager"
    assert len(tok) == model.config.vocab_size
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


def test_fingerprint_sees_weights_not_paths(tiny_series, tmp_path):
    copy = shutil.copytree(tiny_series / "checkpoint-8", tmp_path / "copy")
    a, b = (read_weights(r) for r in resolve_checkpoints([str(tiny_series / "checkpoint-8"), str(copy)]))
    assert fingerprint(a) == fingerprint(b)
    b["bert.embeddings.word_embeddings.weight"][0, 0] += 1e-3
    assert fingerprint(a) != fingerprint(b)


def test_pickle_weights_need_explicit_permission(tiny_series, tmp_path):
    folder = shutil.copytree(tiny_series / "checkpoint-8", tmp_path / "pickled")
    weights = read_weights(resolve_checkpoints(str(folder))[0])
    torch.save(weights, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ProbekitError, match="only pickle weights.*--allow-pickle"):
        load_checkpoint(str(folder))
    model, _ = load_checkpoint(str(folder), allow_pickle=True)
    assert fingerprint(model.state_dict()) == fingerprint(
        load_checkpoint(str(tiny_series / "checkpoint-8"))[0].state_dict())


def test_non_bert_and_bad_heads_are_refused(tiny_series, tmp_path):
    folder = shutil.copytree(tiny_series / "checkpoint-8", tmp_path / "gpt")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ProbekitError, match="gpt.*not a BERT model"):
        load_checkpoint(str(folder))
    (folder / "config.json").write_text(json.dumps({**config, "num_attention_heads": 3}))
    with pytest.raises(ProbekitError, match="3 attention heads do not divide hidden size 32"):
        load_checkpoint(str(folder))


def test_shell_glob_files_beside_checkpoints_are_ignored(tiny_series):
    expanded = [str(p) for p in sorted(tiny_series.iterdir())]  # what `probekit probe DIR/*` receives
    assert any(p.endswith("probekit_run.json") for p in expanded)
    assert [r.step for r in resolve_checkpoints(expanded)] == [0, 1, 2, 4, 8]
    with pytest.raises(ProbekitError, match="a file, not a checkpoint folder"):
        resolve_checkpoints([str(tiny_series / "probekit_run.json")])


def test_the_handle_reads_weights_on_first_use_and_release_forgets_them(tiny_series, monkeypatch):
    reads = []
    real = checkpoints.read_weights
    monkeypatch.setattr(checkpoints, "read_weights", lambda ref, *a: reads.append(ref.name) or real(ref, *a))
    ref = resolve_checkpoints(str(tiny_series / "checkpoint-8"))[0]
    assert reads == [] and ref.fetch() == tiny_series / "checkpoint-8" and ref.is_local
    before = ref.fingerprint
    assert ref.model() is ref.model() and reads == ["checkpoint-8"]
    ref.release()
    assert ref.fingerprint == before and reads == ["checkpoint-8"]  # the fingerprint stays
    ref.model()
    assert reads == ["checkpoint-8", "checkpoint-8"]  # the weights are read again


def test_a_random_init_has_no_files(tiny_series):
    control = RandomInit(resolve_checkpoints(str(tiny_series / "checkpoint-8"))[0])
    assert not control.is_local and control.model().config.hidden_size == 32
    with pytest.raises(ProbekitError, match="^random-init: no files to read; it is built from seed 0$"):
        control.fetch()
