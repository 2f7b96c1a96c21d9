import shutil

import pandas as pd
import pytest
import torch

from probekit.benchmarks import load_benchmark
from probekit.analyses import Context
from probekit.analyses.ablation import Ablation
from probekit.analyses.lens import Lens
from probekit.checkpoints import resolve_checkpoints
from probekit.diff import diff_checkpoints
from probekit.hooks import hook_name, hooked, zero_head
from probekit.runner import probe
from probekit.scoring import encode_prompts, score_encoded


@pytest.fixture(scope="module")
def setup(tiny_series, tmp_path_factory):
    bench = tmp_path_factory.mktemp("b") / "bench.csv"
    bench.write_text("relation,template,subject,answer\n"
                     "capital,the capital of [X] is [MASK].,italy,rome\n"
                     "capital,the capital of [X] is [MASK].,france,paris\n"
                     "capital_reverse,the capital of [MASK] is [X].,rome,italy\n"
                     "plural,the [X] of the [MASK].,king,kings\n")
    checkpoint = resolve_checkpoints(str(tiny_series / "checkpoint-8"))[0]
    benchmark = load_benchmark(bench)
    benchmark.groups = ["all"] * len(benchmark.prompts)
    model, tok = checkpoint.model(), checkpoint.tokenizer
    return model, tok, benchmark, encode_prompts(benchmark.prompts, tok, 64), bench, checkpoint


def test_logit_lens_last_layer_is_the_model_output(setup):
    model, tok, benchmark, encoded, _, checkpoint = setup
    lens = Lens().run(checkpoint, Context([benchmark]), benchmark)
    assert sorted(lens.layer.unique()) == [0, 1, 2]
    last = lens[lens.layer == 2].reset_index(drop=True)
    final = score_encoded(model, tok, encoded)
    assert last.gold_rank.tolist() == final.gold_rank.tolist()
    assert last.gold_logprob.tolist() == pytest.approx(final.gold_logprob.tolist(), abs=1e-5)
    assert not lens[lens.layer == 0].gold_logprob.equals(last.gold_logprob)


def test_ablating_a_silent_head_changes_nothing(setup):
    model, tok, benchmark, encoded, _, checkpoint = setup
    prompts = benchmark.prompts
    d = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():  # head 1 of layer 0 already outputs zero: its values are zero
        value = model.bert.encoder.layer[0].attention.self.value
        value.weight[d:2 * d] = 0
        value.bias[d:2 * d] = 0
    table = Ablation().run(checkpoint, Context([benchmark]), benchmark)
    silent = table[(table.layer == 0) & (table["head"] == 1)]
    assert (silent.delta_p_at_1 == 0).all() and (silent.delta_mean_gold_logprob.abs() < 1e-6).all()
    active = table[(table.layer == 1)]
    assert (active.delta_mean_gold_logprob.abs() > 0).any()
    assert len(table) == 2 * 2 * prompts.relation.nunique()


def test_ablation_hook_is_removed(setup):
    model, tok, _, encoded, _, _ = setup
    before = score_encoded(model, tok, encoded).gold_logprob
    with hooked(model, write={hook_name(1, "attn.hook_z"): zero_head(0)}):
        during = score_encoded(model, tok, encoded).gold_logprob
    after = score_encoded(model, tok, encoded).gold_logprob
    assert not during.equals(before) and after.tolist() == pytest.approx(before.tolist())


def test_probe_writes_lens_ablation_and_diff(tiny_series, setup, tmp_path):
    bench = setup[4]
    series = shutil.copytree(tiny_series, tmp_path / "series")
    shutil.copytree(series / "checkpoint-8", series / "checkpoint-9")  # the same weights again
    result = probe(str(series), [str(bench)], ["lens", "ablation"], out=tmp_path, sentences="default")
    lens = pd.read_parquet(tmp_path / "lens.parquet")
    assert set(lens.checkpoint) == set(result.checkpoints.checkpoint) and set(lens.layer) == {0, 1, 2}
    ablation = pd.read_parquet(tmp_path / "ablation.parquet")
    assert {"layer", "head", "delta_p_at_1", "delta_mean_gold_logprob", "checkpoint", "step"} <= set(ablation.columns)
    diff = diff_checkpoints(tmp_path, "checkpoint-0", "checkpoint-8")
    assert set(diff.weights.block) == {"embeddings", "layer 0", "layer 1", "mlm head"}
    assert (diff.weights.relative_distance > 0).all()
    assert len(diff.heads) == 4 and diff.heads.js.is_monotonic_decreasing
    same = diff_checkpoints(tmp_path, "checkpoint-8", "checkpoint-9")
    assert same.changed_prompts.empty and (same.weights.distance == 0).all()


def test_diff_of_a_missing_folder_is_one_line(tmp_path):
    from click.testing import CliRunner

    from probekit.cli import main

    result = CliRunner().invoke(main, ["diff", str(tmp_path / "nope"), "checkpoint-0", "checkpoint-8"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == f"Error: {tmp_path / 'nope'}: no such results folder"
