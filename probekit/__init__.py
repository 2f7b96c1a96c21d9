"""probekit: watch a small BERT learn.

The same functions back the `probekit` command line and a Jupyter notebook:

    import probekit
    probekit.train("local/my_bert")                        # a checkpoint series
    result = probekit.probe("local/my_bert/*", out="local/probe", sentences="default")
    series = probekit.open_series("local/my_bert/*")
    probekit.head_view(series[-1], "The capital of Italy is Rome.")
"""

__version__ = "0.1.0"

from probekit.capture import Capture, capture, capturing  # noqa: E402
from probekit.checkpoints import Series, load_checkpoint, open_series  # noqa: E402
from probekit.diff import CheckpointDiff, diff_checkpoints  # noqa: E402
from probekit.errors import ProbekitError  # noqa: E402
from probekit.metrics import emergence, head_metrics, known_counts  # noqa: E402
from probekit.presets import DEFAULT, PRESETS, SEED, Recipe, get_preset  # noqa: E402
from probekit.probe import ProbeResult, probe  # noqa: E402
from probekit.store import read_results as load_results  # noqa: E402
from probekit.train import train  # noqa: E402
from probekit.views import compare_heads, head_view, model_view, qk_view  # noqa: E402

__all__ = [
    "DEFAULT", "PRESETS", "SEED", "Capture", "CheckpointDiff", "ProbeResult", "ProbekitError", "Recipe", "Series", "__version__",
    "capture", "capturing", "compare_heads", "diff_checkpoints", "emergence", "get_preset", "head_metrics", "head_view",
    "known_counts", "load_checkpoint", "load_results", "model_view", "open_series", "probe", "qk_view", "train",
]
