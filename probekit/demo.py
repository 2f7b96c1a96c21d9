"""The README's first command: the whole job on the embedded default, offline, in minutes.

Train the tiny BERT (the `demo` preset, a vocabulary trained on the corpus) on Wikipedia leads with
injected country facts (half the countries held back as a control) — one seed on a CPU, three on a GPU,
whose intervals then cover seeds as well as prompts — probe every checkpoint (the facts, a seeded sample of
BLiMP's minimal pairs, the logit lens, attention capture), and a few of them with what costs more (head
ablation, causal tracing, syntactic heads and probes on a sample of UD English EWT), and build the report site.
Reruns reuse what exists: training resumes, probing and capture are cached.
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
from probekit.training.trainer import TrainResult, checkpoint_steps, train, train_seeds

CPU_STEPS = 5000  # about 3 minutes on 2 CPU cores
GPU_STEPS = 40000
DEMO_TOKENIZER = "wordpiece:8192"  # a small vocabulary learns in CPU minutes; bert-base-uncased's 30,522 does not
DEMO_CORPUS = "wiki-leads+facts:0.7"
GPU_SEEDS = (0, 1, 2)
BLIMP_SAMPLE = 4  # pairs per paradigm (268 in all): enough to tell chance from a rise, cheap on 2 CPU cores
SYNTAX_SAMPLE = 150  # EWT sentences of each file (dev to fit the probes, test to score them)
TRACE_SAMPLE = 32  # prompts traced per relation and fact group
FEW = (0, 0.1, 0.2, 0.5, 1)  # shares of training where ablation, syntax heads and probes run
TRACED = (0, 0.2, 0.5, 1)  # and causal tracing


GROUPS = {"injected": "injected", "held_back": "held back"}


@dataclass
class DemoResult:
    training: list[TrainResult]
    """One run per seed."""
    probing: ProbeResult | None
    """None on a torchrun rank other than the first (that one writes the tables and the site)."""
    site: Path


def demo_recipe(max_steps: int | None = None, **overrides) -> Recipe:
    """The demo's recipe: the `demo` preset, 5,000 steps on a CPU (40,000 on a GPU), 10 checkpoints after the
    log-spaced early ones."""
    steps = max_steps or (GPU_STEPS if torch.cuda.is_available() else CPU_STEPS)
    return get_preset("demo", max_steps=steps, save_every=max(steps // 10, 1), **overrides)


def few_steps(recipe: Recipe, shares: tuple[float, ...]) -> list[int]:
    """The saved steps nearest to these shares of the training: where the costlier analyses run."""
    saved = {0, *checkpoint_steps(recipe.max_steps, recipe.log_until, recipe.save_every)}
    return sorted({min(saved, key=lambda step: abs(step - share * recipe.max_steps)) for share in shares})


def demo(out: str | Path = "local/demo", max_steps: int | None = None, corpus: str = DEMO_CORPUS,
         tokenizer: str = DEMO_TOKENIZER, seeds: tuple[int, ...] | None = None,
         blimp_sample: int = BLIMP_SAMPLE, syntax_sample: int = SYNTAX_SAMPLE,
         trace_sample: int = TRACE_SAMPLE) -> DemoResult:
    """Train, probe (every checkpoint; the costlier analyses at `few_steps`) and report; returns where
    everything went.

    seeds: the training seeds; default one on a CPU (intervals over prompts), three on a GPU (over seeds too).
    blimp_sample, syntax_sample, trace_sample: BLiMP pairs per paradigm, EWT sentences per file (dev, test),
        prompts traced per relation and fact group.
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
    few, traced = few_steps(recipe, FEW), few_steps(recipe, TRACED)
    probing = probe(series, ["countries", f"blimp@{blimp_sample}", f"ewt:dev+test@{syntax_sample}"],
                    {"lens": {}, "capture": {}, "ablation": {}, "syntax-heads": {}, "probes": {"tolerance": 1e-4},
                     "tracing": {"sample": trace_sample, "method": "both",
                                 "components": "resid,attn,mlp,head,knockout"}},  # K = 10 noise draws (default)
                    out=out / "probe", at={"ablation": few, "syntax-heads": few, "probes": few, "tracing": traced})
    if probing is None:  # a torchrun rank other than the first: its share is done, rank 0 writes the rest
        return DemoResult(training, None, out / "site" / "index.html")
    logger.info("[3/3] building the report")
    site = build_report(out / "probe", out / "site")
    return DemoResult(training, probing, site)


def summary(probing: ProbeResult) -> list[str]:
    """What the demo found, in lines a person reads in ten seconds, worded from the findings rows
    (`probekit.analyses.findings`): per relation the last step's P@1 of the injected and the held-back facts with
    their 95% intervals and whether injected is above held back; the minimal pairs against chance; where the
    tracing places the main relation; whether syntax was learned."""
    from probekit.analyses.findings import main_findings, select
    from probekit.report.findings import VERDICTS, arrival, bracketed

    found = main_findings(probing.findings)
    levels = select(found, "level", "facts")
    if levels.empty:
        return ["no prompt could be scored"]
    seeds = int(levels["n_seeds"].max())
    step = int(levels["step"].max())
    width = max(map(len, levels["subject"]))
    over = f" and {seeds} training seeds" if seeds > 1 else "; one training seed"
    lines = [f"P@1 at step {step:,} [95% bootstrap interval over prompts{over}]:"]
    for relation, rows in levels.groupby("subject", sort=False):
        rows = rows.drop_duplicates("group").set_index("group")
        cells = [f"{GROUPS.get(g, g)} {bracketed(rows.loc[g])}" for g in (*GROUPS, "all") if g in rows.index]
        line = f"  {relation:<{width}}  " + "  vs  ".join(cells)
        diff = select(found, "difference", "facts", subject=relation)
        if len(diff):
            line += f"  ({VERDICTS.get(diff['verdict'].iloc[0], diff['verdict'].iloc[0]).split(' (')[0]})"
        emerged = select(found, "emerged", "facts", subject=relation)
        if len(emerged) and emerged["verdict"].iloc[0] == "emerged":
            line += f"; {arrival(emerged.iloc[0]).split(', and')[0]}"
        lines.append(line)
    for _, row in select(found, "above_chance", "pairs", subject="all").iterrows():
        lines.append(f"Minimal pairs ({row['benchmark']}, {int(row['n']):,} pairs): accuracy {bracketed(row)} at step "
                     f"{int(row['step']):,}: {row['verdict'].replace('above', 'above chance')}.")
    best = select(found, "best_site", "tracing")
    best = best[best["group"].isin(["injected · exact", "all · exact"])]
    if len(best):
        last = best[best["step"] == best["step"].max()]
        said = [f"{r['subject']} {r['detail']} Δp {bracketed(r, '+.3f')} ({r['verdict'].replace('_', ' ')})"
                for _, r in last.iterrows()]
        lines.append(f"Where (causal tracing, the best site at step {int(last['step'].max()):,}): " + "; ".join(said)
                     + ".")
    heads = select(found, "learned", "syntax-heads")
    if len(heads):
        relations = heads[heads["subject"] != "UUAS"]
        uuas = heads[heads["subject"] == "UUAS"]
        text = f"Syntax: {int((relations['verdict'] == 'learned').sum())} of {len(relations)} head relations learned"
        if len(uuas):
            text += f"; UUAS {bracketed(uuas.iloc[0])}: {uuas['verdict'].iloc[0].replace('_', ' ')}"
        probes = select(found, "selective", "probes", group="probe")
        if len(probes):
            text += "; selective probes: " + (", ".join(probes.loc[probes["verdict"] == "selective", "subject"])
                                               or "none")
        lines.append(text + ".")
    return lines

