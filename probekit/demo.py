"""The README's first command: the whole job on the embedded default, offline, in minutes.

Train the tiny BERT (the `demo` preset, a vocabulary trained on the corpus) on Wikipedia leads with
injected country facts (half the countries held back as a control) — one seed on a CPU, three on a GPU,
whose intervals then cover seeds as well as prompts — probe every checkpoint with the logit lens and head
ablation, capture its attention, score a seeded sample of BLiMP's minimal pairs beside the facts, and
build the report site. Reruns reuse what exists: training resumes, probing and capture are cached.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from probekit.training.presets import Recipe, get_preset
from probekit.core.log import logger
from probekit.report import build_report
from probekit.running.results import ProbeResult
from probekit.running.runner import probe
from probekit.training.trainer import TrainResult, train, train_seeds

CPU_STEPS = 8000
GPU_STEPS = 40000
DEMO_TOKENIZER = "wordpiece:8192"  # a small vocabulary learns in CPU minutes; bert-base-uncased's 30,522 does not
DEMO_CORPUS = "wiki-leads+facts:0.7"
GPU_SEEDS = (0, 1, 2)
BLIMP_SAMPLE = 4  # pairs per paradigm (268 in all): enough to tell chance from a rise, cheap on 2 CPU cores


@dataclass
class DemoResult:
    training: list[TrainResult]
    """One run per seed."""
    probing: ProbeResult | None
    """None on a torchrun rank other than the first (that one writes the tables and the site)."""
    site: Path


def demo_recipe(max_steps: int | None = None, **overrides) -> Recipe:
    """The demo's recipe: the `demo` preset, 8,000 steps on a CPU (40,000 on a GPU), 16 checkpoints after the
    log-spaced early ones."""
    steps = max_steps or (GPU_STEPS if torch.cuda.is_available() else CPU_STEPS)
    return get_preset("demo", max_steps=steps, save_every=max(steps // 16, 1), **overrides)


def demo(out: str | Path = "local/demo", max_steps: int | None = None, corpus: str = DEMO_CORPUS,
         tokenizer: str = DEMO_TOKENIZER, seeds: tuple[int, ...] | None = None,
         blimp_sample: int = BLIMP_SAMPLE) -> DemoResult:
    """Train, probe (with attention capture and a BLiMP sample) and report; returns where everything went.

    seeds: the training seeds; default one on a CPU (intervals over prompts), three on a GPU (over seeds too).
    """
    out = Path(out)
    recipe = demo_recipe(max_steps)
    seeds = tuple(seeds or (GPU_SEEDS if torch.cuda.is_available() else (0,)))
    runs = out / "my_bert"
    logger.info(f"[1/3] training {recipe.max_steps} steps into {runs}"
                + (f", seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""))
    if len(seeds) > 1:
        training = train_seeds(runs, recipe, seeds, corpus=corpus, tokenizer=tokenizer)
        series = str(runs / "seed-*" / "checkpoint-*")
    else:
        training = [train(runs, replace(recipe, seed=seeds[0]), corpus=corpus, tokenizer=tokenizer)]
        series = str(runs)
    n = sum(len(t.checkpoints) for t in training)
    logger.info(f"[2/3] probing {n} checkpoints into {out / 'probe'}")
    probing = probe(series, ["countries", "blimp"], ["lens", "ablation", "capture"], out=out / "probe",
                    sample=blimp_sample)
    if probing is None:  # a torchrun rank other than the first: its share is done, rank 0 writes the rest
        return DemoResult(training, None, out / "site" / "index.html")
    logger.info(probing.summary().to_string(float_format=lambda v: f"{v:.2f}"))
    logger.info("[3/3] building the report")
    site = build_report(out / "probe", out / "site")
    return DemoResult(training, probing, site)
