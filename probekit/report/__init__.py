"""`probekit report`: a MkDocs site (Material theme) of a results folder, built with `mkdocs build --strict`.

Reads only what `probekit probe` wrote — tables, captured arrays, the manifest — so it reruns in seconds
without models. Every user string (prompts, answers, tokens, relation, benchmark and checkpoint names) is
escaped before it reaches a page and slugged before it reaches a file name or a link target.

The modules: `site` builds (the sections of the run's analyses, the Overview, staging, the strict build, the
swap, serving); `page` is what a section writes into; `sections` holds the built-in analyses' sections, which
draw their pages in `overview`, `benchmarks`, `prompts`, `changes`, `inside`, `attention` and `grammar`, from
`plots` (static figures), `charts` (interactive ones), `findings` (words) and `markdown` (escaping).
"""

from __future__ import annotations

from probekit.report.markdown import esc, slug
from probekit.report.page import Page
from probekit.report.site import build_report

__all__ = ["Page", "build_report", "esc", "slug"]
