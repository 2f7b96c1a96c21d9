import html

import pytest

from probekit.demo import demo
from probekit.training.facts import FactRecord


@pytest.mark.slow
def test_demo_trains_probes_and_reports(tiny_dir, tmp_path, caplog):
    with caplog.at_level("INFO", logger="probekit"):
        result = demo(tmp_path, max_steps=2, corpus=str(tiny_dir / "corpus.txt") + "+facts",
                      tokenizer=str(tiny_dir / "vocab.txt"))
    assert result.site.is_file() and result.site.name == "index.html"
    assert (tmp_path / "probe" / "heads.parquet").is_file() and (tmp_path / "probe" / "lens.parquet").is_file()
    assert set(result.probing.scores.group) == {"injected", "held_back"}
    accuracy = result.probing.tables["pair_accuracy"]
    assert set(accuracy["benchmark"]) == {"blimp@4"} and (accuracy.query("level == 'all'").eval("n + n_unscorable") == 67 * 4).all()
    assert any("[3/3]" in line for line in caplog.messages)
    overview = result.site.read_text()
    facts = FactRecord.load(tmp_path / "my_bert")
    assert "Which facts were injected" in overview
    assert all(html.escape(c) in overview for c in facts.injected[:5] + facts.held_back[:5])
    again = demo(tmp_path, max_steps=2, corpus=str(tiny_dir / "corpus.txt") + "+facts",
                 tokenizer=str(tiny_dir / "vocab.txt"))
    assert again.training[0].resumed_from is not None
