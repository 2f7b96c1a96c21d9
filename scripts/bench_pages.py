"""How fast the report's pages draw in Chromium: for every page of a built site, the seconds from opening it
until its first figure (a chart, a head view, a Q·K map) is drawn once scrolled to, against the lightest page
of the same site (prose and tables only) opened in the same run — the median of N fresh browser contexts each —
and the bytes it loaded by then (the site-wide theme and search included).

    python scripts/bench_pages.py                          # the demo's site (local/demo/site)
    python scripts/bench_pages.py path/to/site --runs 7

The aim (issue 31) is every page drawn in under 2 s on this machine. Page weight (bytes at first load) is
checked by the browser tests; the clock lives here, not in a test (a loaded machine would make it flaky).
Needs the test extra's Playwright and a Chromium (`bash scripts/install.sh test`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

FIGURE = ".probekit-chart svg, .probekit-headview svg text, .probekit-qk svg.marks"
"""What counts as drawn: a compiled chart's SVG, a bertviz head view, a Q·K map."""
HAS_FIGURE = ('class="probekit-chart"', 'class="probekit-headview"', 'class="probekit-qk"')
AIM_S = 2.0


def pages(site: Path) -> list[Path]:
    """The site's HTML pages (the built folder holding index.html), search and 404 pages left out."""
    index = next((p for p in sorted(site.rglob("index.html"), key=lambda p: len(p.parts))), None)
    if index is None:
        sys.exit(f"{site}: no index.html (build a site first: probekit report RESULTS --site DIR)")
    return sorted(p for p in index.parent.glob("*.html") if p.name != "404.html")


def has_figure(page_file: Path) -> bool:
    return any(marker in page_file.read_text() for marker in HAS_FIGURE)


def seconds_to_draw(browser, page_file: Path, figure: bool) -> tuple[float, int]:
    """Open `page_file` in a fresh context; seconds until its first figure is drawn (scrolled into view), or
    until the page's `load` event for a page without figures (`figure` False); and the bytes of the files it
    loaded by then."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    files: list[str] = []
    try:
        page = context.new_page()
        page.on("requestfinished", lambda r: files.append(r.url))
        started = time.perf_counter()
        page.goto(page_file.as_uri())
        if figure:
            first = page.locator(".probekit-chart, .probekit-headview, .probekit-qk, .probekit-steps").first
            first.scroll_into_view_if_needed()
            page.wait_for_selector(FIGURE, timeout=30_000)
        else:
            page.wait_for_load_state("load")
        seconds = time.perf_counter() - started
        local = [Path(unquote(urlparse(f).path)) for f in dict.fromkeys(files) if f.startswith("file://")]
        return seconds, sum(f.stat().st_size for f in local if f.is_file())
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default="local/demo/site", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium on PATH (bash scripts/install.sh test installs Debian's)")
    found = pages(args.site)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        figures = {f: has_figure(f) for f in found}
        runs = {f.name: [seconds_to_draw(browser, f, figures[f]) for _ in range(args.runs)] for f in found}
        browser.close()
    medians = {name: statistics.median(s for s, _ in measured) for name, measured in runs.items()}
    weight = {name: max(b for _, b in measured) for name, measured in runs.items()}
    plain = [f for f in found if not figures[f]]
    base_name = min(plain, key=lambda f: f.stat().st_size).name if plain else None
    base = medians[base_name] if base_name else None
    print(f"{len(found)} pages of {args.site}, median of {args.runs} fresh contexts each"
          + (f"; baseline: {base_name} (no figure) {base:.2f} s" if base else ""))
    for name, median in sorted(medians.items(), key=lambda kv: -kv[1]):
        ratio = f"{median / base:5.1f}× the baseline" if base else ""
        verdict = "met" if median < AIM_S else "MISSED"
        print(f"  {name:<28} {median:6.2f} s  {ratio}  (aim < {AIM_S:.0f} s: {verdict})  "
              f"{weight[name] / 1e3:6,.0f} kB loaded by then")
    slowest = max(medians.values())
    print(f"slowest {slowest:.2f} s: aim < {AIM_S:.0f} s {'met' if slowest < AIM_S else 'missed'}")


if __name__ == "__main__":
    main()
