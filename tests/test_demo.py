import html

import pytest

from probekit.demo import demo, summary
from probekit.training.facts import FactRecord


@pytest.mark.slow
def test_demo_trains_probes_and_reports(tiny_dir, tmp_path, caplog):
    with caplog.at_level("INFO", logger="probekit"):
        result = demo(tmp_path, max_steps=2, corpus=str(tiny_dir / "corpus.txt") + "+facts",
                      tokenizer=str(tiny_dir / "vocab.txt"), syntax_sample=8, trace_sample=2)
    assert result.site.is_file() and result.site.name == "index.html"
    assert (tmp_path / "probe" / "heads.parquet").is_file() and (tmp_path / "probe" / "lens.parquet").is_file()
    assert set(result.probing.scores.group) == {"injected", "held_back"}
    accuracy = result.probing.tables["pair_accuracy"]
    assert set(accuracy["benchmark"]) == {"blimp@4"} and (accuracy.query("level == 'all'").eval("n + n_unscorable") == 67 * 4).all()
    assert any("[3/3]" in line for line in caplog.messages)
    tables = result.probing.tables
    assert {"tracing", "syntax-heads", "probes", "ablation"} <= set(result.probing.manifest["analyses"])
    for name in ("syntax_heads", "syntax_best_heads", "probes", "probe_scores"):  # (the tiny vocabulary has no country to trace)
        assert len(tables[name]), name
    assert sorted(tables["probes"]["step"].unique()) == [0, 1, 2]  # the few steps of a 2-step run: all of them
    assert result.probing.manifest["at"]["tracing"] == [0, 1, 2]
    lines = summary(result.probing)
    assert lines[0].startswith("P@1 at step 2 ") and any(line.lstrip().startswith("capital ") for line in lines)
    assert any(line.startswith("Minimal pairs (blimp@4, 268 pairs): accuracy ") for line in lines)
    overview = result.site.read_text()
    assert "Run at some steps only" in overview
    facts = FactRecord.load(tmp_path / "my_bert")
    assert "Which facts were injected" in overview
    assert all(html.escape(c) in overview for c in facts.injected[:5] + facts.held_back[:5])
    again = demo(tmp_path, max_steps=2, corpus=str(tiny_dir / "corpus.txt") + "+facts",
                 tokenizer=str(tiny_dir / "vocab.txt"), syntax_sample=8, trace_sample=2)
    assert again.training[0].resumed_from is not None
