"""zero2gpt.language: character tokenizer, corpus, batches, loss, evaluation, sampling and the bigram (chapter 8)."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

import zero2gpt.language as language
from zero2gpt.language import (
    BigramConfig,
    BigramLanguageModel,
    CharCorpus,
    CharTokenizer,
    bits_per_char,
    char_corpus,
    count_bigram_probabilities,
    evaluate_nats,
    generate,
    get_batch,
    language_model_loss,
    train_bigram,
    train_language_model,
)

SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def markov_text(length: int, seed: int = 0) -> str:
    """A text from a fixed random bigram chain over 6 letters: what a bigram model can learn exactly."""
    rng = np.random.default_rng(seed)
    alphabet = "abcde "
    transitions = rng.dirichlet(np.full(len(alphabet), 0.5), size=len(alphabet))
    state, chars = 0, []
    for _ in range(length):
        state = rng.choice(len(alphabet), p=transitions[state])
        chars.append(alphabet[state])
    return "".join(chars)


def corpus_of(text: str, train_fraction: float = 0.9) -> CharCorpus:
    tokenizer = CharTokenizer(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    split = int(train_fraction * len(ids))
    return CharCorpus(text, tokenizer, ids[:split], ids[split:])


# --- CharTokenizer -----------------------------------------------------------------------------


def test_vocabulary_is_the_sorted_distinct_characters():
    tokenizer = CharTokenizer(SAMPLE)
    assert tokenizer.chars == "".join(sorted(set(SAMPLE)))
    assert tokenizer.vocab_size == len(set(SAMPLE))
    assert tokenizer.encode("\n") == [0], "the newline sorts first"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=sorted(set(SAMPLE)), max_size=200))
def test_round_trip_over_the_vocabulary(text):
    tokenizer = CharTokenizer(SAMPLE)
    ids = tokenizer.encode(text)
    assert all(0 <= number < tokenizer.vocab_size for number in ids)
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(torch.tensor(ids, dtype=torch.long)) == text


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_round_trip_for_any_unicode_text_with_its_own_vocabulary(text):
    tokenizer = CharTokenizer(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert len(tokenizer.encode(text)) == len(text)


def test_empty_text_encodes_to_nothing_and_back():
    tokenizer = CharTokenizer(SAMPLE)
    assert tokenizer.encode("") == [] and tokenizer.decode([]) == ""


def test_an_unknown_character_is_named_with_its_position():
    tokenizer = CharTokenizer(SAMPLE)
    with pytest.raises(ValueError, match=r"character 'Z' at position 3 is not in the vocabulary"):
        tokenizer.encode("FirZt")


def test_an_unknown_id_is_named_with_the_allowed_range():
    tokenizer = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"id 3 at position 1 .* from 0 to 2"):
        tokenizer.decode([0, 3])
    with pytest.raises(ValueError, match=r"id -1 at position 0"):
        tokenizer.decode([-1])
    with pytest.raises(ValueError, match=r"id True"):
        tokenizer.decode([True])
    with pytest.raises(ValueError, match=r"ids must be 1-D"):
        tokenizer.decode(torch.zeros(2, 2, dtype=torch.long))


def test_tokenizer_refuses_an_empty_vocabulary_and_non_text():
    with pytest.raises(ValueError, match="non-empty str"):
        CharTokenizer("")
    with pytest.raises(TypeError, match="text must be a str"):
        CharTokenizer("ab").encode(["a"])


# --- char_corpus -------------------------------------------------------------------------------


def test_char_corpus_splits_90_10_with_the_whole_texts_vocabulary(monkeypatch):
    text = "".join(chr(ord("a") + i % 26) for i in range(1000)) + "XYZ"
    monkeypatch.setattr(language, "load_text", lambda name: text)
    corpus = char_corpus("anything")
    assert isinstance(corpus, CharCorpus) and corpus.vocab_size == 29
    assert len(corpus.train_ids) == int(0.9 * len(text)) and len(corpus.train_ids) + len(corpus.val_ids) == len(text)
    assert corpus.train_ids.dtype == corpus.val_ids.dtype == torch.long
    assert corpus.tokenizer.decode(torch.cat([corpus.train_ids, corpus.val_ids])) == text

    sliced = char_corpus("anything", max_chars=100)
    assert sliced.vocab_size == 29, "the vocabulary still comes from the whole text"
    assert sliced.text == text[:100] and len(sliced.train_ids) == 90 and len(sliced.val_ids) == 10


def test_char_corpus_refuses_bad_arguments(monkeypatch):
    monkeypatch.setattr(language, "load_text", lambda name: "abcdefghij")
    with pytest.raises(ValueError, match="train_fraction"):
        char_corpus(train_fraction=0)
    with pytest.raises(ValueError, match="max_chars"):
        char_corpus(max_chars=1)
    with pytest.raises(ValueError, match="each part needs at least 2"):
        char_corpus(train_fraction=0.95)


@pytest.mark.skipif(not (Path(os.environ.get("ZERO2GPT_DATA", "/nonexistent")) / "tinyshakespeare").is_dir(),
                    reason="needs ZERO2GPT_DATA with tinyshakespeare")
def test_tiny_shakespeare_has_65_characters_and_the_published_split():
    corpus = char_corpus("tinyshakespeare")
    assert corpus.vocab_size == 65
    assert (len(corpus.train_ids), len(corpus.val_ids)) == (1_003_854, 111_540)
    probabilities = count_bigram_probabilities(corpus.train_ids, 65)
    nats = float(-probabilities[corpus.val_ids[:-1], corpus.val_ids[1:]].log().mean())
    assert 2.47 < nats < 2.50, "the count bigram's known score, about 2.48 nats per character"


# --- get_batch and the loss ---------------------------------------------------------------------


def test_get_batch_gives_chunks_and_their_next_ids():
    ids = torch.arange(100)
    inputs, targets = get_batch(ids, 8, 5, generator=torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (5, 8) and inputs.dtype == targets.dtype == torch.long
    assert torch.equal(targets, inputs + 1), "targets are the inputs shifted by one"
    assert torch.equal(inputs, inputs[:, :1] + torch.arange(8)), "each row is a contiguous chunk"
    assert int(targets.max()) <= 99


def test_get_batch_is_repeatable_with_a_generator_and_covers_every_start():
    ids = torch.arange(10)
    first = get_batch(ids, 3, 50, generator=torch.Generator().manual_seed(1))
    again = get_batch(ids, 3, 50, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert set(first[0][:, 0].tolist()) == set(range(7)), "every start from 0 to len - block_size - 1"


def test_get_batch_moves_to_a_device():
    inputs, targets = get_batch(torch.arange(20), 4, 2, device="cpu")
    assert inputs.device.type == targets.device.type == "cpu"


def test_get_batch_refuses_bad_arguments():
    with pytest.raises(ValueError, match="needs more than 8 ids"):
        get_batch(torch.arange(8), 8, 2)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1; got 0"):
        get_batch(torch.arange(8), 0, 2)
    with pytest.raises(ValueError, match="batch_size"):
        get_batch(torch.arange(8), 2, 0)
    with pytest.raises(ValueError, match="1-D torch.long tensor"):
        get_batch(torch.arange(8.0), 2, 2)
    with pytest.raises(ValueError, match="1-D torch.long tensor"):
        get_batch([1, 2, 3], 1, 1)


def test_language_model_loss_is_the_mean_cross_entropy_over_all_positions():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 4, 7), torch.randint(7, (3, 4))
    expected = F.cross_entropy(logits.reshape(12, 7), targets.reshape(12))
    assert torch.allclose(language_model_loss(logits, targets), expected)
    with pytest.raises(ValueError, match=r"logits \(3, 4, 7\) and targets \(3, 5\)"):
        language_model_loss(logits, torch.zeros(3, 5, dtype=torch.long))


# --- the bigram ---------------------------------------------------------------------------------


def test_bigram_model_starts_uniform_and_follows_the_contract():
    model = BigramLanguageModel(11)
    ids = torch.randint(11, (2, 5))
    logits = model(ids)
    assert logits.shape == (2, 5, 11) and model.block_size is None
    assert math.isclose(float(language_model_loss(logits, ids).detach()), math.log(11), rel_tol=1e-6)
    with pytest.raises(ValueError, match="vocab_size"):
        BigramLanguageModel(0)


def test_count_bigram_probabilities_counts_pairs_and_smooths():
    ids = torch.tensor([0, 1, 0, 1, 2])
    counted = count_bigram_probabilities(ids, 3, smoothing=0.0)
    assert torch.allclose(counted[0], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(counted[1], torch.tensor([0.5, 0.0, 0.5]))
    assert torch.allclose(counted[2], torch.full((3,), 1 / 3)), "a row without counts is uniform"
    smoothed = count_bigram_probabilities(ids, 3, smoothing=1.0)
    assert torch.allclose(smoothed[0], torch.tensor([1.0, 3.0, 1.0]) / 5)
    assert torch.allclose(smoothed.sum(dim=1), torch.ones(3))


def test_count_bigram_probabilities_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"ids must lie in 0\.\.2"):
        count_bigram_probabilities(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="smoothing must be a finite number >= 0; got -1"):
        count_bigram_probabilities(torch.tensor([0, 1]), 3, smoothing=-1)


def count_model(probabilities: torch.Tensor) -> BigramLanguageModel:
    model = BigramLanguageModel(len(probabilities))
    with torch.no_grad():
        model.table.weight.copy_(probabilities.log())
    return model


def test_evaluate_nats_of_a_count_bigram_is_its_log_loss_for_any_window():
    corpus = corpus_of(markov_text(5000))
    probabilities = count_bigram_probabilities(corpus.train_ids, corpus.vocab_size)
    direct = float(-probabilities[corpus.val_ids[:-1], corpus.val_ids[1:]].log().mean())
    model = count_model(probabilities)
    for block_size in (1, 7, 64, 10_000):
        for batch_size in (1, 3, 64):
            assert math.isclose(evaluate_nats(model, corpus.val_ids, block_size, batch_size=batch_size), direct,
                                rel_tol=1e-5)
    head = corpus.val_ids[:101]
    expected = float(-probabilities[head[:-1], head[1:]].log().mean())
    assert math.isclose(evaluate_nats(model, corpus.val_ids, 8, max_tokens=101), expected, rel_tol=1e-5)


class Recorder(nn.Module):
    """A uniform language model that records the inputs it sees; ``block_size`` as given."""

    def __init__(self, vocab_size: int, block_size: int | None):
        super().__init__()
        self.vocab_size, self.block_size, self.seen = vocab_size, block_size, []
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, ids):
        if self.block_size is not None:
            assert ids.shape[1] <= self.block_size, "never longer than the model's context"
        self.seen.append(ids.clone())
        return torch.zeros(*ids.shape, self.vocab_size) + 0 * self.weight


def test_evaluate_nats_predicts_every_token_once_and_restores_the_mode():
    model = Recorder(5, block_size=None).train()
    ids = torch.randint(5, (23,))
    assert math.isclose(evaluate_nats(model, ids, 4, batch_size=2), math.log(5), rel_tol=1e-6)
    assert model.training, "the mode it had before"
    assert sum(batch.numel() for batch in model.seen) == 22, "every id after the first, exactly once"
    assert torch.equal(torch.cat([batch.reshape(-1) for batch in model.seen]), ids[:-1])


def test_evaluate_nats_refuses_bad_arguments():
    with pytest.raises(ValueError, match="longer than the model's context, block_size=4"):
        evaluate_nats(Recorder(5, block_size=4), torch.arange(5), 8)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        evaluate_nats(Recorder(5, block_size=None), torch.arange(1), 8)
    with pytest.raises(ValueError, match="max_tokens"):
        evaluate_nats(Recorder(5, block_size=None), torch.arange(5), 8, max_tokens=1)


def test_bits_per_char():
    assert math.isclose(bits_per_char(math.log(2)), 1.0)
    assert math.isclose(bits_per_char(math.log(65)), math.log2(65))
    assert math.isclose(bits_per_char(2.0, tokens_per_char=0.25), 0.5 / math.log(2))
    with pytest.raises(ValueError, match="nats_per_token"):
        bits_per_char(-1.0)
    with pytest.raises(ValueError, match="tokens_per_char"):
        bits_per_char(1.0, tokens_per_char=0)


# --- training -----------------------------------------------------------------------------------


def test_trained_bigram_net_agrees_with_counting():
    corpus = corpus_of(markov_text(20_000, seed=1))
    probabilities = count_bigram_probabilities(corpus.train_ids, corpus.vocab_size)
    counted = float(-probabilities[corpus.val_ids[:-1], corpus.val_ids[1:]].log().mean())
    model, history = train_bigram(BigramConfig(steps=300, eval_every=100), corpus, device="cpu", progress=False)
    assert isinstance(model, BigramLanguageModel) and history.eval_steps == [100, 200, 300]
    assert math.isclose(history.train_loss[0], math.log(corpus.vocab_size), rel_tol=1e-5)
    assert abs(min(history.val_loss) - counted) < 0.02
    assert math.isclose(evaluate_nats(model, corpus.val_ids, 32), min(history.val_loss), rel_tol=1e-5), "best weights kept"


def test_train_language_model_is_repeatable_and_lowers_the_val_loss():
    corpus = corpus_of(markov_text(3000, seed=2))
    runs = []
    for _ in range(2):
        model = BigramLanguageModel(corpus.vocab_size)
        runs.append(train_language_model(model, corpus, block_size=16, batch_size=8, steps=60, learning_rate=0.05,
                                         eval_every=20, eval_tokens=200, seed=3, device="cpu", progress=False))
    assert runs[0].train_loss == runs[1].train_loss and runs[0].val_loss == runs[1].val_loss
    assert runs[0].val_loss[-1] < math.log(corpus.vocab_size) - 0.1


def test_train_language_model_and_train_bigram_refuse_bad_arguments():
    corpus = corpus_of(markov_text(500))
    with pytest.raises(ValueError, match="longer than the model's context"):
        train_language_model(Recorder(corpus.vocab_size, block_size=4), corpus, block_size=8, batch_size=2, steps=1)
    with pytest.raises(ValueError, match="eval_tokens"):
        train_language_model(BigramLanguageModel(corpus.vocab_size), corpus, block_size=8, batch_size=2, steps=1,
                             eval_tokens=1)
    with pytest.raises(TypeError, match="config must be a BigramConfig"):
        train_bigram({"steps": 10}, corpus)


# --- generate -----------------------------------------------------------------------------------


def peaked_bigram(vocab_size: int = 6) -> BigramLanguageModel:
    """A bigram whose likeliest next id after i is i + 1 (mod vocab_size)."""
    model = BigramLanguageModel(vocab_size)
    with torch.no_grad():
        model.table.weight.copy_(torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(0)))
        model.table.weight[torch.arange(vocab_size), (torch.arange(vocab_size) + 1) % vocab_size] += 10
    return model


def test_generate_appends_n_ids_after_the_context():
    model = peaked_bigram()
    context = torch.tensor([[0, 1], [2, 3]])
    out = generate(model, context, 7, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 9) and out.dtype == torch.long and torch.equal(out[:, :2], context)
    assert torch.equal(generate(model, context, 0), context)


def test_greedy_at_temperature_zero_is_deterministic_argmax():
    model = peaked_bigram()
    context = torch.tensor([[0]])
    first = generate(model, context, 12, temperature=0, generator=torch.Generator().manual_seed(1))
    second = generate(model, context, 12, temperature=0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, second)
    assert first[0].tolist() == [step % 6 for step in range(13)], "always the likeliest: i -> i + 1"
    assert torch.equal(generate(model, context, 12, top_k=1, generator=torch.Generator().manual_seed(3)), first), \
        "top_k=1 is greedy too"


def test_sampling_is_repeatable_with_a_generator_and_top_k_keeps_the_likeliest():
    model = peaked_bigram()
    with torch.no_grad():
        model.table.weight.zero_()  # uniform: every id possible
        model.table.weight[:, :2] += 1.0  # ids 0 and 1 likeliest after every id
    context = torch.zeros(4, 1, dtype=torch.long)
    a = generate(model, context, 50, temperature=1.5, generator=torch.Generator().manual_seed(4))
    b = generate(model, context, 50, temperature=1.5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert len(set(a[:, 1:].flatten().tolist())) > 2, "without top_k, the others turn up too"
    limited = generate(model, context, 50, top_k=2, generator=torch.Generator().manual_seed(4))
    assert set(limited[:, 1:].flatten().tolist()) <= {0, 1}


def test_generate_crops_the_context_to_the_models_block_size_and_restores_the_mode():
    model = Recorder(5, block_size=4).train()
    out = generate(model, torch.zeros(1, 3, dtype=torch.long), 6, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 9)
    assert max(ids.shape[1] for ids in model.seen) == 4
    assert model.training


def test_generate_refuses_bad_arguments():
    model = peaked_bigram()
    context = torch.zeros(1, 1, dtype=torch.long)
    with pytest.raises(ValueError, match=r"temperature must be a finite number >= 0; got -1\.0"):
        generate(model, context, 5, temperature=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, context, 5, temperature=float("nan"))
    with pytest.raises(ValueError, match="top_k must be an integer >= 1 or None; got 0"):
        generate(model, context, 5, top_k=0)
    with pytest.raises(ValueError, match="top_k must be an integer from 1 to the vocabulary size, 6; got 7"):
        generate(model, context, 5, top_k=7)
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        generate(model, context, -1)
    with pytest.raises(ValueError, match=r"context must be a \(batch, time\) torch.long tensor"):
        generate(model, torch.zeros(3, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="time >= 1"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 5)
