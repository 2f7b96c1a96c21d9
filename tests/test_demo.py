import pytest

from probekit.demo import demo


@pytest.mark.slow
def test_demo_trains_probes_and_reports(tiny_dir, tmp_path):
    said = []
    result = demo(tmp_path, max_steps=8, corpus=str(tiny_dir / "corpus.txt") + "+facts",
                  tokenizer=str(tiny_dir / "vocab.txt"), say=said.append)
    assert result.site.is_file() and result.site.name == "index.html"
    assert (tmp_path / "probe" / "heads.parquet").is_file() and (tmp_path / "probe" / "lens.parquet").is_file()
    assert set(result.probing.scores.group) == {"injected", "held_back"}
    assert any("[3/3]" in line for line in map(str, said))
    again = demo(tmp_path, max_steps=8, corpus=str(tiny_dir / "corpus.txt") + "+facts",
                 tokenizer=str(tiny_dir / "vocab.txt"), say=said.append)
    assert again.training.resumed_from is not None
