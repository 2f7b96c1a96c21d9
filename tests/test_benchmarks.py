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
