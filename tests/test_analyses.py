import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from probekit.benchmarks import load_benchmark
from probekit.analyses import Context
from probekit.analyses.ablation import Ablation
from probekit.analyses.lens import Lens
from probekit.diff import diff_checkpoints
from probekit.models.hooks import hook_name, hooked, zero_head
from probekit.running.runner import probe
from probekit.analyses.scoring import encode_prompts, score_encoded
from probekit.models.series import resolve_checkpoints


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
    lens = Lens().run(checkpoint, Context({"prompts": [benchmark]}), benchmark)
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
    table = Ablation().run(checkpoint, Context({"prompts": [benchmark]}), benchmark)
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
    result = probe(str(series), [str(bench)], ["lens", "ablation"], out=tmp_path / "out", sentences="default")
    lens = pd.read_parquet(tmp_path / "out" / "lens.parquet")
    assert set(lens.checkpoint) == set(result.checkpoints.checkpoint) and set(lens.layer) == {0, 1, 2}
    ablation = pd.read_parquet(tmp_path / "out" / "ablation.parquet")
    assert {"layer", "head", "delta_p_at_1", "delta_mean_gold_logprob", "checkpoint", "step"} <= set(ablation.columns)
    diff = diff_checkpoints(tmp_path / "out", "checkpoint-0", "checkpoint-8")
    assert set(diff.weights.block) == {"embeddings", "layer 0", "layer 1", "mlm head"}
    assert (diff.weights.relative_distance > 0).all()
    assert len(diff.heads) == 4 and diff.heads.js.is_monotonic_decreasing
    same = diff_checkpoints(tmp_path / "out", "checkpoint-8", "checkpoint-9")
    assert same.changed_prompts.empty and (same.weights.distance == 0).all()


def test_diff_of_a_missing_folder_is_one_line(tmp_path):
    from click.testing import CliRunner

    from probekit.cli import main

    result = CliRunner().invoke(main, ["diff", str(tmp_path / "nope"), "checkpoint-0", "checkpoint-8"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == f"Error: {tmp_path / 'nope'}: no such results folder"


def test_lens_scores_follow_the_one_unscorable_rule(tiny_series, tmp_path):
    """An unscorable prompt is left out of P@1 and MRR alike (counted in n_unscorable), and the last layer's
    lens scores equal the model's own scores; checked against a hand computation over the lens table."""
    bench = tmp_path / "b.csv"
    bench.write_text("relation,template,subject,answer\n"
                     "capital,the capital of [X] is [MASK].,italy,rome\n"
                     "capital,the capital of [X] is [MASK].,france,paris\n"
                     "capital,the capital of [X] is [MASK].,spain,\u200b\n")
    result = probe(str(tiny_series / "checkpoint-8"), [str(bench)], ["lens"], control=False)
    lens, scores = result.tables["lens"], result.tables["lens_scores"]
    for layer, rows in lens.groupby("layer"):
        row = scores[scores.layer == layer].iloc[0]
        scorable = rows.gold_rank.dropna()
        assert (row.n, row.n_unscorable) == (2, 1)
        assert row.p_at_1 == pytest.approx((scorable == 1).mean())
        assert row.mrr == pytest.approx((1 / scorable).mean())
        assert row.p_at_1_low <= row.p_at_1 <= row.p_at_1_high
    last = scores[scores.layer == scores.layer.max()].iloc[0]
    own = result.scores.iloc[0]
    assert (last.n, last.p_at_1, last.mrr) == (own.n, own.p_at_1, pytest.approx(own.mrr))


ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "plugin" / "word_prior.py"


def install_plugin(folder: Path) -> dict:
    """`word_prior.py` installed on a path of its own, with the dist-info that names its entry point, as pip
    would leave it: the environment under which probekit finds it without a file of probekit changed."""
    shutil.copy(PLUGIN, folder / "word_prior.py")
    info = folder / "word_prior-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: word-prior\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[probekit.analyses]\nword-prior = word_prior\n")
    return {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1", "PROBEKIT_PROGRESS": "0"}


def _run(env: dict, *args: str, module: tuple[str, ...] = ("-m", "probekit")) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *module, *args], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_an_analysis_from_outside_probekit_runs_everywhere(tiny_series, tmp_path):
    """One module outside probekit adds an analysis with an option, an input kind, a table, a summary with
    intervals, a cost and a report section: it is in --help, runs from the CLI and under 2-process torchrun
    with the same tables, is on the Results-format page, and has its page in the built site."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    env = install_plugin(plugin)
    words = tmp_path / "words.txt"
    words.write_text("rome\nparis\nking\nqueen\nthe\nof\nriver\nmusic\n")
    shown = _run(env, "probe", "--help").stdout
    assert "--word-template" in shown and "word-prior" in shown and "[word-prior; default: [MASK] .]" in " ".join(
        shown.split())
    args = ["probe", str(tiny_series), "-b", f"words:{words}", "--with", "word-prior",
            "--word-template", "the [MASK] of", "--out"]
    _run(env, *args, str(tmp_path / "one"))
    _run(env, *args, str(tmp_path / "two"), module=("-m", "torch.distributed.run", "--standalone",
                                                   "--nproc_per_node", "2", "-m", "probekit"))
    code = ("import sys, pandas as pd; from probekit.running.results import ProbeResult; "
            "a, b = (ProbeResult.load(p) for p in sys.argv[1:]); "
            "[pd.testing.assert_frame_equal(a.tables[n], b.tables[n]) for n in ('word_prior', 'word_prior_summary')]; "
            "s = a.tables['word_prior_summary']; print(len(a.tables['word_prior']), len(s), "
            "bool((s.top10_low <= s.top10).all() and (s.top10 <= s.top10_high).all()), "
            "a.manifest['options']['word-prior']['template'], b.manifest['world_size'])")
    out = _run(env, str(tmp_path / "one"), str(tmp_path / "two"), module=("-c", code)).stdout.split()
    assert out == ["40", "5", "True", "the", "[MASK]", "of", "2"]  # 5 checkpoints × 8 words
    hook = ROOT / "docs" / "_hooks" / "results_format.py"
    page = _run(env, str(hook), module=("-c", "import importlib.util, sys; s = importlib.util.spec_from_file_location("
                                        "'h', sys.argv[1]); m = importlib.util.module_from_spec(s); "
                                        "s.loader.exec_module(m); print(m.page())")).stdout
    assert "## `word_prior.parquet`" in page and "## `word_prior_summary.parquet`" in page
    _run(env, "report", str(tmp_path / "one"), "--site", str(tmp_path / "site"))
    built = (tmp_path / "site" / "build" / "word-prior.html").read_text()
    assert "Word priors" in built and "top10&#95;low" in built and 'href="data/word-prior.csv"' in built
    assert "top10_low" in (tmp_path / "site" / "build" / "data" / "word-prior.csv").read_text().splitlines()[0]
    assert "word-prior.html" in (tmp_path / "site" / "build" / "index.html").read_text()
