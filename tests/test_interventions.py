import pandas as pd
import pytest
import torch

from probekit.benchmarks import load_benchmark
from probekit.checkpoints import load_checkpoint
from probekit.diff import diff_checkpoints
from probekit.interventions import ablation_scores, head_ablated, logit_lens
from probekit.probe import encode_prompts, probe, score_encoded


@pytest.fixture(scope="module")
def setup(tiny_series, tmp_path_factory):
    bench = tmp_path_factory.mktemp("b") / "bench.csv"
    bench.write_text("relation,template,subject,answer\n"
                     "capital,the capital of [X] is [MASK].,italy,rome\n"
                     "capital,the capital of [X] is [MASK].,france,paris\n"
                     "capital_reverse,the capital of [MASK] is [X].,rome,italy\n"
                     "plural,the [X] of the [MASK].,king,kings\n")
    model, tok = load_checkpoint(str(tiny_series / "checkpoint-8"))
    prompts = load_benchmark(bench).prompts.assign(group="all")
    return model, tok, prompts, encode_prompts(prompts, tok, 64), bench


def test_logit_lens_last_layer_is_the_model_output(setup):
    model, tok, prompts, encoded, _ = setup
    lens = logit_lens(model, tok, encoded, prompts)
    assert sorted(lens.layer.unique()) == [0, 1, 2]
    last = lens[lens.layer == 2].reset_index(drop=True)
    final = score_encoded(model, tok, encoded)
    assert last.gold_rank.tolist() == final.gold_rank.tolist()
    assert last.gold_logprob.tolist() == pytest.approx(final.gold_logprob.tolist(), abs=1e-5)
    assert not lens[lens.layer == 0].gold_logprob.equals(last.gold_logprob)


def test_ablating_a_silent_head_changes_nothing(setup):
    model, tok, prompts, encoded, _ = setup
    d = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():  # head 1 of layer 0 already outputs zero: its values are zero
        value = model.bert.encoder.layer[0].attention.self.value
        value.weight[d:2 * d] = 0
        value.bias[d:2 * d] = 0
    table = ablation_scores(model, tok, encoded, prompts)
    silent = table[(table.layer == 0) & (table["head"] == 1)]
    assert (silent.delta_p_at_1 == 0).all() and (silent.delta_mean_gold_logprob.abs() < 1e-6).all()
    active = table[(table.layer == 1)]
    assert (active.delta_mean_gold_logprob.abs() > 0).any()
    assert len(table) == 2 * 2 * prompts.relation.nunique()


def test_ablation_hook_is_removed(setup):
    model, tok, prompts, encoded, _ = setup
    before = score_encoded(model, tok, encoded).gold_logprob
    with head_ablated(model, 1, 0):
        during = score_encoded(model, tok, encoded).gold_logprob
    after = score_encoded(model, tok, encoded).gold_logprob
    assert not during.equals(before) and after.tolist() == pytest.approx(before.tolist())


def test_probe_writes_lens_ablation_and_diff(tiny_series, setup, tmp_path):
    bench = setup[4]
    result = probe(str(tiny_series), [str(bench)], out=tmp_path, sentences="default", lens=True, ablate=True,
                   say=lambda *_: None, progress=False)
    lens = pd.read_parquet(tmp_path / "lens.parquet")
    assert set(lens.checkpoint) == set(result.checkpoints.checkpoint) and set(lens.layer) == {0, 1, 2}
    ablation = pd.read_parquet(tmp_path / "ablation.parquet")
    assert {"layer", "head", "delta_p_at_1", "delta_mean_gold_logprob", "checkpoint", "step"} <= set(ablation.columns)
    diff = diff_checkpoints(tmp_path, "checkpoint-0", "checkpoint-8")
    assert set(diff.weights.block) == {"embeddings", "layer 0", "layer 1", "mlm head"}
    assert (diff.weights.relative_distance > 0).all()
    assert len(diff.heads) == 4 and diff.heads.js.is_monotonic_decreasing
    same = diff_checkpoints(tmp_path, "checkpoint-0", "checkpoint-1")
    assert same.changed_prompts.empty and (same.weights.distance == 0).all()
