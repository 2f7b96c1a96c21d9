"""probekit: watch a small BERT learn.

The same functions back the `probekit` command line and a Jupyter notebook:

    import probekit
    probekit.train("local/my_bert")                                  # a checkpoint series
    result = probekit.probe("local/my_bert/*", analyses=("predictions", "capture"), out="local/probe")
    series = probekit.open_series("local/my_bert/*")
    probekit.head_view(series[-1], "The capital of Italy is Rome.")  # series.at(600) looks up a step
    grammar = probekit.probe("local/my_bert/*", ["blimp"], sample=10).tables
    probekit.phenomenon_curves(grammar["pair_accuracy"])                # accuracy per phenomenon over training
    probekit.wrong_pairs(grammar["pairs"], "checkpoint-8000", "agreement")  # what it still gets wrong

`import probekit` is cheap: the public names below are imported from their modules on first use (module
`__getattr__`), so the command line starts without torch, transformers or pandas. No public name is a
function that hides a module of the same name: `probekit.probe` is the function, its module is
`probekit.running.runner`.
"""

import importlib as _importlib
from importlib import metadata as _metadata
from typing import Any as _Any

from probekit.core import log as _log

DISTRIBUTION = "probekit-bert"  # the PyPI name; `probekit` on PyPI is an unrelated project

try:
    __version__ = _metadata.version(DISTRIBUTION)
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# public name -> (module, attribute in it)
_LAZY: dict[str, tuple[str, str]] = {
    "train": ("probekit.training.trainer", "train"),
    "train_seeds": ("probekit.training.trainer", "train_seeds"),
    "TrainResult": ("probekit.training.trainer", "TrainResult"),
    "Recipe": ("probekit.training.presets", "Recipe"),
    "PRESETS": ("probekit.training.presets", "PRESETS"),
    "get_preset": ("probekit.training.presets", "get_preset"),
    "Checkpoint": ("probekit.models.checkpoints", "Checkpoint"),
    "Series": ("probekit.models.series", "Series"),
    "open_series": ("probekit.models.series", "open_series"),
    "load_checkpoint": ("probekit.models.series", "load_checkpoint"),
    "probe": ("probekit.running.runner", "probe"),
    "ProbeResult": ("probekit.running.results", "ProbeResult"),
    "load_results": ("probekit.running.results", "load_results"),
    "Analysis": ("probekit.analyses", "Analysis"),
    "register_analysis": ("probekit.analyses", "register"),
    "Capture": ("probekit.models.activations", "Capture"),
    "capture": ("probekit.models.activations", "capture"),
    "hooked": ("probekit.models.hooks", "hooked"),
    "emergence": ("probekit.analyses.metrics", "emergence"),
    "head_metrics": ("probekit.analyses.metrics", "head_metrics"),
    "known_counts": ("probekit.analyses.metrics", "known_counts"),
    "bootstrap": ("probekit.analyses.stats", "bootstrap"),
    "compare": ("probekit.analyses.stats", "compare"),
    "findings": ("probekit.analyses.findings", "build"),
    "main_rows": ("probekit.analyses.findings", "main_rows"),
    "select_findings": ("probekit.analyses.findings", "select"),
    "group_differences": ("probekit.analyses.stats", "group_differences"),
    "checkpoint_differences": ("probekit.analyses.stats", "checkpoint_differences"),
    "wrong_pairs": ("probekit.analyses.pairs", "wrong_pairs"),
    "phenomenon_curves": ("probekit.report.grammar", "phenomenon_curves"),
    "paradigm_heatmap": ("probekit.report.grammar", "paradigm_heatmap"),
    "grammar_and_facts": ("probekit.report.grammar", "grammar_and_facts"),
    "best_head_curves": ("probekit.report.syntax", "best_head_curves"),
    "relation_layer_heatmap": ("probekit.report.syntax", "layer_heatmap"),
    "probe_layer_curves": ("probekit.report.probes", "layer_curves"),
    "probe_uuas_curve": ("probekit.report.probes", "uuas_curve"),
    "probe_heatmaps": ("probekit.report.probes", "layer_step_heatmaps"),
    "timeline": ("probekit.report.timeline", "timeline"),
    "arrival_table": ("probekit.report.timeline", "arrival_table"),
    "which_first": ("probekit.report.timeline", "which_first"),
    "tracing_heatmap": ("probekit.report.tracing", "tracing_heatmap"),
    "tracing_curves": ("probekit.report.tracing", "tracing_curves"),
    "diff_checkpoints": ("probekit.diff", "diff_checkpoints"),
    "CheckpointDiff": ("probekit.diff", "CheckpointDiff"),
    "head_view": ("probekit.views", "head_view"),
    "model_view": ("probekit.views", "model_view"),
    "compare_heads": ("probekit.views", "compare_heads"),
    "qk_view": ("probekit.views", "qk_view"),
    "head_view_steps": ("probekit.views", "head_view_steps"),
    "run_notebook": ("probekit.views", "run_notebook"),
    "ProbekitError": ("probekit.core.errors", "ProbekitError"),
    "set_progress": ("probekit.core.log", "set_progress"),
    "show_messages": ("probekit.core.log", "show_messages"),
    "logger": ("probekit.core.log", "logger"),
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> _Any:
    """Import a public name from its module on first access, then keep it as a module attribute."""
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'probekit' has no attribute {name!r}") from None
    value = getattr(_importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names (imported or not yet) beside what the module already holds."""
    return sorted({*globals(), *_LAZY})


_log.show_messages()  # notebook users see probekit's messages; log.py imports nothing heavy
