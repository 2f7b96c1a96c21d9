"""`Page`: what a report section writes into — Markdown pages, their figures, interactive charts and tables.

A section adds lines to a page by its file name (`page.add("mine.md", "# Mine", "", …)`); every page that
received lines is written when all sections have run, so two sections can share one page. A page's place in
the navigation, its title and whether it shows a table of contents are set with `configure`; without a
title the site names it after its analysis's `report_title` or its first heading. Every figure, chart and
table goes through here: user strings are escaped, file names slugged, tables downloadable.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from probekit.report import charts
from probekit.report.markdown import esc, slug
from probekit.views import LIBRARIES, library_source

ASSETS = Path(__file__).parent / "assets"
OVERVIEW = "index.md"


@dataclass
class PageInfo:
    """How one page is shown: its nav title (None: from the analysis or the page), whether its table of
    contents is hidden, whether it is in the nav, and the analysis whose section added it first."""

    title: str | None = None
    hide_toc: bool = False
    nav: bool = True
    analysis: str | None = None


class Page:
    """The pages of one site with their figures (PNG for the page, SVG for papers), interactive charts and
    tables (each downloadable as CSV and Parquet), and the Overview's findings."""

    def __init__(self, docs: Path):
        self.docs = docs
        for folder in ("figures", "data", "assets"):
            (docs / folder).mkdir(parents=True, exist_ok=True)
        self.parts: dict[str, list[str]] = {}
        self.info: dict[str, PageInfo] = {}
        self.findings: list[str] = []
        self.names: set[str] = set()
        self.analysis: str | None = None
        """The analysis whose section is running (set by the site build)."""

    def add(self, page: str, *lines: str) -> None:
        """Append `lines` (Markdown) to `page` (a file name such as "mine.md"), making the page if new."""
        self._check(page)
        self.parts.setdefault(page, []).extend(lines)
        self.info.setdefault(page, PageInfo(analysis=self.analysis))

    def configure(self, page: str, title: str | None = None, hide_toc: bool | None = None,
                  nav: bool | None = None) -> None:
        """Set `page`'s nav title, whether its table of contents is hidden, whether it is in the nav."""
        self._check(page)
        info = self.info.setdefault(page, PageInfo(analysis=self.analysis))
        self.parts.setdefault(page, [])
        if title is not None:
            info.title = title
        if hide_toc is not None:
            info.hide_toc = hide_toc
        if nav is not None:
            info.nav = nav

    def _check(self, page: str) -> None:
        if not page.endswith(".md") or slug(page) != page or page.startswith("."):
            raise ValueError(f"a page is a lower-case file name ending in .md ([a-z0-9._-]), not {page!r}")
        if page == OVERVIEW and self.analysis is not None:
            raise ValueError(f"{OVERVIEW} is the report's own Overview: a section states its finding there "
                             "with page.finding(...)")

    def finding(self, *lines: str) -> None:
        """Markdown bullets for the Overview's first screen, where each analysis states what it found (a line
        that is not a bullet is made one, so that no finding runs into the one before)."""
        self.findings.extend(line if line.lstrip().startswith(("- ", "* ")) else f"- {line}" for line in lines)

    def unique(self, *name) -> str:
        """A readable file stem from the parts of `name` ([a-z0-9._-], no hash: ("capital", "P@1") →
        "capital-p-1"), unique within the site (a second "capital-p-1" is "capital-p-1-2")."""
        stem = base = readable(*name)
        for n in range(2, 10_000):
            if stem not in self.names:
                break
            stem = f"{base}-{n}"
        self.names.add(stem)
        return stem

    def figure(self, page: str, name: tuple, fig, caption: str, svg: bool = True) -> list[str]:
        """Save `fig` (PNG, and SVG for papers) and add it to `page`: full column width, click to enlarge."""
        stem = self.unique(*name)
        for suffix in ("png", "svg") if svg else ("png",):
            fig.savefig(self.docs / "figures" / f"{stem}.{suffix}", dpi=100, bbox_inches="tight")
        lines = [f"![{esc(caption)}](figures/{stem}.png)", "",
                 f"*{esc(caption)}* (click to enlarge)" + (f" — [SVG for papers](figures/{stem}.svg)" if svg else ""),
                 ""]
        self.add(page, *lines)
        return lines

    def chart(self, page: str, name: tuple, chart, caption: str, step_axis: bool = True,
              data: pd.DataFrame | None = None) -> None:
        """An interactive Vega-Lite chart (drawn offline by assets/probekit.js) with its caption; with `data`,
        the numbers it draws (integer steps, float values, `low`/`high`) downloadable below it as CSV and
        Parquet named after `name` (("capital", "p_at_1", "by-step") → capital-p_at_1-by-step.csv)."""
        self.add(page, charts.spec_html(chart, "chart-" + self.unique("chart", *name), self.docs, step_axis), "",
                 f"*{esc(caption)}*", "")
        if data is not None:
            self.add(page, *self.downloads(data, self.unique(*name), what="the numbers of this chart"))

    def table(self, frame: pd.DataFrame, name: tuple | None = None, raw: tuple[str, ...] = (),
              data: pd.DataFrame | None = None) -> list[str]:
        """`frame` as a Markdown table, its cells escaped (except columns in `raw`, already-safe markup), and
        a download line: `data` (the numbers the table shows, unformatted; `frame` itself when it holds no
        formatted cell) as CSV and Parquet under data/, named after `name`."""
        stem = self.unique(*(name or ("table", len(self.names))))
        return [*table(frame, raw), *self.downloads(frame if data is None else data, stem)]

    def downloads(self, frame: pd.DataFrame, stem: str, what: str = "this table") -> list[str]:
        """Write `frame` as data/`stem`.csv and .parquet; the line that links them. A download is data: a
        column of formatted numbers ("2,500", "0.04 [0.02, 0.05]", "≤ 0.002") is refused (`numeric_check`),
        and whole-number steps are written as integers."""
        plain = frame.copy()
        plain.columns = [str(c) for c in plain.columns]
        numeric_check(plain, f"data/{stem}.csv")
        plain = integer_steps(plain)
        plain.to_csv(self.docs / "data" / f"{stem}.csv", index=False)
        _parquet_safe(plain).to_parquet(self.docs / "data" / f"{stem}.parquet", index=False)
        return [f'<p class="downloads" markdown="1">Download {what}: [CSV](data/{stem}.csv) · '
                f"[Parquet](data/{stem}.parquet)</p>", ""]

    def take(self, page: str, make) -> list[str]:
        """Run `make` (which adds lines to `page`) and return those lines, removed from the page."""
        before = len(self.parts.get(page, []))
        make()
        added = self.parts[page][before:]
        del self.parts[page][before:]
        return added

    def write(self) -> list[str]:
        """Write every page that has lines; returns their file names in the order they were first added."""
        written = []
        for name, lines in self.parts.items():
            if not any(line.strip() for line in lines):
                continue
            front = ["---", "hide:", "  - toc", "---", ""] if self.info[name].hide_toc else []
            (self.docs / name).write_text("\n".join([*front, *lines]) + "\n", encoding="utf-8")
            written.append(name)
        return written

    def heading(self, page: str) -> str | None:
        """The text of `page`'s first level-1 heading, if it has one."""
        for line in self.parts.get(page, []):
            if line.startswith("# "):
                return line[2:].strip()
        return None

    def copy_assets(self) -> None:
        """probekit.js/css and the vendored Vega libraries (with their licenses); jQuery and d3 for bertviz."""
        shutil.copytree(ASSETS, self.docs / "assets", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("README.md"))
        for name in LIBRARIES:
            (self.docs / "assets" / f"{name}.js").write_text(library_source(name), encoding="utf-8")


_NUMBER = r"[+\-−–]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+\-]?\d+)?%?"
_JOIN = r"[\s\[\]()/,;:≤≥<>±~≈=×–—]"
FORMATTED = re.compile(rf"{_JOIN}*{_NUMBER}(?:{_JOIN}+{_NUMBER})*{_JOIN}*")
"""A cell that is numbers dressed for reading: thousands separators, intervals, bounds, signs, per cents."""


def formatted_number(value) -> bool:
    """Whether `value` is a number written for reading rather than a number: a string made of numbers
    ("2,500", "0.04 [0.02, 0.05]", "≤ 0.002", "+3 / −1", "12%") that is not a plain number literal ("100",
    "0.5", "1e-3": a name such as checkpoint "100" stays allowed). Version strings ("3.11.7") are not numbers."""
    if not isinstance(value, str) or not FORMATTED.fullmatch(value.strip()):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


VERBATIM = frozenset({"answer", "subject", "template", "prompt", "sentence", "word", "good", "bad", "top1",
                      "top-1 before", "top-1 after", "relation", "paradigm", "checkpoint", "item", "line"})
"""Columns of text copied from the user's inputs or the model's predictions: an answer may be "1,000" or a
predicted piece "(1)", and that is data, not a number dressed for reading, so `numeric_check` reads past them."""


def numeric_check(frame: pd.DataFrame, file: str = "a download") -> None:
    """Refuse a download whose text column holds formatted numbers: downloads are data (numbers as numbers,
    intervals as `low`/`high` columns), the page's table shows them formatted. ValueError names the file,
    the column and an offending cell. Columns of verbatim text (`VERBATIM`) are not checked."""
    for column in frame.columns:
        values = frame[column]
        if column in VERBATIM:
            continue
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        bad = next((v for v in values if formatted_number(v)), None)
        if bad is not None:
            raise ValueError(f"{file}: column {column!r} holds formatted numbers (such as {bad!r}); a download "
                             "is data: pass the unformatted numbers as `data=` (integer steps, float values, "
                             "intervals as low/high columns)")


STEP_COLUMNS = re.compile(r"(?:.*_)?step(?:s)?(?:_(?:low|high|from|to))?|from|first_(?:correct|cleared)|arrived_(?:after|by)")


def integer_steps(frame: pd.DataFrame) -> pd.DataFrame:
    """Step columns (step, step_low, first_correct, …) holding whole numbers as floats made integers (Int64,
    missing kept)."""
    out = frame
    for column in frame.columns:
        values = frame[column]
        if STEP_COLUMNS.fullmatch(str(column)) and pd.api.types.is_float_dtype(values):
            present = values.dropna()
            if (present == present.round()).all():
                out = out.assign(**{column: values.astype("Int64")})
    return out


def readable(*parts) -> str:
    """A file stem for `parts`: lower case, runs of other characters than [a-z0-9._] made one "-"."""
    raw = "-".join(str(p) for p in parts)
    text = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9._-]+", "-", raw.lower()))
    return text.strip("-._")[:80].rstrip("-._") or "x"


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of mixed Python objects as text, so any shown table can be written as Parquet."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return out


def table(frame: pd.DataFrame, raw: tuple[str, ...] = ()) -> list[str]:
    """`frame` as a Markdown table; every cell escaped except those of the columns in `raw`."""
    head = "| " + " | ".join(esc(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    cells = lambda column, v: "" if _missing(v) else (str(v) if column in raw else esc(v))  # noqa: E731
    rows = ["| " + " | ".join(cells(c, v) for c, v in zip(frame.columns, row)) + " |"
            for row in frame.itertuples(index=False)]
    return [head, rule, *rows, ""]


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def slider(panes: list[tuple[str, str]], what: str = "checkpoint") -> list[str]:
    """Markdown for panes (an escaped label, the pane's HTML) shown one at a time behind the report's step
    slider (assets/probekit.js `sliders()`), the last one first; nothing when there is no pane."""
    if not panes:
        return []
    body = "".join(f'<div class="probekit-step" data-label="{label}">{html}</div>' for label, html in panes)
    last = len(panes) - 1
    return [f'<div class="probekit-steps" markdown="0"><label>{what} <input type="range" min="0" max="{last}" '
            f'value="{last}" step="1" aria-label="{what}"></label><span class="probekit-step-label"></span>'
            f'{body}</div>', ""]


def figure_link(stem: str, alt: str, caption: str = "") -> str:
    """A figure's PNG under figures/, clicked to enlarge, with its caption below when given."""
    return (f'<p><a class="glightbox" href="figures/{stem}.png"><img src="figures/{stem}.png" alt="{alt}" '
            f'loading="lazy"></a></p>' + (f"<p><em>{caption}</em> (click to enlarge)</p>" if caption else ""))


def collapsible(kind: str, title: str, lines: list[str], open_: bool = False) -> list[str]:
    """A Material collapsible admonition (`??? note "title"`) around `lines`."""
    marker = "???+" if open_ else "???"
    return [f'{marker} {kind} "{title}"', "", *(f"    {line}" if line else "" for line in lines), ""]
