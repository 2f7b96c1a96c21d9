"""The data behind the report's prompt table and prompt pages: every prompt's gold rank and top 5 at every
checkpoint, compact enough to ship with the site as one script (tokens stored once, referenced by index)."""

from __future__ import annotations

import pandas as pd

from probekit.schema import CONTROL

KEYS = ["benchmark", "relation", "group", "template", "subject", "answer", "prompt"]
TOP = 5


def prompt_data(predictions: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """(data for `window.probekitPrompts`, the index table): one run's checkpoints in training order (the
    first run; with several seeds, the first seed), each prompt's final rank and first step at rank 1."""
    rows = predictions[(predictions["checkpoint"] != CONTROL)].dropna(subset=["step"])
    run = str(rows["run"].iloc[0]) if len(rows) else ""
    rows = rows[rows["run"] == run].sort_values("step", kind="stable")
    steps = [int(s) for s in sorted(rows["step"].unique())]
    position = {s: i for i, s in enumerate(steps)}
    codes = rows.groupby(KEYS, sort=False, dropna=False).ngroup().to_numpy()
    firsts = rows.drop_duplicates(KEYS)[KEYS].astype(str).to_dict("records")
    ranks: list[list] = [[None] * len(steps) for _ in firsts]
    top: list[list] = [[[] for _ in steps] for _ in firsts]
    vocab: dict[str, int] = {}
    for code, step, rank, tokens in zip(codes, rows["step"], rows["gold_rank"], rows["topk_tokens"]):
        i = position[int(step)]
        ranks[code][i] = None if pd.isna(rank) else int(rank)
        top[code][i] = [vocab.setdefault(str(t), len(vocab)) for t in list(tokens)[:TOP]]
    records, index = [], []
    for number, info in enumerate(firsts):
        hits = [s for s, r in zip(steps, ranks[number]) if r == 1]
        final = next((r for r in reversed(ranks[number]) if r is not None), None)
        summary = {"id": number, **info, "final_rank": final, "first_correct": hits[0] if hits else None}
        records.append({**summary, "ranks": ranks[number], "top": top[number]})
        index.append(summary)
    data = {"run": run, "steps": steps, "vocab": list(vocab), "prompts": records}
    frame = pd.DataFrame(index, columns=["id", *KEYS, "final_rank", "first_correct"])
    return data, frame.astype({"final_rank": "Int64", "first_correct": "Int64"})
