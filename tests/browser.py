"""Open pages in headless Chromium (Debian's package) the way a person would, and report what happened.

One Chromium serves every page of a test module (each page in a fresh browser context: no storage, cache or
handlers shared between pages); conftest closes it when the module ends. Starting Chromium takes about a
second, and the report's pages are opened some thirty times. Playwright's sync API marks its asyncio loop
as running in this thread while it is open: code that runs its own loop (a notebook client) calls
`close_shared()` first.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Visit:
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    svg_elements: int = 0
    dialogs: list[str] = field(default_factory=list)
    globals_set: list[str] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)   # elements with an on* handler, or an <img src=x>


LOCAL = ("file://", "data:", "about:", "blob:")
SETTLED = ("[...document.querySelectorAll('.probekit-chart')].every(c => c.querySelector('.probekit-view svg.marks')"
           " || c.textContent.includes('chart failed'))")
"""A page's charts have all been drawn or have said why not (JavaScript for `page.wait_for_function`)."""


@contextmanager
def opened(url: str, width: int = 1300, height: int = 900, reveal: bool = True,
           loaded: list | None = None) -> Iterator[tuple[object, Visit]]:
    """A Playwright page at `url` (loaded, scripts given time to run) and what it has reported so far:
    console errors, page errors, requests leaving file://, failed requests, dialogs. With `reveal`, the page is
    scrolled through once (charts and head views are drawn when they come near the screen) and back to the top;
    `loaded` collects the URL of every request that finished (what the page loaded)."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does this)")
    seen = Visit()
    context = _browser().new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: seen.page_errors.append(str(e)))
        page.on("request", lambda r: seen.outside_requests.append(r.url) if not r.url.startswith(LOCAL) else None)
        page.on("requestfailed", lambda r: seen.failed_requests.append(r.url))
        page.on("dialog", lambda d: (seen.dialogs.append(d.message), d.dismiss()))
        if loaded is not None:
            page.on("requestfinished", lambda r: loaded.append(r.url))
        page.goto(url)
        page.wait_for_load_state("load")
        page.wait_for_timeout(800)
        if reveal:
            page.evaluate("async () => { for (let y = 0; y < document.body.scrollHeight; y += innerHeight / 2) {"
                          " scrollTo(0, y); await new Promise(r => setTimeout(r, 30)); } scrollTo(0, 0); }")
            page.wait_for_timeout(300)
        yield page, seen
    finally:
        context.close()


_shared: dict = {}


def _browser():
    """The module's Chromium, started on first use (or again if it has gone)."""
    browser = _shared.get("browser")
    if browser is not None and browser.is_connected():
        return browser
    close_shared()
    from playwright.sync_api import sync_playwright

    _shared["playwright"] = playwright = sync_playwright().start()
    _shared["browser"] = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])
    return _shared["browser"]


def close_shared() -> None:
    """Close the shared Chromium and stop Playwright (nothing when none was started)."""
    browser, playwright = _shared.pop("browser", None), _shared.pop("playwright", None)
    try:
        if browser is not None and browser.is_connected():
            browser.close()
    finally:
        if playwright is not None:
            playwright.stop()


def visit(url: str, screenshot: Path | None = None, svg_selector: str = "svg *") -> Visit:
    """Load `url`, wait for scripts, and collect errors, requests leaving file://, broken images, SVG size."""
    with opened(url) as (page, seen):
        seen.broken_images = page.evaluate(
            "[...document.images].filter(i => i.loading !== 'lazy' && (!i.complete || i.naturalWidth === 0))"
            ".map(i => i.src)")
        seen.svg_elements = page.evaluate(f"document.querySelectorAll({svg_selector!r}).length")
        seen.globals_set = page.evaluate("['pwned'].filter(k => k in window)")
        seen.injected = page.evaluate(
            "[...document.querySelectorAll('*')].filter(e => e.matches('img[src=x]') ||"
            " [...e.attributes].some(a => a.name.startsWith('on'))).map(e => e.outerHTML.slice(0, 120))")
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    return seen
