"""Training speed: the default preset against the seed (notebook) recipe, measured in the same run.

Each recipe trains on the same corpus and tokenizer for at most `--seconds` of training time; both are
scored on one fixed held-out set with fixed masks. Prints two ratios:
  1. real (non-pad) tokens per second, default / seed;
  2. wall time to reach the seed's final held-out loss, seed / default.
and each recipe's model FLOP utilisation where the device's peak is known.

Training time starts at the first step and excludes held-out scoring; on a GPU every recipe first trains 3
steps untimed, so no recipe pays for the process's one-time CUDA costs (kernel loading, workspaces) and
the order of the runs does not matter; compilation (`--compile`) is counted.

    python scripts/bench_train.py --seconds 240            # ~9 minutes on 2 CPU cores
    python scripts/bench_train.py --device cuda --seconds 90 --gpu-tokens 16384,32768,131072
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

if "--device" in sys.argv and sys.argv[sys.argv.index("--device") + 1] == "cpu":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch: the CPU path, also on a GPU machine

import torch
from transformers import BertConfig, TrainerCallback

from probekit.training.corpus import load_training_corpus
from probekit.training.data import build_dataset, fixed_mask_eval_set, masked_lm_loss
from probekit.training.presets import get_preset
from probekit.training.trainer import flops_per_token, peak_flops, train
from probekit.training.vocab import load_tokenizer


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Clock(TrainerCallback):
    """Stops at the budget and scores the held-out set every `every` seconds of training time (scoring excluded)."""

    def __init__(self, budget: float, every: float, eval_set, tokens_per_row: float):
        self.budget, self.every, self.eval_set = budget, every, eval_set
        self.tokens_per_row = tokens_per_row
        self.curve: list[tuple[float, int, float]] = []
        self.paused = 0.0

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.tokens_per_step = self.tokens_per_row * args.per_device_train_batch_size * args.world_size
        sync()
        self.start = time.perf_counter()
        self.next_eval = 0.0
        self._score(state.global_step, model)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def _score(self, step, model):
        sync()  # the device's queued training work counts as training time
        seconds = self.elapsed()
        t0 = time.perf_counter()
        self.curve.append((round(seconds, 3), step, masked_lm_loss(model, self.eval_set)))
        self.paused += time.perf_counter() - t0
        self.next_eval += self.every

    def on_step_end(self, args, state, control, model=None, **kw):
        if self.elapsed() >= self.budget or state.global_step >= state.max_steps:
            self._score(state.global_step, model)
            control.should_training_stop = True
        elif self.elapsed() >= self.next_eval:
            self._score(state.global_step, model)
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


def warm_up_device() -> None:
    """Start CUDA, cuBLAS and the bf16 kernels once, so the first recipe does not pay for it."""
    if not torch.cuda.is_available():
        return
    x = torch.randn(4096, 128, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        (x @ x.T).float().sum().backward()
    sync()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="[cuda if available]")
    parser.add_argument("--seconds", type=float, default=240, help="training budget per recipe")
    parser.add_argument("--eval-every", type=float, default=None, help="seconds between held-out scores")
    parser.add_argument("--corpus", default="wiki-leads", help="as `probekit train --corpus` (prose only by default)")
    parser.add_argument("--tokenizer", default=None, help="as `probekit train --tokenizer` [bert-base-uncased]")
    parser.add_argument("--default-steps", type=int, default=None,
                        help="default preset's schedule length in batch-32 steps (sets warmup and decay) "
                             "[CPU: about what fits the budget; GPU: the preset's 3 epochs]")
    parser.add_argument("--seed-epochs", type=float, default=5.0, help="the seed recipe's epochs (the notebook: 5)")
    parser.add_argument("--gpu-tokens", default="", help="also run the default preset at these tokens per step")
    parser.add_argument("--compile", action="store_true", help="also run the default preset with torch.compile")
    parser.add_argument("--out", default="local/bench_train")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    every = args.eval_every or (0.05 if cuda else max(args.seconds / 24, 2.0))
    tok = load_tokenizer(args.tokenizer)
    train_docs, eval_docs, _ = load_training_corpus(args.corpus)
    eval_set = fixed_mask_eval_set(tok, eval_docs, 128)
    default_steps = args.default_steps or (None if cuda else int(args.seconds * 3))
    default = get_preset("default", max_steps=default_steps)
    recipes = {"seed": get_preset("seed", epochs=args.seed_epochs), "default": default}
    for tokens in filter(None, args.gpu_tokens.split(",")):
        recipes[f"default@{int(tokens)}"] = replace(default, gpu_tokens_per_step=int(tokens))
    if args.compile:
        recipes["default+compile"] = replace(default, compile=True)
    warm_up_device()
    if cuda:  # one-time costs of the process (kernel loading, workspaces) are paid here, by no recipe's clock
        for name, recipe in recipes.items():
            train(Path(args.out) / "warm-up" / name, replace(recipe, max_steps=3, log_until=0, save_every=0),
                  corpus=args.corpus, tokenizer=tok)
        shutil.rmtree(Path(args.out) / "warm-up", ignore_errors=True)
    clocks, flops = {}, {}
    for name, recipe in recipes.items():
        recipe = replace(recipe, log_until=0, save_every=0)
        clock = Clock(args.seconds, every, eval_set, build_dataset(tok, train_docs, recipe).real_tokens_per_row())
        out = Path(args.out) / name
        shutil.rmtree(out, ignore_errors=True)
        try:
            train(out, recipe, corpus=args.corpus, tokenizer=tok, callbacks=[clock])
        except Exception as exc:  # one failed variant (say, compile) must not lose the others' figures
            print(f"{name}: failed ({exc.__class__.__name__}: {str(exc)[:300]})", flush=True)
            continue
        clocks[name] = clock
        flops[name] = flops_per_token(BertConfig(**recipe.model_config(len(tok))), recipe)
        print(f"{name}: {clock.tokens_per_second():,.0f} real tokens/s", flush=True)
    write_curves(Path(args.out), clocks)
    report(clocks, flops, args.seconds)


def write_curves(out: Path, clocks: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "curves.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recipe", "seconds", "step", "heldout_loss"])
        for name, clock in clocks.items():
            writer.writerows([name, *row] for row in clock.curve)


def report(clocks: dict, flops: dict, budget: float) -> None:
    seed = clocks["seed"]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    peak = peak_flops(device) if torch.cuda.is_available() else None
    print(f"\n== bench_train on {device}, at most {budget:.0f} s per recipe ==")
    for name, clock in clocks.items():
        achieved = clock.tokens_per_second() * flops[name]
        mfu = f"   MFU {achieved / peak:.2%}" if peak else ""
        print(f"{name:16s} real tokens/s {clock.tokens_per_second():11,.0f}   steps {clock.curve[-1][1]:6d}   "
              f"{clock.curve[-1][0]:6.1f} s   held-out loss {clock.curve[-1][2]:.3f}   "
              f"{achieved / 1e12:.2f} model TFLOP/s{mfu}")
        shown = clock.curve[::max(1, len(clock.curve) // 16)]
        print("                 curve (s, loss): " + ", ".join(f"{t:.1f}:{l:.2f}" for t, _, l in shown))
    target = seed.curve[-1][2]
    for name, clock in clocks.items():
        if name == "seed":
            continue
        print(f"ratio 1, real tokens/s {name} / seed: {clock.tokens_per_second() / seed.tokens_per_second():.1f}x")
        reached = time_to_reach(clock.curve, target)
        if reached is None:
            print(f"ratio 2, {name} never reached the seed's final loss {target:.3f}")
        else:
            print(f"ratio 2, time to the seed's final held-out loss {target:.3f}: seed {seed.curve[-1][0]:.1f} s, "
                  f"{name} {reached:.2f} s -> {seed.curve[-1][0] / reached:.1f}x")


if __name__ == "__main__":
    main()
