"""Fill-mask prompts with foils, scored as a choice (oLMpics' multiple-choice MLM; BLiMP's one-prefix method)."""

import numpy as np
import pytest
from transformers import BertForMaskedLM, pipeline

from probekit.benchmarks import load_benchmark
from probekit.benchmarks.pairs import load_choices
from probekit.running.runner import probe
from probekit.training.vocab import load_tokenizer


@pytest.fixture
def choice_bench(tmp_path):
    path = tmp_path / "choice.csv"
    path.write_text("relation,template,subject,answer,candidates\n"
                    "capital,the capital of [X] is [MASK].,italy,rome,paris|france\n"
                    "capital,the capital of [X] is [MASK].,france,paris,rome\n"
                    "capital,the capital of [X] is [MASK].,spain,madrid,\n"
                    "plural,the [X] of the [MASK].,king,kings,zebra\n"
                    "broken,the [X] is [MASK].,war,old,old|new\n"
                    "case,the [X] is [MASK].,war,old,OLD\n")
    return path


def test_candidates_are_read_and_bad_ones_reported(choice_bench):
    bench = load_benchmark(choice_bench)
    assert bench.candidates == [["paris", "france"], ["rome"], [], ["zebra"], ["OLD"]]
    assert len(bench.problems) == 1 and "row 6: the answer 'old' is among its own candidates" in bench.problems[0]


def test_choice_agrees_with_the_fill_mask_pipeline(tiny_series, choice_bench):
    result = probe(str(tiny_series / "checkpoint-8"), [str(choice_bench)])
    choices = result.tables["choices"]
    assert "choice" in result.manifest["analyses"]
    assert set(choices["prompt"]) == {"the capital of italy is [MASK].", "the capital of france is [MASK].",
                                      "the king of the [MASK].", "the war is [MASK]."}
    final = choices[choices["checkpoint"] == "checkpoint-8"].set_index("subject")
    path = tiny_series / "checkpoint-8"
    fill = pipeline("fill-mask", model=BertForMaskedLM.from_pretrained(path), tokenizer=load_tokenizer(str(path)))
    for subject, gold, foils in (("italy", "rome", ["paris", "france"]), ("france", "paris", ["rome"])):
        scores = {r["token_str"]: r["score"] for r in fill(f"the capital of {subject} is [MASK].",
                                                         targets=[gold, *foils])}
        row = final.loc[subject]
        assert row["gold_logprob"] == pytest.approx(np.log(scores[gold]), abs=1e-5)
        best = max(foils, key=scores.get)
        assert row["best_foil"] == best and row["best_foil_logprob"] == pytest.approx(np.log(scores[best]), abs=1e-5)
        assert row["correct"] == (scores[gold] > scores[best]) and row["scorable"]
    assert not final.loc["king", "scorable"] and not final.loc["king", "correct"]  # "zebra" is not in the vocabulary
    assert not final.loc["war", "scorable"]  # an uncased vocabulary spells OLD as old: no choice, not a tie

    accuracy = result.tables["choice_accuracy"]
    row = accuracy[(accuracy["checkpoint"] == "checkpoint-8") & (accuracy["relation"] == "capital")].iloc[0]
    expected = final.loc[["italy", "france"], "correct"].mean()
    assert (row["n"], row["accuracy"]) == (2, expected) and row["accuracy_low"] <= expected <= row["accuracy_high"]
    plural = accuracy[(accuracy["checkpoint"] == "checkpoint-8") & (accuracy["relation"] == "plural")].iloc[0]
    assert (plural["n"], plural["n_unscorable"]) == (0, 1)


def test_one_word_minimal_pairs_become_choices(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("good,bad,paradigm\n"
                     "The keys to the cabinet are here.,The keys to the cabinet is here.,agreement\n"
                     "\"Who left, she asked?\",\"Who left, she said?\",verbs\n"
                     "Who did you see?,Who you did see?,word_order\n")
    bench = load_choices(f"choice:{pairs}")
    assert bench.prompts["prompt"].tolist() == ["The keys to the cabinet [MASK] here.", "Who left, she [MASK]?"]
    assert bench.prompts["answer"].tolist() == ["are", "asked"] and bench.candidates == [["is"], ["said"]]
    shipped = load_choices("choice:blimp:regular_plural_subject_verb_agreement_1", sample=5)
    assert len(shipped.prompts) == 5 and set(shipped.prompts["relation"]) == {
        "regular_plural_subject_verb_agreement_1"}
    assert all(p.count("[MASK]") == 1 for p in shipped.prompts["prompt"])
