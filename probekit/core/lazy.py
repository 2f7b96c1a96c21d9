"""Modules imported on first use, so that `probekit --help` and `probekit probe --help` — which read every
analysis's spec to make their flags — start without pandas, numpy or torch (SPEC 1's lazy loading).

    pd = lazy.module("pandas")   # `pd.DataFrame` imports pandas the first time it is read
"""

from __future__ import annotations

import importlib
from types import ModuleType


class _Module:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def module(name: str) -> ModuleType:
    """A stand-in for module `name` that imports it when one of its attributes is first read."""
    return _Module(name)  # type: ignore[return-value]
