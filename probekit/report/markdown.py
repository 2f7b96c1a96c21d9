"""User data made safe for the report's Markdown pages and file names."""

from __future__ import annotations

import hashlib
import html
import re

MARKDOWN_SYNTAX = str.maketrans({"|": "&#124;", "[": "&#91;", "]": "&#93;", "{": "&#123;", "}": "&#125;",
                                  "*": "&#42;", "_": "&#95;", "`": "&#96;", "\\": "&#92;",
                                  "\n": " ", "\r": " "})


def esc(value) -> str:
    """User data as inert text in Markdown and HTML, on one line: HTML-escaped, and every character that
    Markdown or its extensions read as syntax (tables, links, attribute lists, emphasis) made an entity."""
    return html.escape(str(value)).translate(MARKDOWN_SYNTAX)


def slug(*parts) -> str:
    """A safe file name stem for user strings: [a-z0-9._-] only, plus a hash of the original when it changed
    (so `a/b` and `a_b` never share a file)."""
    raw = "-".join(str(p) for p in parts)
    text = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._")[:60]
    if text != raw:
        text = f"{text or 'x'}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
    return text
