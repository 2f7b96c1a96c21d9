import pytest

from probekit import ProbekitError, get_preset
from probekit.training.presets import PRESETS

SEED, DEFAULT = PRESETS["seed"], PRESETS["default"]


def test_seed_is_the_notebook_recipe():
    assert (SEED.hidden_size, SEED.num_layers, SEED.num_heads, SEED.intermediate_size, SEED.max_position) == (
        128, 2, 4, 512, 128)
    assert (SEED.lr, SEED.batch_size, SEED.epochs, SEED.packing) == (5e-5, 32, 5.0, False)
    assert not SEED.masked_only_decoder and SEED.hf_collator and SEED.gpu_scale() == 1


def test_default_trains_the_same_model():
    assert DEFAULT.model_config(30522) == SEED.model_config(30522)
    assert DEFAULT.packing and DEFAULT.masked_only_decoder and DEFAULT.lr > SEED.lr and DEFAULT.warmup > 0
    assert DEFAULT.gpu_scale() == 16 and DEFAULT.scaled(16).batch_size == 512


def test_presets_are_recipes_by_name_only():
    import probekit.training.presets as presets

    assert not {"SEED", "DEFAULT", "DEMO"} & set(vars(presets))
    assert all(recipe.name == name for name, recipe in PRESETS.items())


def test_overrides_apply_and_none_keeps_the_preset():
    recipe = get_preset("seed", lr=1e-3, batch_size=None)
    assert recipe.lr == 1e-3 and recipe.batch_size == SEED.batch_size and recipe.name == "seed"


def test_unknown_preset_is_one_clear_error():
    with pytest.raises(ProbekitError, match="unknown preset 'fast'.*default, seed"):
        get_preset("fast")


def test_heads_must_divide_hidden_size():
    with pytest.raises(ProbekitError, match="not divisible by 3 attention heads"):
        get_preset("default", hidden_size=32, num_heads=3)
