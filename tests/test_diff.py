"""Two checkpoints compared (`probekit.diff`): prompts newly right or lost, and weight distance per block."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from test_families import write_checkpoint
from transformers import AutoModelForMaskedLM

from probekit.diff import change_summary, rank_changes, weight_distance
from probekit.models.series import resolve_checkpoints

# ------------------------------------------------ weight distance, block by block as each family names them

PARTS = {  # model_type → (its layers, a module of its MLM head), by the HF model's own attributes
    "bert": (lambda m: m.bert.encoder.layer, lambda m: m.cls.predictions.transform),
    "distilbert": (lambda m: m.distilbert.transformer.layer, lambda m: m.vocab_transform),
    "modernbert": (lambda m: m.model.layers, lambda m: m.head),
}


@pytest.mark.parametrize("model_type", list(PARTS))
def test_weight_distance_is_per_layer_in_every_family(tmp_path, model_type):
    layers, head = PARTS[model_type]
    write_checkpoint(tmp_path / "a", model_type)
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "a")
    before = [[p.detach().clone() for p in layer.parameters()] for layer in layers(model)]
    moved_head = sum(p.numel() for p in head(model).parameters())
    with torch.no_grad():
        for i, layer in enumerate(layers(model)):  # layer i moves by 0.01 (i + 1) in every weight
            for p in layer.parameters():
                p.add_(0.01 * (i + 1))
        for p in head(model).parameters():
            p.add_(0.05)
    model.save_pretrained(tmp_path / "b")
    a, b = (resolve_checkpoints(str(tmp_path / name))[0] for name in "ab")

    table = weight_distance(a, b).set_index("block")
    assert list(table.index) == ["embeddings", "layer 0", "layer 1", "mlm head"]
    for i, params in enumerate(before):
        distance = 0.01 * (i + 1) * math.sqrt(sum(p.numel() for p in params))
        norm = math.sqrt(sum(float(p.pow(2).sum()) for p in params))
        assert table.loc[f"layer {i}", "distance"] == pytest.approx(distance, rel=1e-4)
        assert table.loc[f"layer {i}", "relative_distance"] == pytest.approx(distance / norm, rel=1e-4)
    assert table.loc["embeddings", "distance"] == 0
    assert table.loc["mlm head", "distance"] == pytest.approx(0.05 * math.sqrt(moved_head), rel=1e-4)


def test_checkpoints_of_two_families_have_no_weight_distance(tmp_path):
    a = resolve_checkpoints(str(write_checkpoint(tmp_path / "a", "bert")))[0]
    b = resolve_checkpoints(str(write_checkpoint(tmp_path / "b", "distilbert")))[0]
    assert weight_distance(a, b).empty


# ------------------------------------------------ unscorable prompts are counted apart

RANKS = {  # prompt → (gold rank at a, at b); NaN = unscorable there
    "newly right": (5.0, 1.0), "lost": (1.0, 3.0), "moved": (4.0, 2.0), "same": (2.0, 2.0),
    "right, then unscorable": (1.0, math.nan), "unscorable, then right": (math.nan, 1.0),
    "unscorable at both": (math.nan, math.nan),
}


def made_predictions() -> pd.DataFrame:
    rows = []
    for step, side in ((0, 0), (10, 1)):
        for prompt, ranks in RANKS.items():
            rank = ranks[side]
            rows.append({"checkpoint": f"c{step}", "step": step, "run": "r", "benchmark": "b", "relation": "capital",
                         "group": "injected", "prompt": prompt, "answer": "rome", "gold_rank": rank,
                         "top1": "" if math.isnan(rank) else ("rome" if rank == 1 else f"x{rank}")})
    return pd.DataFrame(rows).astype({"checkpoint": "string", "prompt": "string", "top1": "string"})  # as stored


def test_a_prompt_unscorable_on_either_side_is_neither_newly_right_nor_lost():
    summary = change_summary(made_predictions(), "c0", "c10").iloc[0]
    assert summary[["prompts", "unscorable", "newly_right", "lost", "top1_changed"]].tolist() == [7, 3, 1, 1, 3]


def test_changed_prompts_mark_the_unscorable_apart():
    moved = rank_changes(made_predictions(), "c0", "c10")
    assert list(zip(moved["prompt"], moved["change"])) == [  # flips first, the biggest first; plain moves last
        ("newly right", "newly right"), ("lost", "lost"), ("right, then unscorable", "unscorable"),
        ("unscorable, then right", "unscorable"), ("moved", "")]


def test_a_checkpoint_against_its_copy_changes_nothing():
    predictions = made_predictions()
    copy = predictions[predictions.checkpoint == "c0"].assign(checkpoint="copy")
    assert rank_changes(pd.concat([predictions, copy]), "c0", "copy").empty
