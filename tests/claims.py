"""Summary tables made by hand, with known claims in them, for the findings and the pages that word them.

Steps 0, 100, 200, 300, 400 and a random-init row. Each line's interval is its value ± `WIDTH` unless said:
- facts: injected − held back clears 0 from step 300 (arrives in (200, 300]); held back never rises;
- grammar over all pairs: above chance from 300 (arrives in (200, 300]: ties with the facts); phenomenon `agr`
  above chance at 100 only (transient); phenomenon `bind` above chance from 200;
- syntactic heads: `det`'s best head beats its offset and random init from 400 (arrives in (300, 400]); the
  best head's UUAS never clears the adjacent-word baseline (not established);
- probes: `upos` selective above random init at 200 only (transient); `depth` never;
- tracing at 0, 200, 400: `attn L1 mask` stands out at 400; the last layer's residual at the [MASK] restores
  by construction (largest Δp, never named).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from probekit.core.schema import CONTROL

STEPS = [0, 100, 200, 300, 400]
WIDTH = 0.05


def checkpoint(step) -> dict:
    return {"checkpoint": CONTROL if step is None else f"checkpoint-{step}", "run": "" if step is None else "run",
            "step": step, "seed": ""}


def line(values: list[float], init: float | None = None, width: float = WIDTH) -> list[tuple]:
    """(step, value, low, high) per step, the random-init row (step None) first: `init`, else the first value."""
    start = values[0] if init is None else init
    return [(None, start, start - width, start + width),
            *((s, v, v - width, v + width) for s, v in zip(STEPS, values))]


def predictions() -> pd.DataFrame:
    """20 prompts per group; the injected ones answered (rank 1) from step 300, the held-back ones never."""
    rows = []
    for step in [None, *STEPS]:
        for group, country in (("injected", "italy"), ("held_back", "france")):
            for i in range(20):
                known = group == "injected" and step is not None and step >= 300
                rows.append({**checkpoint(step), "benchmark": "facts", "relation": "capital", "group": group,
                             "template": f"template {i} [X] [MASK]", "subject": f"{country}{i}", "answer": "rome",
                             "prompt": f"prompt {group} {i}", "gold_rank": 1.0 if known else 20.0,
                             "gold_logprob": -0.1 if known else -5.0})
    return pd.DataFrame(rows)


def scores() -> pd.DataFrame:
    return pd.DataFrame([{**checkpoint(s), "benchmark": "facts", "relation": "capital", "group": group,
                          "n": 20, "p_at_1": v, "p_at_1_low": max(lo, 0), "p_at_1_high": hi, "n_seeds": 1}
                         for group, values in (("injected", [0, 0, 0, 1, 1]), ("held_back", [0, 0, 0, 0, 0]))
                         for s, v, lo, hi in line(values, width=0.0)])


def pair_accuracy() -> pd.DataFrame:
    return pd.DataFrame([{**checkpoint(s), "benchmark": "blimp", "metric": "m", "level": level, "name": name,
                          "n": 200, "ties": 0, "accuracy": v, "accuracy_low": lo, "accuracy_high": hi, "n_seeds": 1}
                         for level, name, values in (("all", "all", [0.5, 0.5, 0.5, 0.6, 0.65]),
                                                     ("phenomenon", "agr", [0.5, 0.7, 0.5, 0.5, 0.5]),
                                                     ("phenomenon", "bind", [0.5, 0.5, 0.8, 0.8, 0.8]))
                         for s, v, lo, hi in line(values)])


def syntax_best_heads() -> pd.DataFrame:
    return pd.DataFrame([{**checkpoint(s), "treebank": "t", "relation": "det", "direction": "dep->head", "n": 50,
                          "layer": 0, "head": 1, "accuracy": v, "accuracy_low": lo, "accuracy_high": hi, "offset": 1,
                          "baseline": 0.6, "baseline_low": 0.55, "baseline_high": 0.65, "beats_baseline": lo > 0.65,
                          "n_seeds": 1} for s, v, lo, hi in line([0.1, 0.2, 0.4, 0.6, 0.8])])


def syntax_uuas() -> pd.DataFrame:
    heads = [{**checkpoint(s), "treebank": "t", "layer": 0, "head": 0, "n": 100, "uuas": v, "best_in_layer": True,
              "uuas_low": lo, "uuas_high": hi, "n_seeds": 1} for s, v, lo, hi in line([0.2, 0.3, 0.35, 0.4, 0.4])]
    base = [{**checkpoint(s), "treebank": "t", "layer": -1, "head": -1, "n": 100, "uuas": 0.5, "best_in_layer": False,
             "uuas_low": 0.45, "uuas_high": 0.55, "n_seeds": 1} for s in STEPS]
    return pd.DataFrame(heads + base)


def probe_scores() -> pd.DataFrame:
    return pd.DataFrame([{**checkpoint(s), "treebank": "t", "layer": layer, "probe": probe, "metric": "accuracy",
                          "score": 0.5 + v, "score_low": 0.5 + lo, "score_high": 0.5 + hi, "control": 0.5,
                          "control_low": 0.45, "control_high": 0.55, "selectivity": v, "selectivity_low": lo,
                          "selectivity_high": hi, "spearman": np.nan, "n": 100, "sentences": 40, "n_seeds": 1}
                         for probe, values in (("upos", [0.1, 0.1, 0.3, 0.1, 0.1]), ("depth", [0.2] * 5))
                         for layer in (0, 1) for s, v, lo, hi in line(values, init=0.1)])


def tracing_scores(random_init: bool = True) -> pd.DataFrame:
    """Sites of a 2-layer model at steps 0, 200, 400 (and random init): attn L1 mask rises to Δp 0.2 at 400."""
    rows = []
    for step in ([None] if random_init else []) + [0, 200, 400]:
        for component in ("resid", "attn", "mlp"):
            for layer in (0, 1):
                for role in ("subject_last", "mask"):
                    effect = 0.0
                    if (component, layer, role) == ("attn", 1, "mask") and step == 400:
                        effect = 0.2
                    built = (component, layer, role) == ("resid", 1, "mask")
                    if built:
                        effect = 0.9
                    rows.append({**checkpoint(step), "benchmark": "facts", "relation": "capital",
                                 "group": "injected", "method": "exact", "component": component, "layer": layer,
                                 "role": role, "n": 20, "effect": effect, "effect_low": effect - 0.02,
                                 "effect_high": effect + 0.02, "restoration": np.nan if effect == 0 else effect / 0.9,
                                 "restoration_low": np.nan, "restoration_high": np.nan,
                                 "gap": 0.9 if effect else 0.0, "gap_low": 0.85 if effect else -0.01,
                                 "gap_high": 0.95 if effect else 0.01, "skipped": 0, "n_seeds": 1,
                                 "by_construction": built})
    return pd.DataFrame(rows)


def tables() -> dict:
    return {"predictions": predictions(), "scores": scores(), "pair_accuracy": pair_accuracy(),
            "syntax_best_heads": syntax_best_heads(), "syntax_uuas": syntax_uuas(), "probe_scores": probe_scores(),
            "tracing_scores": tracing_scores()}


def results_of(tables: dict) -> dict:
    """Tables completed to the results format: missing columns filled with empty values."""
    from probekit.core.schema import TABLES

    out = {}
    for name, frame in tables.items():
        table = TABLES[name]
        missing = {c.name: ([[]] * len(frame) if c.type.startswith("list") else np.nan if c.type in ("float", "int")
                            else False if c.type == "bool" else None) for c in table.columns if c.name not in frame}
        out[name] = table.conform(frame.assign(**missing))
    return out


def built_site(tables: dict, found: pd.DataFrame, root: Path) -> Path:
    """`tables` (the fixture's, or more) with the columns a run has, saved as root/results with `found` as their
    findings, built into root/site; its build folder."""
    from probekit.analyses import load_builtins, stats
    from probekit.core.store import new_manifest
    from probekit.report import build_report
    from probekit.running.results import ProbeResult

    load_builtins()
    made = tables["predictions"]
    tables = {**tables, "predictions": made.assign(
        correct=made["gold_rank"] == 1, top1="rome", n_pieces=1, gold_prob=np.exp(made["gold_logprob"]),
        topk_tokens=[["rome"]] * len(made), topk_probs=[[0.5]] * len(made))}
    steps = [None, *STEPS]
    tables["checkpoints"] = pd.DataFrame([{**checkpoint(s), "path": None, "family": "bert", "fingerprint": f"f{s}",
                                           "status": "control" if s is None else "ok", "duplicate_of": None,
                                           "error": None} for s in steps])
    tables = results_of(tables)
    tables["findings"] = found
    manifest = new_manifest(inputs={"benchmark": {"facts": {}}}, analyses=["predictions", "pairs", "syntax-heads",
                                                                            "probes", "tracing"],
                            options={}, at={}, settings={}, statistics=stats.settings(), device="cpu",
                            checkpoints=len(steps), skipped=0, facts=None)
    ProbeResult(tables, manifest).save(root / "results")
    return build_report(root / "results", root / "site").parent
