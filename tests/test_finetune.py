"""zero2gpt.finetune (chapter 14): poems held out whole, fine-tuning configs, freezing, fine-tuning, the cat measure."""

import dataclasses

import pytest
import torch

import zero2gpt.finetune as finetune
from zero2gpt.finetune import (
    CAT_WORDS,
    FINETUNE_SCHEDULES,
    cat_poem_score,
    finetune_config,
    finetune_folder,
    finetune_gpt,
    freeze_lower_layers,
    poem_corpus,
)
from zero2gpt.gpt import GPT, GPT_PRESETS, GPTConfig, GPTTrainingConfig
from zero2gpt.language import CharCorpus, CharTokenizer, evaluate_nats

POEMS = "The cat sat\non the mat.\n\nA kitten\nin mittens.\n\nA purr,\na paw.\n\nThe tabby sleeps\nin the sun.\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def poems_dataset(monkeypatch):
    """poem_corpus reads POEMS (or what a test puts in texts["poems"]) for the dataset name "poems"."""
    texts = {"poems": POEMS}
    monkeypatch.setattr(finetune, "load_text", lambda name: texts[name])
    return texts


def tiny_gpt(vocab_size: int, n_layer: int = 3, tie_weights: bool = True) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size, block_size=16, n_layer=n_layer, n_head=2, n_embd=16, dropout=0.0,
                         tie_weights=tie_weights))


def count(parameters) -> int:
    return sum(parameter.numel() for parameter in parameters)


# --- poem_corpus -----------------------------------------------------------------------------------


def test_poem_corpus_holds_out_whole_poems_at_a_blank_line(poems_dataset):
    tokenizer = CharTokenizer(POEMS + "xyz")  # a bigger vocabulary than the poems', as a pretrained model's is
    for val_fraction in (0.1, 0.3, 0.5, 0.9):
        corpus = poem_corpus("poems", tokenizer, val_fraction)
        train, val = tokenizer.decode(corpus.train_ids), tokenizer.decode(corpus.val_ids)
        assert train + val == POEMS and corpus.text == POEMS and corpus.tokenizer is tokenizer
        assert train.endswith("\n\n") and not val.startswith("\n"), "the cut falls between two poems"
        starts = [index + 2 for index in range(len(POEMS) - 2) if POEMS[index:index + 2] == "\n\n"]
        best = min(abs(start - (1 - val_fraction) * len(POEMS)) for start in starts)
        assert abs(len(train) - (1 - val_fraction) * len(POEMS)) == best, "the boundary nearest to the fraction"
    assert tokenizer.decode(poem_corpus("poems", tokenizer).val_ids) == "The tabby sleeps\nin the sun.\n"


def test_poem_corpus_refuses_a_character_the_tokenizer_lacks_and_names_it(poems_dataset):
    poems_dataset["poems"] = "abc\n\nab\n\nabz\n"
    with pytest.raises(ValueError, match=r"'z' at position 11"):
        poem_corpus("poems", CharTokenizer("abc\n"))


def test_poem_corpus_refuses_bad_arguments(poems_dataset):
    tokenizer = CharTokenizer(POEMS)
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            poem_corpus("poems", tokenizer, bad)
    with pytest.raises(TypeError, match="CharTokenizer"):
        poem_corpus("poems", "abc")
    poems_dataset["poems"] = "one poem\nwith no blank line\n"
    with pytest.raises(ValueError, match="no blank line"):
        poem_corpus("poems", tokenizer)


def test_the_book_corpus_is_written_in_shakespeare_characters():
    shakespeare = CharTokenizer("".join(chr(code) for code in range(32, 127)) + "\n")
    corpus = poem_corpus("cat-poems", shakespeare)  # package data: no network
    assert 0.08 < len(corpus.val_ids) / len(corpus.text) < 0.12
    assert shakespeare.decode(corpus.train_ids).endswith("\n\n")


# --- finetune_config -------------------------------------------------------------------------------


def test_finetune_config_applies_the_schedule_then_the_overrides():
    base = GPT_PRESETS["smoke"]
    config = finetune_config(base, "smoke", learning_rate=1e-4)
    assert config.learning_rate == 1e-4 and config.steps == FINETUNE_SCHEDULES["smoke"]["steps"]
    assert (config.n_layer, config.n_embd, config.block_size, config.weight_decay) == \
        (base.n_layer, base.n_embd, base.block_size, base.weight_decay)
    assert base == GPT_PRESETS["smoke"], "the base config is not changed"


@pytest.mark.parametrize("preset", ["smoke", "laptop", "full"])
def test_every_schedule_trains_less_and_more_gently_than_pretraining(preset):
    pretraining = GPT_PRESETS[preset]
    config = finetune_config(pretraining, preset)
    assert config.steps < pretraining.steps and config.learning_rate < pretraining.learning_rate
    assert config.warmup_steps <= config.steps and config.eval_every <= config.steps


def test_finetune_config_errors_name_what_is_valid():
    base = GPT_PRESETS["smoke"]
    with pytest.raises(ValueError, match="'smoke', 'laptop', 'full'"):
        finetune_config(base, "huge")
    with pytest.raises(ValueError, match="unknown config key 'stepz'; valid keys: n_layer"):
        finetune_config(base, "smoke", stepz=3)
    for key in ("n_layer", "n_head", "n_embd", "block_size", "tie_weights"):
        with pytest.raises(ValueError, match=f"{key} cannot be overridden: the shape comes from the pretrained"):
            finetune_config(base, "smoke", **{key: 1})
    with pytest.raises(ValueError, match="warmup_steps"):
        finetune_config(base, "smoke", warmup_steps=10_000)
    with pytest.raises(TypeError, match="GPTTrainingConfig"):
        finetune_config(dataclasses.asdict(base), "smoke")


def test_finetune_folder_is_keyed_by_both_configs():
    base = GPT_PRESETS["smoke"]
    config = finetune_config(base, "smoke")
    folder = finetune_folder("cat-poems", base, config)
    assert folder.name.startswith("gpt-cats-") and folder == finetune_folder("cat-poems", base, config)
    assert folder != finetune_folder("cat-poems", base, finetune_config(base, "smoke", steps=70))
    assert folder != finetune_folder("cat-poems", dataclasses.replace(base, steps=700), config)
    assert finetune_folder("reweight-gpt-cats", base, config).name.startswith("gpt-reweight-gpt-cats-finetuned-")


# --- freeze_lower_layers ---------------------------------------------------------------------------


@pytest.mark.parametrize("tie_weights", [True, False])
@pytest.mark.parametrize("n_frozen", [0, 1, 3])
def test_freeze_lower_layers_freezes_exactly_the_embeddings_and_the_first_blocks(n_frozen, tie_weights):
    model = tiny_gpt(11, n_layer=3, tie_weights=tie_weights)
    assert freeze_lower_layers(model, n_frozen) is model
    frozen = count(p for p in model.parameters() if not p.requires_grad)
    embeddings = count(model.token_embedding.parameters()) + count(model.position_embedding.parameters())
    assert frozen == embeddings + count(model.blocks[:n_frozen].parameters())
    assert all(p.requires_grad for block in model.blocks[n_frozen:] for p in block.parameters())
    assert all(p.requires_grad for p in model.final_norm.parameters())
    assert model.head.weight.requires_grad == (not tie_weights), "a tied head is the token embedding"


def test_freezing_fewer_layers_again_unfreezes_the_rest():
    model = freeze_lower_layers(freeze_lower_layers(tiny_gpt(11), 3), 1)
    assert all(p.requires_grad for block in model.blocks[1:] for p in block.parameters())
    assert not any(p.requires_grad for p in model.blocks[0].parameters())


def test_freeze_lower_layers_refuses_bad_arguments():
    with pytest.raises(ValueError, match="n_frozen"):
        freeze_lower_layers(tiny_gpt(11, n_layer=2), 3)
    with pytest.raises(ValueError, match="n_frozen"):
        freeze_lower_layers(tiny_gpt(11), -1)
    with pytest.raises(TypeError, match="GPT"):
        freeze_lower_layers(torch.nn.Linear(2, 2), 1)


# --- finetune_gpt ----------------------------------------------------------------------------------


def tiny_poem_corpus() -> CharCorpus:
    text = POEMS * 8
    tokenizer = CharTokenizer(text + "XYZ")
    ids = torch.tensor(tokenizer.encode(text))
    return CharCorpus(text, tokenizer, ids[: len(POEMS) * 7], ids[len(POEMS) * 7:])


TINY = GPTTrainingConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, dropout=0.0, batch_size=8, steps=40,
                         learning_rate=1e-2, warmup_steps=0, eval_every=20)


def test_finetune_gpt_lowers_the_val_loss_and_leaves_the_model_alone():
    corpus = tiny_poem_corpus()
    model = tiny_gpt(corpus.vocab_size, n_layer=2)
    before = {name: weights.clone() for name, weights in model.state_dict().items()}
    start = evaluate_nats(model, corpus.val_ids, 16)
    tuned, log = finetune_gpt(model, corpus, TINY, device="cpu", progress=False)
    assert tuned is not model and log.step == TINY.steps
    assert log.best_val < start - 0.5 and evaluate_nats(tuned, corpus.val_ids, 16) == pytest.approx(log.best_val)
    assert all(torch.equal(weights, before[name]) for name, weights in model.state_dict().items())


def test_finetune_gpt_keeps_frozen_parameters_frozen():
    corpus = tiny_poem_corpus()
    model = freeze_lower_layers(tiny_gpt(corpus.vocab_size, n_layer=2), 1)
    tuned, _ = finetune_gpt(model, corpus, TINY, device="cpu", progress=False)
    for (name, parameter), original in zip(tuned.named_parameters(), model.parameters()):
        assert parameter.requires_grad == original.requires_grad
        assert torch.equal(parameter, original) == (not original.requires_grad), name


def test_finetune_gpt_writes_a_checkpoint_and_resumes_it(tmp_path):
    corpus = tiny_poem_corpus()
    model = tiny_gpt(corpus.vocab_size, n_layer=2)
    whole, whole_log = finetune_gpt(model, corpus, TINY, device="cpu", progress=False)
    evaluations = []
    _, log = finetune_gpt(model, corpus, dataclasses.replace(TINY), out=tmp_path, device="cpu", progress=False,
                          on_eval=lambda step, *rest: evaluations.append(step))
    assert (tmp_path / "checkpoint.pt").is_file() and evaluations == [20, 40]
    resumed, resumed_log = finetune_gpt(model, corpus, TINY, out=tmp_path, resume=True, device="cpu",
                                        progress=False)
    assert resumed_log.val_loss == whole_log.val_loss, "a finished run resumes to the same place"


def test_finetune_gpt_refuses_a_corpus_in_other_ids():
    corpus = tiny_poem_corpus()
    with pytest.raises(ValueError, match="vocabulary"):
        finetune_gpt(tiny_gpt(corpus.vocab_size + 1, n_layer=2), corpus, TINY, progress=False)
    with pytest.raises(TypeError, match="GPT"):
        finetune_gpt(torch.nn.Linear(2, 2), corpus, TINY, progress=False)


# --- cat_poem_score --------------------------------------------------------------------------------


def test_cat_poem_score_counts_cat_lines_and_rhymes_by_hand():
    assert cat_poem_score("The cat sat\nupon the mat,\nand dreamt of a rat.\n\nA tree\nan oak") == \
        {"lines": 5.0, "cat_lines": 1 / 5, "rhymes": 2 / 3}
    abab = "My cat is gray,\nHer paws are bright;\nShe naps all day\nAnd hunts all night."
    assert cat_poem_score(abab) == {"lines": 4.0, "cat_lines": 2 / 4, "rhymes": 2 / 3}
    assert cat_poem_score("Purr!\nPURR.\nMice, MICE")["cat_lines"] == 1.0, "case and punctuation do not matter"


def test_cat_poem_score_rules_for_words_and_rhymes():
    assert cat_poem_score("The catch\nwas a match")["cat_lines"] == 0.0, "whole words only"
    assert cat_poem_score("The cat\nthe cat")["rhymes"] == 0.0, "a word does not rhyme with itself"
    assert cat_poem_score("a sat\nb mat\n\nc hat")["rhymes"] == 1.0, "a stanza's first line has no chance to rhyme"
    assert cat_poem_score("one sat\ntwo\nthree\nfour mat")["rhymes"] == 0.0, "only two lines back"
    assert cat_poem_score("a\nb")["rhymes"] == 0.0, "one letter is too short to rhyme"
    assert cat_poem_score("") == {"lines": 0.0, "cat_lines": 0.0, "rhymes": 0.0}
    assert cat_poem_score("\n\n  \n") == {"lines": 0.0, "cat_lines": 0.0, "rhymes": 0.0}
    assert {"cat", "kitten", "purr", "whiskers", "mice"} <= CAT_WORDS
    with pytest.raises(TypeError, match="str"):
        cat_poem_score(["a cat"])
