"""Reproducible to the digit (issue 30, item 5): probing the same checkpoints twice gives identical tables, as
scripts/check_reproducible.py compares them (canonical CSV: floats by repr, rows sorted)."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_reproducible.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_reproducible", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def two_probes(tiny_series, tmp_path_factory) -> tuple[Path, Path]:
    """The session's tiny series probed twice, into two folders, with floats in every kind of table the probe
    writes by default plus the logit lens and a capture (a few prompts: seconds)."""
    from probekit.running.runner import probe

    root = tmp_path_factory.mktemp("reproducible")
    bench = root / "tiny.csv"
    bench.write_text("relation,template,subject,answer\n"
                     "capital,the capital of [X] is [MASK].,italy,rome\n"
                     "capital,the capital of [X] is [MASK].,france,paris\n"
                     "capital_reverse,the capital of [MASK] is [X].,rome,italy\n"
                     "capital_reverse,[X] is the capital of [MASK].,paris,france\n"
                     "plural,the [X] of the [MASK].,king,kings\n")
    outs = root / "a", root / "b"
    for out in outs:
        probe(str(tiny_series), [str(bench)], ["predictions", "lens", "capture"], out=out)
    return outs


def test_probing_twice_gives_identical_tables(check, two_probes):
    a, b = two_probes
    tables = check.read_tables(a)
    assert {"predictions", "scores", "lens", "manifest.json"} <= set(tables), sorted(tables)
    assert check.other_files(a), "a capture was written and is compared too"
    assert check.differences(a, b) == []
    for name in tables:
        assert check.canonical_csv(tables[name]) == check.canonical_csv(check.read_tables(b)[name]), name
    assert check.main([str(a), str(b)]) == 0


def copy_of_a(two_probes, tmp_path) -> tuple[Path, Path]:
    """(the first probe's folder, a copy of it to alter)."""
    a, _ = two_probes
    return a, shutil.copytree(a, tmp_path / "b")


def test_one_bit_of_one_float_is_a_difference(check, two_probes, tmp_path):
    a, b = copy_of_a(two_probes, tmp_path)
    scores = pd.read_parquet(b / "scores.parquet")
    column = "p_at_1" if "p_at_1" in scores else next(c for c in scores if scores[c].dtype.kind == "f")
    row = int(np.flatnonzero(scores[column].notna().to_numpy())[0])
    before = float(scores.at[row, column])
    scores.at[row, column] = np.nextafter(before, np.inf)  # the next double: equal to 15 digits, not to 17
    scores.to_parquet(b / "scores.parquet", index=False)
    lines = check.differences(a, b)
    assert len(lines) == 1 and lines[0].startswith("scores: [") and f"{column}: A {before!r} != B " in lines[0]
    assert check.main([str(a), str(b)]) == 1


def test_rows_order_run_ids_and_times_are_not_differences(check, two_probes, tmp_path):
    a, b = copy_of_a(two_probes, tmp_path)
    frame = pd.read_parquet(b / "predictions.parquet")
    frame.iloc[::-1][list(frame.columns)[::-1]].to_parquet(b / "predictions.parquet", index=False)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest.update(run_id="0" * 16, created="2000-01-01T00:00:00+00:00", command="elsewhere")
    (b / "manifest.json").write_text(json.dumps(manifest, indent=1))
    assert check.differences(a, b) == []
    manifest["versions"]["torch"] = "0.0"
    (b / "manifest.json").write_text(json.dumps(manifest))
    assert check.differences(a, b) == ["manifest.json: [key=versions.torch] value: A "
                                       f"{json.loads((a / 'manifest.json').read_text())['versions']['torch']} != B 0.0"]


def test_canonical_cells(check):
    assert check.cell(0.1 + 0.2) == "0.30000000000000004" and check.cell(np.float32(0.1)) == "0.10000000149011612"
    assert check.cell(float("nan")) == "nan" and check.cell(None) == "" and check.cell(pd.NA) == ""
    assert check.cell(np.array([1.5, 2.0])) == '["1.5", "2.0"]' and check.cell(np.int64(3)) == "3"
    frame = pd.DataFrame({"b": [2.0, 1.0], "a": ["y", "x"]})
    assert check.canonical_csv(frame) == "a,b\nx,1.0\ny,2.0\n" == check.canonical_csv(frame.iloc[::-1][["a", "b"]])
