"""The README's first command: the whole job on the embedded default, offline, in minutes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from probekit.presets import get_preset
from probekit.train import TrainResult, train

CPU_STEPS = 600
GPU_STEPS = 6000


@dataclass
class DemoResult:
    training: TrainResult


def demo(out: str | Path = "local/demo", max_steps: int | None = None, say=print) -> DemoResult:
    """Train the default tiny BERT on the embedded corpus (longer on a GPU); rerunning resumes."""
    out = Path(out)
    steps = max_steps or (GPU_STEPS if torch.cuda.is_available() else CPU_STEPS)
    recipe = get_preset("default", max_steps=steps, log_until=256, save_every=max(steps // 6, 1))
    training = train(out / "my_bert", recipe, say=say)
    return DemoResult(training)
