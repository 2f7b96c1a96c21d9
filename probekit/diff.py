"""Two checkpoints of a series compared: which prompts changed their answer, which heads changed most,
and how far each block of weights moved. Works from a results folder (plus the two weight files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import torch

from probekit.activations import Capture
from probekit.checkpoints import read_weights, resolve_checkpoints
from probekit.errors import ProbekitError
from probekit.metrics import attention_drift
from probekit.results import ProbeResult


@dataclass
class CheckpointDiff:
    changed_prompts: pd.DataFrame   # prompts whose top-1 differs, with both answers and gold ranks
    heads: pd.DataFrame             # layer, head, js (bits): attention change on the captured sentences
    weights: pd.DataFrame           # block, distance, relative_distance


def diff_checkpoints(results: str | Path, a: str, b: str) -> CheckpointDiff:
    """Compare checkpoints `a` and `b` (names as in checkpoints.csv) of a probed series."""
    results = Path(results)
    if a == b:
        raise ProbekitError(f"{results}: give two different checkpoints to compare (both are {a!r})")
    probed = ProbeResult.load(results)
    predictions = probed.predictions
    names = set(predictions["checkpoint"])
    for name in (a, b):
        if name not in names:
            raise ProbekitError(f"{results}: no checkpoint named {name!r} (have: {', '.join(sorted(names))})")
    keys = ["benchmark", "relation", "prompt", "answer"]
    left = predictions[predictions["checkpoint"] == a].set_index(keys)[["top1", "gold_rank"]]
    right = predictions[predictions["checkpoint"] == b].set_index(keys)[["top1", "gold_rank"]]
    both = left.join(right, lsuffix=f"_{a}", rsuffix=f"_{b}", how="inner")
    changed = both[both[f"top1_{a}"] != both[f"top1_{b}"]].reset_index()
    return CheckpointDiff(changed, _head_change(results, probed.files, a, b),
                          _weight_change(probed.checkpoints, a, b))


def _head_change(results: Path, captures: dict[str, str], a: str, b: str) -> pd.DataFrame:
    if not (a in captures and b in captures):
        return pd.DataFrame(columns=["layer", "head", "js"])
    files = [results / captures[name] for name in (a, b)]
    if not all(f.is_file() for f in files):
        return pd.DataFrame(columns=["layer", "head", "js"])
    drift = attention_drift(Capture.load(files[0]), Capture.load(files[1]))
    if drift is None:
        return pd.DataFrame(columns=["layer", "head", "js"])
    rows = [{"layer": layer, "head": head, "js": float(v)} for layer, per_head in drift.items()
            for head, v in enumerate(per_head)]
    return pd.DataFrame(rows).sort_values("js", ascending=False, ignore_index=True)


def _weight_change(checkpoints: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    paths = checkpoints.set_index("checkpoint")["path"]
    if not all(isinstance(paths.get(n), str) and Path(paths[n]).is_dir() for n in (a, b)):
        return pd.DataFrame(columns=["block", "distance", "relative_distance"])
    weights = [read_weights(resolve_checkpoints(paths[n])[0]) for n in (a, b)]
    return weight_distance(*weights)


def weight_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Relative L2 distance ‖a−b‖/‖a‖ per block of parameters (embeddings, each layer, MLM head)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(set(a) & set(b)):
        parts = name.split(".")
        block = f"layer {parts[3]}" if "encoder.layer" in name else ("embeddings" if "embeddings" in name else
                                                                       "mlm head" if name.startswith("cls") else parts[0])
        groups.setdefault(block, []).append(name)
    rows = []
    for block, names in groups.items():
        diff = sum(float((a[n].float() - b[n].float()).pow(2).sum()) for n in names) ** 0.5
        norm = sum(float(a[n].float().pow(2).sum()) for n in names) ** 0.5
        rows.append({"block": block, "distance": diff, "relative_distance": diff / norm if norm else float("nan")})
    return pd.DataFrame(rows)
