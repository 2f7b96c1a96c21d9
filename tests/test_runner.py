import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import probekit.analyses.scoring as scoring_module
from probekit import ProbekitError
from probekit.analyses import Analysis, register
from probekit.cli import main
from probekit.running.results import ProbeResult
from probekit.running.runner import probe
from probekit.core.schema import Column, Table
from probekit.training.vocab import load_tokenizer


@pytest.fixture
def counted(monkeypatch):
    """How many times the predictions analysis actually scored (cache misses)."""
    calls = []
    real = scoring_module.score_encoded
    monkeypatch.setattr(scoring_module, "score_encoded", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_hf_trainer_series_gets_its_tables_and_a_control(hf_series, tiny_benchmark, tmp_path):
    result = probe(str(hf_series / "*"), [str(tiny_benchmark)], out=tmp_path / "out")
    assert list(result.checkpoints.checkpoint) == ["random-init", "checkpoint-3", "checkpoint-6"]
    assert list(result.checkpoints.status) == ["control", "ok", "ok"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert set(manifest["files"]["tables"]) == {"predictions", "scores", "checkpoints", "training", "findings"}
    predictions = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert len(predictions) == 3 * 4 and predictions.groupby("checkpoint").size().eq(4).all()
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    capital = scores[(scores.relation == "capital") & (scores.checkpoint == "checkpoint-6")].iloc[0]
    ranks = predictions[(predictions.relation == "capital") & (predictions.checkpoint == "checkpoint-6")].gold_rank
    assert capital.n == 2 and capital.mrr == pytest.approx((1 / ranks).mean())
    assert capital.p_at_10 == pytest.approx((ranks <= 10).mean())


def test_probekit_series_needs_no_extra_control(tiny_series, tiny_benchmark):
    result = probe(str(tiny_series), [str(tiny_benchmark)])
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
    table = ProbeResult.load(tmp_path / "out").checkpoints.set_index("checkpoint")
    assert table.loc["checkpoint-2", "status"] == "skipped"
    assert table.loc["checkpoint-5", "status"] == "duplicate"
    assert table.loc["checkpoint-5", "duplicate_of"] == "checkpoint-4"
    assert table.loc["checkpoint-8", "status"] == "ok"
    predictions = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert set(predictions.checkpoint) == {"random-init", "checkpoint-4", "checkpoint-5", "checkpoint-8"}


def _broken(tiny_series, tmp_path, name, config_edit=None, weights_edit=None):
    folder = shutil.copytree(tiny_series / "checkpoint-8", tmp_path / "bad" / name)
    if config_edit is not None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config_edit(config)))
    if weights_edit is not None:
        weights = load_file(folder / "model.safetensors")
        save_file(weights_edit(weights), folder / "model.safetensors")
    return folder


def test_every_per_checkpoint_failure_is_one_line_and_the_rest_is_probed(tiny_series, tiny_benchmark, tmp_path):
    def nan(weights):
        weights["bert.encoder.layer.1.output.dense.weight"][0, 0] = float("nan")
        return weights

    def extra_layer(weights):
        return {**weights, **{k.replace("layer.1.", "layer.2."): v.clone() for k, v in weights.items() if "layer.1." in k}}

    cases = {
        "a-list": (lambda c: [c], None, "config.json: not a JSON object"),
        "wrong-type": (lambda c: {**c, "hidden_size": "wide"}, None, "hidden_size must be a whole number"),
        "absurd-vocab": (lambda c: {**c, "vocab_size": 10**12}, None, "vocab_size must be a whole number"),
        "sizes-differ": (lambda c: {**c, "vocab_size": c["vocab_size"] + 3}, None, "config says vocab"),
        "fewer-layers": (lambda c: {**c, "num_hidden_layers": 1}, None, "config says 1 layers, the weights have 2"),
        "extra-tensors": (None, extra_layer, "config says 2 layers, the weights have 3"),
        "diverged": (None, nan, "hold NaN or Inf"),
    }
    folders = [_broken(tiny_series, tmp_path, name, c, w) for name, (c, w, _) in cases.items()]
    result = probe([*map(str, folders), str(tiny_series / "checkpoint-8")], [str(tiny_benchmark)],
                   out=tmp_path / "out", control=False)
    table = result.checkpoints.set_index("checkpoint")
    for name, (_, _, message) in cases.items():
        assert table.loc[name, "status"] == "skipped", name
        assert message in table.loc[name, "error"] and str(tmp_path / "bad" / name) in table.loc[name, "error"]
    assert table.loc["checkpoint-8", "status"] == "ok"
    assert set(ProbeResult.load(tmp_path / "out").predictions.checkpoint) == {"checkpoint-8"}


def test_unexpected_tensors_are_an_error_naming_the_checkpoint(tiny_series, tiny_benchmark, tmp_path):
    folder = _broken(tiny_series, tmp_path, "stray", weights_edit=lambda w: {**w, "bert.stray.weight": torch.ones(2)})
    result = probe([str(folder)], [str(tiny_benchmark)], control=False)
    assert "tensors its config has no place for (e.g. bert.stray.weight)" in result.checkpoints.error[0]


def test_vocabulary_mismatch_is_skipped(tiny_series, tiny_benchmark):
    result = probe([str(tiny_series / "checkpoint-8")], [str(tiny_benchmark)],
                   tokenizer=load_tokenizer("bert-base-uncased"), control=False)
    assert list(result.checkpoints.status) == ["skipped"]
    assert "vocabulary mismatch: the tokenizer has 30522 tokens, the model 32" in result.checkpoints.error[0]


def test_rerun_on_a_grown_series_probes_only_the_new(tiny_series, tiny_benchmark, tmp_path, counted):
    first = [str(tiny_series / f"checkpoint-{s}") for s in (0, 2, 4)]
    probe(first, [str(tiny_benchmark)], out=tmp_path / "out")
    assert len(counted) == 3
    again = probe(str(tiny_series / "*"), [str(tiny_benchmark)], out=tmp_path / "out")
    assert len(counted) == 3 + 2  # checkpoint-1 and checkpoint-8
    fresh = probe(str(tiny_series / "*"), [str(tiny_benchmark)])
    pd.testing.assert_frame_equal(again.predictions, fresh.predictions)


def test_cache_of_another_tokenizer_format_or_scoring_is_not_reused(tiny_series, tiny_benchmark, tmp_path,
                                                                    counted, monkeypatch):
    one = [str(tiny_series / "checkpoint-8")]
    probe(one, [str(tiny_benchmark)], out=tmp_path / "out", control=False)
    probe(one, [str(tiny_benchmark)], out=tmp_path / "out", control=False)
    assert len(counted) == 1
    swapped = load_tokenizer(str(tiny_series / "checkpoint-8"))
    swapped.backend_tokenizer.normalizer = None  # same size, another tokenizer: no lower-casing
    probe(one, [str(tiny_benchmark)], out=tmp_path / "out", control=False, tokenizer=swapped)
    assert len(counted) == 2
    monkeypatch.setattr("probekit.core.store.FORMAT_VERSION", 1)
    probe(one, [str(tiny_benchmark)], out=tmp_path / "out", control=False)
    monkeypatch.setattr("probekit.analyses.scoring.SCORING_VERSION", 1)
    probe(one, [str(tiny_benchmark)], out=tmp_path / "out", control=False)
    assert len(counted) == 4


def test_equal_weights_with_another_config_are_not_duplicates(tiny_series, tiny_benchmark, tmp_path):
    other = _broken(tiny_series, tmp_path, "other-config", lambda c: {**c, "layer_norm_eps": 0.1})
    result = probe([str(tiny_series / "checkpoint-8"), str(other)], [str(tiny_benchmark)], control=False)
    assert set(result.checkpoints.status) == {"ok"}
    a, b = (result.predictions[result.predictions.checkpoint == n].gold_logprob.to_numpy()
            for n in ("checkpoint-8", "other-config"))
    assert not (a == b).all()


def test_same_folder_names_from_different_runs_stay_apart(tiny_series, tiny_benchmark, tmp_path):
    for run, step in (("seed-a", 4), ("seed-b", 8)):
        shutil.copytree(tiny_series / f"checkpoint-{step}", tmp_path / "runs" / run / "checkpoint-8")
    result = probe(str(tmp_path / "runs" / "*" / "checkpoint-8"), [str(tiny_benchmark)], out=tmp_path / "out",
                   sentences="default", control=False)
    assert list(result.checkpoints.checkpoint) == ["seed-a/checkpoint-8", "seed-b/checkpoint-8"]
    assert list(result.checkpoints.run) == ["seed-a", "seed-b"]
    assert result.predictions.groupby("checkpoint").size().tolist() == [4, 4]
    assert len(set(result.files.values())) == 2
    assert all((tmp_path / "out" / f).is_file() for f in result.files.values())


def test_reprobing_another_series_leaves_no_table_of_the_first(tiny_series, hf_series, tiny_benchmark, tmp_path):
    probe(str(tiny_series), [str(tiny_benchmark)], ["lens", "ablation"], out=tmp_path / "out", sentences="default")
    assert (tmp_path / "out" / "lens.parquet").is_file() and any((tmp_path / "out" / "attention").iterdir())
    second = probe(str(hf_series), [str(tiny_benchmark)], out=tmp_path / "out")
    assert not (tmp_path / "out" / "lens.parquet").exists() and not (tmp_path / "out" / "heads.parquet").exists()
    assert not list((tmp_path / "out" / "attention").iterdir())
    loaded = ProbeResult.load(tmp_path / "out")
    assert set(loaded.tables) == set(second.tables) and loaded.lens is None
    assert set(loaded.checkpoints.checkpoint) == {"random-init", "checkpoint-3", "checkpoint-6"}


class Vocabulary(Analysis):
    """A toy analysis, all in this test: the vocabulary size and the share of prompts per relation."""

    name = "toy-vocabulary"
    tables = (Table("toy_vocabulary", "checkpoint × benchmark", (
        Column("checkpoint", "str", ""), Column("run", "str", ""), Column("step", "int", ""),
        Column("benchmark", "str", ""), Column("vocab", "int", "tokens in the vocabulary"),
        Column("prompts", "int", "prompts"))),)

    def run(self, checkpoint, ctx, bench):
        return pd.DataFrame({"benchmark": [bench.name], "vocab": [len(checkpoint.tokenizer)],
                             "prompts": [len(bench.prompts)]})


def test_a_new_analysis_is_one_class_registered(tiny_series, tiny_benchmark, tmp_path):
    register(Vocabulary)
    result = probe(str(tiny_series), [str(tiny_benchmark)], ["toy-vocabulary"], out=tmp_path / "out")
    table = result.tables["toy_vocabulary"]
    assert list(table.step) == [0, 1, 2, 4, 8] and set(table.vocab) == {32} and set(table.prompts) == {4}
    pd.testing.assert_frame_equal(ProbeResult.load(tmp_path / "out").tables["toy_vocabulary"], table)
    assert (tmp_path / "out" / "toy_vocabulary.parquet").is_file()


def test_a_second_writer_is_refused(tiny_series, tiny_benchmark, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".probekit.lock").write_text(str(os.getppid()))
    with pytest.raises(ProbekitError, match=f"another probekit process \\(pid {os.getppid()}\\) is writing"):
        probe(str(tiny_series / "checkpoint-8"), [str(tiny_benchmark)], out=tmp_path / "out")
    (tmp_path / "out" / ".probekit.lock").write_text("999999999")  # a process that is gone
    probe(str(tiny_series / "checkpoint-8"), [str(tiny_benchmark)], out=tmp_path / "out", control=False)
    assert not (tmp_path / "out" / ".probekit.lock").exists()


def test_unscorable_prompts_are_said_and_counted(tiny_series, tmp_path, caplog):
    bench = tmp_path / "b.csv"
    bench.write_text("relation,template,subject,answer\n"
                     "capital,the capital of [X] is [MASK].,italy,rome\n"
                     "capital,the capital of [X] is [MASK].,france,\u200b\n")
    with caplog.at_level("WARNING", logger="probekit"):
        result = probe(str(tiny_series / "checkpoint-8"), [str(bench)], control=False)
    row = result.scores.iloc[0]
    assert (row.n, row.n_unscorable) == (1, 1)
    assert any("1 prompts unscorable" in m for m in caplog.messages)


def test_captures_attention_and_head_metrics_and_reuses_them(tiny_series, tiny_benchmark, tmp_path):
    result = probe(str(tiny_series), [str(tiny_benchmark)], {"capture": {"float16": True}}, out=tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out" / "attention").iterdir())
    assert files == [f"checkpoint-{s}.safetensors" for s in (0, 1, 2, 4, 8)]
    heads = pd.read_parquet(tmp_path / "out" / "heads.parquet")
    assert set(heads.checkpoint) == {f"checkpoint-{s}" for s in (0, 1, 2, 4, 8)}
    assert set(heads.metric) == {"attn_cls", "attn_sep", "attn_punct", "attn_prev", "attn_next", "attn_self",
                                 "entropy", "entropy_ratio", "js_prev", "js_final", "q_norm", "k_norm", "v_norm"}
    assert len(heads) == 5 * 2 * 2 * 13 and len(result.heads) == len(heads)
    last = heads[(heads.checkpoint == "checkpoint-8") & (heads.metric == "js_final")].value
    assert last.abs().max() < 1e-6
    first = heads[(heads.checkpoint == "checkpoint-0") & (heads.metric == "js_prev")].value
    assert first.isna().all()
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "attention").iterdir()}
    again = probe(str(tiny_series), [str(tiny_benchmark)], {"capture": {"float16": True}}, out=tmp_path / "out")
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "attention").iterdir()}
    pd.testing.assert_frame_equal(again.heads, result.heads)




def test_a_very_long_checkpoint_name_is_captured_under_a_safe_file_name(tiny_series, tiny_benchmark, tmp_path):
    folder = shutil.copytree(tiny_series / "checkpoint-8", tmp_path / ("x" * 244))
    result = probe([str(folder)], [str(tiny_benchmark)], out=tmp_path / "out", sentences="default", control=False)
    (file,) = result.files.values()
    assert len(file) < 120 and (tmp_path / "out" / file).is_file()
    assert set(result.checkpoints.status) == {"ok"}


def test_checkpoints_without_a_step_stay_in_the_summary(tiny_series, tiny_benchmark, tmp_path):
    folder = shutil.copytree(tiny_series / "checkpoint-8", tmp_path / "final")
    (folder / "trainer_state.json").unlink()
    result = probe([str(tiny_series / "checkpoint-4"), str(folder)], [str(tiny_benchmark)], control=False)
    summary = result.summary()
    assert list(summary.index.get_level_values("checkpoint")) == ["checkpoint-4", "final"]
    assert summary.index.get_level_values("step")[1] is pd.NA


def test_a_bad_config_and_missing_tokenizer_are_named_as_such(tiny_series, tiny_benchmark, tmp_path):
    broken = shutil.copytree(tiny_series / "checkpoint-8", tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    bare = shutil.copytree(tiny_series / "checkpoint-8", tmp_path / "bare")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (bare / name).unlink(missing_ok=True)
    errors = probe([str(broken), str(bare)], [str(tiny_benchmark)], control=False).checkpoints.set_index(
        "checkpoint").error
    assert errors["broken"] == f"{broken / 'config.json'}: not valid JSON (JSONDecodeError)"
    assert errors["bare"].startswith(f"{bare}: no tokenizer files saved with it")


def test_out_pointing_at_a_file_is_one_line(tiny_series, tiny_benchmark, tmp_path):
    (tmp_path / "taken").write_text("")
    result = CliRunner().invoke(main, ["probe", str(tiny_series / "checkpoint-8"), "-b", str(tiny_benchmark),
                                       "--out", str(tmp_path / "taken")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(tmp_path / "taken") in result.output


def test_bf16_scores_in_bf16_and_the_manifest_gives_the_deviation_from_fp32(tiny_series, tiny_benchmark, tmp_path):
    series = [str(tiny_series / "checkpoint-4"), str(tiny_series / "checkpoint-8")]
    exact = probe(series, [str(tiny_benchmark)], control=False)
    half = probe(series, [str(tiny_benchmark)], out=tmp_path / "out", control=False, options={"predictions": {"bf16": True}})
    assert exact.manifest["bf16_scoring"] is None and exact.manifest["options"]["predictions"]["bf16"] is False
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    report = manifest["bf16_scoring"]
    assert report == half.manifest["bf16_scoring"] and manifest["options"]["predictions"]["bf16"] is True
    delta = (half.predictions.gold_logprob - exact.predictions.gold_logprob).abs()
    changed = half.predictions.gold_rank != exact.predictions.gold_rank
    assert 0 < delta.max() < 0.5
    assert report["checked_rows"] == len(exact.predictions) == 8
    assert report["max_abs_delta_gold_logprob"] == pytest.approx(delta.max(), abs=1e-6)
    assert report["gold_rank_changed_share"] == pytest.approx(changed.mean())
    assert list(half.predictions.columns) == list(exact.predictions.columns)
    again = probe(series, [str(tiny_benchmark)], out=tmp_path / "out", control=False, half=True)  # the earlier keyword
    assert again.manifest["bf16_scoring"] == report


def _unlabelled_copy(series: Path, folder: Path) -> Path:
    shutil.copytree(series, folder)
    (folder / "probekit_run.json").unlink(missing_ok=True)
    return folder


def test_runs_without_seed_labels_are_not_pooled_as_seeds(tiny_series, tiny_benchmark, tmp_path):
    """Two unlabelled runs (other recipes, other families) are two models, not seeds: no all-seeds rows."""
    runs = tmp_path / "runs"
    _unlabelled_copy(tiny_series, runs / "lr-high")
    _unlabelled_copy(tiny_series, runs / "lr-low")
    # make the second run differ, as another recipe would
    for ckpt in (runs / "lr-low").glob("checkpoint-*"):
        weights = load_file(ckpt / "model.safetensors")
        save_file({k: v * 1.01 for k, v in weights.items()}, ckpt / "model.safetensors", metadata={"format": "pt"})
    result = probe([str(runs / "lr-high"), str(runs / "lr-low")], [str(tiny_benchmark)])
    assert set(result.checkpoints["seed"]) == {""}
    assert not (result.scores["run"] == "all-seeds").any()
    assert set(result.scores["n_seeds"]) == {1}


def test_pair_accuracy_is_pooled_over_seeds_like_scores(tiny_recipe, tiny_dir, tmp_path):
    """With several seeds, pair_accuracy has all-seeds rows (Multi-Bootstrap), as scores does."""
    from probekit.training.trainer import train_seeds

    out = tmp_path / "seeds"
    recipe = replace(tiny_recipe, max_steps=2, log_until=1, save_every=2)
    train_seeds(out, recipe, [0, 1], corpus=str(tiny_dir / "corpus.txt"), tokenizer=str(tiny_dir / "vocab.txt"))
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("good,bad\nthe king is old.,the king of old.\nthe queen is new.,the queen new is.\n")
    result = probe([str(p) for p in sorted(out.glob("seed-*/checkpoint-*"))], [str(pairs)])
    assert (result.scores["run"] == "all-seeds").any() if len(result.scores) else True
    accuracy = result.tables["pair_accuracy"]
    assert (accuracy["run"] == "all-seeds").any()


def test_options_are_checked_and_named_in_one_line(tiny_series, tiny_benchmark):
    series = str(tiny_series / "checkpoint-8")
    with pytest.raises(ProbekitError, match="analysis 'predictions': option top_k=0 is outside"):
        probe(series, [str(tiny_benchmark)], options={"predictions": {"top_k": 0}})
    with pytest.raises(ProbekitError, match="analysis 'pairs' has no option 'metrc'; its options: metric"):
        probe(series, [str(tiny_benchmark)], options={"pairs": {"metrc": "original"}})
    with pytest.raises(ProbekitError, match="unknown analysis 'lense'"):
        probe(series, [str(tiny_benchmark)], {"lense": {}})
    with pytest.raises(TypeError, match="unexpected keyword argument 'topk'"):
        probe(series, [str(tiny_benchmark)], topk=3)


def test_options_by_dict_and_by_the_earlier_keywords_agree(tiny_series, tiny_benchmark):
    series = str(tiny_series / "checkpoint-8")
    by_dict = probe(series, [str(tiny_benchmark)], {"predictions": {"top_k": 3}}, control=False)
    by_keyword = probe(series, [str(tiny_benchmark)], top_k=3, control=False)
    assert by_dict.predictions.topk_tokens.map(len).eq(3).all()
    pd.testing.assert_frame_equal(by_dict.predictions.drop(columns="fingerprint"),
                                  by_keyword.predictions.drop(columns="fingerprint"))
    assert by_dict.manifest["options"]["predictions"] == {"top_k": 3, "bf16": False}


def test_analyses_run_only_at_the_steps_asked_and_shards_agree(tiny_series, tiny_benchmark, tmp_path):
    series, bench = str(tiny_series), [str(tiny_benchmark)]
    result = probe(series, bench, ["lens", "ablation"], out=tmp_path / "one", at={"ablation": "0,last", "lens": [4]})
    assert sorted(result.tables["ablation"]["step"].unique()) == [0, 8]
    assert sorted(result.tables["lens"]["step"].unique()) == [4]
    assert sorted(result.predictions["step"].unique()) == [0, 1, 2, 4, 8]  # the others at every checkpoint
    assert result.manifest["at"] == {"ablation": [0, 8], "lens": [4]}
    full = probe(series, bench, ["ablation"])
    asked = full.tables["ablation"][full.tables["ablation"]["step"].isin([0, 8])].reset_index(drop=True)
    pd.testing.assert_frame_equal(result.tables["ablation"].reset_index(drop=True), asked)
    assert probe(series, bench, ["ablation"], out=tmp_path / "sharded", shard="0/2", at={"ablation": "0,last"}) is None
    sharded = probe(series, bench, ["ablation"], out=tmp_path / "sharded", shard="1/2", at={"ablation": "0,last"})
    pd.testing.assert_frame_equal(sharded.tables["ablation"], result.tables["ablation"])


def test_at_names_a_bad_analysis_or_step_in_one_line(tiny_series, tiny_benchmark, tmp_path, caplog):
    series, bench = str(tiny_series), [str(tiny_benchmark)]
    with pytest.raises(ProbekitError, match="at: 'lens' is not an analysis of this run"):
        probe(series, bench, ["ablation"], at={"lens": "last"})
    with pytest.raises(ProbekitError, match="'soon' is not a step"):
        probe(series, bench, ["ablation"], at={"ablation": "soon"})
    with pytest.raises(ProbekitError, match=r"at: ablation='3000': no checkpoint of the series has these steps "
                                            r"\(it has 0, 1, 2, 4, 8\)"):
        probe(series, bench, ["ablation"], at={"ablation": "3000"})
    result = probe(series, bench, ["ablation"], at={"ablation": [3000, 8]})
    assert "asks for step(s) 3000, which no checkpoint of the series has" in caplog.text
    assert result.manifest["at"] == {"ablation": [8]}  # the steps it ran at, not the ones asked for
    out = CliRunner().invoke(main, ["probe", series, "-b", bench[0], "--with", "ablation", "--at", "ablation",
                                    "-o", str(tmp_path / "cli")])
    assert out.exit_code == 2 and "'ablation' is not NAME=STEPS" in out.output
    out = CliRunner().invoke(main, ["probe", series, "-b", bench[0], "--with", "ablation", "--at", "ablation=8",
                                    "-o", str(tmp_path / "cli")])
    assert out.exit_code == 0, out.output
    assert pd.read_parquet(tmp_path / "cli" / "ablation.parquet")["step"].unique().tolist() == [8]
    out = CliRunner().invoke(main, ["probe", series, "-b", bench[0], "--with", "ablation", "--at", "ablation=0",
                                    "--at", "ablation=last", "-o", str(tmp_path / "cli")])  # repeated: merged
    assert out.exit_code == 0, out.output
    assert sorted(pd.read_parquet(tmp_path / "cli" / "ablation.parquet")["step"].unique()) == [0, 8]


def test_at_keeps_the_random_init_control_of_a_series_without_step_0(hf_series, tiny_benchmark, tmp_path):
    args = (str(hf_series), [str(tiny_benchmark)], ["predictions"])  # an analysis run on the control too
    result = probe(*args, at={"predictions": "last"})
    assert result.predictions.groupby("checkpoint")["step"].first().to_dict() == {"random-init": 0, "checkpoint-6": 6}
    assert probe(*args, out=tmp_path / "out", shard="0/2", at={"predictions": "last"}) is None
    sharded = probe(*args, out=tmp_path / "out", shard="1/2", at={"predictions": "last"})
    pd.testing.assert_frame_equal(sharded.predictions, result.predictions)
