import pytest

from probekit import ProbekitError
from probekit.benchmarks import load_benchmark


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


def test_excel_csv_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("relation,template,subject,answer\r\ncapital,the capital of [X] is [MASK].,italy,rome\r\n"
                     .encode("utf-8-sig"))
    assert load_benchmark(path).prompts.relation.tolist() == ["capital"]


def test_no_valid_prompts_names_the_first_reasons(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("relation,template,subject,answer\ncapital,no mask here,italy,rome\n,x [MASK],a,b\n")
    with pytest.raises(ProbekitError, match=r"bad.csv: no valid prompts \(2 malformed rows, e.g. row 2: no \[MASK\] "
                                            r"in 'no mask here'; row 3: no relation"):
        load_benchmark(path)


@pytest.mark.parametrize("name, text, message", [
    ("lines.jsonl", '{"relation": "r", "template": "[MASK]", "answer": "a"}\n[1, 2]\n', "line 2: expected a JSON object"),
    ("list.yaml", "prompts: {relation: r}\n", "'prompts' must be a list of mappings"),
    ("shape.yaml", "facts: [1]\nrelations: x\n", "'facts' must name a CSV file"),
])
def test_malformed_file_shapes_are_one_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ProbekitError, match=message):
        load_benchmark(tmp_path / name)


def test_a_spec_at_n_samples_that_input_only(tmp_path):
    from probekit.analyses import load_builtins
    from probekit.benchmarks.kinds import load_input, load_inputs

    load_builtins()
    inputs = load_inputs(["blimp@2", "ewt:dev+test@30"], sample=5)
    (pairs,), (treebank,) = inputs["pairs"], inputs["treebank"]
    assert pairs.name == "blimp@2" and len(pairs.pairs) == 2 * 67
    assert treebank.name == "ewt-dev+test@30" and len(treebank.sentences) == 60  # 30 of each file
    assert len(load_input("blimp", 5)[1].pairs) == 5 * 67  # no suffix: the run's sample
    odd = tmp_path / "mine@2.csv"
    odd.write_text("relation,template,subject,answer\ncapital,The capital of [X] is [MASK].,Italy,Rome\n")
    assert len(load_input(str(odd))[1].prompts) == 1  # a file of that name is read as the file
    with pytest.raises(ProbekitError, match="blimp@0: '0' after @ is not a sample size"):
        load_input("blimp@0")
