import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

from probekit import ProbekitError
from probekit.cli import main
from probekit.training.data import MaskingCollator, pack_blocks
from probekit.training.folders import RUN_FILE
from probekit.core.log import show_messages
from probekit.training.trainer import (
    MaskedOnlyBertForMaskedLM,
    MaskedOnlyBertForPreTraining,
    checkpoint_steps,
    device_recipe,
    lr_factor,
    train,
    warmup_steps,
)

TINY = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64)


def tiny_args(tiny_dir, out, *extra):
    return ["train", "-o", str(out), "--corpus", str(tiny_dir / "corpus.txt"), "--tokenizer",
            str(tiny_dir / "vocab.txt"), "--hidden-size", "32", "--heads", "2", "--intermediate-size", "64",
            "--block-size", "32", "--batch-size", "4", "--max-steps", "6", "--save-every", "3",
            "--log-until", "2", *extra]


def test_packing_fills_every_block_with_text():
    docs = [[10, 11, 12], [13, 14], [15, 16, 17, 18, 19]]
    blocks = pack_blocks(docs, block_size=6, cls_id=2, sep_id=3)
    assert blocks.tolist() == [[2, 10, 11, 12, 3, 3], [2, 13, 14, 3, 15, 3], [2, 16, 17, 18, 19, 3]]


def test_corpus_smaller_than_a_block_is_an_error():
    with pytest.raises(ProbekitError, match="do not fill one block of 128"):
        pack_blocks([[5, 6]], 128, 2, 3)


def test_checkpoint_schedule_is_log_spaced_then_regular():
    assert checkpoint_steps(2000, log_until=512, save_every=500) == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 500, 512, 1000, 1500, 2000]
    assert checkpoint_steps(7, log_until=4, save_every=0) == [1, 2, 4, 7]


@pytest.mark.parametrize("budget", [None, 0.2])
@pytest.mark.parametrize("stock, sparse", [(BertForMaskedLM, MaskedOnlyBertForMaskedLM),
                                           (BertForPreTraining, MaskedOnlyBertForPreTraining)])
def test_masked_only_decoder_gives_the_stock_loss(stock, sparse, budget):
    """Both ways of picking masked positions: by boolean mask, and the fixed-size budget the GPU uses."""
    torch.manual_seed(0)
    reference = stock(BertConfig(**TINY)).eval()
    model = sparse(BertConfig(**TINY)).eval()
    model.masked_budget = budget
    model.load_state_dict(reference.state_dict())
    ids = torch.randint(5, 40, (4, 16))
    labels = torch.full_like(ids, -100)
    labels[:, ::5] = ids[:, ::5]
    extra = {"next_sentence_label": torch.tensor([0, 1, 1, 0])} if stock is BertForPreTraining else {}
    expected = reference(input_ids=ids, labels=labels, **extra).loss
    got = model(input_ids=ids, labels=labels, **extra).loss
    assert torch.allclose(got, expected, atol=1e-6), (got, expected)
    assert type(model).__name__ == stock.__name__


def test_series_is_plain_hf_checkpoints(tiny_series):
    names = sorted(p.name for p in tiny_series.glob("checkpoint-*"))
    assert names == ["checkpoint-0", "checkpoint-1", "checkpoint-2", "checkpoint-4", "checkpoint-8"]
    for path in tiny_series.glob("checkpoint-*"):
        model, info = BertForMaskedLM.from_pretrained(path, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], path
        assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
        assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
        assert json.loads((path / "trainer_state.json").read_text())["global_step"] == int(path.name.split("-")[1])
    run = json.loads((tiny_series / "probekit_run.json").read_text())
    assert run["identity"]["hidden_size"] == 32 and run["recipe"]["name"] == "default"


def test_training_lowers_the_heldout_loss(tiny_series):
    history = json.loads((tiny_series / "checkpoint-8" / "trainer_state.json").read_text())["log_history"]
    losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    assert len(losses) == 4 and losses[-1] < losses[0]


def _digest(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_resume_skips_a_half_written_checkpoint(tiny_dir, tmp_path):
    show_messages()
    out = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(main, tiny_args(tiny_dir, out)).exit_code == 0
    (out / "checkpoint-6" / "optimizer.pt").unlink()  # interrupted while writing step 6
    kept = _digest(out / "checkpoint-3")
    result = runner.invoke(main, tiny_args(tiny_dir, out))
    assert result.exit_code == 0, result.output
    assert "checkpoint-6: half-written checkpoint (optimizer.pt is missing)" in result.output
    assert "resuming from" in result.output and "checkpoint-3" in result.output
    assert "tied to the word embeddings" in result.output
    assert json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())["global_step"] == 6
    assert (out / "checkpoint-6" / "optimizer.pt").is_file()
    assert _digest(out / "checkpoint-3") == kept


def test_resume_keeps_the_history_before_the_interruption(tiny_dir, tiny_recipe, tmp_path):
    kwargs = dict(corpus=str(tiny_dir / "corpus.txt"), tokenizer=str(tiny_dir / "vocab.txt"))
    train(tmp_path / "straight", tiny_recipe, **kwargs)
    train(tmp_path / "resumed", tiny_recipe, **kwargs)
    for name in ("optimizer.pt", "scheduler.pt"):
        (tmp_path / "resumed" / "checkpoint-8" / name).unlink()
    result = train(tmp_path / "resumed", tiny_recipe, **kwargs)
    assert result.resumed_from.name == "checkpoint-4"

    def history(run):
        state = json.loads((tmp_path / run / "checkpoint-8" / "trainer_state.json").read_text())
        assert state["global_step"] == 8
        return [h for h in state["log_history"] if h.get("step", 0) <= 4 and "loss" in h]

    assert history("resumed") == history("straight") and len(history("straight")) >= 2


def test_nsp_trains_bert_for_pretraining(tiny_dir, tmp_path):
    result = CliRunner().invoke(main, tiny_args(tiny_dir, tmp_path / "nsp", "--nsp"))
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "nsp" / "checkpoint-6" / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"]
    model, info = BertForPreTraining.from_pretrained(tmp_path / "nsp" / "checkpoint-6", output_loading_info=True)
    assert not info["missing_keys"]
    history = json.loads((tmp_path / "nsp" / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]
    assert any("loss" in h for h in history)


def test_output_holding_another_model_is_refused_untouched(tiny_dir, tiny_series):
    before = _digest(tiny_series)
    result = CliRunner().invoke(main, tiny_args(tiny_dir, tiny_series)[:-2] + ["--hidden-size", "64"])
    assert result.exit_code == 1
    assert f"{tiny_series}: holds checkpoints of another model (hidden_size 64 here, 32 there" in result.output
    assert _digest(tiny_series) == before


@pytest.mark.parametrize("corpus, message", [("missing.txt", "missing.txt: no such corpus file or folder"),
                                             ("empty.txt", "empty.txt: corpus is empty")])
def test_bad_corpus_is_one_line_and_nonzero(tiny_dir, tmp_path, corpus, message):
    (tmp_path / "empty.txt").write_text("\n\n")
    args = tiny_args(tiny_dir, tmp_path / "out")
    args[args.index("--corpus") + 1] = str(tmp_path / corpus)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unknown_preset_is_refused(tiny_dir, tmp_path):
    result = CliRunner().invoke(main, tiny_args(tiny_dir, tmp_path / "out", "--preset", "fast"))
    assert result.exit_code == 2 and "'fast' is not one of" in result.output


@pytest.mark.slow
def test_two_process_torchrun_on_cpu(tiny_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "probekit",
           *tiny_args(tiny_dir, out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    one_process_epoch = 6 * 4 / int(json.loads((out / "probekit_run.json").read_text())["train_examples"])
    assert state["epoch"] == pytest.approx(2 * one_process_epoch, rel=0.2)  # two ranks share the data
    assert BertForMaskedLM.from_pretrained(out / "checkpoint-6") is not None


def test_fact_corpus_is_recorded_beside_the_checkpoints(tiny_dir, tiny_recipe, tmp_path):
    from probekit.training.facts import FactRecord

    result = train(tmp_path / "facts", tiny_recipe, corpus=str(tiny_dir / "corpus.txt") + "+facts",
                   tokenizer=str(tiny_dir / "vocab.txt"))
    record = FactRecord.load(result.output)
    assert record is not None and record.injected and record.held_back and record.seed == tiny_recipe.seed
    assert json.loads((result.output / "probekit_run.json").read_text())["corpus"].endswith("+facts")


def test_wordpiece_run_reuses_its_tokenizer_on_resume(tiny_dir, tiny_recipe, tmp_path):
    kwargs = dict(corpus=str(tiny_dir / "corpus.txt"), tokenizer="wordpiece:120")
    first = train(tmp_path / "wp", tiny_recipe, **kwargs)
    vocab = (first.output / "checkpoint-8" / "tokenizer.json").read_text()
    (first.output / "checkpoint-8" / "optimizer.pt").unlink()
    again = train(tmp_path / "wp", tiny_recipe, **kwargs)
    assert again.resumed_from.name == "checkpoint-4"
    assert (first.output / "checkpoint-8" / "tokenizer.json").read_text() == vocab


def test_mlm_probability_is_a_recipe_option(tiny_dir, tmp_path):
    result = CliRunner().invoke(main, tiny_args(tiny_dir, tmp_path / "out", "--mlm-probability", "0.4"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / RUN_FILE).read_text())["recipe"]["mlm_probability"] == 0.4
    refused = CliRunner().invoke(main, tiny_args(tiny_dir, tmp_path / "bad", "--mlm-probability", "1.5"))
    assert refused.exit_code == 2 and "--mlm-probability" in refused.output and not (tmp_path / "bad").exists()


def test_masking_collator_masks_as_hf_does_for_the_same_random_state(tiny_dir):
    from transformers import DataCollatorForLanguageModeling

    from probekit.training.vocab import load_tokenizer

    tok = load_tokenizer(str(tiny_dir / "vocab.txt"))
    rows = torch.randint(5, len(tok), (16, 32))
    rows[:, 0], rows[:, -1], rows[3, 10:] = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
    mask = (rows != tok.pad_token_id).long()
    torch.manual_seed(7)
    ours = MaskingCollator(tok, mlm_probability=0.4)({"input_ids": rows, "attention_mask": mask})
    torch.manual_seed(7)
    theirs = DataCollatorForLanguageModeling(tok, mlm_probability=0.4)(
        [{"input_ids": r, "attention_mask": m} for r, m in zip(rows, mask)])
    assert torch.equal(ours["labels"], theirs["labels"]) and torch.equal(ours["input_ids"], theirs["input_ids"])
    assert (ours["labels"] != -100).any() and not (ours["labels"][:, 0] != -100).any()
    assert torch.equal(ours["attention_mask"], mask)


def test_learning_rate_warms_up_from_above_zero_to_the_peak_and_decays_to_zero():
    total, warmup = 100, 5
    factors = [lr_factor(s, warmup, total) for s in range(total)]
    assert factors[0] > 0 and max(factors) == 1.0 and factors.index(1.0) == warmup
    assert all(a < b for a, b in zip(factors[:warmup], factors[1:warmup + 1]))
    assert all(a >= b for a, b in zip(factors[warmup:], factors[warmup + 1:]))
    assert factors[-1] == pytest.approx(1 / (total - warmup)) and factors[-1] < 0.02


def test_every_checkpoint_differs_from_the_one_before(tiny_series):
    from safetensors.torch import load_file

    steps = sorted(int(p.name.split("-")[1]) for p in tiny_series.glob("checkpoint-*"))
    weights = [load_file(tiny_series / f"checkpoint-{s}" / "model.safetensors") for s in steps]
    for step, before, after in zip(steps[1:], weights, weights[1:]):
        changed = max((after[k].float() - before[k].float()).abs().max().item() for k in before)
        assert changed > 0, f"checkpoint-{step} has the weights of the checkpoint before it"
    state = json.loads((tiny_series / "checkpoint-8" / "trainer_state.json").read_text())
    lrs = [h["learning_rate"] for h in state["log_history"] if "learning_rate" in h]
    assert lrs[0] > 0


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_gpu_scaled_recipe_keeps_tokens_warmup_and_decay(world_size):
    from probekit.training.presets import get_preset

    base = get_preset("default", max_steps=3200, gpu_tokens_per_step=65536)
    run = device_recipe(base, cuda=True, world_size=world_size)
    k = base.gpu_scale()
    assert k == 16 and run.batch_size * world_size == base.batch_size * k
    assert run.lr == pytest.approx(base.lr * 4)
    tokens = lambda r, steps: steps * r.batch_size * (world_size if r is run else 1) * r.block_size  # noqa: E731
    assert tokens(run, run.max_steps) == tokens(base, base.max_steps)
    assert tokens(run, warmup_steps(run, run.max_steps)) == tokens(base, warmup_steps(base, base.max_steps))
    assert lr_factor(run.max_steps - 1, warmup_steps(run, run.max_steps), run.max_steps) < 0.01
    assert device_recipe(base, cuda=False) is base
    assert device_recipe(get_preset("seed"), cuda=True) == get_preset("seed")
    assert 0 <= run.save_every * k - base.save_every < k and run.log_until * k == base.log_until


def test_run_file_records_the_throughput(tiny_series):
    run = json.loads((tiny_series / RUN_FILE).read_text())
    assert run["throughput"]["tokens_per_s"] > 0 and run["throughput"]["steps"] == 8
    assert run["examples_per_step"] == 8 and run["corpus_fingerprint"] and run["vocab_fingerprint"]


# ---------------------------------------------------------------- refused before anything is written


def _other_vocab(tiny_dir, tmp_path):
    """Same size as the tiny vocabulary, two words swapped: another tokenizer that would pass a size check."""
    words = (tiny_dir / "vocab.txt").read_text().splitlines()
    a, b = words.index("rome"), words.index("paris")
    words[a], words[b] = words[b], words[a]
    path = tmp_path / "other_vocab.txt"
    path.write_text("\n".join(words) + "\n")
    return path


def _refused(series, recipe, **kwargs):
    """The one-line error of resuming `series` with `recipe`/`kwargs`; the series is left byte for byte."""
    before = _digest(series)
    with pytest.raises(ProbekitError) as error:
        train(series, recipe, **kwargs)
    assert _digest(series) == before
    assert "\n" not in str(error.value)
    return str(error.value)


def test_resume_with_another_tokenizer_of_the_same_size_is_refused(tiny_dir, tiny_recipe, tiny_series, tmp_path):
    other = _other_vocab(tiny_dir, tmp_path)
    message = _refused(tiny_series, tiny_recipe, corpus=str(tiny_dir / "corpus.txt"), tokenizer=str(other))
    assert message.startswith(f"{tiny_series}: its checkpoints were trained with another vocabulary")
    assert f"tokenizer {other} here" in message


def test_resume_on_another_corpus_is_refused(tiny_dir, tiny_recipe, tiny_series, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text((tiny_dir / "corpus.txt").read_text().replace("rome", "paris"))
    message = _refused(tiny_series, tiny_recipe, corpus=str(other), tokenizer=str(tiny_dir / "vocab.txt"))
    assert message.startswith(f"{tiny_series}: its checkpoints were trained on another corpus ({other} here")


def test_resume_on_a_changed_corpus_file_is_refused(tiny_dir, tiny_recipe, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text((tiny_dir / "corpus.txt").read_text())
    kwargs = dict(corpus=str(corpus), tokenizer=str(tiny_dir / "vocab.txt"))
    recipe = replace(tiny_recipe, max_steps=2, log_until=1)
    train(tmp_path / "run", recipe, **kwargs)
    corpus.write_text(corpus.read_text().replace("rome", "paris"))
    assert f"the corpus {corpus} holds other text" in _refused(tmp_path / "run", recipe, **kwargs)


def test_resume_with_another_wordpiece_size_is_refused(tiny_dir, tiny_recipe, tmp_path):
    kwargs = dict(corpus=str(tiny_dir / "corpus.txt"))
    recipe = replace(tiny_recipe, max_steps=2, log_until=1)
    train(tmp_path / "wp", recipe, tokenizer="wordpiece:120", **kwargs)
    message = _refused(tmp_path / "wp", recipe, tokenizer="wordpiece:600", **kwargs)
    assert "another tokenizer (wordpiece:600 here, wordpiece:120 there)" in message


def test_resume_with_another_seed_is_refused(tiny_dir, tiny_recipe, tiny_series):
    message = _refused(tiny_series, replace(tiny_recipe, seed=3), corpus=str(tiny_dir / "corpus.txt"),
                       tokenizer=str(tiny_dir / "vocab.txt"))
    assert "trained on other data (seed 3 here, 0 there)" in message


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"identity": 5}'])
def test_corrupt_run_file_is_one_line_naming_it(tiny_dir, tmp_path, content):
    out = tmp_path / "run"
    out.mkdir()
    (out / RUN_FILE).write_text(content)
    result = CliRunner().invoke(main, tiny_args(tiny_dir, out))
    assert result.exit_code == 1 and f"{out / RUN_FILE}: " in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (out / RUN_FILE).read_text() == content and not list(out.glob("checkpoint-*"))


@pytest.mark.parametrize("option, value", [
    ("--max-steps", "0"), ("--max-steps", "-3"), ("--epochs", "-1"), ("--epochs", "0"), ("--batch-size", "0"),
    ("--heads", "0"), ("--hidden-size", "0"), ("--block-size", "2"), ("--block-size", "1000"), ("--lr", "-1"),
    ("--lr", "0"), ("--hidden-size", "100000"), ("--layers", "0"), ("--save-every", "-1"), ("--heads", "3"),
])
def test_bad_recipe_values_are_refused_before_anything_is_written(tiny_dir, tmp_path, option, value):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, tiny_args(tiny_dir, out) + [option, value])
    assert result.exit_code in (1, 2), result.output
    assert option.lstrip("-").split("-")[0] in result.output.lower() or "divisible" in result.output
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize("field, value, message", [
    ("max_steps", 0, "max_steps 0 is outside"), ("epochs", 0.0, "epochs 0 is outside"),
    ("batch_size", 0, "batch_size 0"), ("num_heads", 0, "num_heads 0"), ("hidden_size", 30, "not divisible by 4"),
    ("block_size", 256, "block size 256 exceeds the model's 128 positions"), ("lr", -1e-3, "lr -0.001"),
    ("block_size", 4, "block_size 4"), ("warmup", 1.5, "warmup 1.5"),
])
def test_recipe_is_validated_in_one_place(field, value, message):
    from probekit.training.presets import PRESETS, get_preset

    with pytest.raises(ProbekitError, match=message):
        get_preset("default", **{field: value})
    with pytest.raises(ProbekitError, match=message):
        replace(PRESETS["default"], **{field: value})


def test_seed_recipe_trains_with_hf_collator_on_padded_lines(tiny_dir, tmp_path):
    args = tiny_args(tiny_dir, tmp_path / "seed", "--preset", "seed")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "seed" / RUN_FILE).read_text())
    assert run["recipe"]["hf_collator"] and not run["recipe"]["packing"] and run["throughput"]["steps"] == 6


def test_seeds_train_one_series_that_probes_as_seeds(tiny_dir, tiny_benchmark, tmp_path):
    """--seeds: one resumable run per seed, sharing corpus, facts and tokenizer, probed as seeds of one series."""
    from probekit import probe

    out = tmp_path / "seeds"
    args = tiny_args(tiny_dir, out, "--seeds", "0,1")
    args[args.index("--corpus") + 1] += "+facts"
    args[args.index("--tokenizer") + 1] = "wordpiece:120"
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    runs = [out / "seed-0", out / "seed-1"]
    assert all((run / "checkpoint-6" / "model.safetensors").is_file() for run in runs)
    records = [json.loads((run / RUN_FILE).read_text()) for run in runs]
    assert [r["recipe"]["seed"] for r in records] == [0, 1]
    assert records[0]["vocab_fingerprint"] == records[1]["vocab_fingerprint"]
    assert (runs[0] / "facts.json").read_text() == (runs[1] / "facts.json").read_text()
    assert _digest(runs[0] / "checkpoint-0")[Path("model.safetensors")] != \
        _digest(runs[1] / "checkpoint-0")[Path("model.safetensors")]

    (runs[1] / "checkpoint-6" / "optimizer.pt").unlink()
    finished = _digest(runs[0])
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "resuming from" in again.output and "seed-1/checkpoint-3" in again.output
    assert "seed-0: already trained to step 6 of 6; nothing to do" in again.output
    assert _digest(runs[0]) == finished  # a finished seed is left exactly as it was

    found = probe(str(out / "seed-*" / "checkpoint-*"), benchmarks=[str(tiny_benchmark)])
    predictions, scores = found.tables["predictions"], found.tables["scores"]
    assert set(predictions.loc[predictions["checkpoint"] != "random-init", "seed"]) == {"0", "1"}
    pooled = scores[scores["run"] == "all-seeds"]
    assert len(pooled) and set(pooled["n_seeds"]) == {2} and set(pooled["seed"]) == {"all-seeds"}
    assert set(found.tables["checkpoints"]["seed"]) == {"0", "1"}  # each run has its step 0: no control
    assert all(c.startswith("all-seeds/") for c in found.summary().index.get_level_values("checkpoint"))


def test_seeds_and_seed_together_are_refused(tiny_dir, tmp_path):
    result = CliRunner().invoke(main, tiny_args(tiny_dir, tmp_path / "x", "--seeds", "0,1", "--seed", "3"))
    assert result.exit_code == 2 and "--seed or --seeds" in result.output
    result = CliRunner().invoke(main, tiny_args(tiny_dir, tmp_path / "x", "--seeds", "1,1"))
    assert result.exit_code == 2 and "distinct seeds" in result.output


TRAIN_SCRIPT = """
import sys
from probekit.core.log import show_messages
from probekit.training.presets import get_preset
from probekit.training.trainer import train
show_messages()
recipe = get_preset("default", hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, block_size=32,
                    max_position=64, batch_size=8, max_steps=20, log_until=4, save_every=10)
train(sys.argv[1], recipe, corpus=sys.argv[2], tokenizer=sys.argv[3])
"""


def run_training(tiny_dir, out, terminal: bool) -> str:
    """A 20-step training run in a process of its own, its stdout and stderr a pipe (as a log file is) or a
    pseudo-terminal; everything it printed."""
    cmd = [sys.executable, "-c", TRAIN_SCRIPT, str(out), str(tiny_dir / "corpus.txt"), str(tiny_dir / "vocab.txt")]
    env = {**os.environ, "PROBEKIT_PROGRESS": "1", "COLUMNS": "120"}
    if not terminal:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout
        return proc.stdout
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen(cmd, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process has finished writing
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_log_file_gets_a_line_per_tenth_of_training_and_no_bars(tiny_dir, tmp_path):
    out = run_training(tiny_dir, tmp_path / "run", terminal=False)
    lines = out.splitlines()
    assert "\r" not in out and "it/s" not in out and "Writing model shards" not in out
    assert "{'loss'" not in out and "'train_runtime'" not in out and "%|" not in out
    progress = [line for line in lines if line.startswith("step ") and "tokens/s" in line]
    assert [line.split()[1] for line in progress] == [f"{s}/20" for s in range(2, 21, 2)], out
    assert "loss 3." in progress[-1] and "held-out loss" in progress[-1] and "(100%)" in progress[-1]
    assert "held-out MLM loss" not in out  # folded into the progress lines
    assert any(line.startswith("training BertForMaskedLM") for line in lines)
    assert any(line.startswith("trained 20 steps") for line in lines)
    assert len(lines) <= 16, out


def test_a_terminal_keeps_the_bars(tiny_dir, tmp_path):
    out = run_training(tiny_dir, tmp_path / "run", terminal=True)
    assert "20/20" in out and "it/s" in out  # tqdm's bar
    assert "held-out MLM loss" in out
    assert not [line for line in out.splitlines() if line.startswith("step ") and "tokens/s" in line]
