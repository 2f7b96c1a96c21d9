"""Series by name, offline: a hub cache laid out as huggingface_hub lays it out, read through its own code.

Tiny BERTs (hidden 32, 2 layers) with a WordPiece tokenizer trained here are written into
`models--org--name/{blobs,snapshots,refs}` with HF_HUB_OFFLINE=1, so `snapshot_download` and
`scan_cache_dir` run for real; nothing is mocked and nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from huggingface_hub import constants
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

import probekit
from probekit.models import hub
from probekit.models.checkpoints import Checkpoint
from probekit.cli import main
from probekit.core.errors import ProbekitError
from probekit.training.folders import seed_of
from probekit.models.hub import HubCheckpoint, evict_snapshot

WORDS = ("the a capital city river king kings queen music war empire country people language old new "
         "north south is of in rome paris italy france").split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="session")
def tokenizer() -> BertTokenizerFast:
    """A WordPiece tokenizer trained here on a few hundred lines of the benchmark's words."""
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(300)]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=120, special_tokens=SPECIALS))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]")


@pytest.fixture(scope="session")
def saved(tokenizer, tmp_path_factory) -> dict[int, Path]:
    """save_pretrained folders (safetensors) of three tiny BERTs, seeded 0, 1, 2."""
    root = tmp_path_factory.mktemp("saved")
    folders = {}
    for seed in range(3):
        torch.manual_seed(seed)
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64)
        folders[seed] = root / f"model-{seed}"
        BertForMaskedLM(config).save_pretrained(folders[seed])
        tokenizer.save_pretrained(folders[seed])
    return folders


def publish(cache: Path, repo_id: str, folder: Path, ref: str = "main", *, add: dict[str, bytes] | None = None,
            drop: tuple[str, ...] = ()) -> Path:
    """Lay `folder` out in `cache` as huggingface_hub does for one revision of `repo_id` (content-addressed
    blobs, a snapshot of relative symlinks, refs/REF holding the commit); returns the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name not in drop}
    files.update(add or {})
    commit = hashlib.sha1(f"{repo_id}@{ref}".encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", blob))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty hub cache that huggingface_hub reads, with HF_HUB_OFFLINE=1 (its constants are read at import)."""
    home = tmp_path / "hf"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_hub_names_probe_in_step_order_with_their_seed(hub_cache, saved, tiny_benchmark):
    publish(hub_cache, "org/tiny-seed_0-step_200", saved[1])
    publish(hub_cache, "org/tiny-seed_0-step_100", saved[0])
    result = probekit.probe(["org/tiny-seed_0-step_200", "org/tiny-seed_0-step_100"], [str(tiny_benchmark)],
                            control=False)
    table = result.checkpoints
    assert table["checkpoint"].tolist() == ["tiny-seed_0-step_100", "tiny-seed_0-step_200"]
    assert table["step"].tolist() == [100, 200]
    assert table["status"].tolist() == ["ok", "ok"]
    assert set(table["run"]) == {"tiny-seed_0"}
    assert table["fingerprint"].nunique() == 2
    assert len(result.predictions) == 2 * 4

    series = probekit.open_series(["org/tiny-seed_0-step_200", "org/tiny-seed_0-step_100"])
    assert series.steps == [100, 200] and seed_of(series.at(200).source) == "0"
    assert str(hub_cache) in str(series[0].fetch())  # read from the cache's snapshot, by the local code path
    assert series[0].config.hidden_size == 32 and series[0].tokenizer.mask_token == "[MASK]"


def test_branches_of_one_repository_and_the_trainer_state_fallback(hub_cache, saved):
    publish(hub_cache, "org/tiny-series", saved[0], "checkpoint-100")
    publish(hub_cache, "org/tiny-series", saved[1], "step_2k")
    final = publish(hub_cache, "org/tiny-series", saved[2], "final",
                    add={"trainer_state.json": json.dumps({"global_step": 3000}).encode()})
    series = probekit.open_series([f"org/tiny-series@{b}" for b in ("final", "step_2k", "checkpoint-100")])
    assert [c.name for c in series] == ["tiny-series@checkpoint-100", "tiny-series@step_2k", "tiny-series@final"]
    assert series.steps == [100, 2000, 3000]
    assert series[-1].fetch() == final and series[-1].location == str(final)
    assert series[0].fingerprint != series[-1].fingerprint  # each branch is read from its own snapshot


def test_step_from_regex_through_the_cli(hub_cache, saved, tiny_benchmark, tmp_path):
    publish(hub_cache, "org/tiny-ep2k", saved[1])
    publish(hub_cache, "org/tiny-ep1k", saved[0])
    assert probekit.open_series(["org/tiny-ep2k", "org/tiny-ep1k"]).steps == [None, None]
    out = tmp_path / "out"
    args = ["probe", "org/tiny-ep2k", "org/tiny-ep1k", "-b", str(tiny_benchmark), "--no-control", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--step-from", r"ep(\d+k)"])
    assert result.exit_code == 0, result.output
    table = probekit.load_results(out).checkpoints
    assert table["checkpoint"].tolist() == ["tiny-ep1k", "tiny-ep2k"] and table["step"].tolist() == [1000, 2000]

    refused = CliRunner().invoke(main, [*args, "--step-from", r"ep\d+k"])
    assert refused.exit_code == 1 and "needs a group" in refused.output
    unmatched = CliRunner().invoke(main, [*args, "--step-from", r"step_(\d+)"])
    assert unmatched.exit_code == 1 and "org/tiny-ep2k: --step-from" in unmatched.output
    assert len(unmatched.output.strip().splitlines()) == 1


def test_step_from_reads_local_folders_too_and_they_mix_with_hub_names(hub_cache, saved, tmp_path):
    import shutil

    local = shutil.copytree(saved[1], tmp_path / "mine" / "run-ep3k")
    publish(hub_cache, "org/tiny-ep1k", saved[0])
    series = probekit.open_series([str(local), "org/tiny-ep1k"], step_from=r"ep(\d+k)")
    assert [(c.name, c.step) for c in series] == [("tiny-ep1k", 1000), ("run-ep3k", 3000)]
    assert series[1].location == str(local)


def test_a_checkpoint_missing_from_the_cache_offline_is_one_line_naming_it(hub_cache, saved, tiny_benchmark):
    publish(hub_cache, "org/tiny-seed_0-step_100", saved[0])
    with pytest.raises(ProbekitError, match=r"org/tiny-seed_0-step_404: not in the local hub cache .*HF_HUB_OFFLINE"):
        probekit.probe(["org/tiny-seed_0-step_100", "org/tiny-seed_0-step_404"], [str(tiny_benchmark)])
    with pytest.raises(ProbekitError, match=r"org/tiny-seed_0-step_100@nope: not in the local hub cache"):
        probekit.open_series("org/tiny-seed_0-step_100@nope")
    result = CliRunner().invoke(main, ["probe", "org/tiny-seed_0-step_404", "-b", str(tiny_benchmark)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "org/tiny-seed_0-step_404" in result.output and "Traceback" not in result.output


def test_evict_removes_that_snapshot_and_nothing_else(hub_cache, saved, tiny_benchmark, tmp_path):
    publish(hub_cache, "org/tiny-seed_0-step_100", saved[0])
    kept_branch = publish(hub_cache, "org/tiny-series", saved[1], "checkpoint-200")
    evicted_branch = publish(hub_cache, "org/tiny-series", saved[2], "checkpoint-300")
    publish(hub_cache, "org/bystander", saved[0])
    before = files_under(hub_cache)
    shared = [p.name for p in evicted_branch.iterdir() if (kept_branch / p.name).resolve() == p.resolve()]
    assert "tokenizer.json" in shared  # one blob linked from both branches' snapshots

    args = ["probe", "org/tiny-seed_0-step_100", "org/tiny-series@checkpoint-300", "-b", str(tiny_benchmark),
            "--no-control", "--out", str(tmp_path / "out"), "--evict"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert probekit.load_results(tmp_path / "out").checkpoints["status"].tolist() == ["ok", "ok"]

    after = files_under(hub_cache)
    assert not (hub_cache / "models--org--tiny-seed_0-step_100").exists()  # its only revision: the whole repository
    assert not evicted_branch.exists() and not (hub_cache / "models--org--tiny-series/refs/checkpoint-300").exists()
    gone = before - after
    assert all(g.startswith("models--org--tiny-seed_0-step_100") or g.startswith("models--org--tiny-series/")
               for g in gone)
    assert all(p.resolve().is_file() for p in kept_branch.iterdir())  # shared blobs kept for the other branch
    assert files_under(hub_cache / "models--org--bystander") == {
        g.removeprefix("models--org--bystander/") for g in before if g.startswith("models--org--bystander/")}
    assert (hub_cache / "models--org--tiny-series/refs/checkpoint-200").read_text() == kept_branch.name


def test_evict_refuses_what_is_not_one_snapshot_of_the_hub_cache(hub_cache, saved):
    snapshot = publish(hub_cache, "org/tiny-seed_0-step_100", saved[0])
    before = files_under(hub_cache)
    for folder in (saved[0], snapshot.parent, hub_cache / "models--org--tiny-seed_0-step_100"):
        with pytest.raises(ProbekitError, match="nothing evicted"):
            evict_snapshot(folder)
    assert files_under(hub_cache) == before and saved[0].is_dir()


def test_without_evict_the_cache_is_left_as_it_was(hub_cache, saved, tiny_benchmark):
    publish(hub_cache, "org/tiny-seed_0-step_100", saved[0])
    before = files_under(hub_cache)
    probekit.probe(["org/tiny-seed_0-step_100"], [str(tiny_benchmark)], control=False)
    assert files_under(hub_cache) == before


def test_pickle_weights_refused_unless_allowed(hub_cache, saved, tiny_benchmark):
    weights = io.BytesIO()
    torch.save(BertForMaskedLM.from_pretrained(saved[0]).state_dict(), weights)
    publish(hub_cache, "org/tiny-pickled-step_7", saved[0], drop=("model.safetensors",),
            add={"pytorch_model.bin": weights.getvalue()})
    refused = probekit.probe(["org/tiny-pickled-step_7"], [str(tiny_benchmark)], control=False)
    assert refused.checkpoints["status"].tolist() == ["skipped"]
    assert refused.checkpoints["error"][0] == ("org/tiny-pickled-step_7: only pickle weights (pytorch_model.bin); "
                                               "pass --allow-pickle to load them (read weights-only)")
    allowed = probekit.probe(["org/tiny-pickled-step_7"], [str(tiny_benchmark)], control=False, allow_pickle=True)
    assert allowed.checkpoints["status"].tolist() == ["ok"] and allowed.checkpoints["step"].tolist() == [7]


def test_only_fetch_downloads_and_a_hub_name_is_read_one_way(hub_cache, saved, tmp_path, monkeypatch):
    """`location` and `source` never download; `fetch()` does, once, and reading the model reads that snapshot;
    a plain Checkpoint reads folders only."""
    snapshot = publish(hub_cache, "org/tiny-seed_1-step_5", saved[1])
    fetched = []
    real = hub.fetch_snapshot
    monkeypatch.setattr(hub, "fetch_snapshot", lambda spec, *a: fetched.append(str(spec)) or real(spec, *a))
    ref = probekit.open_series("org/tiny-seed_1-step_5")[0]
    assert isinstance(ref, HubCheckpoint) and not ref.is_local
    assert (ref.location, ref.source, fetched) == ("org/tiny-seed_1-step_5", "org/tiny-seed_1-step_5", [])
    assert ref.fetch() == snapshot and ref.location == str(snapshot) and fetched == ["org/tiny-seed_1-step_5"]
    expected = BertForMaskedLM.from_pretrained(saved[1]).state_dict()
    assert torch.equal(ref.model().state_dict()["bert.embeddings.word_embeddings.weight"],
                       expected["bert.embeddings.word_embeddings.weight"])
    assert fetched == ["org/tiny-seed_1-step_5"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProbekitError, match=r"^org/tiny-seed_1-step_5: no config.json$"):
        Checkpoint("by-hand", "org/tiny-seed_1-step_5", None).model()  # a hub name is a HubCheckpoint, not this


def test_a_step_too_large_is_one_line(tiny_series, tiny_benchmark, tmp_path):
    """--step-from finding a step past int64 is one line, not an OverflowError traceback."""
    folder = tmp_path / "ep-99999999999999999999999k"
    shutil.copytree(tiny_series / "checkpoint-8", folder)
    result = CliRunner().invoke(main, ["probe", str(folder), "--step-from", r"ep-(\d+k)", "-b", str(tiny_benchmark),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.output.strip().startswith("Error:") and len(result.output.strip().splitlines()) == 1


def test_local_folders_and_hub_names_read_steps_alike(hub_cache, saved, tmp_path):
    """`…-step_20k` and `2M` state the same step whether they name a local folder or a hub repository."""
    local = {name: shutil.copytree(saved[0], tmp_path / "mine" / name) for name in ("tiny-step_20k", "2M")}
    for name in local:
        publish(hub_cache, f"org/{name}", saved[1])
    series = probekit.open_series([*map(str, local.values()), *(f"org/{name}" for name in local)])
    assert {c.source: c.step for c in series} == {str(local["tiny-step_20k"]): 20_000, "org/tiny-step_20k": 20_000,
                                                   str(local["2M"]): 2_000_000, "org/2M": 2_000_000}
