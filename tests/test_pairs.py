import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from probekit import ProbekitError
from probekit.analyses.pairs import wrong_pairs
from probekit.benchmarks.pairs import is_pair_spec, load_pairs
from probekit.analyses.pll import pll_scores
from probekit.running.results import ProbeResult
from probekit.running.runner import probe
from probekit.models.series import resolve_checkpoints

PAIRS_CSV = ("good,bad,paradigm,phenomenon\n"
             "the kings are old.,the kings is old.,number,agreement\n"
             "the king is old.,the king are old.,number,agreement\n"
             "the queen of rome is new.,the queen of rome are new.,number,agreement\n"
             "the people of france are old.,the people of france is old.,plural,agreement\n")


@pytest.fixture
def pairs_csv(tmp_path):
    path = tmp_path / "agree.csv"
    path.write_text(PAIRS_CSV)
    return path


def test_blimp_ships_all_pairs_and_selects_by_paradigm_phenomenon_or_field():
    blimp = load_pairs("blimp")
    assert len(blimp.pairs) == 67_000 and not blimp.problems
    assert blimp.pairs["paradigm"].nunique() == 67 and blimp.pairs["phenomenon"].nunique() == 13
    assert set(blimp.pairs.groupby("paradigm").size()) == {1000}
    first = blimp.pairs.iloc[0]
    assert (first["good"], first["bad"], first["paradigm"], first["phenomenon"], first["field"], first["pair_id"]) == (
        "Who should Derek hug after shocking Richard?", "Who should Derek hug Richard after shocking?",
        "adjunct_island", "island_effects", "syntax", "0")
    assert len(load_pairs("blimp:island_effects").pairs) == 8000
    assert len(load_pairs("blimp:adjunct_island").pairs) == 1000
    assert len(load_pairs("blimp:morphology").pairs) == 18_000
    agreement = load_pairs("blimp:agreement").pairs  # a part of phenomenon names
    assert set(agreement["phenomenon"]) == {"anaphor_agreement", "determiner_noun_agreement",
                                             "subject_verb_agreement"}
    assert len(load_pairs("blimp:ellipsis,binding").pairs) == 9000
    with pytest.raises(ProbekitError, match=r"no paradigm, phenomenon or field matches 'grammar'; fields: .*"
                                            r"morphology.*phenomena: anaphor_agreement"):
        load_pairs("blimp:grammar")


def test_a_sample_is_n_per_paradigm_and_the_same_every_time():
    a, b = load_pairs("blimp", sample=3), load_pairs("blimp", sample=3)
    assert len(a.pairs) == 201 and set(a.pairs.groupby("paradigm").size()) == {3}
    pd.testing.assert_frame_equal(a.pairs, b.pairs)
    assert a.sha256 == b.sha256 and a.name == "blimp@3"
    other = load_pairs("blimp", sample=3, seed=1)
    assert not other.pairs["good"].equals(a.pairs["good"])
    assert len(load_pairs("blimp:ellipsis", sample=5000).pairs) == 2000  # fewer than N: all of them
    with pytest.raises(ProbekitError, match="sample must be at least 1"):
        load_pairs("blimp", sample=0)


def test_user_files_are_validated_row_by_row(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("good,bad,paradigm\n"
                    "the king is old.,the king are old.,number\n"
                    ",the king are old.,number\n"
                    "the king is old.,,number\n"
                    "the king is old.,the king is old.,number\n"
                    "the [MASK] is old.,the king are old.,number\n"
                    "the queen is old.,the queen are old.,\n")
    bench = load_pairs(path)
    assert bench.pairs[["good", "bad", "paradigm", "phenomenon", "pair_id"]].values.tolist() == [
        ["the king is old.", "the king are old.", "number", "mine", "2"],
        ["the queen is old.", "the queen are old.", "mine", "mine", "7"]]
    assert bench.problems == [
        f"{path}: row 3: no good sentence; row skipped",
        f"{path}: row 4: no bad sentence; row skipped",
        f"{path}: row 5: good and bad are the same sentence 'the king is old.'; row skipped",
        f"{path}: row 6: [MASK] in the good sentence 'the [MASK] is old.' (pairs are whole sentences); row skipped"]
    jsonl = tmp_path / "theirs.jsonl"  # BLiMP's own field names are read too
    jsonl.write_text(json.dumps({"sentence_good": "a king.", "sentence_bad": "a kings.", "UID": "det",
                                 "linguistics_term": "dn", "field": "morphology", "pairID": 7}) + "\n\n"
                     + json.dumps({"good": 3, "bad": "a kings."}) + "\n")
    bench = load_pairs(jsonl)
    assert bench.pairs.iloc[0][["paradigm", "phenomenon", "field", "pair_id"]].tolist() == ["det", "dn", "morphology",
                                                                                            "7"]
    assert bench.problems == [f"{jsonl}: line 3: good must be text, got int; row skipped"]


def test_unusable_files_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("good,bad\n,x\n")
    with pytest.raises(ProbekitError, match=rf"^{empty}: no valid pairs \(1 malformed rows, e.g. no good sentence\)$"):
        load_pairs(empty)
    listed = tmp_path / "list.jsonl"
    listed.write_text('["a", "b"]\n')
    with pytest.raises(ProbekitError, match=rf"^{listed}: line 1: expected a JSON object with good, bad; got list$"):
        load_pairs(listed)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"good": "a", "bad": "b"}\n{"good": \n')
    with pytest.raises(ProbekitError, match=rf"^{broken}: line 2: not JSON"):
        load_pairs(broken)
    with pytest.raises(ProbekitError, match="no such pairs file"):
        load_pairs(tmp_path / "absent.csv")


def test_pair_specs_are_told_from_prompt_benchmarks(pairs_csv, tiny_benchmark, tmp_path):
    assert is_pair_spec("blimp") and is_pair_spec("blimp:binding") and is_pair_spec(pairs_csv)
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"sentence_good": "a", "sentence_bad": "b"}\n')
    assert is_pair_spec(jsonl)
    assert not is_pair_spec(tiny_benchmark) and not is_pair_spec("countries") and not is_pair_spec("blimpish")


@pytest.fixture(scope="module")
def probed(tiny_series, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    (folder / "agree.csv").write_text(PAIRS_CSV)
    out = folder / "out"
    result = probe(str(tiny_series), [str(folder / "agree.csv"), "blimp:anaphor_agreement"], out=out, sample=2)
    return result, out, folder


def test_the_probe_writes_the_pair_tables(probed, tiny_series):
    result, out, _ = probed
    loaded = ProbeResult.load(out)
    pairs, accuracy = loaded.tables["pairs"], loaded.tables["pair_accuracy"]
    steps = sorted(result.checkpoints["step"])
    assert len(pairs) == len(steps) * (3 + 4)  # own: 2 of "number" + 1 "plural"; BLiMP: 2 paradigms × 2
    assert set(pairs["benchmark"]) == {"agree@2", "blimp:anaphor_agreement@2"}
    assert set(pairs["metric"]) == {"within_word_l2r"}
    assert pairs["margin"].tolist() == pytest.approx((pairs["pll_good"] - pairs["pll_bad"]).tolist())
    assert (pairs["correct"] == (pairs["margin"] > 0)).all() and pairs["scorable"].all()
    last = resolve_checkpoints(str(tiny_series))[-1]
    mine = pairs[(pairs["step"] == last.step) & (pairs["benchmark"] == "agree@2")]
    direct = pll_scores(last.model("cpu"), last.tokenizer, mine["good"].tolist())["pll"]
    assert mine["pll_good"].tolist() == pytest.approx(direct.tolist(), abs=1e-5)
    overall = accuracy[accuracy["level"] == "all"].set_index(["checkpoint", "benchmark"])
    expected = pairs.groupby(["checkpoint", "benchmark"])["correct"].mean()
    assert overall["accuracy"].sort_index().tolist() == pytest.approx(expected.sort_index().tolist())
    ties = accuracy[accuracy["level"] == "all"].set_index(["checkpoint", "benchmark"])["ties"].sort_index()
    assert ties.tolist() == pairs.groupby(["checkpoint", "benchmark"])["margin"].apply(lambda m: (m == 0).sum(
        )).sort_index().tolist()
    assert ties.sum() > 0  # the tiny vocabulary reads most BLiMP words as [UNK]: both sentences alike
    paradigms = accuracy[(accuracy["level"] == "paradigm") & (accuracy["checkpoint"] == last.name)]
    assert dict(zip(paradigms["name"], paradigms["n"])) == {"number": 2, "plural": 1, "anaphor_gender_agreement": 2,
                                                            "anaphor_number_agreement": 2}
    wrong = wrong_pairs(pairs, last.name, "number")
    expected = mine[(mine["paradigm"] == "number") & ~mine["correct"]]
    assert sorted(wrong["good"]) == sorted(expected["good"]) and wrong["margin"].is_monotonic_increasing
    assert len(wrong_pairs(pairs, last.name)) == (~pairs[pairs["checkpoint"] == last.name]["correct"]).sum()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["pairs"]["agree@2"]["pairs"] == 3
    assert manifest["options"]["pairs"]["metric"] == "within_word_l2r"


def test_rerun_is_cached_and_the_metric_is_part_of_the_key(probed, tiny_series, monkeypatch):
    result, out, folder = probed
    import probekit.analyses.pll as pll

    monkeypatch.setattr(pll, "pll_scores", lambda *a, **k: pytest.fail("scored again instead of cached"))
    again = probe(str(tiny_series), [str(folder / "agree.csv"), "blimp:anaphor_agreement"], out=out, sample=2)
    pd.testing.assert_frame_equal(again.tables["pairs"], result.tables["pairs"])
    monkeypatch.undo()
    original = probe(str(tiny_series), [str(folder / "agree.csv")], out=folder / "other", sample=2,
                     options={"pairs": {"metric": "original"}})
    assert set(original.tables["pairs"]["metric"]) == {"original"}


def test_probe_command_scores_blimp_alone(tiny_series, tmp_path):
    from probekit.cli import main

    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["probe", str(tiny_series), "--benchmark", "blimp:ellipsis", "--sample", "2",
                                    "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert "Minimal-pair accuracy (within_word_l2r)" in run.output and "P@1" not in run.output
    tables = ProbeResult.load(out).tables
    assert len(tables["predictions"]) == 0 and set(tables["pairs"]["paradigm"]) == {"ellipsis_n_bar_1",
                                                                                    "ellipsis_n_bar_2"}
    bad = CliRunner().invoke(main, ["probe", str(tiny_series), "--benchmark", "blimp:nonsense", "--out", str(out)])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "no paradigm, phenomenon or field" in bad.output


def test_the_report_has_a_grammar_page_with_chance_stated(tiny_series, tiny_benchmark, tmp_path):
    from probekit.report import build_report

    pairs = tmp_path / "agree.csv"
    pairs.write_text(PAIRS_CSV)
    out = tmp_path / "out"
    probe(str(tiny_series), [str(tiny_benchmark), str(pairs), "blimp:anaphor_agreement"], out=out, sample=3)
    build_report(out, tmp_path / "site")
    page = (tmp_path / "site" / "docs" / "grammar.md").read_text()
    assert page.startswith("# Grammar: minimal pairs")
    assert "## agree@3" in page and "## blimp:anaphor&#95;agreement@3" in page
    assert page.count("accuracy at step 8:") == 2  # the last checkpoint, in words, per benchmark (the findings)
    assert "over 4 pairs, **too few pairs**" in page  # 4 pairs cannot be told from chance: said, not scored
    assert re.search(r"\| anaphor&#95;agreement \| 6 \| 8 \| .* \| 0\.479 \| 0\.993 \| 0\.975 \|", page)  # n, step, …, the paper's references
    data = {p.name for p in (tmp_path / "site" / "docs" / "data").iterdir()}
    assert "grammar-and-facts-by-step.csv" in data and any(f.endswith("accuracy-by-paradigm.csv") for f in data)
    assert (tmp_path / "site" / "build" / "grammar.html").is_file()
    nav = (tmp_path / "site" / "mkdocs.yml").read_text()
    assert nav.index("Benchmarks") < nav.index("Grammar") and "Logit lens" not in nav  # pages only for what ran


def test_no_grammar_page_without_pairs(tiny_series, tiny_benchmark, tmp_path):
    from probekit.report import build_report

    probe(str(tiny_series), [str(tiny_benchmark)], out=tmp_path / "out")
    build_report(tmp_path / "out", tmp_path / "site")
    assert not (tmp_path / "site" / "docs" / "grammar.md").exists()
