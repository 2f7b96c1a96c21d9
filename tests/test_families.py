"""Every supported masked-LM family, built tiny and random from its config with a tokenizer trained here
(WordPiece, byte-level BPE or Unigram/SentencePiece, as the family ships), saved as a safetensors checkpoint
and read back through probekit: fill-mask scoring equals `pipeline("fill-mask")`, captures verify, the lens
at the last layer is the model's output, and an ablation that ablates nothing changes nothing."""

from __future__ import annotations

import random

import pandas as pd
import pytest
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForMaskedLM, PreTrainedTokenizerFast, pipeline

from probekit import ProbekitError, probe
from probekit.models.activations import capture
from probekit.analyses.lens import readout
from probekit.models.families import n_layers, unembed, windows
from probekit.models.hooks import hook_name, hook_names, hooked, zero_head
from probekit.analyses.pll import pll_reference, pll_scores
from probekit.analyses.scoring import answer_pieces, encode_prompts, score_encoded
from probekit.models.series import load_checkpoint, resolve_checkpoints

COUNTRIES = {"Italy": "Rome", "France": "Paris", "Spain": "Madrid", "Japan": "Tokyo", "Egypt": "Cairo",
             "Peru": "Lima", "Kenya": "Nairobi", "Chile": "Santiago"}
FILLER = ("the a old new river music people king queen city north south language war empire and of in "
          "is was has").split()


def corpus() -> list[str]:
    rng = random.Random(0)
    lines = [f"The capital of {c} is {a}." for c, a in COUNTRIES.items()] * 6
    lines += [f"{a} is the capital of {c}." for c, a in COUNTRIES.items()] * 6
    lines += [" ".join(rng.choice(FILLER) for _ in range(rng.randint(6, 14))).capitalize() + "."
              for _ in range(200)]
    return lines


PROMPTS = pd.DataFrame({
    "prompt": ["The capital of Italy is [MASK].", "The capital of France is [MASK].", "[MASK] is the capital of Japan.",
               "The capital of Egypt is [MASK].", "The capital of Peru is [MASK].",
               "The capital of Spain is [MASK].", "The capital of Kenya is [MASK].", "The capital of Chile is [MASK]."],
    "answer": ["Rome", "Paris", "Tokyo", "Cairo", "Lima", "Romeparis", "Nairobi", "Ωmega"],
})
SENTENCES = ["The capital of Italy is Rome.", ("Paris is a city.", "The king of the people."), "A",
             "The old river and the new city of the north was the capital."]


# ---------------------------------------------------------------- tokenizers, as each family ships them


def _wrap(tok: Tokenizer, specials: dict[str, str], mask: str, lstrip: bool, token_types: bool,
          template: tuple[str, str, str]) -> PreTrainedTokenizerFast:
    tok.add_special_tokens([AddedToken(mask, lstrip=lstrip, special=True)])  # last id, as RoBERTa's <mask>
    bos, sep, pair = template
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {sep}", pair=pair, special_tokens=[(t, tok.token_to_id(t)) for t in {bos, sep}])
    names = ["input_ids", "token_type_ids", "attention_mask"] if token_types else ["input_ids", "attention_mask"]
    return PreTrainedTokenizerFast(tokenizer_object=tok, mask_token=AddedToken(mask, lstrip=lstrip, special=True),
                                   model_input_names=names, **specials)


def wordpiece(lowercase: bool, token_types: bool = True) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=220, special_tokens=[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    specials = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
    return _wrap(tok, specials, "[MASK]", False, token_types,
                 ("[CLS]", "[SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"))


def byte_level(roberta: bool) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    first = ["<s>", "<pad>", "</s>", "<unk>"] if roberta else ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=320, special_tokens=first,
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if roberta:
        return _wrap(tok, dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
                               pad_token="<pad>", unk_token="<unk>"), "<mask>", True, False,
                     ("<s>", "</s>", "<s> $A </s> </s> $B </s>"))
    return _wrap(tok, dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]"),
                 "[MASK]", True, False, ("[CLS]", "[SEP]", "[CLS] $A [SEP] $B [SEP]"))


def unigram(albert: bool) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.Unigram())
    if albert:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    first = ["<pad>", "<unk>", "[CLS]", "[SEP]"] if albert else ["<s>", "<pad>", "</s>", "<unk>"]
    unk = "<unk>"
    tok.train_from_iterator(corpus(), trainers.UnigramTrainer(vocab_size=200, special_tokens=first, unk_token=unk))
    if albert:
        return _wrap(tok, dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="<pad>", unk_token=unk), "[MASK]",
                     True, True, ("[CLS]", "[SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"))
    return _wrap(tok, dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                           unk_token=unk), "<mask>", True, False, ("<s>", "</s>", "<s> $A </s> </s> $B </s>"))


SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, initializer_range=0.2)
BUILD = {  # model_type → (tokenizer, config beyond SIZE given the tokenizer)
    "bert": (lambda: wordpiece(lowercase=True), lambda tok: {"max_position_embeddings": 64}),
    "electra": (lambda: wordpiece(lowercase=False), lambda tok: {"embedding_size": 16, "max_position_embeddings": 64}),
    "distilbert": (lambda: wordpiece(lowercase=True, token_types=False), lambda tok: {
        "max_position_embeddings": 64}),
    "roberta": (lambda: byte_level(roberta=True), lambda tok: {"max_position_embeddings": 66, "type_vocab_size": 1}),
    "xlm-roberta": (lambda: unigram(albert=False), lambda tok: {"max_position_embeddings": 66}),
    "camembert": (lambda: unigram(albert=False), lambda tok: {"max_position_embeddings": 66}),
    "albert": (lambda: unigram(albert=True), lambda tok: {"embedding_size": 16, "max_position_embeddings": 64}),
    "modernbert": (lambda: byte_level(roberta=False), lambda tok: {
        "max_position_embeddings": 64, "local_attention": 4, "global_attn_every_n_layers": 2,
        "cls_token_id": tok.cls_token_id, "sep_token_id": tok.sep_token_id, "bos_token_id": tok.cls_token_id,
        "eos_token_id": tok.sep_token_id}),
}
FAMILIES = list(BUILD)


def write_checkpoint(folder, model_type: str, seed: int = 0):
    make_tokenizer, extra = BUILD[model_type]
    tok = make_tokenizer()
    config = AutoConfig.for_model(model_type, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                  **SIZE, **extra(tok))
    torch.manual_seed(seed)
    AutoModelForMaskedLM.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """model_type → (folder, model, tokenizer), each loaded back through probekit."""
    root = tmp_path_factory.mktemp("families")
    out = {}
    for model_type in FAMILIES:
        folder = write_checkpoint(root / model_type, model_type)
        model, tok = load_checkpoint(str(folder))
        out[model_type] = folder, model, tok
    return out


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("model_type", FAMILIES)
def test_loads_through_the_auto_classes_with_its_own_tokenizer(built, model_type):
    folder, model, tok = built[model_type]
    ref = resolve_checkpoints(str(folder))[0]
    assert ref.family == model_type == model.config.model_type
    assert type(model).__name__.endswith("ForMaskedLM") and not model.training
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert n_layers(model) == model.config.num_hidden_layers


def test_unknown_and_refused_families_are_one_line(built, tmp_path):
    import json
    import shutil

    folder = shutil.copytree(built["bert"][0], tmp_path / "x")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ProbekitError, match=r"x/config.json: model_type 'gpt2' is not a BERT model or another "
                                            r"masked-LM family probekit reads \(bert, roberta"):
        load_checkpoint(str(folder))
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "deberta-v2"}))
    with pytest.raises(ProbekitError, match="'deberta-v2' is not supported: DeBERTa-v2's disentangled attention"):
        load_checkpoint(str(folder))


@pytest.mark.parametrize("model_type", FAMILIES)
def test_every_weight_has_its_block(built, model_type):
    from safetensors.torch import load_file

    from probekit.models.checkpoints import masked_lm_class
    from probekit.models.families import weight_block

    folder, model, _ = built[model_type]
    prefix = masked_lm_class(model.config).base_model_prefix
    blocks = {weight_block(model_type, prefix, name) for name in load_file(folder / "model.safetensors")}
    layers = ["layer group 0"] if model_type == "albert" else ["layer 0", "layer 1"]
    assert blocks == {"embeddings", *layers, "mlm head"}


# ---------------------------------------------------------------- fill-mask scoring


def scored(model, tok, prompts: pd.DataFrame, top_k: int = 5) -> pd.DataFrame:
    frame = score_encoded(model, tok, encode_prompts(prompts, tok, 64), top_k)
    return pd.concat([prompts.reset_index(drop=True), frame], axis=1)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_scoring_equals_the_fill_mask_pipeline(built, model_type):
    _, model, tok = built[model_type]
    ours = scored(model, tok, PROMPTS)
    fill = pipeline("fill-mask", model=model, tokenizer=tok, device="cpu")
    compared = 0
    for row in ours.itertuples():
        if not row.topk_tokens:
            continue
        text = row.prompt.replace("[MASK]", " ".join([tok.mask_token] * row.n_pieces))
        theirs = fill(text, top_k=5)
        theirs = theirs[0] if row.n_pieces > 1 else theirs  # several masks: one list per mask
        assert tok.convert_tokens_to_ids(row.topk_tokens) == [t["token"] for t in theirs], row.prompt
        assert row.topk_probs == pytest.approx([t["score"] for t in theirs], abs=1e-5)
        compared += 1
    assert compared >= 6


@pytest.mark.parametrize("model_type", FAMILIES)
def test_answers_are_spelled_as_they_read_in_the_prompt(built, model_type):
    _, _, tok = built[model_type]
    pieces = dict(zip(PROMPTS["answer"], answer_pieces(PROMPTS, tok)))
    spelled = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    word = spelled("of Rome")[len(spelled("of")):]  # Rome as a word after a space
    assert pieces["Rome"] == word
    assert pieces["Tokyo"] == spelled("Tokyo")  # opening the prompt: text-initial
    if model_type in ("roberta", "modernbert"):  # byte-level BPE: " Rome" and "Rome" differ
        assert tok.convert_ids_to_tokens(pieces["Rome"])[0].startswith("Ġ") and word != spelled("Rome")
    if model_type in ("xlm-roberta", "camembert", "albert"):
        assert tok.convert_ids_to_tokens(pieces["Rome"])[0].startswith("▁")
    cased = model_type not in ("bert", "distilbert", "albert")
    assert tok.decode(pieces["Rome"]).strip() == ("Rome" if cased else "rome")
    assert len(pieces["Romeparis"]) > 1  # two known words run together: several pieces, one mask each


@pytest.mark.parametrize("model_type", FAMILIES)
def test_an_answer_the_vocabulary_cannot_spell_is_counted_unscorable(built, model_type):
    _, model, tok = built[model_type]
    row = scored(model, tok, PROMPTS).set_index("answer").loc["Ωmega"]
    if model_type in ("roberta", "modernbert"):  # bytes spell anything
        assert row.gold_rank >= 1
    else:
        assert pd.isna(row.gold_rank) and row.n_pieces == 0 and not row.correct


def test_a_prompt_past_robertas_usable_positions_is_unscorable_not_a_crash(built):
    _, model, tok = built["roberta"]  # 66 position embeddings, of which 64 usable
    long = pd.DataFrame({"prompt": ["[MASK] is the capital" + " of Italy" * 40 + "."], "answer": ["Rome"]})
    encoded = encode_prompts(long, tok, model.config.max_position_embeddings)
    assert len(encoded["input_ids"][0]) == 66
    assert score_encoded(model, tok, encoded).gold_rank.isna().all()


@pytest.mark.parametrize("model_type", FAMILIES)
def test_multi_piece_answers_are_scored_jointly(built, model_type):
    _, model, tok = built[model_type]
    row = scored(model, tok, PROMPTS).set_index("answer").loc["Romeparis"]
    gold = answer_pieces(PROMPTS[PROMPTS.answer == "Romeparis"], tok)[0]
    text = "The capital of Spain is " + " ".join([tok.mask_token] * len(gold)) + "."
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        logp = torch.log_softmax(model(**ids).logits[0], -1)
    masks = (ids["input_ids"][0] == tok.mask_token_id).nonzero().flatten()
    assert row.n_pieces == len(gold) == len(masks) > 1
    assert row.gold_logprob == pytest.approx(sum(float(logp[m, g]) for m, g in zip(masks, gold)), abs=1e-4)


# ---------------------------------------------------------------- capture


@pytest.fixture(scope="module")
def captured(built):
    return {t: capture(model, SENTENCES, tok) for t, (_, model, tok) in built.items()}


def _mask(cap, model, layer: int) -> torch.Tensor:
    """Padding and, on ModernBERT's local layers, its window (|i - j| <= local_attention // 2), from the
    config alone."""
    keep = cap.attention_mask[:, None, None, :].bool()
    config = model.config
    if config.model_type == "modernbert" and config.layer_types[layer] == "sliding_attention":
        pos = torch.arange(keep.shape[-1])
        keep = keep & ((pos[:, None] - pos[None, :]).abs() <= config.local_attention // 2)
    return torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_capture_verifies_on_every_layer(built, captured, model_type):
    _, model, _ = built[model_type]
    cap = captured[model_type]
    d_head = model.config.hidden_size // model.config.num_attention_heads
    assert cap.n_layers == model.config.num_hidden_layers and cap.meta["family"] == model_type
    for layer in range(cap.n_layers):
        q, k, v = (cap[hook_name(layer, f"attn.hook_{h}")].transpose(1, 2) for h in "qkv")  # [batch, head, pos, d]
        assert q.shape[1:] == (model.config.num_attention_heads, cap.attention_mask.shape[1], d_head)
        mask = _mask(cap, model, layer)
        assert torch.equal(cap.additive_mask(layer), mask)
        recomputed = torch.softmax(q @ k.transpose(-1, -2) / d_head ** 0.5 + mask, dim=-1)
        assert (recomputed - cap.pattern(layer)).abs().max() <= 1e-5
        z = (cap.pattern(layer) @ v).transpose(1, 2)
        assert (z - cap[hook_name(layer, "attn.hook_z")]).abs().max() <= 1e-5


def test_modernbert_local_window_and_rotation_are_in_the_capture(built, captured):
    _, model, _ = built["modernbert"]
    cap = captured["modernbert"]
    assert windows(model) == [None, 2]  # layer 0 global, layer 1 local (local_attention 4)
    q, k = (cap[hook_name(1, f"attn.hook_{h}")].transpose(1, 2) for h in "qk")
    padding_only = (1.0 - cap.attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    without_window = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + padding_only, dim=-1)
    assert (without_window - cap.pattern(1)).abs().max() > 1e-3  # the window matters on these sentences
    x = model.model.layers[0].attn_norm(cap[hook_name(0, "hook_resid_pre")])
    unrotated = model.model.layers[0].attn.Wqkv(x).view(*x.shape[:2], 3, 4, -1)[:, :, 0]
    assert not torch.allclose(unrotated[:, 1:], cap[hook_name(0, "attn.hook_q")][:, 1:], atol=1e-3)
    assert torch.allclose(unrotated[:, 0], cap[hook_name(0, "attn.hook_q")][:, 0], atol=1e-6)  # position 0


def test_albert_hooks_fire_once_per_application_of_its_shared_layer(built, captured):
    _, model, tok = built["albert"]
    cap = captured["albert"]
    shared = model.albert.encoder.albert_layer_groups[0].albert_layers[0]
    for layer in range(2):
        x = cap[hook_name(layer, "hook_resid_pre")]
        q = shared.attention.query(x).view(*x.shape[:2], 4, -1)
        assert torch.allclose(q, cap[hook_name(layer, "attn.hook_q")], atol=1e-6)
    inputs = tok(["The capital of Italy is Rome."], return_tensors="pt")
    with torch.no_grad(), hooked(model, read=hook_names(2)) as seen:
        out = model.albert(**inputs).last_hidden_state
    assert torch.equal(seen[hook_name(1, "hook_resid_pre")], seen[hook_name(0, "hook_resid_post")])
    assert torch.equal(seen[hook_name(1, "hook_resid_post")], out)
    assert not torch.allclose(seen[hook_name(0, "attn.hook_q")], seen[hook_name(1, "attn.hook_q")])


def test_views_draw_a_roberta_pair_with_its_own_separator(built):
    from probekit import views

    _, model, tok = built["roberta"]
    cap = capture(model, [("Paris is a city.", "The king of the people.")], tok)
    _, tokens, sentence_b = views._attention_for(cap)
    assert tokens[sentence_b - 2: sentence_b] == ["</s>", "</s>"] and tokens[sentence_b] != "</s>"
    assert "probekitLibs" in views.head_view(cap, html_action="return").data  # drawn offline, as for BERT


# ---------------------------------------------------------------- logit lens and ablation


@pytest.mark.parametrize("model_type", FAMILIES)
def test_lens_at_the_last_layer_is_the_model_output(built, model_type):
    _, model, tok = built[model_type]
    inputs = tok(["The capital of Italy is Rome."], return_tensors="pt")
    last = readout(n_layers(model))
    with torch.no_grad(), hooked(model, read=[last]) as seen:
        logits = model(**inputs).logits
        lensed = unembed(model)(seen[last])
    assert (lensed - logits).abs().max() <= 1e-5
    encoded = encode_prompts(PROMPTS, tok, 64)
    plain = score_encoded(model, tok, encoded, top_k=1)
    lens = score_encoded(model, tok, encoded, top_k=1, readout=last)
    assert lens.gold_logprob.to_numpy() == pytest.approx(plain.gold_logprob.to_numpy(), abs=1e-5, nan_ok=True)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_an_ablation_that_ablates_no_head_is_the_plain_pass(built, model_type):
    _, model, tok = built[model_type]
    inputs = tok(["The capital of Italy is Rome."], return_tensors="pt")
    untouched = {hook_name(layer, "attn.hook_z"): lambda z: z.clone() for layer in range(n_layers(model))}
    with torch.no_grad():
        plain = model(**inputs).logits
        with hooked(model, write=untouched):
            passed = model(**inputs).logits
        with hooked(model, write={hook_name(n_layers(model) - 1, "attn.hook_z"): zero_head(1)}):
            ablated = model(**inputs).logits
    assert torch.allclose(passed, plain, atol=1e-6)
    assert not torch.allclose(ablated, plain, atol=1e-4)  # the hook reaches the model


def test_an_edit_of_a_rotated_query_reaches_modernbert(built):
    _, model, tok = built["modernbert"]
    inputs = tok(["The capital of Italy is Rome."], return_tensors="pt")
    name = hook_name(1, "attn.hook_q")
    with torch.no_grad(), hooked(model, read=[name]) as plain:
        model(**inputs)
    with torch.no_grad(), hooked(model, read=[name], write={name: lambda q: q * 2}) as doubled, \
            hooked(model, read=[hook_name(1, "attn.hook_pattern")]):
        model(**inputs)
    assert torch.allclose(doubled[name], plain[name] * 2, atol=1e-6)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_pseudo_log_likelihood_equals_one_mask_per_pass(built, model_type):
    _, model, tok = built[model_type]
    sentences = ["The capital of Italy is Rome.", "Paris is the capital of France."]
    for metric in ("within_word_l2r", "original"):
        fast = pll_scores(model, tok, sentences, metric)["pll"]
        for sentence, value in zip(sentences, fast):
            assert value == pytest.approx(pll_reference(model, tok, sentence, metric), abs=1e-4)


# ---------------------------------------------------------------- a series of two families


def test_probe_scores_each_family_with_its_own_tokenizer(tmp_path):
    series = tmp_path / "mixed"
    write_checkpoint(series / "checkpoint-1", "bert", seed=1)
    write_checkpoint(series / "checkpoint-2", "roberta", seed=2)
    bench = tmp_path / "capitals.csv"
    bench.write_text("relation,template,subject,answer\n" + "".join(
        f"capital,The capital of [X] is [MASK].,{c},{a}\n" for c, a in COUNTRIES.items()))
    result = probe(str(series), benchmarks=[str(bench)], analyses=["predictions", "lens"], out=tmp_path / "out")
    checkpoints = result.tables["checkpoints"].set_index("checkpoint")
    assert checkpoints.loc[["random-init", "checkpoint-1", "checkpoint-2"], "family"].tolist() == [
        "bert", "bert", "roberta"]
    predictions = result.tables["predictions"]
    for name in ("checkpoint-1", "checkpoint-2"):
        model, tok = load_checkpoint(str(series / name))
        rows = predictions[predictions.checkpoint == name].reset_index(drop=True)
        expected = scored(model, tok, rows[["prompt", "answer"]], top_k=10)
        assert rows.gold_rank.tolist() == expected.gold_rank.tolist()
        assert rows.topk_tokens.tolist() == expected.topk_tokens.tolist()
    roberta_tokens = {t for ts in predictions[predictions.checkpoint == "checkpoint-2"].topk_tokens for t in ts}
    assert any(t.startswith("Ġ") for t in roberta_tokens)
    lens = result.tables["lens"]
    assert set(lens[lens.checkpoint == "checkpoint-2"].layer) == {0, 1, 2}
