"""One logging channel and one progress switch for the whole library.

Messages go to the `probekit` logger (silence them with `logging.getLogger("probekit").setLevel(...)`);
progress bars go through `progress()`, which `set_progress(False)` (or `PROBEKIT_PROGRESS=0`) turns off.
The command line prints both to stderr without breaking the bars.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

logger = logging.getLogger("probekit")
T = TypeVar("T")
_progress = os.environ.get("PROBEKIT_PROGRESS", "1") not in ("0", "false", "no")


def set_progress(enabled: bool) -> None:
    """Show (True) or hide (False) every progress bar probekit draws."""
    global _progress
    _progress = enabled


def progress(items: Iterable[T], desc: str, unit: str = "it", total: int | None = None) -> Iterator[T]:
    """`items`, with a progress bar while the switch is on."""
    if not _progress:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, unit=unit, total=total)


class _BarSafeHandler(logging.Handler):
    """Writes each message on its own line above any live progress bar, to the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # a logging handler must never raise
            self.handleError(record)


def show_messages(level: int = logging.INFO) -> None:
    """Print probekit's messages plainly (the CLI and notebooks call this; libraries embedding probekit need not)."""
    if not any(isinstance(h, _BarSafeHandler) for h in logger.handlers):
        handler = _BarSafeHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
