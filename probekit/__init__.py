"""probekit: watch a small BERT learn.

The same functions back the `probekit` command line and a Jupyter notebook.
"""

__version__ = "0.1.0"

from probekit.errors import ProbekitError  # noqa: E402
from probekit.presets import DEFAULT, PRESETS, SEED, Recipe, get_preset  # noqa: E402
from probekit.train import train  # noqa: E402

__all__ = ["DEFAULT", "PRESETS", "SEED", "ProbekitError", "Recipe", "get_preset", "train", "__version__"]
