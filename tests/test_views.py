from pathlib import Path

import pytest

import probekit
from browser import visit
from probekit import ProbekitError

ROOT = Path(__file__).resolve().parents[1]
EVIL = "</script><script>window.pwned=1</script>"
EVIL_TOKEN = "</script><script>alert(1)</script>"  # one token: no tokenizer would make it, a Capture can hold it


def hostile_capture():
    """A one-layer, two-head Capture whose middle token is a script-closing payload, built by hand."""
    import torch

    from probekit.models.hooks import hook_name

    tokens = ["[CLS]", "the", EVIL_TOKEN, "[SEP]"]
    pattern = torch.softmax(torch.randn(1, 2, len(tokens), len(tokens), generator=torch.Generator().manual_seed(0)),
                            dim=-1)
    return probekit.Capture({hook_name(0, "attn.hook_pattern"): pattern}, [tokens],
                            torch.ones(1, len(tokens), dtype=torch.long), n_layers=1, n_heads=2)


def page(tmp_path, html: str) -> str:
    path = tmp_path / "view.html"
    path.write_text(f"<!doctype html><html><body>{html}</body></html>")
    return path.as_uri()


def test_series_looks_up_steps_with_at_and_positions_with_brackets(tiny_series, hf_series):
    series = probekit.open_series(str(tiny_series / "*"))
    assert series.steps == [0, 1, 2, 4, 8]
    assert series.at(8).name == "checkpoint-8" and series[-1] is series.at(8) and series[1] is series.at(1)
    assert series[3] is series.at(4)
    with pytest.raises(KeyError, match="no checkpoint at step 3"):
        series.at(3)
    assert probekit.open_series(str(hf_series)).steps == [3, 6]
    assert series.at(8).model().config.hidden_size == 32


def test_head_view_html_is_offline(tiny_series):
    html = probekit.head_view(str(tiny_series / "checkpoint-8"), f"the king {EVIL}", html_action="return").data
    assert "require.min.js" not in html
    assert "probekitLibs" in html


@pytest.mark.parametrize("view", ["head", "model", "compare", "steps"])
def test_a_token_that_closes_the_script_is_escaped(view):
    cap = hostile_capture()
    if view == "steps":
        from probekit.views import head_view_steps

        html = head_view_steps({"one": cap, EVIL_TOKEN: cap}, html_action="return").data
    elif view == "head":
        html = probekit.head_view(cap, html_action="return").data
    elif view == "model":
        html = probekit.model_view(cap, html_action="return").data
    else:
        html = probekit.compare_heads({EVIL_TOKEN: cap, "again": cap}, None, html_action="return").data
    assert EVIL_TOKEN not in html and "</script><script>alert(1)" not in html
    assert "alert(1)" in html  # the token is on the page, escaped


def test_a_step_slider_view_holds_every_step_rounded_and_bertviz_once(hf_series):
    import json
    import re

    from probekit.views import head_view_steps

    steps = {"three": str(hf_series / "checkpoint-3"), "six": str(hf_series / "checkpoint-6")}
    html = head_view_steps(steps, "the king of rome.", html_action="return").data
    assert html.count("function renderVis") == 1 and html.count("probekit-nb-step\"") == 2
    data = json.loads(re.search(r'<script type="application/json">(.*?)</script>', html).group(1))
    numbers = re.findall(r"\d\.\d+", json.dumps([d["attention"] for d in data]))
    assert len(data) == 2 and numbers and max(len(n) for n in numbers) <= 5  # 0.123: 3 decimals


@pytest.mark.slow
@pytest.mark.parametrize("view", ["head", "model", "compare"])
def test_views_draw_offline_in_chromium(tiny_series, hf_series, tmp_path, view):
    text = f"the capital of italy is rome {EVIL}"
    if view == "head":
        html = probekit.head_view(probekit.open_series(str(tiny_series)).at(8), text, html_action="return").data
    elif view == "model":
        html = probekit.model_view(str(hf_series / "checkpoint-6"), ("paris is a city.", "the king."),
                                   html_action="return").data
    else:
        series = probekit.open_series(str(tiny_series))
        html = probekit.compare_heads({"step 0": series.at(0), "hf step 6": str(hf_series / "checkpoint-6")}, text,
                                      html_action="return").data
    seen = visit(page(tmp_path, html))
    assert seen.svg_elements > 20
    assert seen.console_errors == [] and seen.page_errors == [] and seen.outside_requests == []
    assert seen.globals_set == [] and seen.dialogs == []


@pytest.mark.slow
def test_a_hostile_token_runs_nothing_in_chromium(tmp_path):
    seen = visit(page(tmp_path, probekit.head_view(hostile_capture(), html_action="return").data))
    assert seen.dialogs == [] and seen.page_errors == [] and seen.svg_elements > 5


def test_qk_view_is_a_figure_for_any_stock_checkpoint(hf_series):
    fig = probekit.qk_view(str(hf_series / "checkpoint-6"), "the king of rome.", layer=1)
    assert len(fig.axes) >= 4


def test_views_draw_without_the_report(hf_series):
    """The views sit beside the report, not on it: a notebook's qk_view loads no probekit.report module."""
    import subprocess
    import sys

    code = ("import sys, probekit\n"
            f"probekit.qk_view({str(hf_series / 'checkpoint-6')!r}, 'the king of rome.', layer=0)\n"
            "print(sorted(m for m in sys.modules if m.startswith('probekit.report')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_views_need_text(tiny_series):
    with pytest.raises(ProbekitError, match="give the text"):
        probekit.head_view(str(tiny_series / "checkpoint-8"), html_action="return")


API_ENTRY_POINTS = ("probekit.running.runner.probe", "probekit.running.results.ProbeResult", "probekit.models.series.open_series",
                    "probekit.models.series.Series", "probekit.models.checkpoints.Checkpoint", "probekit.training.trainer.train",
                    "probekit.models.activations.capture", "probekit.models.activations.Capture", "probekit.models.hooks.hooked",
                    "probekit.views.head_view", "probekit.views.model_view", "probekit.analyses.metrics.emergence",
                    "probekit.analyses.Analysis", "probekit.analyses.register")


@pytest.mark.slow
def test_project_docs_build_strict(tmp_path):
    """The docs site builds with --strict: API reference from the docstrings, results format from the schema."""
    import subprocess
    import sys

    from probekit.core.schema import FORMAT_VERSION

    import base64
    import os

    import nbformat

    # an executed copy of when.ipynb (as scripts/docs.py writes them): the site shows its outputs
    executed = tmp_path / "executed"
    executed.mkdir()
    nb = nbformat.read(ROOT / "docs" / "when.ipynb", as_version=4)
    from probekit.figures import subplots

    fig, ax = subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    png = base64.b64encode(fig._repr_png_()).decode()
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    code[-1].outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})]
    nbformat.write(nb, executed / "when.ipynb")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True,
                          env={**os.environ, "PROBEKIT_EXECUTED_NOTEBOOKS": str(executed)})
    assert proc.returncode == 0, proc.stderr
    site = tmp_path / "site"
    assert (site / "example.html").is_file()
    assert f"data:image/png;base64,{png}" in (site / "when.html").read_text()  # the executed copy, rendered
    api = (site / "api.html").read_text()
    assert [name for name in API_ENTRY_POINTS if f'id="{name}"' not in api] == []
    results_format = (site / "results-format.html").read_text()
    assert f"Format version <strong>{FORMAT_VERSION}</strong>" in results_format
    assert "predictions.parquet" in results_format and results_format.count("<table") >= 4
    from probekit.analyses import load_builtins

    shipped = [a for a in load_builtins().values() if type(a).__module__.startswith("probekit.")]  # not tests' toys
    assert [t.file for a in shipped for t in a.tables if t.file not in results_format] == []
    assert (site / "analyses.html").is_file() and "probekit.analyses.option" in api
    assert not (ROOT / "docs" / "results-format.md").exists()  # generated at build time, never committed
