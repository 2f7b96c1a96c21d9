import math

import pandas as pd
import pytest
import torch

from probekit.models.activations import Capture
from probekit.models.hooks import hook_name
from probekit.analyses.metrics import head_metrics

TOKENS = [["[CLS]", "rome", ",", "italy", "[SEP]"], ["[CLS]", "paris", "[SEP]"]]
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])


def made_capture(kind: str, n_layers: int = 1, n_heads: int = 2) -> Capture:
    """Patterns with known metrics: 'prev' (attend to the token before; [CLS] to itself), 'uniform', 'next'."""
    width = MASK.shape[1]
    pattern = torch.zeros(2, n_heads, width, width)
    for b, length in enumerate(MASK.sum(1).tolist()):
        for q in range(length):
            if kind == "uniform":
                pattern[b, :, q, :length] = 1 / length
            elif kind == "prev":
                pattern[b, :, q, max(q - 1, 0)] = 1
            else:
                pattern[b, :, q, min(q + 1, length - 1)] = 1
    tensors = {}
    for layer in range(n_layers):
        tensors[hook_name(layer, "attn.hook_pattern")] = pattern
        for h in ("q", "k", "v"):
            # [batch, pos, head, d_head]
            tensors[hook_name(layer, f"attn.hook_{h}")] = torch.full((2, width, n_heads, 4), 0.5)
    return Capture(tensors, TOKENS, MASK, n_layers, n_heads)


def metric(table: pd.DataFrame, name: str, checkpoint: str = "a") -> pd.Series:
    return table[(table.metric == name) & (table.checkpoint == checkpoint)].value


def test_uniform_heads():
    table = head_metrics([("a", 0, made_capture("uniform"))])
    # 5 real queries see 5 keys, 3 real queries see 3: one [CLS] each
    assert metric(table, "attn_cls").tolist() == pytest.approx([(5 / 5 + 3 / 3) / 8] * 2)
    assert metric(table, "entropy_ratio").tolist() == pytest.approx([1.0, 1.0])
    assert metric(table, "entropy").tolist() == pytest.approx([(5 * math.log2(5) + 3 * math.log2(3)) / 8] * 2)
    assert metric(table, "attn_punct").tolist() == pytest.approx([(5 * 0.2) / 8] * 2)
    assert metric(table, "q_norm").tolist() == pytest.approx([1.0, 1.0])


def test_previous_token_heads_and_padding_ignored():
    table = head_metrics([("a", 0, made_capture("prev"))])
    assert metric(table, "attn_prev").tolist() == pytest.approx([1.0, 1.0])
    assert metric(table, "attn_next").tolist() == pytest.approx([0.0, 0.0])
    assert metric(table, "attn_self").tolist() == pytest.approx([2 / 8] * 2)  # the two [CLS] rows
    assert metric(table, "entropy").tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_drift_between_checkpoints():
    series = [("a", 0, made_capture("prev")), ("b", 10, made_capture("prev")), ("c", 20, made_capture("next"))]
    table = head_metrics(series)
    assert metric(table, "js_prev", "a").isna().all()
    assert metric(table, "js_prev", "b").tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    # "prev" and "next" put all weight on different tokens in every row: 1 bit apart
    assert metric(table, "js_prev", "c").tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert metric(table, "js_final", "a").tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert metric(table, "js_final", "c").tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_table_is_tidy():
    table = head_metrics([("a", 0, made_capture("uniform", n_layers=2, n_heads=3)),
                          ("b", 5, made_capture("prev", n_layers=2, n_heads=3))])
    assert list(table.columns) == ["checkpoint", "step", "layer", "head", "metric", "value"]
    assert len(table) == 2 * 2 * 3 * 13
    assert not table.duplicated(["checkpoint", "layer", "head", "metric"]).any()


def test_emergence_finds_when_a_fact_is_learned_for_good():
    from probekit.analyses.metrics import emergence, known_counts

    ranks = {"rome": [50, 1, 3, 1, 1], "paris": [9, 1, 1, 1, 2], "oslo": [70, 40, 20, 12, 11]}
    steps = [0, 10, 20, 40, 80]
    rows = [{"benchmark": "b", "relation": "capital", "group": "injected", "template": "t", "subject": s,
             "answer": s, "prompt": f"p {s}", "checkpoint": f"c{step}", "step": step, "gold_rank": r}
            for s, rs in ranks.items() for step, r in zip(steps, rs)]
    table = emergence(pd.DataFrame(rows)).set_index("answer")
    assert table.loc["rome", "first_correct"] == 10 and table.loc["rome", "stable_top1_from"] == 40
    assert table.loc["paris", "first_correct"] == 10 and math.isnan(table.loc["paris", "stable_top1_from"])
    assert table.loc["paris", "stable_top10_from"] == 0
    assert math.isnan(table.loc["oslo", "first_correct"]) and math.isnan(table.loc["oslo", "stable_top10_from"])
    counts = known_counts(pd.DataFrame(rows)).set_index(["step", "criterion"])["count"]
    assert counts[(40, "rank 1")] == 2 and counts[(80, "top 10")] == 2


# ------------------------------------------------ [CLS] and [SEP] as each family's tokenizer spells them

SENTENCES = ["The capital of Italy is Rome.", ("Paris is a city.", "The king of the people.")]


def attention_to_by_hand(folder, tokens: tuple[str, str]) -> dict[str, torch.Tensor]:
    """Per (layer, head), the mean attention of every token to the classifier and to the separator tokens,
    from the model's own attention outputs, one sentence at a time (no padding)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    sums, queries = {"attn_cls": 0.0, "attn_sep": 0.0}, 0
    for sentence in SENTENCES:
        encoded = tok(*sentence, return_tensors="pt") if isinstance(sentence, tuple) else tok(sentence,
                                                                                             return_tensors="pt")
        with torch.no_grad():
            attentions = torch.stack(model(**encoded, output_attentions=True).attentions)[:, 0]  # [layer, head, q, k]
        ids = encoded["input_ids"][0]
        for name, token in zip(sums, tokens):
            sums[name] = sums[name] + attentions[..., ids == tok.convert_tokens_to_ids(token)].sum((-1, -2))
        queries += len(ids)
    return {name: total / queries for name, total in sums.items()}


@pytest.mark.parametrize("model_type, tokens", [("roberta", ("<s>", "</s>")), ("xlm-roberta", ("<s>", "</s>")),
                                                ("bert", ("[CLS]", "[SEP]"))])
def test_head_metrics_find_each_tokenizers_own_cls_and_sep(tmp_path, model_type, tokens):
    from test_families import write_checkpoint

    from probekit.models.activations import capture

    folder = write_checkpoint(tmp_path / model_type, model_type)
    table = head_metrics([("a", 0, capture(str(folder), SENTENCES))])
    for name, expected in attention_to_by_hand(folder, tokens).items():
        got = metric(table, name).to_numpy().reshape(expected.shape)
        assert got == pytest.approx(expected.numpy(), abs=1e-5), name
        assert (got > 0).all()


def test_head_metrics_follow_the_tokenizer_not_the_family(tmp_path):
    from test_families import SIZE, byte_level
    from transformers import AutoConfig, AutoModelForMaskedLM

    from probekit.models.activations import capture

    tok = byte_level(roberta=True)  # a BERT model given a RoBERTa-style tokenizer: <s> … </s>
    config = AutoConfig.for_model("bert", vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                  max_position_embeddings=64, **SIZE)
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    table = head_metrics([("a", 0, capture(str(tmp_path), SENTENCES))])
    for name, expected in attention_to_by_hand(tmp_path, ("<s>", "</s>")).items():
        assert metric(table, name).to_numpy() == pytest.approx(expected.flatten().numpy(), abs=1e-5), name
