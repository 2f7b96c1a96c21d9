"""Analyses: what the probe runs on each checkpoint, one module each, found by name in `REGISTRY`.

An analysis declares its name, the table it writes (a `probekit.schema.Table`: one row per …), what its
results depend on besides the checkpoint and the benchmark (`settings`, part of the cache key), and how it
runs on one checkpoint. The runner adds the checkpoint's columns, caches each result, assembles the table,
and calls `finish` once on the whole series. Adding an analysis is one module that calls `register`.
"""

from __future__ import annotations

from probekit.analyses.base import REGISTRY, Analysis, Context, register

__all__ = ["REGISTRY", "Analysis", "Context", "get", "register"]


def get(names) -> list[Analysis]:
    """The registered analyses by name, predictions first; a one-line error for an unknown name."""
    import probekit.analyses.ablation  # noqa: F401  (the built-in analyses register themselves)
    import probekit.analyses.choice  # noqa: F401
    import probekit.analyses.heads  # noqa: F401
    import probekit.analyses.lens  # noqa: F401
    import probekit.analyses.pairs  # noqa: F401
    import probekit.analyses.predictions  # noqa: F401
    from probekit.errors import ProbekitError

    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ProbekitError(f"unknown analysis {unknown[0]!r}; known: {', '.join(sorted(REGISTRY))}")
    ordered = ["predictions", *[n for n in dict.fromkeys(names) if n != "predictions"]]
    return [REGISTRY[n] for n in ordered]
