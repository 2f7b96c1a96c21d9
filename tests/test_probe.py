import importlib
import shutil

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from transformers import pipeline

from probekit.benchmarks import load_benchmark
from probekit.checkpoints import load_checkpoint
from probekit.cli import main
from probekit.probe import probe, score_prompts
from probekit.vocab import load_tokenizer

probe_module = importlib.import_module("probekit.probe")  # the module, not the function `probekit.probe`


def quiet(**kw):
    return dict(say=lambda *_: None, progress=False, **kw)


def test_equals_the_fill_mask_pipeline(hf_series, tiny_benchmark):
    prompts = load_benchmark(tiny_benchmark).prompts
    single = prompts[prompts.answer != "kings"]
    for folder in sorted(hf_series.glob("checkpoint-*")):
        model, tok = load_checkpoint(str(folder))
        ours = score_prompts(model, tok, single, top_k=5)
        fill = pipeline("fill-mask", model=str(folder), tokenizer=str(folder), device="cpu")
        for row, prompt in zip(ours.itertuples(), single.prompt):
            theirs = fill(prompt, top_k=5)
            assert row.topk_tokens == [t["token_str"].replace(" ", "") or t["token_str"] for t in theirs] or \
                row.topk_tokens == [fill.tokenizer.convert_ids_to_tokens(t["token"]) for t in theirs]
            assert row.topk_probs == pytest.approx([t["score"] for t in theirs], abs=1e-5)


def test_multi_piece_answers_are_scored_jointly(tiny_series, tiny_benchmark):
    model, tok = load_checkpoint(str(tiny_series / "checkpoint-8"))
    prompts = load_benchmark(tiny_benchmark).prompts
    row = score_prompts(model, tok, prompts).set_index("answer").loc["kings"]
    assert row.n_pieces == 2 == len(tok.tokenize("kings"))
    ids = tok("the king of the [MASK] [MASK].", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
    masks = (ids[0] == tok.mask_token_id).nonzero().flatten()
    gold = tok.convert_tokens_to_ids(["king", "##s"])
    expected = sum(float(logp[m, g]) for m, g in zip(masks, gold))
    assert row.gold_logprob == pytest.approx(expected, abs=1e-4)
    greedy = [int(logp[m].argmax()) for m in masks]
    assert (row.gold_rank == 1) == (greedy == gold)


def test_hf_trainer_series_gets_four_files_and_a_control(hf_series, tiny_benchmark, tmp_path):
    result = probe(str(hf_series / "*"), [str(tiny_benchmark)], out=tmp_path / "out", **quiet())
    assert list(result.checkpoints.checkpoint) == ["random-init", "checkpoint-3", "checkpoint-6"]
    assert list(result.checkpoints.status) == ["control", "ok", "ok"]
    for name in ("predictions.parquet", "scores.csv", "checkpoints.csv", "manifest.json"):
        assert (tmp_path / "out" / name).is_file()
    predictions = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert len(predictions) == 3 * 4 and predictions.groupby("checkpoint").size().eq(4).all()
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert {"checkpoint", "step", "benchmark", "relation", "n", "p_at_1", "p_at_10", "mrr"} <= set(scores.columns)
    capital = scores[(scores.relation == "capital") & (scores.checkpoint == "checkpoint-6")].iloc[0]
    ranks = predictions[(predictions.relation == "capital") & (predictions.checkpoint == "checkpoint-6")].gold_rank
    assert capital.n == 2 and capital.mrr == pytest.approx((1 / ranks).mean())
    assert capital.p_at_10 == pytest.approx((ranks <= 10).mean())


def test_probekit_series_needs_no_extra_control(tiny_series, tiny_benchmark):
    result = probe(str(tiny_series), [str(tiny_benchmark)], **quiet())
    assert list(result.checkpoints.step) == [0, 1, 2, 4, 8]
    assert "random-init" not in set(result.checkpoints.checkpoint)


def test_duplicates_and_corrupt_checkpoints(tiny_series, tiny_benchmark, tmp_path):
    series = shutil.copytree(tiny_series, tmp_path / "series")
    shutil.copytree(series / "checkpoint-4", series / "checkpoint-5")
    weights = (series / "checkpoint-2" / "model.safetensors").read_bytes()
    (series / "checkpoint-2" / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    result = CliRunner().invoke(main, ["probe", str(series / "checkpoint-2"), str(series / "checkpoint-4"),
                                       str(series / "checkpoint-5"), str(series / "checkpoint-8"),
                                       "-b", str(tiny_benchmark), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"{series / 'checkpoint-2' / 'model.safetensors'}: corrupt or truncated weights" in result.output
    table = pd.read_csv(tmp_path / "out" / "checkpoints.csv").set_index("checkpoint")
    assert table.loc["checkpoint-2", "status"] == "skipped"
    assert table.loc["checkpoint-5", "status"] == "duplicate"
    assert table.loc["checkpoint-5", "duplicate_of"] == "checkpoint-4"
    assert table.loc["checkpoint-8", "status"] == "ok"
    predictions = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert set(predictions.checkpoint) == {"random-init", "checkpoint-4", "checkpoint-5", "checkpoint-8"}


def test_vocabulary_mismatch_is_skipped(tiny_series, tiny_benchmark, tmp_path):
    result = probe([str(tiny_series / "checkpoint-8")], [str(tiny_benchmark)],
                   tokenizer=load_tokenizer("bert-base-uncased"), control=False, **quiet())
    assert list(result.checkpoints.status) == ["skipped"]
    assert "vocabulary mismatch: the tokenizer has 30522 tokens, the model 32" in result.checkpoints.error[0]


def test_rerun_on_a_grown_series_probes_only_the_new(tiny_series, tiny_benchmark, tmp_path, monkeypatch):
    calls = []
    real = probe_module.score_encoded
    monkeypatch.setattr(probe_module, "score_encoded", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = [str(tiny_series / f"checkpoint-{s}") for s in (0, 2, 4)]
    probe(first, [str(tiny_benchmark)], out=tmp_path, **quiet())
    assert len(calls) == 3
    again = probe(str(tiny_series / "*"), [str(tiny_benchmark)], out=tmp_path, **quiet())
    # new: checkpoint-1 (HF's warmup gives step 1 a learning rate of 0, so it equals checkpoint-0 and is
    # served from the cache) and checkpoint-8, the only one scored
    assert len(calls) == 3 + 1
    assert again.checkpoints.set_index("checkpoint").loc["checkpoint-1", "duplicate_of"] == "checkpoint-0"
    fresh = probe(str(tiny_series / "*"), [str(tiny_benchmark)], **quiet())
    pd.testing.assert_frame_equal(again.predictions, fresh.predictions)


def test_malformed_benchmark_rows_are_named_and_skipped(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("relation,template,subject,answer\n"
                    "capital,the capital of [X] is [MASK].,italy,rome\n"
                    "capital,the capital of [X] is rome.,italy,rome\n"
                    "capital,[MASK] of [X] is [MASK].,italy,rome\n"
                    "capital,the capital of [X] is [MASK].,italy,\n")
    bench = load_benchmark(path)
    assert len(bench.prompts) == 1
    assert bench.problems == [
        f"{path}: row 3: no [MASK] in 'the capital of [X] is rome.'; row skipped",
        f"{path}: row 4: 2 [MASK] where one is expected in '[MASK] of [X] is [MASK].'; row skipped",
        f"{path}: row 5: empty answer; row skipped",
    ]


def test_shipped_countries_benchmark():
    bench = load_benchmark("countries")
    assert not bench.problems
    assert set(bench.prompts.relation) == {"capital", "capital_reverse", "continent", "language", "currency"}
    assert "The capital of [MASK] is Rome." in set(bench.prompts.prompt)
    assert "The capital of Italy is [MASK]." in set(bench.prompts.prompt)
    assert "Rome is the capital of [MASK]." in set(bench.prompts.prompt)
    assert bench.prompts.subject.nunique() > 400 and len(bench.sha256) == 16


def test_probe_captures_attention_and_head_metrics(tiny_series, tiny_benchmark, tmp_path):
    result = probe(str(tiny_series), [str(tiny_benchmark)], out=tmp_path, sentences="default", half=True, **quiet())
    files = sorted(p.name for p in (tmp_path / "attention").iterdir())
    assert files == [f"checkpoint-{s}.safetensors" for s in (0, 1, 2, 4, 8)]
    heads = pd.read_parquet(tmp_path / "heads.parquet")
    assert set(heads.checkpoint) == {f"checkpoint-{s}" for s in (0, 1, 2, 4, 8)}
    assert set(heads.metric) >= {"attn_cls", "attn_sep", "attn_punct", "attn_prev", "attn_next", "attn_self",
                                 "entropy", "entropy_ratio", "js_prev", "js_final", "q_norm", "k_norm", "v_norm"}
    assert len(heads) == 5 * 2 * 2 * 13 and len(result.heads) == len(heads)
    step1 = heads[(heads.checkpoint == "checkpoint-1") & (heads.metric == "js_prev")].value
    assert step1.abs().max() < 1e-3  # checkpoint-1 has checkpoint-0's weights
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "attention").iterdir()}
    probe(str(tiny_series), [str(tiny_benchmark)], out=tmp_path, sentences="default", half=True, **quiet())
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "attention").iterdir()}
