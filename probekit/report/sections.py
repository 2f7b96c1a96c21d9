"""The built-in analyses' report sections, each named in its analysis's spec (`report = "probekit.report.
sections:NAME"`) and called by the site build as `section(page, tables, results)`.

A section adds to pages through `page` (`probekit.report.page.Page`), states its finding on the Overview with
`page.finding`, and adds nothing when its tables are missing or empty. The pages themselves are made in the
modules named below; a user analysis writes its section the same way, in its own module.
"""

from __future__ import annotations

from pathlib import Path

from probekit.report import attention, benchmarks, changes, choices, findings, grammar, inside, prompts
from probekit.report.page import Page


def predictions(page: Page, tables: dict, results: Path) -> None:
    """Benchmarks, Prompts (and each prompt's page) and What changed; per relation the finding."""
    page.finding(*findings.relation_findings(tables))
    benchmarks.benchmarks(page, tables)
    prompts.prompt_pages(page, tables)
    changes.changes(page, tables, results)


def lens(page: Page, tables: dict, results: Path) -> None:
    """The logit lens's part of the Logit lens & ablation page (from `lens_scores`)."""
    inside.lens(page, tables)


def ablation(page: Page, tables: dict, results: Path) -> None:
    """The head ablation's part of the Logit lens & ablation page."""
    inside.ablation(page, tables)


def capture(page: Page, tables: dict, results: Path) -> None:
    """The Attention and Q/K/V pages, from the head metrics and the captures kept under `results`."""
    attention.capture_pages(page, tables, results)


def pairs(page: Page, tables: dict, results: Path) -> None:
    """The Grammar page and, per minimal-pair benchmark, the finding."""
    page.finding(*grammar.findings(tables))
    grammar.grammar(page, tables)


def choice(page: Page, tables: dict, results: Path) -> None:
    """The Choices page: prompts with foils scored as a choice, against chance."""
    choices.choices(page, tables)
