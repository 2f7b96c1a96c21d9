"""MkDocs hook: the example notebooks rendered with their outputs, when executed copies are at hand.

The notebooks are committed without outputs (a run's figures belong to that run, not to the repository).
`scripts/docs.py` executes them on a results folder (the demo's by default) into a folder named by the
environment variable PROBEKIT_EXECUTED_NOTEBOOKS; this hook then builds the docs from those executed copies,
so the site shows every curve, heatmap and head view. Without the variable the stripped notebooks are shown.
"""

from __future__ import annotations

import os
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files

VARIABLE = "PROBEKIT_EXECUTED_NOTEBOOKS"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Swap each committed notebook for its executed copy in $PROBEKIT_EXECUTED_NOTEBOOKS (the same file name)."""
    folder = os.environ.get(VARIABLE)
    if not folder:
        return files
    executed = Path(folder)
    if not executed.is_dir():
        raise PluginError(f"{executed}: no such folder (${VARIABLE} names the executed notebooks)")
    for file in files:
        copy = executed / file.src_uri
        if file.src_uri.endswith(".ipynb") and copy.is_file():
            file.abs_src_path = str(copy)  # mkdocs-jupyter reads the notebook from here
    return files
