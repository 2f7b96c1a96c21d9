"""Hostile input from issue 33 (and issue 31's terminal manners), each attack as a new user would try it: the
user's files are never touched, inputs of one name are told apart, plug-ins cannot shadow, float options refuse
nan and inf, messages name what is valid, and no traceback or raw library warning reaches the terminal."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from probekit.analyses import REGISTRY, Analysis, load_builtins, register
from probekit.analyses import base as analyses_base
from probekit.analyses import options_of
from probekit.benchmarks.kinds import load_inputs
from probekit.cli import main
from probekit.core.errors import AnalysisError, ProbekitError
from probekit.core.schema import TABLES, Column, Table
from probekit.core.store import STAMP, read_run
from probekit.running.runner import probe

PROMPTS = ("relation,template,subject,answer\n"
           "capital,the capital of [X] is [MASK].,italy,rome\n"
           "capital,the capital of [X] is [MASK].,france,paris\n")
TREEBANK = ("# text = the king is old .\n"
            "1\tthe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n"
            "2\tking\tking\tNOUN\tNN\t_\t4\tnsubj\t_\t_\n"
            "3\tis\tbe\tAUX\tVBZ\t_\t4\tcop\t_\t_\n"
            "4\told\told\tADJ\tJJ\t_\t0\troot\t_\t_\n"
            "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_\n\n"
            "# text = the queen of france is new .\n"
            "1\tthe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n"
            "2\tqueen\tqueen\tNOUN\tNN\t_\t6\tnsubj\t_\t_\n"
            "3\tof\tof\tADP\tIN\t_\t4\tcase\t_\t_\n"
            "4\tfrance\tfrance\tPROPN\tNNP\t_\t2\tnmod\t_\t_\n"
            "5\tis\tbe\tAUX\tVBZ\t_\t6\tcop\t_\t_\n"
            "6\tnew\tnew\tADJ\tJJ\t_\t0\troot\t_\t_\n"
            "7\t.\t.\tPUNCT\t.\t_\t6\tpunct\t_\t_\n\n")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Input files in a folder of their own (never inside a results folder)."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "tiny.csv").write_text(PROMPTS)
    (root / "tb").mkdir()
    (root / "tb" / "good.conllu").write_text(TREEBANK)
    return root


@pytest.fixture(scope="module")
def last(tiny_series) -> str:
    return str(tiny_series / "checkpoint-8")


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(result, *parts: str) -> str:
    """The single `Error:` line of a failed command, checked for `parts`; no traceback anywhere."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for part in parts:
        assert part in errors[0], errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---------------------------------------------------------------- item 9: never touch the user's files


@pytest.fixture
def foreign(tmp_path) -> Path:
    """Another program's folder: tables named like probekit's, one of its own, and notes."""
    folder = tmp_path / "theirs"
    folder.mkdir()
    pd.DataFrame({"score": [1.0, 2.0]}).to_parquet(folder / "scores.parquet")
    pd.DataFrame({"layer": [0]}).to_parquet(folder / "lens.parquet")
    pd.DataFrame({"x": [3]}).to_parquet(folder / "mydata.parquet")
    (folder / "notes.txt").write_text("my notes\n")
    return folder


def test_a_foreign_out_folder_is_refused_in_one_line_and_left_as_it_was(last, inputs, foreign):
    before = snapshot(foreign)
    result = run_cli("probe", last, "-b", str(inputs / "tiny.csv"), "--with", "lens", "--out", str(foreign))
    one_line_error(result, str(foreign), "not a probekit results folder", "lens.parquet", "notes.txt")
    assert snapshot(foreign) == before and not (foreign / STAMP).exists() and not (foreign / "cache").exists()
    with pytest.raises(ProbekitError, match="not a probekit results folder"):  # the library refuses alike
        probe(last, [str(inputs / "tiny.csv")], out=foreign)
    assert snapshot(foreign) == before


def test_a_folder_without_a_manifest_is_not_probekit_results_unless_probekit_stamped_it(foreign, tmp_path):
    with pytest.raises(ProbekitError, match=r"theirs: not probekit results \(no manifest.json; it holds lens.parquet"):
        read_run(foreign)
    result = run_cli("report", str(foreign), "--site", str(tmp_path / "site"))
    line = one_line_error(result, "not probekit results")
    assert "interrupted" not in line and "probekit probe" not in line
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProbekitError, match="no manifest.json; run `probekit probe"):
        read_run(tmp_path / "empty")


def test_an_interrupted_probe_is_known_as_probekits_and_resumes_from_its_cache(last, inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    def dies(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("probekit.running.results.write_run", dies)  # killed after every unit was cached, before the tables
    with pytest.raises(OSError):
        probe(last, [str(inputs / "tiny.csv")], ["lens"], out=out, control=False)
    monkeypatch.undo()
    assert (out / STAMP).is_file() and any((out / "cache").glob("*.parquet")) and not (out / "manifest.json").exists()
    with pytest.raises(ProbekitError, match="incomplete results .* interrupted"):
        read_run(out)
    computed = []
    real = REGISTRY["lens"].run
    monkeypatch.setattr(REGISTRY["lens"], "run", lambda *a: computed.append(1) or real(*a))
    result = probe(last, [str(inputs / "tiny.csv")], ["lens"], out=out, control=False)
    assert computed == [] and len(result.lens)  # every unit from the cache
    assert set(read_run(out)[0]) >= {"predictions", "lens"}


def test_in_its_own_folder_probekit_replaces_and_deletes_only_what_it_wrote(last, inputs, tmp_path):
    out = tmp_path / "out"
    probe(last, [str(inputs / "tiny.csv")], ["lens"], out=out, control=False)
    (out / "notes.txt").write_text("mine\n")
    pd.DataFrame({"x": [1]}).to_parquet(out / "mydata.parquet")
    probe(last, [str(inputs / "tiny.csv")], out=out, control=False)  # no lens now: probekit's lens.parquet goes
    assert not (out / "lens.parquet").exists()
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "mydata.parquet").is_file()
    pd.DataFrame({"layer": [7]}).to_parquet(out / "lens.parquet")  # the user's own file of that name
    mine = (out / "lens.parquet").read_bytes()
    probe(last, [str(inputs / "tiny.csv")], out=out, control=False)  # not deleted though no lens is written
    assert (out / "lens.parquet").read_bytes() == mine
    with pytest.raises(ProbekitError, match="lens.parquet: not written by probekit, so not replaced"):
        probe(last, [str(inputs / "tiny.csv")], ["lens"], out=out, control=False)
    assert (out / "lens.parquet").read_bytes() == mine and (out / "notes.txt").is_file()


def test_a_results_folder_of_a_version_before_the_stamp_is_still_probekits(last, inputs, tmp_path):
    out = tmp_path / "out"
    probe(last, [str(inputs / "tiny.csv")], out=out, control=False)
    (out / STAMP).unlink()  # as the version before wrote it: manifest, stamped tables, cache
    again = probe(last, [str(inputs / "tiny.csv")], out=out, control=False)
    assert (out / STAMP).is_file() and len(again.predictions) == 2


def test_a_folder_holding_only_a_file_browsers_files_counts_as_empty(tmp_path):
    from probekit.core.store import claim_folder

    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / ".DS_Store").write_bytes(b"finder")
    claim_folder(tmp_path / "fresh")
    assert (tmp_path / "fresh" / STAMP).is_file() and (tmp_path / "fresh" / ".DS_Store").read_bytes() == b"finder"
    (tmp_path / "file").write_text("")
    with pytest.raises(ProbekitError, match="file: not a folder"):
        claim_folder(tmp_path / "file")


# ---------------------------------------------------------------- item 10: inputs told apart by full path


def test_two_different_inputs_of_one_name_are_refused_and_one_copy_is_read_once(inputs, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "base.csv").write_text(PROMPTS)
    (tmp_path / "b" / "base.csv").write_text(PROMPTS.replace("italy,rome", "spain,madrid"))
    with pytest.raises(ProbekitError) as caught:
        load_inputs([str(tmp_path / "a" / "base.csv"), str(tmp_path / "b" / "base.csv")])
    assert "two different prompts inputs named 'base'" in str(caught.value)
    assert str(tmp_path / "a" / "base.csv") in str(caught.value) and str(tmp_path / "b" / "base.csv") in str(caught.value)
    (tmp_path / "tb2").mkdir()
    (tmp_path / "tb2" / "good.conllu").write_text(TREEBANK.split("\n\n")[0] + "\n\n")
    result = run_cli("probe", "unused", "-b", str(inputs / "tb" / "good.conllu"), "-b",
                     str(tmp_path / "tb2" / "good.conllu"), "--with", "syntax-heads", "--out", str(tmp_path / "o"))
    one_line_error(result, "two different treebank inputs named 'good'")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "base.csv").write_text(PROMPTS)  # the same rows under the same name: harmless, read once
    loaded = load_inputs([str(tmp_path / "a" / "base.csv"), str(tmp_path / "c" / "base.csv")])
    assert len(loaded["prompts"]) == 1


def test_the_manifest_gives_every_input_file_with_its_full_path_and_checksum(last, inputs, tmp_path):
    result = probe(last, [str(inputs / "tiny.csv"), str(inputs / "tb" / "good.conllu")], ["syntax-heads"],
                   out=tmp_path / "out", control=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for kind, name, path in (("prompts", "tiny", inputs / "tiny.csv"), ("treebank", "good", inputs / "tb" / "good.conllu")):
        entry = manifest["inputs"][kind][name]
        assert entry["path"] == str(path.resolve())
        assert entry["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.manifest["inputs"] == manifest["inputs"]


# ---------------------------------------------------------------- item 7: plug-ins cannot shadow


@pytest.fixture
def registry_restored():
    """Whatever a test registers is gone afterwards (the registry, its origins and the tables it declared)."""
    load_builtins()
    saved = dict(REGISTRY), dict(analyses_base.ORIGINS), dict(TABLES)
    modules = set(sys.modules)
    yield
    for live, kept in zip((REGISTRY, analyses_base.ORIGINS, TABLES), saved):
        live.clear()
        live.update(kept)
    for name in set(sys.modules) - modules:
        if name.startswith("hostile_plugin"):
            del sys.modules[name]


PLUGIN = '''
from probekit.analyses import Analysis, register
from probekit.core.schema import Column, Table


class Plugin(Analysis):
    name = {name!r}
    tables = (Table({table!r}, "checkpoint", (Column("checkpoint", "str", ""),)),)

    def run(self, checkpoint, ctx, item):
        raise AssertionError("never run")


register(Plugin)
'''


def installed(folder: Path, dist: str, module: str, name: str, table: str) -> list:
    """A distribution `dist` installed into `folder` as pip leaves it (a module and its dist-info naming the
    entry point), and its entry points as probekit's loader meets them."""
    from importlib.metadata import distributions

    (folder / f"{module}.py").write_text(PLUGIN.format(name=name, table=table))
    info = folder / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[probekit.analyses]\n{name} = {module}\n")
    (found,) = [d for d in distributions(path=[str(folder)]) if d.metadata["Name"] == dist]
    return list(found.entry_points)


def test_a_plugin_cannot_take_a_builtins_or_another_plugins_name(tmp_path, monkeypatch, caplog, registry_restored):
    from probekit.analyses import _register_entry

    monkeypatch.syspath_prepend(str(tmp_path))
    builtin = REGISTRY["tracing"]
    (entry,) = installed(tmp_path, "evil-plugin", "hostile_plugin_a", "tracing", "evil_tracing")
    with caplog.at_level("WARNING", logger="probekit"):
        _register_entry(entry)
    assert REGISTRY["tracing"] is builtin and "evil_tracing" not in TABLES
    (line,) = [m for m in caplog.messages if "refused" in m]
    assert "'tracing' of evil-plugin 0.1 refused" in line and "probekit-bert (built-in)" in line
    assert "\n" not in line
    caplog.clear()
    (first,) = installed(tmp_path, "first-plugin", "hostile_plugin_b", "word-count", "word_count")
    (second,) = installed(tmp_path, "second-plugin", "hostile_plugin_c", "word-count", "word_count_2")
    with caplog.at_level("WARNING", logger="probekit"):
        _register_entry(first)
        _register_entry(second)
    assert type(REGISTRY["word-count"]).__module__ == "hostile_plugin_b"
    (line,) = [m for m in caplog.messages if "refused" in m]
    assert "second-plugin 0.1" in line and "first-plugin 0.1" in line


@pytest.mark.slow
def test_probe_help_keeps_the_builtins_flags_with_a_shadowing_plugin_installed(tmp_path):
    installed(tmp_path, "evil-plugin", "hostile_plugin_a", "tracing", "evil_tracing")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "probekit", "probe", "--help"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--noise" in done.stdout and "--trace-components" in done.stdout
    refused = [line for line in done.stderr.splitlines() if "refused" in line]
    assert len(refused) == 1 and "evil-plugin 0.1" in refused[0] and "Traceback" not in done.stderr


class MissingColumn(Analysis):
    """A plug-in's analysis whose rows lack the `score` its table declares."""

    name = "hostile-missing"
    tables = (Table("hostile_missing", "checkpoint × benchmark", (
        Column("checkpoint", "str", ""), Column("run", "str", ""), Column("step", "int", ""),
        Column("seed", "str", ""), Column("benchmark", "str", ""), Column("score", "float", ""))),)
    calls: list = []

    def run(self, checkpoint, ctx, bench):
        self.calls.append(checkpoint.name)
        return pd.DataFrame({"benchmark": [bench.name]})


class BadSummary(Analysis):
    """Rows as declared, but a summary without its declared column: caught only when the tables are made."""

    name = "hostile-summary"
    tables = (Table("hostile_rows", "checkpoint", (
        Column("checkpoint", "str", ""), Column("run", "str", ""), Column("step", "int", ""),
        Column("seed", "str", ""), Column("n", "int", ""))),
        Table("hostile_summary", "checkpoint", (Column("checkpoint", "str", ""), Column("mean", "float", ""))))

    def run(self, checkpoint, ctx, bench):
        return pd.DataFrame({"n": [len(bench.prompts)]})

    def summarize(self, frame, ctx):
        return {"hostile_summary": frame[["checkpoint"]]}


class Nothing(Analysis):
    name = "hostile-nothing"
    tables = (Table("hostile_nothing", "checkpoint", (
        Column("checkpoint", "str", ""), Column("run", "str", ""), Column("step", "int", ""),
        Column("seed", "str", ""), Column("n", "int", ""))),)

    def run(self, checkpoint, ctx, bench):
        return pd.DataFrame(columns=["n"])


def test_rows_lacking_a_declared_column_stop_the_probe_at_the_first_unit(tiny_series, inputs, tmp_path,
                                                                          registry_restored):
    register(MissingColumn)
    MissingColumn.calls.clear()
    with pytest.raises(AnalysisError, match="lack the column\\(s\\) score that its table 'hostile_missing' declares"):
        probe(str(tiny_series), [str(inputs / "tiny.csv")], ["hostile-missing"], out=tmp_path / "api")
    assert len(MissingColumn.calls) == 1  # the first unit, not the whole series
    result = run_cli("probe", str(tiny_series), "-b", str(inputs / "tiny.csv"), "--with", "hostile-missing",
                     "--out", str(tmp_path / "cli"))
    one_line_error(result, "'hostile-missing'", "score", "stopped before the rest of the work")


def test_a_broken_summary_loses_only_its_own_tables(last, inputs, tmp_path, registry_restored):
    register(BadSummary)
    result = run_cli("probe", last, "-b", str(inputs / "tiny.csv"), "--with", "hostile-summary", "--no-control",
                     "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "analysis 'hostile-summary'" in result.output and "mean" in result.output
    tables, manifest = read_run(tmp_path / "out")
    assert "predictions" in tables and "hostile_rows" not in tables and manifest["failed_analyses"] == ["hostile-summary"]


def test_the_only_analysis_asked_for_computing_nothing_exits_1(last, inputs, tmp_path, registry_restored):
    register(Nothing)
    result = run_cli("probe", last, "-b", str(inputs / "tiny.csv"), "--with", "hostile-nothing", "--no-control",
                     "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "hostile-nothing computed nothing" in result.output
    assert "Traceback" not in result.output


def test_tracing_with_nothing_to_trace_exits_1_saying_why(last, inputs, tmp_path):
    """Issue 33: `--with tracing` on minimal pairs alone, or on templates without [X], wrote tables of skip
    counts and exited 0; now one Error: line naming why, exit 1 — but not when another analysis asked for
    computed rows."""
    pairs = inputs / "pairs_only.csv"
    pairs.write_text("good,bad\nthe king is old.,the king are old.\n")
    nox = inputs / "nox.csv"
    nox.write_text("relation,template,subject,answer\nplural,the king of the [MASK].,king,kings\n")
    fast = ["--trace-components", "resid", "--noise-samples", "2", "--no-control"]
    line = one_line_error(run_cli("probe", last, "-b", str(pairs), "--with", "tracing", *fast,
                                  "--out", str(tmp_path / "pairs")), "tracing computed nothing",
                          "no fill-mask prompts in this run")
    assert line.startswith("Error: tracing computed nothing")
    one_line_error(run_cli("probe", last, "-b", str(nox), "--with", "tracing", *fast, "--out", str(tmp_path / "nox")),
                   "tracing computed nothing: none of its 1 prompts could be traced (no [X] in the template: 1)")
    assert read_run(tmp_path / "nox")[1]["computed_nothing"]["tracing"].startswith("none of its 1 prompts")
    both = run_cli("probe", last, "-b", str(nox), "--with", "tracing,lens", *fast, "--out", str(tmp_path / "both"))
    assert both.exit_code == 0 and "Error:" not in both.output, both.output
    traced = run_cli("probe", last, "-b", str(inputs / "tiny.csv"), "--with", "tracing", *fast, "--trace-sample", "1",
                     "--out", str(tmp_path / "traced"))
    assert traced.exit_code == 0 and "Error:" not in traced.output, traced.output
    assert "computed_nothing" not in read_run(tmp_path / "traced")[1]


# ---------------------------------------------------------------- item 4: nan and inf refused like a negative


def float_options() -> list[tuple[str, str, str]]:
    """(analysis, field, flag) of every float option of every registered analysis."""
    found = []
    for name, analysis in load_builtins().items():
        for f in dataclasses.fields(analysis.options):
            if f.type in (float, "float"):
                found.append((name, f.name, f.metadata.get("flag") or f"--{name}-{f.name}".replace("_", "-")))
    return found


def test_every_float_option_refuses_nan_and_inf_as_it_refuses_a_negative_value():
    options = float_options()
    assert {("tracing", "noise"), ("probes", "l2"), ("probes", "tolerance")} <= {(a, f) for a, f, _ in options}
    for analysis, field, flag in options:
        bad = -1.0
        negative = run_cli("probe", "ck", flag, str(bad))
        for value in ("nan", "inf", "-inf"):
            result = run_cli("probe", "ck", flag, value)
            assert result.exit_code == 2, (flag, value, result.output)
            assert f"Invalid value for '{flag}': {float(value)} is not in the range" in result.output
            if negative.exit_code == 2:  # the same message as a negative value, the value aside
                assert result.output.replace(str(float(value)), "V") == negative.output.replace(str(bad), "V")
        for value in (math.nan, math.inf):
            with pytest.raises(ProbekitError, match=f"analysis '{analysis}': option {field}={value!r} is outside"):
                options_of(analysis, {field: value})


@pytest.mark.parametrize("flag", ["--lr", "--epochs", "--mlm-probability"])
def test_trainings_float_options_refuse_nan_and_inf(flag):
    for value in ("nan", "inf"):
        result = run_cli("train", flag, value, "-o", "unused")
        assert result.exit_code == 2 and f"{float(value)} is not in the range" in result.output


# ---------------------------------------------------------------- item 8: messages that name what is valid


@pytest.mark.parametrize("spec", ["ewt:nope", "ewt@-1", "ewt@abc"])
def test_a_bad_treebank_spec_names_the_treebank_specs(spec, tmp_path):
    line = one_line_error(run_cli("probe", "ck", "-b", spec, "--out", str(tmp_path / "o")), spec,
                          "ewt, ewt:dev, ewt:test, ewt:dev+test")
    assert "fact_templates" not in line and "no such benchmark file" not in line


def test_internal_data_files_are_never_offered_or_read_as_benchmarks(tmp_path):
    line = one_line_error(run_cli("probe", "ck", "-b", "fact_templates", "--out", str(tmp_path / "o")),
                          "fact_templates: no such benchmark file", "shipped prompts: countries;")
    assert line.count("fact_templates") == 1


def test_a_pairs_file_without_bad_names_the_missing_column(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("good,wrong\nThe keys are here.,The keys is here.\n")
    one_line_error(run_cli("probe", "ck", "-b", str(pairs), "--out", str(tmp_path / "o")),
                   f"{pairs}: no 'bad' column", "columns good, bad", "this one has good, wrong")


@pytest.fixture(scope="module")
def syntax_only(last, inputs, tmp_path_factory):
    """`probe -b TREEBANK --with syntax-heads`: no prompts at all."""
    out = tmp_path_factory.mktemp("syntax") / "out"
    result = run_cli("probe", last, "-b", str(inputs / "tb" / "good.conllu"), "--with", "syntax-heads",
                     "--out", str(out))
    return result, out


def test_a_syntax_only_run_says_what_it_computed(syntax_only):
    result, out = syntax_only
    assert result.exit_code == 0, result.output
    rows = len(read_run(out)[0]["syntax_heads"])
    assert rows and f"{rows:,} syntax-head rows on 2 sentences from 2 checkpoint(s)" in result.output
    assert "0 predictions" not in result.output


def test_diff_on_syntax_only_results_says_there_is_nothing_to_compare(syntax_only):
    _, out = syntax_only
    for args in ([], ["-1"]):
        result = run_cli("diff", str(out), *args)
        one_line_error(result, "nothing to compare", "no fill-mask predictions", "syntax-heads")
        assert "Empty DataFrame" not in result.output


def test_diff_takes_minus_one_as_the_last_checkpoint(tiny_series, inputs, tmp_path):
    out = tmp_path / "out"
    probe([str(tiny_series / "checkpoint-4"), str(tiny_series / "checkpoint-8")], [str(inputs / "tiny.csv")], out=out)
    for args in (["checkpoint-4", "-1"], ["-1"]):  # as the README writes it: a position, not an option
        result = run_cli("diff", str(out), *args)
        assert result.exit_code == 0 and "checkpoint-4 -> checkpoint-8" in result.output, result.output


# ---------------------------------------------------------------- item 7 and issue 31: the terminal


def test_no_traceback_and_no_raw_library_warning_reach_the_terminal(monkeypatch):
    import types

    def probe(*args, **kwargs):
        warnings.warn("All-NaN slice encountered", RuntimeWarning)
        raise ValueError("table 'tracing' lacks columns ['layer']\nsecond line")

    monkeypatch.setitem(sys.modules, "probekit.running.runner", types.SimpleNamespace(probe=probe))
    monkeypatch.delenv("PROBEKIT_TRACEBACK", raising=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["probe", "ck"])
    one_line_error(result, "ValueError: table 'tracing' lacks columns ['layer']", "PROBEKIT_TRACEBACK=1")
    assert "second line" not in result.output and "RuntimeWarning" not in result.output
    assert "All-NaN" not in result.output and not [w for w in seen if "All-NaN" in str(w.message)]


@pytest.mark.parametrize("command", ["", "train", "probe", "report", "diff", "demo"])
def test_every_help_ends_with_two_or_three_examples(command):
    result = run_cli(*([command] if command else []), "--help")
    assert result.exit_code == 0
    lines = result.output.rstrip().splitlines()
    at = max(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    shown = lines[at + 1:]
    assert 2 <= len(shown) <= 3 and all(line.strip().startswith("probekit ") for line in shown), shown


def test_without_a_terminal_the_probe_prints_a_line_per_stage_not_bars(last, inputs, tmp_path, monkeypatch):
    from probekit.core import log

    monkeypatch.setattr(log, "_progress", True)
    monkeypatch.delenv("PROBEKIT_PROGRESS", raising=False)
    result = run_cli("probe", last, "-b", str(inputs / "tiny.csv"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "probing checkpoint-8 (1/1)" in result.output and "probing the random-init control" in result.output
    assert f"writing the tables into {tmp_path / 'out'}" in result.output
    assert "it/s" not in result.output and "checkpoint/s" not in result.output and "%|" not in result.output
