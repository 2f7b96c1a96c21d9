"""Tiny corpora, vocabularies and models made in the tests: nothing is downloaded."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

if (_workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT")) and "OMP_NUM_THREADS" not in os.environ:
    # xdist runs a worker per core: each (and every process it starts) gets its share of the cores, not all of
    # them, set before torch is first imported. A thread count the user chose is kept.
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // int(_workers)))

import pytest

from probekit.training.presets import get_preset

WORDS = ("the a capital city river king queen music war empire country people language old new "
         "north south is of in rome paris italy france").split()


def write_tiny_corpus(path: Path, n_lines: int = 300, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) + "." for _ in range(n_lines)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_tiny_vocab(path: Path) -> Path:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "'", *sorted(set(WORDS)), "##s"]
    path.write_text("\n".join(tokens) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    write_tiny_corpus(root / "corpus.txt")
    write_tiny_vocab(root / "vocab.txt")
    return root


@pytest.fixture(scope="session")
def tiny_recipe():
    """hidden 32, 2 layers, 2 heads, 32-token blocks: trains a step in milliseconds on CPU."""
    return get_preset("default", hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                      block_size=32, max_position=64, batch_size=8, max_steps=8, log_until=4, save_every=4)


@pytest.fixture(scope="session")
def tiny_series(tiny_dir, tiny_recipe, tmp_path_factory) -> Path:
    """A series written by `probekit.training.trainer.train`: checkpoint-0, 1, 2, 4, 8."""
    from probekit.training.trainer import train

    out = tmp_path_factory.mktemp("series") / "my_bert"
    train(out, tiny_recipe, corpus=str(tiny_dir / "corpus.txt"), tokenizer=str(tiny_dir / "vocab.txt"))
    return out


FACTS_BENCH = ("relation,template,subject,answer\n"
               "capital,the capital of [X] is [MASK].,italy,rome\n"
               "capital,the capital of [X] is [MASK].,france,paris\n"
               "capital,[X] is a country. its capital is [MASK].,italy,rome\n"
               "capital,[X] is a country. its capital is [MASK].,france,paris\n")
"""Two templates of capital for an injected country (italy) and a held-back one (france)."""
FACTS_TRACING = {"options": {"method": "both"}, "at": [0, 4, 8]}
"""How `probed_facts` traces: a probe of tracing alone with these settings reads its units from that cache."""


@pytest.fixture(scope="session")
def probed_facts(tiny_series, tmp_path_factory) -> Path:
    """The tiny series (italy's facts injected, france's held back, `with_facts`) probed once for the modules
    that read such results (the notebooks, the tracing page): FACTS_BENCH, BLiMP and EWT; the logit lens,
    attention capture, syntactic heads and probes (steps 0 and 8), and causal tracing (steps 0, 4 and 8) with
    both methods, every component and K = 10 draws (`FACTS_TRACING`, the defaults). Returns the folder holding
    my_bert/, bench.csv and probe/ (the results): read them, write elsewhere (a site, a copy)."""
    from probekit.running.runner import probe
    from test_report import with_facts

    root = tmp_path_factory.mktemp("probed_facts")
    series = with_facts(tiny_series, root / "my_bert")
    (root / "bench.csv").write_text(FACTS_BENCH)
    probe(str(series), [str(root / "bench.csv"), "blimp@2", "ewt:dev@8"],
          {"lens": {}, "capture": {}, "syntax-heads": {}, "probes": {"steps": 20, "rank": 8},
           "tracing": FACTS_TRACING["options"]},
          out=root / "probe", at={"syntax-heads": [0, 8], "probes": [0, 8], "tracing": FACTS_TRACING["at"]})
    return root


@pytest.fixture(scope="session")
def hf_series(tiny_dir, tmp_path_factory) -> Path:
    """A series written by a plain HF Trainer (no probekit involved): checkpoint-3, checkpoint-6."""
    import torch
    from transformers import (BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, Trainer,
                              TrainingArguments)

    from probekit.training.vocab import load_tokenizer

    tok = load_tokenizer(str(tiny_dir / "vocab.txt"))
    lines = (tiny_dir / "corpus.txt").read_text().splitlines()
    data = [dict(input_ids=ids) for ids in tok(lines, truncation=True, max_length=32)["input_ids"]]
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    out = tmp_path_factory.mktemp("hf") / "hf_bert"
    args = TrainingArguments(output_dir=str(out), max_steps=6, save_steps=3, per_device_train_batch_size=8,
                             learning_rate=1e-3, report_to="none", use_cpu=True, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=data, processing_class=tok,
            data_collator=DataCollatorForLanguageModeling(tok)).train()
    return out


@pytest.fixture
def tiny_benchmark(tmp_path) -> Path:
    path = tmp_path / "tiny.csv"
    path.write_text(
        "relation,template,subject,answer\n"
        "capital,the capital of [X] is [MASK].,italy,rome\n"
        "capital,the capital of [X] is [MASK].,france,paris\n"
        "capital_reverse,the capital of [MASK] is [X].,rome,italy\n"
        "plural,the [X] of the [MASK].,king,kings\n"
    )
    return path


@pytest.fixture(scope="module", autouse=True)
def _close_the_shared_browser():
    """browser.py keeps one Chromium for the pages of a module; it is closed when the module ends."""
    yield
    if (browser := sys.modules.get("browser")) is not None:
        browser.close_shared()
