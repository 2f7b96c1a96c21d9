import importlib.util
import json
import os
from pathlib import Path

import pandas as pd
import pytest

import probekit.core.store as store
from probekit import ProbekitError
from probekit.analyses import REGISTRY, load_builtins
from probekit.running.results import ProbeResult
from probekit.running.runner import probe
from probekit.core.schema import DTYPES, FORMAT_VERSION, TABLES, reference_markdown

# The results format as users read it: a change here is a change of FORMAT_VERSION and of the docs.
EXPECTED = {
    "predictions": ["checkpoint", "run", "step", "seed", "fingerprint", "benchmark", "relation", "group", "template",
                    "subject", "answer", "prompt", "n_pieces", "gold_rank", "gold_logprob", "gold_prob",
                    "correct", "top1", "topk_tokens", "topk_probs"],
    "scores": ["checkpoint", "run", "step", "seed", "benchmark", "relation", "group", "n", "n_unscorable", "p_at_1",
               "p_at_10", "mrr", "mean_gold_logprob", "n_multi_piece", "p_at_1_low", "p_at_1_high", "p_at_10_low",
               "p_at_10_high", "mrr_low", "mrr_high", "n_seeds"],
    "checkpoints": ["checkpoint", "run", "step", "seed", "path", "family", "fingerprint", "status", "duplicate_of", "error"],
    "training": ["step", "loss", "eval_loss", "learning_rate", "epoch"],
    "heads": ["checkpoint", "run", "step", "seed", "layer", "head", "metric", "value"],
    "lens": ["checkpoint", "run", "step", "seed", "benchmark", "relation", "group", "template", "subject", "answer",
             "prompt", "layer", "gold_rank", "gold_logprob"],
    "ablation": ["checkpoint", "run", "step", "seed", "layer", "head", "benchmark", "relation", "group", "n", "p_at_1",
                 "mean_gold_logprob", "delta_p_at_1", "delta_mean_gold_logprob"],
    "lens_scores": ["checkpoint", "run", "step", "seed", "benchmark", "relation", "group", "layer", "n",
                    "n_unscorable", "p_at_1", "p_at_10", "mrr", "mean_gold_logprob", "p_at_1_low", "p_at_1_high",
                    "p_at_10_low", "p_at_10_high", "mrr_low", "mrr_high", "n_seeds"],
    "pairs": ["checkpoint", "run", "step", "seed", "benchmark", "metric", "pair_id", "field", "phenomenon", "paradigm",
              "good", "bad", "pll_good", "pll_bad", "margin", "scorable", "correct"],
    "pair_accuracy": ["checkpoint", "run", "step", "seed", "benchmark", "metric", "level", "name", "n", "n_unscorable",
                      "ties", "accuracy", "mean_margin", "accuracy_low", "accuracy_high", "n_seeds"],
    "choices": ["checkpoint", "run", "step", "seed", "benchmark", "relation", "group", "template", "subject", "answer",
                "prompt", "candidates", "gold_logprob", "best_foil", "best_foil_logprob", "margin", "scorable",
                "correct"],
    "choice_accuracy": ["checkpoint", "run", "step", "seed", "benchmark", "relation", "group", "n", "n_unscorable",
                        "accuracy", "accuracy_low", "accuracy_high", "n_seeds"],
}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def probed(tiny_series, tmp_path_factory):
    bench = tmp_path_factory.mktemp("b") / "bench.csv"
    bench.write_text("relation,template,subject,answer\ncapital,the capital of [X] is [MASK].,italy,rome\n"
                     "plural,the [X] of the [MASK].,king,kings\n")
    out = tmp_path_factory.mktemp("out")
    return probe(str(tiny_series), [str(bench)], ["lens", "ablation"], out=out, sentences="default"), out


def test_the_schema_holds():
    load_builtins()
    assert FORMAT_VERSION == 6
    assert {name: TABLES[name].names for name in EXPECTED} == EXPECTED
    assert all(c.type in DTYPES for t in TABLES.values() for c in t.columns)
    page = reference_markdown()
    assert all(f"## `{t.file}`" in page and f"One row per **{t.row}**" in page for t in TABLES.values())


def test_written_tables_have_the_declared_columns_and_types(probed):
    result, out = probed
    for name, frame in result.tables.items():
        on_disk = pd.read_parquet(out / TABLES[name].file)
        assert list(on_disk.columns) == TABLES[name].names, name
        conformed = TABLES[name].conform(on_disk)
        assert [str(t) for t in conformed.dtypes] == [DTYPES[c.type] for c in TABLES[name].columns], name


def test_save_and_load_give_back_the_same_object(probed, tmp_path):
    result, out = probed
    loaded = ProbeResult.load(out)
    assert set(loaded.tables) == set(result.tables) == {"predictions", "scores", "checkpoints", "training",
                                                         "heads", "lens", "lens_scores", "ablation", "findings"}
    for name in result.tables:
        pd.testing.assert_frame_equal(loaded.tables[name], result.tables[name], check_like=False)
    pd.testing.assert_frame_equal(loaded.summary(), result.summary())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert sorted(manifest["files"]["other"]) == sorted(result.files.values())
    copy = ProbeResult.load(loaded.save(tmp_path))  # elsewhere: the tables, without the captures
    pd.testing.assert_frame_equal(copy.scores, result.scores)
    assert copy.files == {}


def test_an_interrupted_write_is_refused_not_mixed(probed, tmp_path, monkeypatch):
    result, _ = probed
    result.save(tmp_path)
    real = os.replace
    moved = []

    def dies_after_one(src, dst):
        if str(dst).endswith(".parquet") and not str(dst).startswith(str(tmp_path / "cache")):
            if moved:
                raise OSError(28, "No space left on device")
            moved.append(dst)
        return real(src, dst)

    monkeypatch.setattr(store.os, "replace", dies_after_one)
    with pytest.raises(OSError):
        result.save(tmp_path)
    monkeypatch.undo()
    with pytest.raises(ProbekitError, match="incomplete results"):
        ProbeResult.load(tmp_path)
    assert not list(tmp_path.glob(".*.staged"))


def test_a_folder_of_another_format_is_refused(probed, tmp_path):
    result, _ = probed
    result.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(ProbekitError, match=f"results format 1; this probekit reads format {FORMAT_VERSION}"):
        ProbeResult.load(tmp_path)
    with pytest.raises(ProbekitError, match="no such results folder"):
        ProbeResult.load(tmp_path / "nowhere")


def test_a_table_of_another_run_is_refused(probed, tmp_path):
    result, _ = probed
    ProbeResult(result.tables, {**result.manifest, "run_id": "another"}).save(tmp_path / "a")
    result.save(tmp_path / "b")
    os.replace(tmp_path / "a" / "scores.parquet", tmp_path / "b" / "scores.parquet")
    with pytest.raises(ProbekitError, match="scores.parquet: belongs to another run"):
        ProbeResult.load(tmp_path / "b")


def test_the_results_format_page_lists_every_table_of_the_registry():
    """The docs' generated page, as the MkDocs hook writes it, against the registry itself."""
    spec = importlib.util.spec_from_file_location("results_format_hook", ROOT / "docs" / "_hooks" / "results_format.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook.page()
    registered = {t.name for a in load_builtins().values() for t in a.tables}
    assert registered >= set(EXPECTED) - {"checkpoints", "training"}
    listed = {line.removeprefix("## `").removesuffix(".parquet`") for line in page.splitlines() if line.startswith("## `")}
    assert listed == registered | {"checkpoints", "training", "findings"}
    for name in registered:
        assert all(f"| `{c}` |" in page for c in TABLES[name].names), name
    assert set(REGISTRY) >= {"predictions", "lens", "ablation", "capture", "pairs", "choice"}
