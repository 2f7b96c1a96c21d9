import json

import pytest

from probekit.folders import RUN_FILE, seed_of


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
