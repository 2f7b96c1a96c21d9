"""The example notebooks in docs/ run end to end on a tiny series, their settings injected after the cell tagged
`parameters` (papermill's convention), in docs/ as Jupyter runs them; the executed notebooks keep their figures
and views (what the docs show)."""

import json
import shutil
from pathlib import Path

import nbformat
import pytest

import browser
from probekit import ProbekitError
from probekit.views import run_notebook

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = ["when", "where", "syntax", "example"]


@pytest.fixture(scope="module")
def results(probed_facts) -> Path:
    """The tiny series (italy injected, france held back) probed with every analysis the notebooks read: facts,
    BLiMP, EWT (syntactic heads and probes), the logit lens, attention capture and causal tracing (conftest's
    `probed_facts`, shared with the tracing page's tests)."""
    return probed_facts


def outputs(nb) -> list:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs(nb))


def html(nb) -> list[str]:
    return [o["data"]["text/html"] for o in outputs(nb) if "text/html" in o.get("data", {})]


def test_settings_are_in_a_parameters_cell_not_in_the_first_code_cell():
    for name in NOTEBOOKS:
        nb = nbformat.read(DOCS / f"{name}.ipynb", as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert tagged[0] is code[0], name  # the settings come first, and are only settings
        assert all(line.split("#")[0].strip() == "" or " = " in line for line in tagged[0].source.splitlines()), name
        assert "os.environ" not in json.dumps(nb), name  # no test plumbing
        assert all(not cell.get("outputs") for cell in code), name  # stored stripped: rendered from a real run


def test_a_missing_parameters_cell_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(nb, tmp_path / "plain.ipynb")
    with pytest.raises(ProbekitError, match="no cell tagged 'parameters'"):
        run_notebook(tmp_path / "plain.ipynb", x=2)


@pytest.mark.slow
def test_the_three_question_notebooks_execute(results, tiny_series, tmp_path):
    browser.close_shared()  # Playwright's open loop would be taken for the notebook client's own
    common = {"RESULTS": str(results / "probe")}
    when = run_notebook(DOCS / "when.ipynb", tmp_path / "when.ipynb", **common)
    where = run_notebook(DOCS / "where.ipynb", tmp_path / "where.ipynb", SERIES=str(results / "my_bert"),
                         SENTENCE="the capital of italy is rome.", **common)
    syntax = run_notebook(DOCS / "syntax.ipynb", tmp_path / "syntax.ipynb", **common)
    for nb in (when, where, syntax):
        assert not [o for o in outputs(nb) if o.output_type == "error"]
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and "RESULTS = " in injected[0].source
    assert images(when) >= 1 and sum("<table" in h for h in html(when)) >= 3  # curves; summary, emergence, diff
    assert images(where) >= 2  # tracing heatmap, logit lens
    steps = [h for h in html(where) if "probekit-nb-steps" in h]
    assert len(steps) == 1 and sum("probekitLibs" in h for h in html(where)) == 2  # the slider, one head view
    assert all(f"checkpoint-{s} (step {s})" in steps[0] for s in (0, 1, 2, 4, 8))  # one pane per checkpoint
    assert images(syntax) >= 5  # pairs, best heads, layer heatmap, probe layers, UUAS


@pytest.mark.slow
def test_the_head_view_slider_of_a_notebook_draws_each_step(results, tmp_path):
    """The notebook's step slider, as nbconvert renders it (what the docs show), in Chromium: the last step
    drawn at once, the first when the slider reaches it."""
    import probekit
    from probekit.views import head_view_steps

    series = probekit.open_series(str(results / "my_bert"))
    view = head_view_steps(list(series), "the capital of italy is rome.", html_action="return").data
    page = tmp_path / "view.html"
    page.write_text(f"<!doctype html><html><body>{view}</body></html>")
    with browser.opened(page.as_uri()) as (tab, seen):
        visible = ".probekit-nb-step:not([style*='none']) svg text"
        drawn_last = tab.locator(visible).count()
        panes_drawn = tab.evaluate("[...document.querySelectorAll('.probekit-nb-step')]"
                                   ".filter(p => p.querySelector('svg')).length")
        tab.evaluate("(() => { const s = document.querySelector('.probekit-nb-steps input');"
                     " s.value = 0; s.dispatchEvent(new Event('input')); })()")
        tab.wait_for_selector(visible, timeout=5000)
        label = tab.locator(".probekit-nb-label").inner_text()
    assert drawn_last > 5 and panes_drawn == 1 and label == "checkpoint-0 (step 0)"
    assert seen.console_errors == [] and seen.page_errors == [] and seen.outside_requests == []


@pytest.mark.slow
def test_example_notebook_executes(tiny_dir, tmp_path):
    browser.close_shared()
    nb = run_notebook(DOCS / "example.ipynb", OUT=str(tmp_path), TRAIN=True,
                      STEPS=2,  # checkpoint-0, 1, 2: every cell has a first and a last step
                      HIDDEN=32, CORPUS=str(tiny_dir / "corpus.txt") + "+facts", TOKENIZER=str(tiny_dir / "vocab.txt"))
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert sum("probekitLibs" in h for h in html(nb)) >= 3
    images_per_cell = [sum("image/png" in o.get("data", {}) for o in cell.outputs)
                       for cell in nb.cells if cell.cell_type == "code"]
    assert max(images_per_cell) == 1 and sum(images_per_cell) >= 4  # each figure shown once, not twice
    assert (tmp_path / "my_bert" / "checkpoint-2").is_dir()


def test_the_example_notebook_refuses_to_train_by_accident(tmp_path):
    """Without a demo and without TRAIN = True, the first cells stop with a message instead of training."""
    import nbclient.exceptions

    browser.close_shared()
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(DOCS / "example.ipynb", docs)
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="no demo at"):
        run_notebook(docs / "example.ipynb", OUT=str(tmp_path / "nothing"))
