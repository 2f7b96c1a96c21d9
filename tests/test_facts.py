import hashlib
import json
import re

import pytest

from probekit.benchmarks import load_benchmark
from probekit.training.facts import (FactRecord, equivalence_classes, fact_groups, fact_sentences, facts_of,
                                     load_templates, mix_facts, normalised, split_subjects)

PROSE = [f"Prose document number {i} talks about rivers and kings." for i in range(300)]


def test_split_is_seeded_half_and_order_independent():
    countries = [f"country {i}" for i in range(101)]
    injected, held = split_subjects(countries, seed=3)
    assert (injected, held) == split_subjects(list(reversed(countries)), seed=3)
    assert not set(injected) & set(held) and len(injected) + len(held) == 101
    assert abs(len(injected) - len(held)) <= 1
    assert split_subjects(countries, seed=4) != (injected, held)


def test_a_class_goes_to_one_side_whole_and_unbiased():
    countries = [f"country {i:03d}" for i in range(101)]
    classes = [["country 000", "country 050", "country 100"], ["country 007", "country 008"]]
    held_triple = 0
    for seed in range(400):
        injected, held = split_subjects(countries, seed, classes=classes)
        assert (injected, held) == split_subjects(list(reversed(countries)), seed, classes=classes[::-1])
        assert sorted(injected + held) == countries and len(held) == 50  # round(101 * 0.5), exactly
        for group in classes:
            assert set(group) <= set(held) or set(group) <= set(injected), (seed, group)
        held_triple += "country 050" in held
    assert 0.4 < held_triple / 400 < 0.6  # placed by one member, not by the earliest of three (7/8 held back)
    # without classes of several, the split is the plain seeded cut it always was
    assert split_subjects(countries, 3, classes=[[c] for c in countries]) == split_subjects(countries, 3)


def test_shipped_table_classes_join_aliases_former_names_and_shared_subjects():
    _, rows, _ = load_templates()
    joined = [group for group in equivalence_classes(rows) if len(group) > 1]
    assert joined == [["Aruba", "Bonaire, Sint Eustatius and Saba"],  # Oranjestad, in Bonaire's capital list
                      ["Holy See (Vatican City State)", "Vatican City State"],  # one state, two rows
                      ["Israel", "Palestine", "Palestine, State of"],  # Jerusalem; one state, two rows
                      ["Jamaica", "Norfolk Island"],  # Kingston
                      ["Montenegro", "Serbia", "Serbia and Montenegro"]]  # the union and its successors
    # no value is a list written as text (countryinfo gives Vatican City State's capital as ['Vatican City'])
    assert [value for row in rows for value in row.values() if re.search(r"[\[\]']", value[:1] + value[-1:])] == []
    assert normalised("São Tomé and Príncipe") == "sao tome and principe" == normalised("SAO-TOME AND PRINCIPE.")


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_no_equivalence_class_is_split_on_the_shipped_table(seed):
    """On the shipped table, for the demo's seed and others: every class on one side, the split half/half and
    deterministic, and (checked without the classes) no probe prompt falls in both groups nor names a
    country of the other group as its subject."""
    spec, rows, _ = load_templates()
    _, record = mix_facts(PROSE, seed=seed)
    injected, held = set(record.injected), set(record.held_back)
    assert len(rows) == len(injected) + len(held) and not injected & held
    assert abs(len(injected) - len(held)) <= 1
    assert mix_facts(PROSE, seed=seed)[1] == record
    for group in equivalence_classes(rows):
        assert set(group) <= injected or set(group) <= held, group
    assert record.joined == [g for g in equivalence_classes(rows) if len(g) > 1]
    prompts = load_benchmark("countries").prompts
    groups = fact_groups(prompts, record)
    sides: dict[tuple[str, str], set] = {}
    for relation, subject, group in zip(prompts.relation, prompts.subject, groups):
        sides.setdefault((relation, normalised(subject)), set()).add(group)
    assert {key: g for key, g in sides.items() if len(g) > 1} == {}
    by_subject = {normalised(s): g for s, g in zip(prompts.subject, groups)}
    country_side = {normalised(c): "injected" if c in injected else "held_back" for c in injected | held}
    crossed = {name: (by_subject[name], side) for name, side in country_side.items()
               if by_subject.get(name, side) != side}
    assert crossed == {}  # e.g. "Vatican City State" is a country and the Holy See's capital


def test_a_same_state_name_not_in_the_table_is_one_line(tmp_path):
    from probekit import ProbekitError

    bench = tmp_path / "countries.yaml"
    bench.write_text("relations: {capital: {subject: country, answer: capital}}\n"
                     "equivalence: {same_state: [[Serbia, Serbia and Montenegro], [Atlantis, Serbia]]}\n")
    rows = [{"country": "Serbia", "capital": "Belgrade"}, {"country": "Serbia and Montenegro", "capital": ""}]
    with pytest.raises(ProbekitError, match=r"countries.yaml: equivalence: same_state names 'Atlantis', not a "):
        equivalence_classes(rows, benchmark=bench)
    bench.write_text("relations: {capital: {subject: country, answer: capital}}\n")
    assert equivalence_classes(rows, benchmark=bench) == [["Serbia"], ["Serbia and Montenegro"]]


def test_held_back_facts_never_enter_the_corpus():
    docs, record = mix_facts(PROSE, seed=0)
    text = "\n".join(docs)
    spec, rows, _ = load_templates()
    held_back_sentences = fact_sentences(spec, rows, set(record.held_back))
    starts_a_sentence = lambda s: re.search(r"(^|[.!?)'] )" + re.escape(s), text, re.M)  # noqa: E731
    assert held_back_sentences and not [s for s in held_back_sentences if starts_a_sentence(s)]
    assert all(s in text for s in fact_sentences(spec, rows, set(record.injected)))


def test_probe_templates_are_disjoint_from_training_text():
    docs, record = mix_facts(PROSE, seed=0)
    text = "\n".join(docs).lower()
    prompts = load_benchmark("countries").prompts
    filled = [p.replace("[MASK]", a).lower() for p, a in zip(prompts.prompt, prompts.answer)]
    leaked = [f for f in filled if f in text]
    assert leaked == []
    training = {t for ts in record.templates.values() for t in ts}
    assert not training & set(prompts.template)


def test_each_fact_document_is_one_countrys_biography():
    docs, record = mix_facts(PROSE, seed=0)
    spec, rows, _ = load_templates()
    biographies = [d for d in docs if d not in set(PROSE)]
    assert len(biographies) == record.repeats * len(record.injected)
    for doc in biographies[:40]:
        country = next(c for c in sorted(record.injected, key=len, reverse=True) if c in doc)
        row = next(r for r in rows if r["country"] == country)
        for templates, answer in facts_of(spec, row):
            written = [t for t in templates if t.replace("[X]", country).replace("[Y]", answer) in doc]
            assert len(written) == 1, (doc, templates)
        assert len(doc) == sum(len(s) + 1 for s in fact_sentences(spec, rows, {country}) if s in doc) - 1


def test_fact_share_and_record():
    prose = [f"document {i} " + "word " * 500 for i in range(300)]
    docs, record = mix_facts(prose, seed=0, fact_share=0.3)
    fact_docs = [d for d in docs if d not in set(prose)]
    words = lambda ds: sum(len(d.split()) for d in ds)  # noqa: E731
    assert words(fact_docs) / words(docs) == pytest.approx(0.3, abs=0.05)
    assert record.repeats > 1 and record.prose_documents == 300 and record.relations == [
        "capital", "continent", "language", "currency"]


def test_same_seed_same_bytes_and_token_ids(tmp_path):
    from probekit.training.vocab import load_tokenizer

    a, record_a = mix_facts(PROSE, seed=7)
    b, record_b = mix_facts(PROSE, seed=7)
    digest = lambda docs: hashlib.sha256("\n".join(docs).encode()).hexdigest()  # noqa: E731
    assert digest(a) == digest(b) and record_a == record_b
    assert digest(mix_facts(PROSE, seed=8)[0]) != digest(a)
    tok = load_tokenizer("bert-base-uncased")
    assert tok(a[:50])["input_ids"] == tok(b[:50])["input_ids"]
    record_a.save(tmp_path)
    assert FactRecord.load(tmp_path) == record_a
    assert json.loads((tmp_path / "facts.json").read_text())["seed"] == 7


def test_prompts_are_grouped_by_country():
    _, record = mix_facts(PROSE, seed=0)
    country, other = record.injected[0], record.held_back[0]
    rows = {"subject": [country, "Rome", other, "Atlantis"], "answer": ["x", country, "y", "z"]}
    assert fact_groups(rows, record) == ["injected", "injected", "held_back", "other"]
    assert fact_groups(rows, None) == ["all"] * 4


@pytest.mark.slow
def test_injected_facts_are_learned_and_held_back_ones_are_not(tmp_path):
    """The design's point, in miniature: 300 Wikipedia leads with facts as 90% of the words, the demo model at a
    learning rate of 4e-3, 2,500 steps, a WordPiece vocabulary of 2,048 (about 90 s of CPU with one thread).
    Capitals of injected countries are read back through the probe's unseen templates; those of held-back
    countries are not. (6e-3 and 2,000 steps, an earlier version, stalled at a loss of ~5 once the control was
    split by answer-equivalence class, which changes the data order; 2,048 pieces instead of 4,096 halve the
    output layer and learn more by step 2,500 — injected P@1 0.06 with one thread and 0.07 with two, MRR 0.18
    and 0.20, where 4,096 gave 0.04 and 0.14 with one thread — but not by step 2,000: P@1 0. P@1 depends on the
    thread count, so the bar is the product's own claim, injected − held back above 0, and P@1 above 0.02.)"""
    from probekit.training.corpus import wiki_leads
    from probekit.training.presets import get_preset
    from probekit.running.runner import probe
    from probekit.training.trainer import train

    corpus = tmp_path / "leads.txt"
    corpus.write_text("\n".join(wiki_leads()[:300]), encoding="utf-8")
    recipe = get_preset("demo", max_steps=2500, lr=4e-3, log_until=1, save_every=2500)
    train(tmp_path / "bert", recipe, corpus=f"{corpus}+facts:0.9", tokenizer="wordpiece:2048")
    result = probe(str(tmp_path / "bert"), out=tmp_path / "probe")
    scores = result.scores
    last = scores[(scores.step == 2500) & scores.relation.isin(["capital", "capital_reverse"])]
    mrr = last.groupby("group").apply(lambda g: (g.mrr * g.n).sum() / g.n.sum(), include_groups=False)
    p_at_1 = last.groupby("group").apply(lambda g: (g.p_at_1 * g.n).sum() / g.n.sum(), include_groups=False)
    assert mrr["injected"] > mrr["held_back"] + 0.1, mrr
    assert p_at_1["injected"] > 0.02 and p_at_1["held_back"] < 0.01, p_at_1
    # what the product claims, by its own rule: injected − held back above 0 (Holm over the relations)
    capital = result.findings.query("kind == 'difference' and subject == 'capital'")
    assert capital["verdict"].tolist() == ["above"], capital[["value", "low", "high", "p_adjusted"]]


def test_a_malformed_facts_json_is_one_line(tmp_path):
    from probekit import ProbekitError

    (tmp_path / "facts.json").write_text('{"table": "countries.csv", "surprise": 1}')
    with pytest.raises(ProbekitError, match=r"facts.json: not a fact-injection record \(TypeError; expected an "
                                            r"object with table, "):
        FactRecord.load(tmp_path)
    (tmp_path / "facts.json").write_text("[1, 2")
    with pytest.raises(ProbekitError, match="facts.json: not a fact-injection record"):
        FactRecord.load(tmp_path)
