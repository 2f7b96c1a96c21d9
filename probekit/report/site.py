"""The site build: sections of the registered analyses into a MkDocs site, staged, built strict, swapped in.

Every analysis the results' manifest names whose spec has a `report` gets its section called, in the order
the run listed them, as `section(page, tables, results)`: `page` is the `probekit.report.page.Page` it adds
pages to, `tables` the run's tables by name (and "manifest": the run's manifest), `results` the results
folder (for files an analysis kept there, such as captures). The Overview is the report's own and comes
first, written after the sections so that it can open with what each of them found (`page.finding`).

The site folder is probekit's only if it holds the `.probekit-site` marker: the site is built in a staging
folder inside it and swapped in only after `mkdocs build --strict` succeeded, so a failed build leaves the
previous site as it was and nothing probekit did not write is ever deleted.
"""

from __future__ import annotations

import html
import importlib
import inspect
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from probekit.core.errors import ProbekitError
from probekit.core.log import logger
from probekit.report.overview import overview
from probekit.report.page import OVERVIEW, Page
from probekit.running.results import ProbeResult

MARKER = ".probekit-site"
SITE_ENTRIES = (MARKER, "mkdocs.yml", "docs", "build")  # all probekit writes into a site folder, marker first
STAGING = ".probekit-staging-"

Section = Callable[[Page, dict, Path], None]


def build_report(results: str | Path, site: str | Path = "local/site", serve: bool = False,
                 port: int = 8000) -> Path:
    """Build the MkDocs site of `results` into `site/build` and return its index.html; `serve` then serves it
    on 127.0.0.1:`port` until probekit is stopped.

    `site` must be new, empty, or a site folder probekit made (it holds `.probekit-site`); only the entries
    probekit writes there (SITE_ENTRIES) are replaced, and only after the build succeeded.
    """
    results, site = Path(results), Path(site)
    registry = _registry()
    probed = ProbeResult.load(results)  # names are strings in the schema: folders named 100 stay "100"
    _check_site(site)
    tables = {**probed.tables, "findings": probed.findings, "manifest": probed.manifest}
    staging = _staging_folder(site)
    try:
        page = Page(staging / "docs")
        for name, section in sections(probed.manifest, registry):
            page.analysis = name
            section(page, tables, results)
        page.analysis = None
        overview(page, tables, results)
        page.copy_assets()
        nav, hidden = navigation(page, page.write(), registry)
        (staging / "mkdocs.yml").write_text(yaml.safe_dump(_mkdocs_config(
            nav, hidden, figures=any((staging / "docs" / "figures").glob("*.png"))), sort_keys=False))
        proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f",
                               str(staging / "mkdocs.yml"), "-d", str((staging / "build").resolve())],
                              capture_output=True, text=True)
        if proc.returncode:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
            raise ProbekitError(f"{site / 'mkdocs.yml'}: mkdocs build --strict failed: {lines[-1]}")
        (staging / MARKER).write_text(json.dumps({"made_by": "probekit report", "results": str(results)}) + "\n")
        _swap_in(staging, site)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    index = site / "build" / "index.html"
    logger.info(f"site: {index.resolve()}")
    if serve:
        _serve(site / "mkdocs.yml", port)
    return index


def _registry() -> dict:
    """The registered analyses, built-in ones (and those installed through entry points) loaded."""
    import probekit.analyses as analyses

    load = getattr(analyses, "load_builtins", None)
    if load is not None:
        load()
    else:  # until `load_builtins` exists, looking any analysis up registers the built-in ones
        analyses.get([])
    return analyses.REGISTRY


def sections(manifest: dict, registry: dict) -> list[tuple[str, Section]]:
    """(analysis name, its report section) for each analysis of the run that has one, in the run's order.

    An analysis the results name but this installation does not know (a user analysis not installed here)
    is said and left out; a `report` that does not resolve is a one-line error naming the analysis.
    """
    found = []
    for name in dict.fromkeys(manifest.get("analyses", [])):
        analysis = registry.get(name)
        if analysis is None:
            logger.warning(f"the results hold analysis {name!r}, which is not installed here: "
                           "its report section is left out")
            continue
        if analysis.report:
            found.append((name, resolve(analysis)))
    return found


def resolve(analysis) -> Section:
    """An analysis's `report`: a function as it is (also when set in the class body, where Python binds it
    to the analysis: it is called without the analysis), or "package.module:function" imported."""
    name, report = analysis.name, analysis.report
    if inspect.ismethod(report) and report.__self__ is analysis:
        return report.__func__
    if callable(report):
        return report
    module, _, function = str(report).partition(":")
    if not module or not function:
        raise ProbekitError(f"analysis {name!r}: report {report!r} is not 'module:function'")
    try:
        found = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as e:
        raise ProbekitError(f"analysis {name!r}: its report section {report!r} cannot be loaded ({e})") from None
    if not callable(found):
        raise ProbekitError(f"analysis {name!r}: its report section {report!r} is not a function")
    return found


#: the sidebar in the order of the story: when was it learned, where in the model, did it learn syntax, then
#: the details; a page not named here (a user analysis's) follows them, in the order its section added it
STORY = (("When", ("benchmarks.md", "grammar.md", "choices.md", "timeline.md")),
         ("Where", ("tracing.md", "inside.md", "attention.md", "qkv.md")),
         ("Syntax", ("syntax.md", "syntax-probes.md")),
         ("Details", ("prompts.md", "changes.md")))


def navigation(page: Page, written: list[str], registry: dict) -> tuple[list[dict], list[str]]:
    """The nav — the Overview first, then the built-in pages grouped by the question they answer (`STORY`),
    then any other page in the order its section added it — and the pages left out of it. A page's title: the
    one its section set (`page.configure`), else the `report_title` of the analysis that added it (for that
    analysis's first page), else its first heading, else its file name."""
    items, hidden, named = {}, [], set()
    for name in written:
        info = page.info[name]
        if not info.nav:
            hidden.append(name)
            continue
        title = "Overview" if name == OVERVIEW else info.title
        analysis = registry.get(info.analysis) if info.analysis else None
        if title is None and analysis is not None and analysis.report_title and info.analysis not in named:
            title = analysis.report_title
        named.add(info.analysis)
        title = title or page.heading(name) or Path(name).stem.replace("-", " ").replace("_", " ")
        items[name] = {html.escape(title, quote=False): name}
    nav = [items.pop(OVERVIEW)] if OVERVIEW in items else []
    for question, pages in STORY:
        found = [items.pop(name) for name in pages if name in items]
        if found:
            nav.append({question: found})
    return nav + list(items.values()), hidden


def _check_site(site: Path) -> None:
    """Refuse a `--site` folder that holds anything probekit did not make (no marker)."""
    if site.exists() and not site.is_dir():
        raise ProbekitError(f"{site}: not a folder; --site needs a new, empty, or probekit-made folder")
    if site.is_dir() and not (site / MARKER).is_file():
        if any(not p.name.startswith(STAGING) for p in site.iterdir()):
            raise ProbekitError(f"{site}: not made by probekit (no {MARKER}) and not empty; "
                                "choose a new or empty folder for --site")


def _staging_folder(site: Path) -> Path:
    """A fresh folder inside `site` (same file system, so the swap is a rename)."""
    try:
        site.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=STAGING, dir=site))
    except OSError as e:
        raise ProbekitError(f"{site}: cannot write the site here ({e.strerror})") from None


def _swap_in(staging: Path, site: Path) -> None:
    """Replace probekit's entries of `site` by the staged ones; the old ones go to the staging folder's bin."""
    old = staging / ".old"
    old.mkdir()
    for entry in SITE_ENTRIES:
        if (site / entry).exists() or (site / entry).is_symlink():
            (site / entry).rename(old / entry)
        (staging / entry).rename(site / entry)


def _serve(config: Path, port: int) -> None:
    """`mkdocs serve` as a child that never outlives this call: it is terminated on SIGTERM, SIGINT or any exit."""
    logger.info(f"serving on http://127.0.0.1:{port}/ (Ctrl-C stops it)")
    child = subprocess.Popen([sys.executable, "-m", "mkdocs", "serve", "-f", str(config),
                              "-a", f"127.0.0.1:{port}"])
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        code = child.wait()
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code:
        raise ProbekitError(f"{config}: mkdocs serve stopped with exit status {code} (is port {port} in use?)")


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def _mkdocs_config(nav: list[dict], not_in_nav: list[str], figures: bool = True) -> dict:
    """Material with search that works from file:// (offline plugin), click-to-enlarge figures (glightbox, 70 kB
    on every page: only when a section drew a static figure), a light/dark toggle that starts from the system's
    choice, and probekit's charts and tables."""
    toggle = lambda icon, name: {"icon": f"material/{icon}", "name": name}  # noqa: E731
    config = {
        "site_name": "probekit results",
        "use_directory_urls": False,  # the built site also works opened from disk
        "theme": {"name": "material", "font": False, "features": ["content.code.copy", "search.highlight"],
                  "palette": [
                      {"media": "(prefers-color-scheme)", "toggle": toggle("brightness-auto", "Switch to light mode")},
                      {"media": "(prefers-color-scheme: light)", "scheme": "default",
                       "toggle": toggle("brightness-7", "Switch to dark mode")},
                      {"media": "(prefers-color-scheme: dark)", "scheme": "slate",
                       "toggle": toggle("brightness-4", "Switch to system preference")}]},
        "plugins": ["search", "offline"] + ([{"glightbox": {"zoomable": True, "skip_classes": ["no-lightbox"]}}]
                                            if figures else []),
        "markdown_extensions": ["tables", "attr_list", "md_in_html", "admonition", "pymdownx.details"],
        "extra_css": ["assets/probekit.css"],
        "extra": {"polyfills": ["assets/iframe-worker/shim.js"]},  # the offline plugin's search shim, shipped
        "extra_javascript": ["assets/probekit.js"],  # it loads assets/vega/vega.min.js (0.5 MB) where a chart is
        "nav": nav,
    }
    if not_in_nav:
        config["not_in_nav"] = "\n".join(f"/{name}" for name in not_in_nav)
    return config
