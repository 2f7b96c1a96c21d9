"""MkDocs hook: the "Results format" page, written at build time from `probekit.schema`.

The page is generated rather than committed so that it can never disagree with the schema the code reads
and writes.
"""

from __future__ import annotations

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PAGE = "results-format.md"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add results-format.md, its text from `probekit.schema.reference_markdown()`."""
    from probekit.schema import reference_markdown

    files.append(File.generated(config, PAGE, content=reference_markdown()))
    return files
