"""MkDocs hook: the "Results format" page, written at build time from the registered analyses' tables.

The page is generated rather than committed so that it can never disagree with the schema the code reads
and writes: every table of every registered analysis (built-in, or of an installed package) is on it.
"""

from __future__ import annotations

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PAGE = "results-format.md"


def page() -> str:
    """The page's Markdown: `probekit.core.schema.reference_markdown()` once every analysis has registered."""
    from probekit.analyses import load_builtins
    from probekit.core.schema import reference_markdown

    load_builtins()
    return reference_markdown()


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add results-format.md."""
    files.append(File.generated(config, PAGE, content=page()))
    return files
