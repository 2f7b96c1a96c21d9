import json

import pytest

from probekit.training.folders import RUN_FILE, seed_of, step_in_name, step_of


@pytest.mark.parametrize("location, seed", [
    ("local/my_bert/seed-3/checkpoint-800", "3"),
    ("runs/seed_12/checkpoint-5", "12"),
    ("google/multiberts-seed_4-step_20k", "4"),
    ("google/multiberts-seed_0-step_2000k", "0"),
    ("org/roberta-seed-07@step-100", "7"),
    ("local/my_bert/checkpoint-800", ""),
    ("local/seedling/checkpoint-8", ""),
])
def test_seed_is_read_from_the_path_or_hub_name(location, seed):
    assert seed_of(location) == seed


def test_seed_falls_back_to_the_run_record(tmp_path):
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / RUN_FILE).write_text(json.dumps({"identity": {}, "recipe": {"seed": 5}}))
    assert seed_of(str(tmp_path / "checkpoint-4")) == "5"
    (tmp_path / RUN_FILE).write_text("{broken")
    assert seed_of(str(tmp_path / "checkpoint-4")) == ""


@pytest.mark.parametrize("name, step", [
    ("multiberts-seed_0-step_20k", 20_000), ("bert-step_2M", 2_000_000), ("2M", 2_000_000), ("20k", 20_000),
    ("checkpoint-500", 500), ("step143000", 143_000), ("step_1.5k", 1500), ("run-step-1000", 1000),
    ("multiberts-seed_0", None), ("bert_uncased_L-2_H-128_A-2", None), ("stepwise-3", None),
])
def test_a_local_folder_name_states_its_step_as_a_hub_name_does(tmp_path, name, step):
    """One parser: a folder named like a hub checkpoint gets the step the hub name gets (issue 23)."""
    folder = tmp_path / name
    folder.mkdir()
    assert step_of(folder) == step


@pytest.mark.parametrize("name, step", [
    ("multiberts-seed_0-step_20k", 20_000), ("multiberts-seed_4-step_2000k", 2_000_000), ("run-step-1000", 1000),
    ("checkpoint-500", 500), ("step143000", 143_000), ("bert-step_2M", 2_000_000), ("step_1.5k", 1500),
    ("20k", 20_000), ("main", None), ("bert-base-uncased", None), ("stepwise-3", None),
])
def test_steps_read_from_names_and_revisions(name, step):
    assert step_in_name(name) == step
