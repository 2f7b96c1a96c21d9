"""Training speed: the default preset against the seed (notebook) recipe, measured in the same run.

Each recipe trains for the same wall-clock budget on the same corpus and tokenizer; both are scored on one
fixed held-out set with fixed masks. Prints two ratios:
  1. real (non-pad) tokens per second, default / seed;
  2. wall time to reach the seed's final held-out loss, seed / default.

    python scripts/bench_train.py --seconds 240          # ~9 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import csv
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import TrainerCallback

from probekit.corpus import load_training_corpus
from probekit.presets import get_preset
from probekit.train import build_dataset, fixed_mask_eval_set, masked_lm_loss, train
from probekit.vocab import load_tokenizer


class Clock(TrainerCallback):
    """Stops at the budget and scores the held-out set every `every` seconds of training time (eval excluded)."""

    def __init__(self, budget: float, every: float, eval_set, tokens_per_example: float, batch: int):
        self.budget, self.every, self.eval_set = budget, every, eval_set
        self.tokens_per_step = tokens_per_example * batch
        self.curve: list[tuple[float, int, float]] = []
        self.paused = 0.0

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.start = time.perf_counter()
        self.next_eval = 0.0
        self._score(state.global_step, model)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def _score(self, step, model):
        t0 = time.perf_counter()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.curve.append((round(self.elapsed(), 2), step, masked_lm_loss(model, self.eval_set)))
        self.paused += time.perf_counter() - t0
        self.next_eval += self.every

    def on_step_end(self, args, state, control, model=None, **kw):
        if self.elapsed() >= self.next_eval:
            self._score(state.global_step, model)
        if self.elapsed() >= self.budget:
            self._score(state.global_step, model)
            control.should_training_stop = True
        return control

    def tokens_per_second(self) -> float:
        seconds, steps, _ = self.curve[-1]
        return steps * self.tokens_per_step / seconds


def time_to_reach(curve, target: float) -> float | None:
    """Seconds at which the curve first reaches `target` (linear interpolation between evaluations)."""
    for (t0, _, l0), (t1, _, l1) in zip(curve, curve[1:]):
        if l1 <= target:
            return t1 if l0 == l1 else t0 + (t1 - t0) * (l0 - target) / (l0 - l1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=240, help="training budget per recipe")
    parser.add_argument("--eval-every", type=float, default=None, help="seconds between held-out scores")
    parser.add_argument("--corpus", default="wiki-leads", help="as `probekit train --corpus` (prose only by default)")
    parser.add_argument("--tokenizer", default=None, help="as `probekit train --tokenizer` [bert-base-uncased]")
    parser.add_argument("--default-steps", type=int, default=None,
                        help="default preset's schedule length (sets warmup and decay); about what fits the budget")
    parser.add_argument("--seed-epochs", type=float, default=5.0, help="the seed recipe's epochs (the notebook: 5)")
    parser.add_argument("--out", default="local/bench_train")
    args = parser.parse_args()
    every = args.eval_every or max(args.seconds / 24, 2.0)
    tok = load_tokenizer(args.tokenizer)
    train_docs, eval_docs, _ = load_training_corpus(args.corpus)
    eval_set = fixed_mask_eval_set(tok, eval_docs, 128)
    default_steps = args.default_steps or int(args.seconds * (3 if not torch.cuda.is_available() else 40))
    recipes = {"seed": get_preset("seed", epochs=args.seed_epochs),
               "default": get_preset("default", max_steps=default_steps)}
    clocks = {}
    for name, recipe in recipes.items():
        recipe = replace(recipe, log_until=0, save_every=0)
        data = build_dataset(tok, train_docs, recipe)
        mask = data.columns.get("attention_mask")
        per_example = float(mask.sum(1).float().mean()) if mask is not None else float(recipe.block_size)
        clock = Clock(args.seconds, every, eval_set, per_example, recipe.batch_size)
        out = Path(args.out) / name
        shutil.rmtree(out, ignore_errors=True)
        train(out, recipe, corpus=args.corpus, tokenizer=tok, say=print, callbacks=[clock])
        clocks[name] = clock
    write_curves(Path(args.out), clocks)
    report(clocks, args.seconds)


def write_curves(out: Path, clocks: dict) -> None:
    with open(out / "curves.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recipe", "seconds", "step", "heldout_loss"])
        for name, clock in clocks.items():
            writer.writerows([name, *row] for row in clock.curve)


def report(clocks: dict, budget: float) -> None:
    seed, default = clocks["seed"], clocks["default"]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\n== bench_train on {device}, {budget:.0f} s per recipe ==")
    for name, clock in clocks.items():
        print(f"{name:8s} real tokens/s {clock.tokens_per_second():9,.0f}   steps {clock.curve[-1][1]:6d}   "
              f"held-out loss {clock.curve[-1][2]:.3f}")
        print("         curve (s, loss): " + ", ".join(f"{t:.0f}:{l:.2f}" for t, _, l in clock.curve))
    print(f"ratio 1, real tokens/s default / seed: {default.tokens_per_second() / seed.tokens_per_second():.1f}x")
    target = seed.curve[-1][2]
    reached = time_to_reach(default.curve, target)
    if reached is None:
        print(f"ratio 2: default never reached the seed's final loss {target:.3f}")
    else:
        print(f"ratio 2, time to the seed's final held-out loss {target:.3f}: seed {seed.curve[-1][0]:.0f} s, "
              f"default {reached:.1f} s -> {seed.curve[-1][0] / reached:.1f}x")


if __name__ == "__main__":
    main()
