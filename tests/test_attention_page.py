"""The Attention and Q/K/V pages load fast: bertviz's code once, each checkpoint's numbers a script of their own
loaded when the step slider reaches it, weights rounded to 3 decimals, no page over 1 MB at first load."""

import json
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

import browser
from probekit.report import build_report
from probekit.running.runner import probe

MB = 1_000_000
# Files every page of the site loads (Material's bundle and styles, Vega, the search worker): the browser has them
# cached after the first page, so a page's own weight is the rest (its HTML, figures, scripts and data).
SITE_WIDE = ("/assets/vega/", "/assets/javascripts/", "/assets/stylesheets/", "/assets/iframe-worker/", "/search/")
VISIBLE = ".probekit-step:not([style*='none'])"


@pytest.fixture(scope="module")
def site(tiny_series, tmp_path_factory) -> Path:
    """A site of the tiny series (checkpoint-0, 1, 2, 4, 8) with attention captured on three sentences."""
    root = tmp_path_factory.mktemp("attention")
    bench = root / "bench.csv"
    bench.write_text("relation,template,subject,answer\ncapital,the capital of [X] is [MASK].,italy,rome\n")
    sentences = root / "sentences.txt"
    sentences.write_text("the capital of italy is rome.\nthe king of france.\nparis is a city.\tthe queen.\n")
    probe(str(tiny_series), [str(bench)], ["capture"], out=root / "results", sentences=str(sentences))
    build_report(root / "results", root / "site")
    return root / "site" / "build"


def lazy_scripts(html: str, kind: str) -> list[str]:
    return re.findall(rf'data-probekit-lazy="{kind}" data-key="[^"]+" data-src="([^"]+)"', html)


def test_bertviz_code_is_on_the_page_once_and_weights_are_apart(site):
    html = (site / "attention.html").read_text()
    assert (site / "assets" / "headview.js").is_file()
    assert html.count("PYTHON_PARAMS") == 0 and html.count("renderVis") == 0  # bertviz's code is not inlined
    # bertviz's code and the jQuery and d3 it needs are files, loaded by assets/probekit.js when a head view is
    # drawn (when the reader gets to it), not by the page
    assert 'src="assets/headview.js"' not in html and 'src="assets/d3.js"' not in html
    assert all((site / "assets" / name).is_file() for name in ("headview.js", "jquery.js", "d3.js"))
    scripts = lazy_scripts(html, "headview")
    assert len(scripts) == 5 and len(set(scripts)) == 5  # one per checkpoint
    assert '"attn"' not in html


@pytest.mark.parametrize("kind", ["headview", "qk"])
def test_each_checkpoint_is_a_script_of_weights_rounded_to_3_decimals(site, kind):
    page = "attention.html" if kind == "headview" else "qkv.html"
    for src in lazy_scripts((site / page).read_text(), kind):
        text = (site / src).read_text()
        match = re.fullmatch(r'\(window\.probekitData = window\.probekitData \|\| \{\}\)\["([^"]+)"\] = (.*);\n',
                             text, re.S)
        assert match, text[:200]
        numbers = re.findall(r"-?\d+\.\d+(?:e-?\d+)?", match.group(2))
        assert numbers and max(len(n.split(".")[1]) for n in numbers) <= 3, src
        data = json.loads(match.group(2))
        if kind == "headview":
            attn = data["attention"][0]["attn"]  # [layer][head][query][key]
            assert len(attn) == 2 and len(attn[0]) == 2
            assert all(abs(sum(row) - 1) < 0.01 for row in attn[1][0])  # still a distribution per query
        else:
            assert len(data["scores"]) == 2 and len(data["attention"][0][0]) == len(data["tokens"])


def test_qkv_page_explains_what_to_look_for_and_has_the_step_slider(site):
    html = (site / "qkv.html").read_text()
    assert "What to look for" in html and "previous-token head" in html
    assert html.count('class="probekit-steps"') == 1 and len(lazy_scripts(html, "qk")) == 5
    assert "checkpoint-0 (step 0)" in html and "checkpoint-8 (step 8)" in html


def first_load(url: str, site: Path, then=None) -> dict:
    """Open `url` in Chromium and scroll to the step slider; the bytes of every file it loaded (from file://)
    until the head view or the Q·K chart is drawn, how long that took, and (after `then(page)`) the files loaded afterwards."""
    files: list[str] = []
    errors: list[str] = []
    context = browser._browser().new_context(viewport={"width": 1300, "height": 900})
    try:
        page = context.new_page()
        page.on("request", lambda r: files.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        started = time.monotonic()
        page.goto(url)
        page.locator(".probekit-steps").scroll_into_view_if_needed()  # drawn when the reader gets to it
        page.wait_for_selector(f"{VISIBLE} .probekit-headview svg text, {VISIBLE} .probekit-qk svg.marks",
                               timeout=10_000)
        drawn = time.monotonic() - started
        page.wait_for_load_state("load")
        at_first = list(files)
        result = {"files": at_first, "drawn_s": drawn, "errors": errors, "page": page}
        if then is not None:
            then(page)
        result["later"] = files[len(at_first):]
    finally:
        context.close()
    outside = [f for f in files if not f.startswith("file://")]
    assert outside == []
    sizes = {f: Path(unquote(urlparse(f).path)).stat().st_size for f in result["files"]}
    result["total_bytes"] = sum(sizes.values())
    result["bytes"] = sum(size for f, size in sizes.items() if not any(part in f for part in SITE_WIDE))
    return result


def move_slider_to_first(page) -> None:
    page.evaluate("(() => { const s = document.querySelector('.probekit-steps input');"
                  " s.value = 0; s.dispatchEvent(new Event('input')); })()")


@pytest.mark.slow
def test_attention_page_is_small_draws_and_loads_another_step_on_the_slider(site):
    seen = {}

    def then(page):
        seen["label"] = page.locator(".probekit-step-label").inner_text()
        seen["drawn_last"] = page.locator(f"{VISIBLE} .probekit-headview svg *").count()
        move_slider_to_first(page)
        page.wait_for_function(f"document.querySelectorAll(\"{VISIBLE} .probekit-headview svg text\").length > 3",
                               timeout=5_000)
        seen["first"] = page.locator(".probekit-step-label").inner_text()
        seen["drawn_first"] = page.locator(f"{VISIBLE} .probekit-headview svg *").count()
        page.screenshot(path=str(browser_screens() / "attention-lazy-step-0.png"))

    loaded = first_load((site / "attention.html").as_uri(), site, then)
    print(f"attention page: {loaded['bytes'] / 1e3:.0f} kB of its own at first load ({loaded['total_bytes'] / 1e3:.0f} kB "
          f"with the site-wide files), head view drawn in {loaded['drawn_s']:.2f} s")
    assert loaded["bytes"] < MB  # the clock (aim: drawn in under 2 s) is scripts/bench_pages.py's
    views = [f for f in loaded["files"] if "/attention/headview-" in f]
    assert len(views) == 1 and views[0].endswith("headview-checkpoint-8.js")  # only the step shown
    assert [f for f in loaded["later"] if "/attention/" in f] == [
        next(f for f in loaded["later"] if f.endswith("headview-checkpoint-0.js"))]
    assert "checkpoint-8" in seen["label"] and "checkpoint-0" in seen["first"]
    assert seen["drawn_last"] > 20 and seen["drawn_first"] > 20
    assert loaded["errors"] == []


@pytest.mark.slow
def test_qkv_page_draws_scores_and_loads_another_step_on_the_slider(site):
    seen = {}

    def then(page):
        before = page.locator(f"{VISIBLE} .probekit-qk svg.marks").count()
        page.locator(f"{VISIBLE} .probekit-qk select").select_option("1")
        page.wait_for_timeout(500)
        seen["cells"] = page.locator(f"{VISIBLE} .probekit-qk svg path.mark-rect, "
                                     f"{VISIBLE} .probekit-qk svg .mark-rect path").count()
        move_slider_to_first(page)
        page.wait_for_selector(f"{VISIBLE} .probekit-qk svg.marks", timeout=5_000)
        seen["first"] = page.locator(".probekit-step-label").inner_text()
        seen["before"] = before
        page.screenshot(path=str(browser_screens() / "qkv-lazy-step-0.png"), full_page=True)

    loaded = first_load((site / "qkv.html").as_uri(), site, then)
    print(f"Q/K/V page: {loaded['bytes'] / 1e3:.0f} kB of its own at first load ({loaded['total_bytes'] / 1e3:.0f} kB "
          f"with the site-wide files), scores drawn in {loaded['drawn_s']:.2f} s")
    assert loaded["bytes"] < MB
    assert [f for f in loaded["files"] if "/attention/qk-" in f][0].endswith("qk-checkpoint-8.js")
    assert any(f.endswith("qk-checkpoint-0.js") for f in loaded["later"])
    assert seen["before"] == 1 and seen["cells"] > 0 and "checkpoint-0" in seen["first"]
    assert loaded["errors"] == []


def browser_screens() -> Path:
    folder = Path(__file__).resolve().parents[1] / "local" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
