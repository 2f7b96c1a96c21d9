"""Views of a checkpoint's attention: bertviz head/model views that draw offline, and probekit's Q·K view.

bertviz's HTML loads require.js, d3 and jQuery from a CDN and shows a blank box without network. Here its
own drawing code runs unchanged, but inside a scope where `require`/`requirejs` hand it local copies of
jQuery and d3 (from the PyPI packages xstatic-jquery and mpld3), so a view draws in JupyterLab, classic
Notebook, VS Code or a static page with no network. Tokens are user data: they reach the page only as
escaped JSON.
"""

from __future__ import annotations

import json
import re
import uuid
from functools import lru_cache
from html import escape
from importlib import metadata
from pathlib import Path

from torch.nn import Module
from transformers import PreTrainedTokenizerBase

from probekit.models.activations import Capture, capture
from probekit.models.checkpoints import Checkpoint
from probekit.core.errors import ProbekitError
from probekit.analyses.metrics import cls_and_sep

Text = str | tuple[str, str]  # a sentence, or an (A, B) pair
Tokenizer = PreTrainedTokenizerBase
CheckpointLike = Checkpoint | Capture | str | Module  # a series' checkpoint, a capture, a folder, a loaded model

LIBRARIES = {  # name → (PyPI distribution, file inside it)
    "jquery": ("xstatic-jquery", "xstatic/pkg/jquery/data/jquery.min.js"),
    "d3": ("mpld3", "mpld3/js/d3.v5.min.js"),
}
CDN_REQUIRE = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/[^"]*"></script>')
SCRIPT = re.compile(r'<script type="text/javascript">\n(.*)\n</script>', re.S)
PARAMS = re.compile(r"const params = (\{.*?\}); // HACK", re.S)
HEAD_VIEW_FUNCTION = "probekitHeadView"
DECIMALS = 3  # attention weights shipped to a page: 0.001 is finer than the head view can show


@lru_cache(maxsize=None)
def library_source(name: str) -> str:
    """The JavaScript source of jQuery or d3, read from the installed PyPI package."""
    dist, rel = LIBRARIES[name]
    try:
        path = Path(metadata.distribution(dist).locate_file(rel))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ProbekitError(f"offline views need {dist}'s {rel}: pip install {dist}")
    return path.read_text(encoding="utf-8")


def library_scripts(asset_prefix: str | None = None) -> str:
    """`<script>` tags that define `window.probekitLibs = {jquery, d3}` without touching the page's globals.

    AMD/CommonJS loaders are hidden while the libraries run, so they work beside Jupyter's require.js.
    With `asset_prefix`, the files are referenced (a static site serves them); otherwise inlined.
    """
    if asset_prefix is not None:
        loads = "".join(f'<script src="{asset_prefix}{name}.js"></script>' for name in LIBRARIES)
        return ('<script>window.probekitSaved = {$: window.$, jQuery: window.jQuery, d3: window.d3, '
                'define: window.define}; window.define = undefined;</script>' + loads +
                '<script>window.probekitLibs = {jquery: window.jQuery.noConflict(true), d3: window.d3}; '
                'window.d3 = window.probekitSaved.d3; window.define = window.probekitSaved.define;</script>')
    body = "\n".join(library_source(name) for name in LIBRARIES)
    return ("<script>(function () { var saved = {d3: window.d3}; var define, module, exports;\n" + body +
            "\nwindow.probekitLibs = {jquery: window.jQuery.noConflict(true), d3: window.d3}; "
            "window.d3 = saved.d3; }).call(window);</script>")


def offline(bertviz_html: str, asset_prefix: str | None = None, with_libraries: bool = True) -> str:
    """bertviz's returned HTML made self-sufficient: no CDN, its script fed local jQuery and d3."""
    html = CDN_REQUIRE.sub("", bertviz_html)
    match = SCRIPT.search(html)
    if match is None:
        raise ProbekitError("unexpected bertviz HTML: no inline script found (bertviz version changed?)")
    code = match.group(1).replace("</", "<\\/")  # user tokens must not close the script element
    wrapped = ("<script>(function () { var libs = window.probekitLibs; "
               "var require = {config: function () {}}; "
               "var requirejs = function (deps, ready) { ready(libs.jquery, libs.d3); };\n"
               + code + "\n})();</script>")
    libraries = library_scripts(asset_prefix) if with_libraries else ""
    return html[: match.start()] + libraries + wrapped + html[match.end():]


def _as_capture(checkpoint, text, tokenizer: Tokenizer | None = None) -> Capture:
    """A Capture from a Capture, a path, a series' Checkpoint (its cached model), or a loaded model with its
    tokenizer."""
    if isinstance(checkpoint, Capture):
        return checkpoint
    if text is None:
        raise ProbekitError("give the text to look at: head_view(checkpoint, 'The capital of Italy is Rome.')")
    if isinstance(checkpoint, Checkpoint):
        checkpoint, tokenizer = checkpoint.model(), tokenizer or checkpoint.tokenizer
    sentence = tuple(text) if isinstance(text, (tuple, list)) else text
    return capture(checkpoint, [sentence], tokenizer)


def _attention_for(cap: Capture, index: int = 0) -> tuple[list, list[str], int | None]:
    """bertviz's inputs for one sentence: per-layer attention, its tokens, and where sentence B starts."""
    length = int(cap.attention_mask[index].sum())
    attention = [cap.pattern(layer)[index: index + 1, :, :length, :length] for layer in range(cap.n_layers)]
    tokens = cap.tokens[index]
    sep = cls_and_sep(cap)[1]
    if tokens.count(sep) < 2:
        return attention, tokens, None
    sentence_b = tokens.index(sep) + 1
    while sentence_b < len(tokens) - 1 and tokens[sentence_b] == sep:  # RoBERTa's pairs: A </s></s> B
        sentence_b += 1
    return attention, tokens, sentence_b


def head_view(checkpoint: CheckpointLike, text: Text | None = None, layer: int | None = None,
              heads: list[int] | None = None, html_action: str = "view", tokenizer: Tokenizer | None = None,
              sentence: int = 0, asset_prefix: str | None = None):
    """bertviz's head view of `text` on a checkpoint, drawn offline: one layer's heads, token to token.

    Args:
        checkpoint: a series' `Checkpoint` (`series[-1]`, `series.at(600)`), a checkpoint folder, a loaded
            masked-LM model of a supported family (then give `tokenizer`), or a `Capture` (then `text` is
            not needed).
        text: one sentence, or an (A, B) pair shown as sentence A / sentence B.
        layer: the layer shown first (0-based).
        heads: the heads shown (all by default).
        html_action: "view" displays it in the notebook and returns None; "return" returns the
            `IPython.display.HTML`.
        tokenizer: the tokenizer of a loaded model (a folder or a `Checkpoint` brings its own).
        sentence: which sentence of a multi-sentence `Capture` to show.
        asset_prefix: reference jQuery and d3 as `{asset_prefix}jquery.js` / `d3.js` instead of inlining them.
    """
    cap = _as_capture(checkpoint, text, tokenizer)
    return _deliver(_head_view_html(cap, sentence, layer, heads, asset_prefix), html_action)


def _head_view_html(cap: Capture, sentence: int, layer: int | None, heads: list[int] | None,
                    asset_prefix: str | None = None, with_libraries: bool = True) -> str:
    from bertviz import head_view as bertviz_head_view

    attention, tokens, sentence_b = _attention_for(cap, sentence)
    html = bertviz_head_view(attention, tokens, sentence_b_start=sentence_b, layer=layer, heads=heads,
                             html_action="return").data
    return offline(html, asset_prefix, with_libraries)


def model_view(checkpoint: CheckpointLike, text: Text | None = None, include_layers: list[int] | None = None,
               include_heads: list[int] | None = None, html_action: str = "view", tokenizer: Tokenizer | None = None,
               sentence: int = 0, asset_prefix: str | None = None):
    """bertviz's model view of `text`: a grid of layers × heads, each a thumbnail of its attention, offline.

    Arguments as for `head_view`; `include_layers` / `include_heads` restrict the grid (0-based indices).
    """
    from bertviz import model_view as bertviz_model_view

    cap = _as_capture(checkpoint, text, tokenizer)
    attention, tokens, sentence_b = _attention_for(cap, sentence)
    html = bertviz_model_view(attention, tokens, sentence_b_start=sentence_b, include_layers=include_layers,
                              include_heads=include_heads, html_action="return").data
    return _deliver(offline(html, asset_prefix), html_action)


def head_view_script() -> str:
    """bertviz's head-view code once, as `window.probekitHeadView(params)`: draws one view into the element
    whose id is `params.root_div_id`, fed the jQuery and d3 of `window.probekitLibs` (`library_scripts`).
    A page that shows many head views loads this once and each view's parameters (`head_view_parts`) apart."""
    import bertviz

    code = (Path(bertviz.__file__).parent / "head_view.js").read_text(encoding="utf-8")
    if "PYTHON_PARAMS" not in code or "requirejs(" not in code:
        raise ProbekitError("unexpected bertviz head_view.js: no PYTHON_PARAMS marker (bertviz version changed?)")
    code = code.replace("PYTHON_PARAMS", "probekitParams")
    return (f"/* bertviz {_version('bertviz')} head view (Apache-2.0, Jesse Vig), its code unchanged, wrapped by "
            f"probekit as a function: window.{HEAD_VIEW_FUNCTION}(params). */\n"
            f"window.{HEAD_VIEW_FUNCTION} = function (probekitParams) {{ var libs = window.probekitLibs; "
            "var require = {config: function () {}}; "
            "var requirejs = function (deps, ready) { ready(libs.jquery, libs.d3); };\n" + code + "\n};\n")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def head_view_parts(cap: Capture, sentence: int = 0, layer: int | None = None, heads: list[int] | None = None,
                    decimals: int = DECIMALS) -> tuple[str, dict]:
    """bertviz's head view of one captured sentence in two parts: its HTML (the layer menu and an empty
    drawing area, no script) and the parameters `head_view_script`'s function draws from, the attention
    weights rounded to `decimals`. The parameters are plain JSON; tokens are in them, never in the HTML."""
    from bertviz import head_view as bertviz_head_view

    attention, tokens, sentence_b = _attention_for(cap, sentence)
    attention = [a.double().round(decimals=decimals) for a in attention]  # float64: 0.123, not 0.12300000339
    html = bertviz_head_view(attention, tokens, sentence_b_start=sentence_b, layer=layer, heads=heads,
                             html_action="return").data
    html = CDN_REQUIRE.sub("", html)
    script = SCRIPT.search(html)
    params = PARAMS.search(script.group(1)) if script else None
    if params is None:
        raise ProbekitError("unexpected bertviz HTML: no head-view parameters found (bertviz version changed?)")
    return html[: script.start()].strip(), json.loads(params.group(1))


def script_json(value) -> str:
    """`value` as JSON that is safe inside an HTML `<script>` element (no `</`, no `<!--`)."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def head_view_steps(checkpoints: dict[str, CheckpointLike] | list[CheckpointLike], text: Text | None = None,
                    layer: int | None = None, heads: list[int] | None = None, html_action: str = "view",
                    tokenizer: Tokenizer | None = None, sentence: int = 0):
    """bertviz's head view of one sentence at several checkpoints behind a step slider: move the slider to
    see how the heads changed over training. Each checkpoint's view is drawn when the slider first reaches
    it; bertviz's code, jQuery and d3 are on the page once. Plain HTML and JavaScript (no widget, no
    kernel needed), so it also draws in a notebook rendered to HTML.

    Args:
        checkpoints: `{label: checkpoint}` or a list (labelled by each checkpoint's name and step), e.g. a
            whole `Series` (`list(series)`) or `{f"step {s}": series.at(s) for s in (0, 500, 5000)}`; each
            as `head_view` takes it. The slider starts at the last one.
        text: the sentence (or (A, B) pair) shown at every checkpoint.
        layer: as for `head_view`.
        heads: as for `head_view`.
        html_action: as for `head_view`.
        tokenizer: as for `head_view`.
        sentence: as for `head_view`.
    """
    items = checkpoints.items() if isinstance(checkpoints, dict) else [(_label(c), c) for c in checkpoints]
    panes, data = [], []
    for label, checkpoint in items:
        html, params = head_view_parts(_as_capture(checkpoint, text, tokenizer), sentence, layer, heads)
        panes.append((str(label), html))
        data.append(params)
    if not panes:
        raise ProbekitError("head_view_steps needs at least one checkpoint")
    box = f"probekit-steps-{uuid.uuid4().hex}"
    last = len(panes) - 1
    body = "".join(f'<div class="probekit-nb-step" data-label="{escape(label)}" style="display:none">{html}</div>'
                   for label, html in panes)
    script = (f"<script>(function () {{ var box = document.getElementById({json.dumps(box)}); "
              f"var data = JSON.parse(box.querySelector('script[type=\"application/json\"]').textContent); "
              "var input = box.querySelector('input'), label = box.querySelector('.probekit-nb-label'); "
              "var panes = box.querySelectorAll('.probekit-nb-step'), drawn = {}; "
              "function show(i) { panes.forEach(function (p, k) { p.style.display = k === i ? '' : 'none'; }); "
              "label.textContent = panes[i].getAttribute('data-label'); "
              "if (!drawn[i]) { drawn[i] = true; var params = data[i]; "
              "params.root_div_id = panes[i].querySelector('[id^=bertviz-]').id; "
              f"window.{HEAD_VIEW_FUNCTION}(params); }} }} "
              "input.addEventListener('input', function () { show(parseInt(input.value, 10)); }); "
              "show(parseInt(input.value, 10)); })();</script>")
    html = (library_scripts() + "<script>" + head_view_script().replace("</", "<\\/") + "</script>"
            + f'<div id="{box}" class="probekit-nb-steps"><label>checkpoint <input type="range" min="0" '
            f'max="{last}" value="{last}" step="1" aria-label="checkpoint"></label> '
            f'<b class="probekit-nb-label"></b>'
            f'<script type="application/json">{script_json(data)}</script>{body}</div>' + script)
    return _deliver(html, html_action)


def _label(checkpoint) -> str:
    step = getattr(checkpoint, "step", None)
    name = getattr(checkpoint, "name", None) or str(checkpoint)
    return f"{name} (step {step:,})" if isinstance(step, int) else name


def compare_heads(checkpoints: dict[str, CheckpointLike] | list[CheckpointLike], text: Text, layer: int = 0,
                  heads: list[int] | None = None, html_action: str = "view", tokenizer: Tokenizer | None = None):
    """The same sentence's head view at several checkpoints, side by side: how a layer's heads changed.

    Args:
        checkpoints: `{label: checkpoint}` (e.g. `{f"step {s}": series.at(s) for s in (0, 600)}`), or a list
            labelled by each checkpoint's name; each as `head_view` takes it.
        text: the sentence (or (A, B) pair) shown at every checkpoint.
        layer: the layer shown (0-based).
        heads: the heads shown (all by default).
        html_action: "view" or "return", as for `head_view`.
        tokenizer: as for `head_view`.
    """
    items = checkpoints.items() if isinstance(checkpoints, dict) else [
        (getattr(c, "name", str(c)), c) for c in checkpoints]
    cells = []
    for i, (label, checkpoint) in enumerate(items):
        cap = _as_capture(checkpoint, text, tokenizer)
        html = _head_view_html(cap, 0, layer, heads, with_libraries=i == 0)  # one copy of jQuery and d3
        cells.append(f'<div style="flex:1;min-width:260px"><b>{escape(str(label))}</b>{html}</div>')
    return _deliver('<div style="display:flex;gap:16px;flex-wrap:wrap">' + "".join(cells) + "</div>", html_action)


def qk_view(checkpoint: CheckpointLike, text: Text | None = None, layer: int = 0, tokenizer: Tokenizer | None = None,
            sentence: int = 0):
    """Q·Kᵀ/√d scores beside the attention they become, per head of `layer` (bertviz's neuron view, for any
    stock checkpoint).

    Returns a matplotlib Figure with, per head, a [query, key] heat map of the scores and one of the softmax
    attention; arguments as for `head_view`.
    """
    from probekit.figures import qk_scores

    return qk_scores(_as_capture(checkpoint, text, tokenizer), layer, sentence)


def _deliver(html: str, html_action: str):
    from IPython.display import HTML, display

    if html_action == "return":
        return HTML(html)
    if html_action != "view":
        raise ProbekitError(f"html_action must be 'view' or 'return', not {html_action!r}")
    display(HTML(html))
    return None


def run_notebook(notebook: str | Path, out: str | Path | None = None, timeout: int = 600, **parameters):
    """Execute a notebook with `parameters` (papermill's convention: a code cell assigning them is inserted after
    the cell tagged `parameters`, tagged `injected-parameters`) in the notebook's own folder, as Jupyter runs
    it; returns the executed notebook, also written to `out` when given (render it with mkdocs-jupyter or
    `jupyter nbconvert --to html`). A cell that raises stops the run with its traceback.

    Needs nbclient and ipykernel (`pip install "probekit-bert[notebook]"`).
    """
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as err:
        raise ProbekitError(f"running a notebook needs {err.name}: pip install \"probekit-bert[notebook]\"") from None
    path = Path(notebook)
    nb = nbformat.read(path, as_version=4)
    if parameters:
        tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]
        if not tagged:
            raise ProbekitError(f"{path}: no cell tagged 'parameters' to set {', '.join(parameters)} after")
        cell = nbformat.v4.new_code_cell("# Injected parameters\n" + "\n".join(
            f"{name} = {value!r}" for name, value in parameters.items()), metadata={"tags": ["injected-parameters"]})
        cell["id"] = "injected-parameters"
        nb.cells.insert(tagged[0] + 1, cell)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.resolve().parent)}}).execute()
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)
    return nb
