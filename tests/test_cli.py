"""The command line's own work: options → library calls, exit codes, one-line errors, messages.

The library is replaced by stand-ins here so that these tests check the wiring only; the library's
behaviour is tested in its own modules.
"""

from __future__ import annotations

import errno
import logging
import sys
import types

import click
import pytest
from click.testing import CliRunner

import probekit
from probekit.core import log
from probekit.cli import main, one_line_errors
from probekit.core.errors import ProbekitError


class Table:
    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return self.rows

    def to_string(self, **_) -> str:
        return "SUMMARY-TABLE"


class FakeResult:
    def __init__(self, skipped: int) -> None:
        self.skipped = Table(skipped)
        self.predictions = Table(12)
        self.checkpoints = Table(3)
        self.tables: dict = {"predictions": self.predictions}
        self.manifest: dict = {"analyses": ["predictions"]}

    def summary(self, **_) -> Table:
        return Table(1)


class Calls(list):
    """The probe() calls made; `skipped` sets how many checkpoints the next result reports as skipped."""

    skipped = 0


@pytest.fixture
def runner_calls(monkeypatch) -> Calls:
    """Replace probekit.running.runner and probekit.analyses; returns the probe() calls made."""
    calls = Calls()

    def probe(checkpoints, benchmarks=("countries",), analyses=("predictions",), out=None, **kwargs):
        calls.append(dict(checkpoints=checkpoints, benchmarks=benchmarks, analyses=analyses, out=out, **kwargs))
        log.logger.info("probed %d checkpoints", len(checkpoints))
        return FakeResult(calls.skipped)

    def get(names):
        unknown = [name for name in names if name not in analyses.REGISTRY]
        if unknown:
            raise ProbekitError(f"unknown analysis {unknown[0]!r}; known: {', '.join(sorted(analyses.REGISTRY))}")

    runner = types.ModuleType("probekit.running.runner")
    runner.probe = probe
    analyses = types.ModuleType("probekit.analyses")
    analyses.REGISTRY = {name: object() for name in ("predictions", "lens", "ablation", "capture")}
    analyses.get = get
    monkeypatch.setitem(sys.modules, "probekit.running.runner", runner)
    monkeypatch.setitem(sys.modules, "probekit.analyses", analyses)
    monkeypatch.setattr(probekit, "analyses", analyses, raising=False)
    return calls


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_probe_passes_every_option_to_the_runner(runner_calls, tmp_path):
    result = invoke("probe", "ck/a", "-c", "ck/b", "-b", "countries", "-b", "mine.csv", "-o", str(tmp_path),
                    "--top-k", "5", "--batch-size", "7", "--no-control", "--device", "cpu", "--bf16",
                    "--tokenizer", "vocab.txt", "--allow-pickle", "--sample", "3", "--pll-metric", "original",
                    "--step-from", r"s(\d+k?)", "--evict", "--at", "ablation=0,8")
    assert result.exit_code == 0, result.output
    (call,) = runner_calls
    assert call == dict(checkpoints=["ck/b", "ck/a"], benchmarks=("countries", "mine.csv"),
                        analyses=("predictions",), out=str(tmp_path), tokenizer="vocab.txt", allow_pickle=True,
                        batch_size=7, control=False, device="cpu", sample=3, step_from=r"s(\d+k?)", evict=True,
                        shard=None, merge=False, options={"predictions": {"top_k": 5, "bf16": True},
                                                          "pairs": {"metric": "original"}}, at={"ablation": "0,8"})
    assert "SUMMARY-TABLE" in result.output and "12 predictions from 3 checkpoint(s)" in result.output


@pytest.mark.parametrize(("args", "analyses", "sentences"), [
    (["--with", "lens,ablation"], ("predictions", "lens", "ablation"), None),
    (["--with", " capture , lens,lens"], ("predictions", "capture", "lens"), None),
    (["--lens", "--ablate"], ("predictions", "lens", "ablation"), None),
    (["--capture"], ("predictions", "capture"), None),
    (["--capture", "mine.txt"], ("predictions", "capture"), "mine.txt"),
    (["--with", "ablation", "--lens", "--capture", "s.jsonl"], ("predictions", "ablation", "lens", "capture"),
     "s.jsonl"),
])
def test_with_and_the_documented_flags_add_up(runner_calls, tmp_path, args, analyses, sentences):
    result = invoke("probe", "ck/a", "-o", str(tmp_path), *args)
    assert result.exit_code == 0, result.output
    assert runner_calls[0]["analyses"] == analyses
    assert runner_calls[0]["options"].get("capture", {}).get("sentences") == sentences


def test_with_rejects_an_unregistered_analysis(runner_calls):
    result = invoke("probe", "ck/a", "--with", "lens,attribution")
    assert result.exit_code == 2 and runner_calls == []
    assert "unknown analysis 'attribution'" in result.output and "ablation, capture, lens" in result.output


def test_with_is_checked_against_the_real_registry(monkeypatch):
    """The built-in analyses are known to `--with` before the probe imports them."""
    monkeypatch.setitem(sys.modules, "probekit.running.runner", types.SimpleNamespace(probe=lambda *a, **k: FakeResult(0)))
    assert invoke("probe", "ck/a", "--with", "lens,ablation,capture").exit_code == 0
    result = invoke("probe", "ck/a", "--with", "lens,nope")
    assert result.exit_code == 2 and "unknown analysis 'nope'" in result.output


@pytest.mark.parametrize("args", [["--top-k", "0"], ["--top-k", "-1"], ["--top-k", "100000"],
                                  ["--batch-size", "0"], ["--batch-size", "-3"]])
def test_probe_sizes_are_validated_before_anything_runs(runner_calls, args):
    result = invoke("probe", "ck/a", *args)
    assert result.exit_code == 2 and runner_calls == []
    assert "is not in the range" in result.output


def test_probe_exits_1_when_a_checkpoint_was_skipped(runner_calls, tmp_path):
    runner_calls.skipped = 2
    result = invoke("probe", "ck/a", "-o", str(tmp_path))
    assert result.exit_code == 1
    assert "2 checkpoint(s) skipped" in result.output and "SUMMARY-TABLE" in result.output


def test_probe_without_checkpoints_is_a_usage_error(runner_calls):
    result = invoke("probe")
    assert result.exit_code == 2 and "give checkpoints" in result.output and runner_calls == []


def test_library_messages_reach_the_terminal(runner_calls, monkeypatch, tmp_path):
    monkeypatch.setattr(log.logger, "handlers", [])
    monkeypatch.setattr(log.logger, "level", logging.WARNING)
    result = invoke("probe", "ck/a", "ck/b", "-o", str(tmp_path))
    assert "probed 2 checkpoints" in result.output


@click.command()
@click.argument("kind")
@one_line_errors
def failing(kind: str) -> None:
    if kind == "readonly":
        raise PermissionError(errno.EACCES, "Permission denied", "/results/out/predictions.parquet")
    if kind == "rename":
        raise OSError(errno.EXDEV, "Invalid cross-device link", "/tmp/a.tmp", None, "/results/a")
    if kind == "bare":
        raise OSError("disk on fire")
    raise FileNotFoundError(errno.ENOENT, "No such file or directory", "local/missing")


@pytest.mark.parametrize(("kind", "line"), [
    ("readonly", "Error: /results/out/predictions.parquet: Permission denied"),
    ("rename", "Error: /tmp/a.tmp -> /results/a: Invalid cross-device link"),
    ("bare", "Error: disk on fire"),
    ("missing", "Error: local/missing: No such file or directory"),
])
def test_os_errors_are_one_line_naming_the_path(kind, line):
    result = CliRunner().invoke(failing, [kind])
    assert result.exit_code == 1 and result.output.strip() == line
    assert "Traceback" not in result.output


def test_report_os_error_is_one_line(monkeypatch, tmp_path):
    site = tmp_path / "site"

    def build_report(results, site_dir, serve=False, port=8000):
        raise PermissionError(errno.EROFS, "Read-only file system", str(site_dir))

    monkeypatch.setitem(sys.modules, "probekit.report", types.SimpleNamespace(build_report=build_report))
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--site", str(site)])
    assert result.exit_code == 1 and result.output.strip() == f"Error: {site}: Read-only file system"


def test_version_names_the_command():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("probekit, version ")


def test_the_cli_passes_no_say_callback():
    """Messages go through probekit.core.log only: no command hands the library a `say=` printer."""
    import ast
    import inspect

    import probekit.cli

    tree = ast.parse(inspect.getsource(probekit.cli))
    says = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg == "say"]
    assert says == []
