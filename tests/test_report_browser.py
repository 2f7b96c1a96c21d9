"""The report as a reader meets it (issue #31): a legend click fades the other series, the charts follow the
light/dark palette without a reload, every download is data (numbers, not formatted text), no page's first
load passes 1 MB, and every page is photographed light and dark (local/screenshots/).

Two sites: the one test_report builds with the CLI (charts, attention, prompts) and test_findings' hand-made
one (grammar, timeline, syntax, probes, tracing)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

import claims
from browser import opened
from test_findings import found  # noqa: F401  (found: the module fixture the hand-made site uses)
from test_report import SCREENSHOTS, report_command, site  # noqa: F401  (the module fixtures of the CLI's site)

MB = 1_000_000
RUN_FILES = {"manifest.json", "findings.csv", "findings.parquet"}  # the run's own files, shipped as they are
DRAWN = ("[...document.querySelectorAll('.probekit-chart')].every(c => c.querySelector('.probekit-view svg.marks'))")


@pytest.fixture(scope="module")
def claims_site(tmp_path_factory, found) -> Path:  # noqa: F811
    """test_findings' hand-made run (every analysis's findings rows) built into a site."""
    return claims.built_site(claims.tables(), found, tmp_path_factory.mktemp("claims-browser"))


def pages_of(built: Path) -> list[str]:
    return sorted(p.name for p in built.glob("*.html") if p.name != "404.html")


# ---------------------------------------------------------------- downloads are data

NUMBER = r"[+\-−–]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+\-]?\d+)?%?"
GLUE = r"[\s\[\]()/,;:≤≥<>±~≈=×–—]"
DRESSED = re.compile(rf"{GLUE}*{NUMBER}(?:{GLUE}+{NUMBER})*{GLUE}*")


def formatted_numbers(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, cell) for each text column holding a number written for reading — "2,500", "0.04 [0.02,
    0.05]", "≤ 0.002", "+3 / −1", "12%" — rather than a number; a plain literal ("100", "0.5") is a name
    read back as text (a checkpoint called 100), and "3.11.7" a version."""
    found = []
    for column in frame.columns:
        if frame[column].dtype != object and not pd.api.types.is_string_dtype(frame[column]):
            continue
        for value in frame[column].dropna():
            text = str(value).strip()
            if not DRESSED.fullmatch(text):
                continue
            try:
                float(text)
            except ValueError:
                found.append((str(column), text))
                break
    return found


def test_formatted_numbers_are_told_from_numbers():
    frame = pd.DataFrame({"a": ["2,500", "x"], "b": ["0.04 [0.02, 0.05]", None], "c": ["≤ 0.002", "1"],
                          "d": ["+3 / −1", "2"], "e": ["100", "0.5"], "f": ["3.11.7", "checkpoint-8"],
                          "g": [1.5, 2.0]})
    assert [c for c, _ in formatted_numbers(frame)] == ["a", "b", "c", "d"]


def test_a_download_of_formatted_numbers_is_refused_by_name(tmp_path):
    from probekit.report.page import Page

    page = Page(tmp_path / "docs")
    shown = pd.DataFrame({"relation": ["capital"], "step": [2500], "P@1": ["0.04 [0.02, 0.05]"]})
    with pytest.raises(ValueError, match=r"data/capital-p-1-by-step\.csv: column 'P@1' holds formatted numbers"):
        page.table(shown, ("capital", "P@1", "by-step"))
    numbers = pd.DataFrame({"relation": ["capital"], "step": [2500.0], "p_at_1": [0.04], "p_at_1_low": [0.02],
                            "p_at_1_high": [0.05]})
    lines = page.table(shown, ("capital", "P@1", "by-step"), data=numbers)
    assert "data/capital-p-1-by-step-2.csv" in "".join(lines)  # readable, no hash; the refused name was taken
    written = pd.read_parquet(tmp_path / "docs" / "data" / "capital-p-1-by-step-2.parquet")
    assert pd.api.types.is_integer_dtype(written["step"]) and written["p_at_1"].dtype == float
    assert page.unique("cap/ital $x$", "heads") == "cap-ital-x-heads"
    verbatim = pd.DataFrame({"subject": ["the year"], "answer": ["1,000"], "top1": ["(1)"], "p_at_1": [0.5]})
    assert "data/year-answers.csv" in "".join(page.table(verbatim, ("year", "answers"), data=verbatim))
    with pytest.raises(ValueError, match="column 'p_at_1' holds formatted numbers"):  # a metric is checked
        page.table(verbatim, ("year", "answers"), data=verbatim.assign(p_at_1=["0.5 [0.4, 0.6]"]))


def download_problems(built: Path) -> list[str]:
    """Every download linked from every page: it parses (CSV and Parquet) and holds no formatted number."""
    problems = []
    for name in pages_of(built):
        links = sorted(set(re.findall(r'href="(data/[^"#?]+\.(?:csv|parquet))"', (built / name).read_text())))
        for link in links:
            file = built / link
            if not file.is_file():
                problems.append(f"{name}: {link} is missing")
                continue
            try:
                frame = pd.read_csv(file) if file.suffix == ".csv" else pd.read_parquet(file)
            except Exception as e:  # noqa: BLE001  (any parse failure is the finding)
                problems.append(f"{name}: {link} does not parse ({e})")
                continue
            if file.name in RUN_FILES:
                continue
            problems += [f"{name}: {link}: column {column!r} holds {cell!r}"
                         for column, cell in formatted_numbers(frame)]
            if file.suffix == ".parquet":
                problems += [f"{name}: {link}: column {c!r} (steps) is {frame[c].dtype}, not integer"
                             for c in frame.columns if c in ("step", "step_low", "step_high")
                             and frame[c].notna().any() and not pd.api.types.is_integer_dtype(frame[c])]
    return problems


@pytest.mark.slow
def test_every_download_of_the_cli_site_is_data(site):  # noqa: F811
    problems = download_problems(site)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_every_download_of_the_hand_made_site_is_data(claims_site):
    problems = download_problems(claims_site)
    assert not problems, "\n".join(problems)


def test_the_overview_ships_the_run_and_its_p_at_1_curves(site):  # noqa: F811
    html = (site / "index.html").read_text()
    for link in ("data/p_at_1-by-step.csv", "data/p_at_1-by-step.parquet", "data/manifest.json",
                 "data/findings.parquet", "data/findings.csv"):
        assert f'href="{link}"' in html and (site / link).is_file(), link
    curves = pd.read_parquet(site / "data" / "p_at_1-by-step.parquet")
    assert {"benchmark", "relation", "group", "step", "p_at_1", "p_at_1_low", "p_at_1_high", "n"} <= set(curves)
    assert pd.api.types.is_integer_dtype(curves["step"]) and curves["p_at_1"].dtype == float
    assert sorted(curves["step"].unique()) == [0, 1, 2, 4, 8]
    results = (site.parent.parent / "results").resolve()
    assert str(results) in html  # the results folder, named
    assert "Cite this run" in html and "run_id:" in html and "file_sha256:" in html and "steps: 0..8" in html


# ---------------------------------------------------------------- page weight


# ---------------------------------------------------------------- in the browser


def _line_opacities(page) -> list[tuple[str, float]]:
    """(stroke colour, opacity) of every line path of the first chart."""
    return [(s, float(o)) for s, o in page.evaluate(
        "[...document.querySelector('.probekit-chart').querySelectorAll('.mark-line path')]"
        ".map(p => [p.getAttribute('stroke'), p.getAttribute('opacity') || p.getAttribute('stroke-opacity') || '1'])")]


@pytest.mark.slow
def test_a_legend_click_fades_the_other_series(site):  # noqa: F811
    with opened((site / "benchmarks.html").as_uri()) as (page, seen):
        page.wait_for_function(DRAWN, timeout=15000)
        before = _line_opacities(page)
        symbol = page.locator(".probekit-chart").first.locator(".probekit-view .role-legend-symbol path").first
        chosen = symbol.get_attribute("fill")
        symbol.click()  # a plain click: it fails if anything lies over the legend
        page.wait_for_timeout(500)
        after = _line_opacities(page)
        page.screenshot(path=str(SCREENSHOTS / "legend-click.png"))
    assert len(before) == len(after) >= 2 and {o for _, o in before} == {1.0}
    assert {o for s, o in after if s == chosen} == {1.0}
    others = [o for s, o in after if s != chosen]
    assert others and max(others) < 0.5
    assert seen.console_errors == [] and seen.page_errors == []


def _colours(page) -> dict:
    return page.evaluate(
        "(() => { const svg = document.querySelector('.probekit-chart svg.marks');"
        " const label = svg.querySelector('.role-axis-label text');"
        " return {background: svg.style.backgroundColor, text: label.getAttribute('fill'),"
        " page: getComputedStyle(document.body).backgroundColor}; })()")


def _dark(colour: str) -> bool:
    """Whether a CSS colour (#rgb, #rrggbb, rgb()/rgba(); transparent) is dark."""
    colour = colour.strip().lower()
    if colour.startswith("#"):
        digits = colour[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        values = [int(digits[i:i + 2], 16) for i in (0, 2, 4)]
    else:
        values = [float(v) for v in re.findall(r"[\d.]+", colour)[:3]]
    return sum(values) / 3 < 128


@pytest.mark.slow
def test_charts_follow_the_palette_without_a_reload(site):  # noqa: F811
    with opened((site / "benchmarks.html").as_uri()) as (page, seen):
        page.emulate_media(color_scheme="light")
        page.wait_for_function(DRAWN, timeout=15000)
        page.evaluate("document.body.setAttribute('data-md-color-scheme', 'default')")
        page.wait_for_timeout(800)
        chart = page.locator(".probekit-chart").first
        chart.locator("button[data-scale=symlog]").click()
        page.wait_for_timeout(800)
        ticks = lambda: page.evaluate(  # noqa: E731
            "[...document.querySelector('.probekit-chart').querySelectorAll('.role-axis-label text')]"
            ".map(t => t.textContent + '@' + t.getAttribute('transform')).join(' ')")
        light, light_ticks = _colours(page), ticks()
        page.evaluate("window.probekitNoReload = 1")
        page.evaluate("document.body.setAttribute('data-md-color-scheme', 'slate')")  # what Material's toggle does
        page.wait_for_function("document.querySelector('.probekit-chart .probekit-view').dataset.theme === 'dark'",
                               timeout=10000)
        page.wait_for_timeout(300)
        dark, dark_ticks = _colours(page), ticks()
        kept = page.evaluate("window.probekitNoReload === 1")
        page.screenshot(path=str(SCREENSHOTS / "chart-dark.png"))
    assert _dark(light["text"]) and not _dark(dark["text"])  # axis labels: dark on light, light on dark
    assert light["background"] in ("white", "rgb(255, 255, 255)", "#ffffff")
    assert dark["background"] in ("transparent", "rgba(0, 0, 0, 0)", "") and _dark(dark["page"])
    assert kept and dark_ticks == light_ticks  # no reload; the step axis stayed on the log scale
    assert seen.console_errors == [] and seen.page_errors == [] and seen.outside_requests == []


@pytest.mark.slow
def test_vega_is_loaded_only_where_a_chart_is_drawn(site):  # noqa: F811
    loaded = {}
    for name in ("benchmarks.html", "changes.html", "prompt.html"):
        url = (site / name).as_uri() + ("#0" if name == "prompt.html" else "")
        with opened(url) as (page, seen):
            page.wait_for_timeout(500)
            loaded[name] = page.evaluate("typeof window.vega === 'object'")
            if name == "prompt.html":
                page.wait_for_selector(".probekit-prompt .probekit-view svg.marks", timeout=15000)
        assert seen.outside_requests == [] and seen.failed_requests == [] and seen.page_errors == []
    has_chart = "probekit-chart" in (site / "changes.html").read_text()
    assert loaded == {"benchmarks.html": True, "changes.html": has_chart, "prompt.html": True}


REVEAL = ("async () => { for (let y = 0; y < document.body.scrollHeight; y += innerHeight / 2) {"
          " scrollTo(0, y); await new Promise(r => setTimeout(r, 30)); } scrollTo(0, 0); }")
DARK_DRAWN = ("[...document.querySelectorAll('.probekit-chart .probekit-view')]"
              ".every(v => v.dataset.theme === 'dark')")


def _tour(built: Path, prefix: str) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Every page of `built` once in Chromium: the bytes of each file it loads before the reader scrolls (its
    first load: the HTML, the theme, what probekit.js injects for a chart on the first screen); then scrolled
    through, photographed light and, the palette switched in place, dark under local/screenshots/. Returns the
    first-load files per page and the errors seen."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):  # a photograph this tour misses is then missing, not stale
        for old in SCREENSHOTS.glob(f"{prefix}-*.html-{scheme}.png"):
            old.unlink()
    loads, errors = {}, []
    for name in pages_of(built):
        loaded: list[str] = []
        with opened((built / name).as_uri(), reveal=False, loaded=loaded) as (page, seen):
            page.wait_for_load_state("networkidle")  # what the first screen asked for has all arrived
            loads[f"{prefix}/{name}"] = {url: Path(unquote(urlparse(url).path)).stat().st_size
                                         for url in dict.fromkeys(loaded) if url.startswith("file://")}
            page.evaluate("document.body.setAttribute('data-md-color-scheme', 'default')")
            page.evaluate(REVEAL)
            if page.locator(".probekit-chart").count():
                page.wait_for_function(DRAWN, timeout=15000)
            page.wait_for_timeout(300)
            page.screenshot(path=str(SCREENSHOTS / f"{prefix}-{name}-light.png"), full_page=True)
            page.evaluate("document.body.setAttribute('data-md-color-scheme', 'slate')")
            page.wait_for_function(DARK_DRAWN, timeout=15000)
            page.wait_for_timeout(300)
            page.screenshot(path=str(SCREENSHOTS / f"{prefix}-{name}-dark.png"), full_page=True)
        errors += [f"{name}: {e}" for e in seen.console_errors + seen.page_errors + seen.outside_requests]
    return loads, errors


@pytest.fixture(scope="module")
def tour(site, claims_site) -> tuple[dict, list[str]]:  # noqa: F811
    loads, errors = _tour(site, "report")
    more_loads, more_errors = _tour(claims_site, "claims")
    return {**loads, **more_loads}, errors + more_errors


@pytest.mark.slow
def test_every_page_photographed_light_and_dark(tour, site, claims_site):  # noqa: F811
    assert not tour[1], tour[1]
    for prefix, built in (("report", site), ("claims", claims_site)):
        for name in pages_of(built):
            for scheme in ("light", "dark"):
                assert (SCREENSHOTS / f"{prefix}-{name}-{scheme}.png").is_file()


@pytest.mark.slow
def test_no_page_weighs_more_than_a_megabyte_on_first_load(tour, site):  # noqa: F811
    weights = {page: sum(files.values()) for page, files in tour[0].items()}
    print("\n".join(f"{page}: {size / 1e3:,.0f} kB" for page, size in weights.items()))
    heavy = {page: sorted(tour[0][page].items(), key=lambda kv: -kv[1])[:3] for page, size in weights.items()
             if size > MB}
    assert not heavy, heavy
    assert any(size > 0.5 * MB for size in weights.values())  # Vega (0.5 MB) counted where a chart is drawn
    html = (site / "changes.html").read_text()
    assert "vega.min.js" not in html  # Vega is loaded by probekit.js, on pages that draw a chart only
