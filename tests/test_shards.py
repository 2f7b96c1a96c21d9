"""Probing at scale: torchrun ranks and --shard jobs write the tables one process writes, and resume."""

import os
import shutil
import socket
import subprocess
import sys

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from probekit import ProbekitError
from probekit.models import checkpoints
from probekit.analyses import Analysis, register
from probekit.cli import main
from probekit.running.results import ProbeResult
from probekit.running.runner import probe
from probekit.core.schema import Column, Table
from probekit.models.series import resolve_checkpoints
from probekit.running.shards import Unit, assign, prefetched
from probekit.core.store import read_cached, write_cached
from test_hub import hub_cache, publish, saved, tokenizer  # noqa: F401 (fixtures)

ANALYSES = ["lens", "ablation", "capture"]
# control: predictions; checkpoint-1, 2, 4, 5, 8: predictions, lens, ablation on one benchmark, capture
UNITS = 1 + 5 * 4


@pytest.fixture(scope="module")
def series(tiny_series, tmp_path_factory):
    """checkpoint-1, 2 (truncated weights), 4, 5 (a copy of 4), 8: a control row, a skip and a duplicate."""
    folder = tmp_path_factory.mktemp("shards") / "series"
    for step in (1, 2, 4, 8):
        shutil.copytree(tiny_series / f"checkpoint-{step}", folder / f"checkpoint-{step}")
    shutil.copytree(folder / "checkpoint-4", folder / "checkpoint-5")
    weights = folder / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return folder


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny.csv"
    path.write_text("relation,template,subject,answer\n"
                    "capital,the capital of [X] is [MASK].,italy,rome\n"
                    "capital,the capital of [X] is [MASK].,france,paris\n"
                    "plural,the [X] of the [MASK].,king,kings\n")
    return path


@pytest.fixture(scope="module")
def reference(series, bench, tmp_path_factory) -> ProbeResult:
    """The same probe in one process."""
    out = tmp_path_factory.mktemp("one")
    probe(str(series / "*"), [str(bench)], ANALYSES, out=out)
    return ProbeResult.load(out)


def assert_same_tables(expected: ProbeResult, got: ProbeResult) -> None:
    assert set(got.tables) == set(expected.tables)
    for name, table in expected.tables.items():
        pd.testing.assert_frame_equal(got.tables[name], table, check_exact=True, obj=name)


def torchrun(series, bench, out, **env) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "probekit", "probe", str(series / "*"), "-b", str(bench), "--with", ",".join(ANALYSES),
               "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PROBEKIT_PROGRESS": "0", **env}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def stamps(folder) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


@pytest.mark.slow
def test_torchrun_ranks_write_the_tables_of_one_process_and_a_killed_rank_loses_only_its_unit(
        series, bench, reference, tmp_path):
    killed = torchrun(series, bench, tmp_path, PROBEKIT_TEST_CRASH="1:1")  # rank 1 dies after its first unit
    assert killed.returncode != 0 and not (tmp_path / "manifest.json").exists()
    records, cached = stamps(tmp_path / "cache" / "units"), stamps(tmp_path / "cache")
    assert 1 <= len(records) < UNITS

    again = torchrun(series, bench, tmp_path)  # the same command: both ranks compute what is missing
    assert again.returncode == 1, again.stderr[-3000:]  # a checkpoint was skipped, as with one process
    assert "1 checkpoint(s) skipped" in again.stderr and again.stdout.count("P@1") == 1  # rank 0 alone reports
    merged = ProbeResult.load(tmp_path)
    assert_same_tables(reference, merged)
    assert list(merged.checkpoints.status) == ["control", "ok", "skipped", "ok", "duplicate", "ok"]
    now = stamps(tmp_path / "cache" / "units")
    assert len(now) == UNITS
    assert {name: now[name] for name in records} == records  # finished units were not redone
    assert {name: stamps(tmp_path / "cache")[name] for name in cached} == cached
    manifest = merged.manifest
    assert manifest["world_size"] == 2 and manifest["hosts"] == [socket.gethostname()]
    assert len(manifest["units"]) == UNITS and {u["shard"][0] for u in manifest["units"]} == {0, 1}
    assert all(u["seconds"] >= 0 for u in manifest["units"])


def test_shards_then_merge_equal_one_run_and_a_missing_shard_is_named(series, bench, reference, tmp_path,
                                                                      monkeypatch):
    args = (str(series / "*"), [str(bench)], ANALYSES)
    assert probe(*args, out=tmp_path, shard="0/2") is None  # not the last: leaves the tables to shard 1
    with pytest.raises(ProbekitError) as missing:
        probe(*args, out=tmp_path, merge=True)
    message = str(missing.value)
    assert "\n" not in message and f"of {UNITS} units not done (shard 1/2): " in message
    assert not (tmp_path / "manifest.json").exists()
    last = probe(*args, out=tmp_path, shard="1/2")  # finds every unit done and merges
    assert_same_tables(reference, last)
    assert_same_tables(reference, ProbeResult.load(tmp_path))
    assert last.manifest["world_size"] == 2 and len(last.manifest["units"]) == UNITS
    read = []
    real = checkpoints.read_weights
    monkeypatch.setattr(checkpoints, "read_weights", lambda ref, *a: read.append(ref.name) or real(ref, *a))
    assert_same_tables(reference, probe(*args, out=tmp_path, merge=True))
    assert read == ["checkpoint-2"]  # the merge reads no weights but the corrupt ones, to skip them again


def test_prefetched_yields_in_order_and_leaves_errors_to_the_unit(series):
    refs = resolve_checkpoints(str(series / "*"))
    assert list(prefetched(refs)) == refs
    with pytest.raises(ProbekitError, match="corrupt or truncated weights"):
        refs[1].fingerprint


def test_shard_spec_and_folder_are_checked_in_one_line(series, bench, tmp_path):
    for spec, expected in (("2/2", "I must be from 0 to 1"), ("half", "expected I/N")):
        with pytest.raises(ProbekitError, match=expected):
            probe(str(series / "checkpoint-8"), [str(bench)], out=tmp_path, shard=spec)
    with pytest.raises(ProbekitError, match="needs a results folder"):
        probe(str(series / "checkpoint-8"), [str(bench)], shard="0/2")


def test_assignment_is_deterministic_and_balanced():
    costs = [7.0, 1.0, 5.0, 5.0, 3.0, 2.0, 2.0, 9.0, 4.0]
    units = [Unit(i, i, "predictions", 0, f"u{i}", c) for i, c in enumerate(costs)]
    owners = assign(units, 3)
    assert owners == assign(list(reversed(units)), 3)
    loads = [sum(c for c, o in zip(costs, owners) if o == shard) for shard in range(3)]
    assert sorted(loads) == [12.0, 13.0, 13.0]  # longest first to the least loaded: within one unit of even
    many = [Unit(i, i // 3, "predictions", i % 3, f"u{i}", 1.0 + i % 3) for i in range(3 * 8)]  # 8 checkpoints
    owners = assign(many, 2)
    assert all(len({owners[u.index] for u in many if u.checkpoint == c}) == 1 for c in range(8))  # read once
    assert [owners.count(shard) for shard in (0, 1)] == [12, 12]


def test_a_published_cache_result_is_never_overwritten_but_a_leftover_is(tmp_path):
    first, second = pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [2]})
    write_cached(tmp_path, "k", first)
    write_cached(tmp_path, "k", second)  # another process with the same key (a duplicate checkpoint)
    pd.testing.assert_frame_equal(read_cached(tmp_path, "k"), first)
    (tmp_path / "cache" / "k.parquet").write_bytes(b"half a file")
    write_cached(tmp_path, "k", second)
    pd.testing.assert_frame_equal(read_cached(tmp_path, "k"), second)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["k.parquet"]  # no temporary file left


class Hungry(Analysis):
    """A toy analysis that runs out of memory above 32 prompts per batch."""

    name = "toy-hungry"
    tables = (Table("toy_hungry", "checkpoint × benchmark", (
        Column("checkpoint", "str", ""), Column("run", "str", ""), Column("step", "int", ""),
        Column("benchmark", "str", ""), Column("batch", "int", "the batch it ran with"))),)

    def run(self, checkpoint, ctx, bench):
        if ctx.batch_size > 32:
            raise torch.OutOfMemoryError("toy: out of memory")
        return pd.DataFrame({"benchmark": [bench.name], "batch": [ctx.batch_size]})


def test_batch_size_auto_halves_on_out_of_memory(series, bench, tmp_path):
    register(Hungry)
    result = probe(str(series / "checkpoint-8"), [str(bench)], ["toy-hungry"], batch_size="auto", control=False,
                   device="cpu")
    assert list(result.tables["toy_hungry"].batch) == [32]  # 128 on a CPU, then 64, then 32
    assert result.manifest["settings"]["batch_size"] == 32 and result.manifest["settings"]["batch_size_auto"]
    fixed = probe(str(series / "checkpoint-8"), [str(bench)], ["toy-hungry"], batch_size=64, control=False)
    assert list(fixed.checkpoints.status) == ["skipped"] and "OutOfMemoryError" in fixed.checkpoints.error[0]


def test_cli_batch_size_auto_and_bad_values(series, bench, tmp_path):
    ok = CliRunner().invoke(main, ["probe", str(series / "checkpoint-8"), "-b", str(bench), "--no-control",
                                   "--device", "cpu", "--batch-size", "auto", "--out", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    settings = ProbeResult.load(tmp_path).manifest["settings"]
    assert settings["batch_size"] == 128 and settings["batch_size_auto"] is True
    for bad, why in (("0", "0 is not in the range x>=1 (or auto)"), ("many", "'many' is neither a whole number")):
        refused = CliRunner().invoke(main, ["probe", str(series / "checkpoint-8"), "--batch-size", bad])
        assert refused.exit_code == 2 and why in refused.output


def test_a_lock_held_from_another_host_is_refused_not_taken_over(series, bench, tmp_path):
    (tmp_path / ".probekit.lock").write_text("12345 some-other-host")  # a shared folder: its pid means nothing here
    with pytest.raises(ProbekitError, match="pid 12345 on some-other-host.*delete .*probekit.lock if it is gone"):
        probe(str(series / "checkpoint-8"), [str(bench)], out=tmp_path, control=False)
    assert (tmp_path / ".probekit.lock").read_text() == "12345 some-other-host"


def test_shards_with_evict_finish_offline(hub_cache, saved, tiny_benchmark, tmp_path):  # noqa: F811
    """--evict in one shard must not delete checkpoints another shard (or the merge) still needs."""
    names = []
    for step, seed in ((0, 0), (3, 1), (6, 2)):
        publish(hub_cache, f"org/tiny-seed_0-step_{step}", saved[seed])
        names.append(f"org/tiny-seed_0-step_{step}")
    bench = tmp_path / "bench.csv"
    bench.write_text(tiny_benchmark.read_text().replace("answer\n", "answer,candidates\n", 1)
                     .replace(",rome\n", ",rome,paris\n"))
    out = tmp_path / "out"
    runner = CliRunner()
    for shard in ("0/2", "1/2"):
        result = runner.invoke(main, ["probe", *names, "-b", str(bench), "--out", str(out), "--shard", shard,
                                      "--evict"])
        assert result.exit_code == 0, result.output
    assert (out / "manifest.json").is_file()


def test_a_huge_shard_count_is_refused_or_cheap(tiny_series, tiny_benchmark, tmp_path):
    """--shard 0/10**12 must not try to allocate a load per shard (it hung and ate memory)."""
    script = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({3 << 30}, {3 << 30}));"
              "from probekit.cli import main; import sys;"
              f"sys.argv=['probekit','probe','{tiny_series}/checkpoint-8','-b','{tiny_benchmark}','--out',"
              f"'{tmp_path / 'out'}','--shard','0/1000000000000'];main()")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr[-500:]
