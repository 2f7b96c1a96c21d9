"""Analyses: what the probe runs on each checkpoint, one module each, found by name in `REGISTRY`.

Each module holds one spec (`probekit.analyses.base.Analysis`): options, input kind, tables and summaries,
version, cost, report section. `load_builtins()` registers the built-in ones and those that installed
packages offer under the entry-point group `probekit.analyses` (an entry point names a module that calls
`register`, or an `Analysis` class or instance); the CLI, the results format, the runner, the shards and the
report all read the registry, so a user analysis needs no change to probekit. See docs/analyses.md.
"""

from __future__ import annotations

import importlib

from probekit.analyses.base import REGISTRY, Analysis, Context, Options, Shape, option, register, registering_for
from probekit.core.errors import ProbekitError

__all__ = ["REGISTRY", "Analysis", "Context", "Options", "Shape", "chosen", "get", "load_builtins", "option",
           "register"]

BUILTINS = ("predictions", "lens", "ablation", "heads", "pairs", "choice", "tracing", "syntax_heads", "probes")
"""The built-in analysis modules, in the order their tables are listed."""
KIND_MODULES = ("probekit.benchmarks", "probekit.benchmarks.pairs", "probekit.benchmarks.sentences",
                "probekit.benchmarks.treebank")
"""The modules that register the built-in input kinds."""
ENTRY_POINTS = "probekit.analyses"
_loaded = False


def load_builtins() -> dict[str, Analysis]:
    """Register the built-in analyses and input kinds, then every entry point of group `probekit.analyses`
    (once per process); returns the registry."""
    global _loaded
    if not _loaded:
        _loaded = True
        from probekit import DISTRIBUTION

        with registering_for(f"{DISTRIBUTION} (built-in)"):
            for module in (*KIND_MODULES, *(f"probekit.analyses.{name}" for name in BUILTINS)):
                importlib.import_module(module)
        for entry in _entry_points():
            _register_entry(entry)
    return REGISTRY


def _entry_points() -> list:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name)


def _register_entry(entry) -> None:
    from probekit.core.log import logger

    dist = getattr(entry, "dist", None)
    origin = f"{dist.name} {dist.version}" if dist is not None else f"entry point {entry.name} = {entry.value}"
    try:
        with registering_for(origin):
            loaded = entry.load()
            if isinstance(loaded, Analysis) or (isinstance(loaded, type) and issubclass(loaded, Analysis)):
                register(loaded)
    except ProbekitError as exc:  # a name clash (`register`): the analysis already registered stays
        logger.warning(str(exc))
    except Exception as exc:  # a broken plug-in must not take the built-in analyses down with it
        first = str(exc).splitlines()[0] if str(exc) else ""
        logger.warning(f"analysis entry point {entry.name!r} ({entry.value}) of {origin} not loaded: "
                       f"{exc.__class__.__name__}: {first}")


def get(names) -> list[Analysis]:
    """The registered analyses by name, in the order given; a one-line error for an unknown name."""
    from probekit.core.errors import ProbekitError

    load_builtins()
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ProbekitError(f"unknown analysis {unknown[0]!r}; known: {', '.join(sorted(REGISTRY))}")
    return [REGISTRY[n] for n in dict.fromkeys(names)]


def options_of(name: str, values: dict | None = None) -> Options:
    """`name`'s options from a dict of values (its defaults for the rest), checked: one-line errors naming the
    analysis and the option."""
    import dataclasses

    from probekit.core.errors import ProbekitError

    analysis = get([name])[0]
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(analysis.options)}
    if unknown := sorted(set(values) - known):
        raise ProbekitError(f"analysis {name!r} has no option {unknown[0]!r}"
                            + (f"; its options: {', '.join(sorted(known))}" if known else " (it takes none)"))
    opts = analysis.options(**values)
    opts.validate(name)
    return opts


def chosen(requested: list[str], options: dict[str, dict], ctx: Context) -> list[Analysis]:
    """The analyses a run does: those always run, those asked for, then those its inputs call for (minimal
    pairs given → pairs); `ctx.options` filled for each from `options` (name → values; options of an
    analysis that does not run are checked, then unused)."""
    get([*requested, *options])
    names = [*(n for n, a in REGISTRY.items() if a.always), *requested]
    names += [n for n, a in REGISTRY.items() if n not in names and a.wanted(ctx)]
    picked = get(names)
    for name in options:
        options_of(name, options[name])
    for analysis in picked:
        ctx.options[analysis.name] = options_of(analysis.name, options.get(analysis.name))
    return picked
