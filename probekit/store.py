"""The results folder: tidy tables, the manifest, and the per-checkpoint cache that makes reruns incremental.

Layout of a results folder (what `probekit probe` writes and `probekit report` reads):
  predictions.parquet   one row per checkpoint × prompt
  scores.csv            one row per checkpoint × benchmark × relation
  checkpoints.csv       one row per checkpoint: path, step, fingerprint, status, duplicate_of, error
  manifest.json         versions, benchmark hashes, the command
  training.csv          the training log (loss, held-out loss) of the series, when it has one
  heads.parquet         one row per checkpoint × layer × head × metric (with captured sentences)
  lens.parquet          one row per checkpoint × prompt × layer: the logit lens (with --lens)
  ablation.parquet      one row per checkpoint × head × relation × group: head ablation (with --ablate)
  attention/NAME.safetensors   captured Q/K/V/attention per checkpoint (with captured sentences)
  cache/                per (fingerprint, benchmark hash, settings) predictions, reused by reruns
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

PREDICTIONS, SCORES, CHECKPOINTS, MANIFEST = "predictions.parquet", "scores.csv", "checkpoints.csv", "manifest.json"
TRAINING = "training.csv"


def cache_file(out: Path, fingerprint: str, benchmark_sha: str, settings: str) -> Path:
    return out / "cache" / f"{fingerprint}-{benchmark_sha}-{settings}.parquet"


def read_cached(path: Path | None) -> pd.DataFrame | None:
    if path is None or not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception:  # a cache entry cut short by an interrupted run is recomputed
        return None


def write_cached(path: Path | None, frame: pd.DataFrame) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def versions() -> dict[str, str]:
    import torch
    import transformers

    from probekit import __version__

    return {"probekit": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def manifest(**fields) -> dict:
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions(),
            "command": " ".join(sys.argv), **fields}


OPTIONAL = {"heads": "heads.parquet", "lens": "lens.parquet", "ablation": "ablation.parquet"}


def write_results(out: Path, predictions: pd.DataFrame, scores: pd.DataFrame, checkpoints: pd.DataFrame,
                  manifest_: dict, optional: dict[str, pd.DataFrame | None] | None = None) -> None:
    """The four tables every probe writes, plus those of `OPTIONAL` it computed (heads, lens, ablation)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (optional or {}).items():
        if frame is not None:
            frame.to_parquet(out / OPTIONAL[name], index=False)
    predictions.to_parquet(out / PREDICTIONS, index=False)
    scores.to_csv(out / SCORES, index=False)
    checkpoints.to_csv(out / CHECKPOINTS, index=False)
    (out / MANIFEST).write_text(json.dumps(manifest_, indent=2, default=str))


def write_training_log(out: Path, trainer_state: Path) -> None:
    """The series' training log as a tidy table: one row per logged step."""
    history = json.loads(trainer_state.read_text()).get("log_history", [])
    rows = [{k: v for k, v in h.items() if k in ("step", "loss", "eval_loss", "learning_rate", "epoch")}
            for h in history if "loss" in h or "eval_loss" in h]
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["step", "loss", "eval_loss", "learning_rate", "epoch"]).to_csv(out / TRAINING, index=False)


def read_results(out: str | Path) -> dict:
    """The tables of a results folder as DataFrames (and the manifest as a dict)."""
    out = Path(out)
    tables = {"predictions": pd.read_parquet(out / PREDICTIONS), "scores": pd.read_csv(out / SCORES),
              "checkpoints": pd.read_csv(out / CHECKPOINTS), "manifest": json.loads((out / MANIFEST).read_text())}
    for name, file in OPTIONAL.items():
        if (out / file).is_file():
            tables[name] = pd.read_parquet(out / file)
    if (out / TRAINING).is_file():
        tables["training"] = pd.read_csv(out / TRAINING)
    return tables
