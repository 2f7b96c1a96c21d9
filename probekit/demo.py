"""The README's first command: the whole job on the embedded default, offline, in minutes.

Train the tiny BERT (the `demo` preset, a vocabulary trained on the corpus) on Wikipedia leads with
injected country facts (half the countries held back as a control), probe every checkpoint with the logit
lens and head ablation, capture its attention, and build the report site. Reruns reuse what
exists: training resumes, probing and capture are cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from probekit.presets import Recipe, get_preset
from probekit.log import logger
from probekit.report import build_report
from probekit.results import ProbeResult
from probekit.runner import probe
from probekit.training import TrainResult, train

CPU_STEPS = 8000
GPU_STEPS = 40000
DEMO_TOKENIZER = "wordpiece:8192"  # a small vocabulary learns in CPU minutes; bert-base-uncased's 30,522 does not
DEMO_CORPUS = "wiki-leads+facts:0.7"


@dataclass
class DemoResult:
    training: TrainResult
    probing: ProbeResult
    site: Path


def demo_recipe(max_steps: int | None = None, **overrides) -> Recipe:
    """The demo's recipe: the `demo` preset, 8,000 steps on a CPU (40,000 on a GPU), 16 checkpoints after the
    log-spaced early ones."""
    steps = max_steps or (GPU_STEPS if torch.cuda.is_available() else CPU_STEPS)
    return get_preset("demo", max_steps=steps, save_every=max(steps // 16, 1), **overrides)


def demo(out: str | Path = "local/demo", max_steps: int | None = None, corpus: str = DEMO_CORPUS,
         tokenizer: str = DEMO_TOKENIZER) -> DemoResult:
    """Train, probe (with attention capture) and report; returns where everything went."""
    out = Path(out)
    recipe = demo_recipe(max_steps)
    logger.info(f"[1/3] training {recipe.max_steps} steps into {out / 'my_bert'}")
    training = train(out / "my_bert", recipe, corpus=corpus, tokenizer=tokenizer)
    logger.info(f"[2/3] probing {len(training.checkpoints)} checkpoints into {out / 'probe'}")
    probing = probe(str(out / "my_bert"), out=out / "probe", analyses=["lens", "ablation", "capture"],
                    sentences="default")
    logger.info(probing.summary().to_string(float_format=lambda v: f"{v:.2f}"))
    logger.info("[3/3] building the report")
    site = build_report(out / "probe", out / "site")
    return DemoResult(training, probing, site)
